"""The two conversational formats TRL's SFTTrainer reads, and the split from one to the other.

`messages` (the mix's default) is a whole conversation. `prompt` (every turn before the final
assistant turn) + `completion` (that turn, as a one-turn list) is the same conversation split so
that TRL puts the loss on the completion alone, with any chat template: its `assistant_only_loss`
needs `{% generation %}` markers that SmolLM2's, Qwen2.5's and Llama 3's templates lack.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datakit.dataset import completed_shards, shard_path, write_shard
from datakit.errors import DatakitError

PROMPT_COMPLETION = "prompt_completion"  # the mix's sub-folder and Hub config holding the split


def prompt_completion(table: pa.Table, where: str = "") -> pa.Table:
    """`messages` rows as `prompt` + `completion` (in that place), the other columns unchanged.
    Every conversation must end with an assistant turn: that turn is what the student learns;
    `where` names the table's file in the error about one that does not."""
    messages = table.column("messages")
    frame = pl.from_arrow(table.select(["messages"]))
    last_roles = frame.select(pl.col("messages").list.last().struct.field("role")).to_series()
    bad = (last_roles != "assistant").fill_null(True)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DatakitError(f"{where or 'the table'} row {row}: `messages` ends with a {last_roles[row]!r} turn, not the assistant's; it cannot be split into prompt and completion")
    split = frame.select(
        prompt=pl.col("messages").list.head(pl.col("messages").list.len() - 1),
        completion=pl.col("messages").list.tail(1),
    ).to_arrow().cast(pa.schema([pa.field("prompt", messages.type, False), pa.field("completion", messages.type, False)]))
    at = table.column_names.index("messages")
    rest = table.remove_column(at)
    return rest.add_column(at, split.field("completion"), split.column("completion")).add_column(at, split.field("prompt"), split.column("prompt"))


def write_prompt_completion(folder: Path) -> None:
    """FOLDER/prompt_completion/shards/: each of the folder's shards split, one shard at a time
    (memory stays flat); a shard already split is kept, so a killed run resumes."""
    for index in sorted(completed_shards(folder) - completed_shards(folder / PROMPT_COMPLETION)):
        shard = shard_path(folder, index)
        write_shard(folder / PROMPT_COMPLETION, index, prompt_completion(pq.read_table(shard), str(shard)))
