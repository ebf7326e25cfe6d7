"""TRL's two conversational forms: the mix's prompt/completion split, `verified_by` (which check proved
a row, carried from the filter's verdicts into the mix), and distill reading either form with the same
loss on the same tokens."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_distill import distill_config, loss_text, mix_folder
from test_mix import folder, math_rows, writing_rows
from typer.testing import CliRunner

from datakit.cli import app
from datakit.dataset import read_table, write_json_atomic, write_shard
from datakit.distill import IGNORE, run_distill, tokenize_conversation
from datakit.errors import DatakitError
from datakit.schema import MESSAGE, verified_by
from datakit.sft_format import PROMPT_COMPLETION, prompt_completion, write_prompt_completion

TURNS = pa.list_(MESSAGE)
MULTI_TURN = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "<think>\n\n</think>\n\nHello."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
]


def test_the_split_puts_every_turn_before_the_final_answer_in_the_prompt() -> None:
    single = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    table = pa.table({"id": ["a", "b"], "messages": pa.array([MULTI_TURN, single], TURNS), "domain": ["qa", "qa"]})
    split = prompt_completion(table)
    assert split.column_names == ["id", "prompt", "completion", "domain"]
    assert split.column("prompt").to_pylist() == [MULTI_TURN[:-1], single[:1]]
    assert split.column("completion").to_pylist() == [MULTI_TURN[-1:], single[1:]]
    assert split.schema.field("prompt").type == split.schema.field("completion").type == TURNS


def test_a_conversation_without_a_final_answer_is_refused_naming_file_and_row(tmp_path: Path) -> None:
    rows = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], [{"role": "user", "content": "no answer"}]]
    write_shard(tmp_path, 0, pa.table({"messages": pa.array(rows, TURNS)}))
    with pytest.raises(DatakitError, match=r"part-00000.parquet row 1: `messages` ends with a 'user' turn"):
        write_prompt_completion(tmp_path)
    assert not (tmp_path / PROMPT_COMPLETION).exists()


def test_writing_the_split_resumes_and_keeps_shards_already_written(tmp_path: Path) -> None:
    for shard in range(2):
        write_shard(tmp_path, shard, pa.table({"messages": pa.array([MULTI_TURN] * (shard + 1), TURNS)}))
    write_prompt_completion(tmp_path)
    first = tmp_path / PROMPT_COMPLETION / "shards" / "part-00000.parquet"
    written = first.stat().st_mtime_ns
    (tmp_path / PROMPT_COMPLETION / "shards" / "part-00001.parquet").unlink()  # killed before its second shard
    write_prompt_completion(tmp_path)
    assert first.stat().st_mtime_ns == written
    assert [pq.ParquetFile(f).metadata.num_rows for f in sorted((tmp_path / PROMPT_COMPLETION / "shards").glob("*.parquet"))] == [1, 2]


def test_the_mix_command_writes_the_split_on_request_and_says_where(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(3, 1) + writing_rows(2))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"mix:\n  sources: [{{path: {source}}}]\n  quotas: {{reasoning: {{math: 3}}, non_reasoning: {{writing: 2}}}}\n"
        "  decontamination: {benchmarks: [{name: humaneval, path: human-eval, fields: [prompt], id_field: task_id}]}\n"
    )
    plain = CliRunner().invoke(app, ["mix", str(tmp_path / "plain"), "--recipe", str(recipe), "--no-progress"])
    assert plain.exit_code == 0, plain.output
    assert not (tmp_path / "plain" / PROMPT_COMPLETION).exists() and "prompt_completion" not in (tmp_path / "plain" / "README.md").read_text()
    split = CliRunner().invoke(app, ["mix", str(tmp_path / "split"), "--recipe", str(recipe), "--prompt-completion", "--no-progress"])
    assert split.exit_code == 0, split.output
    assert f"(configprompt_completion):{tmp_path / 'split' / PROMPT_COMPLETION}" in "".join(split.output.split())  # as rich wraps it
    whole, pairs = read_table(tmp_path / "split").to_pylist(), read_table(tmp_path / "split" / PROMPT_COMPLETION).to_pylist()
    assert len(whole) == len(pairs) == 5 and all(p["prompt"] + p["completion"] == w["messages"] for w, p in zip(whole, pairs))
    assert "config_name: prompt_completion" in (tmp_path / "split" / "README.md").read_text()


def test_verified_by_names_the_check_that_proved_each_row() -> None:
    verdicts = pl.DataFrame({
        "correct_verdict": ["correct", "correct", "unverified", "unverified", "no_answer", "wrong"],
        "correct_verifier": ["math", "code", "judge", "none", "math", "math"],
        "judge_verdict": ["skipped", "correct", "correct", "skipped", "correct", None],
    })
    found = verdicts.with_columns(verified_by(verdicts.columns))["verified_by"].to_list()
    # a rule's proof wins over the judge's; the judge decides what rules could not; the rest is unproven
    assert found == ["math", "code", "judge", "none", "judge", "none"]
    rule_only = verdicts.drop("judge_verdict")
    assert rule_only.with_columns(verified_by(rule_only.columns))["verified_by"].to_list() == ["math", "code", "none", "none", "none", "none"]
    unchecked = pl.DataFrame({"prompt_id": ["a", "b"]})
    assert unchecked.with_columns(verified_by(unchecked.columns))["verified_by"].to_list() == ["none", "none"]
    carried = pl.DataFrame({"verified_by": ["judge", None]})  # a mix of mixes keeps what its source proved
    assert carried.with_columns(verified_by(carried.columns))["verified_by"].to_list() == ["judge", "none"]


def test_a_prompt_completion_row_trains_on_its_completion_only(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    whole = tokenize_conversation(tokenizer, MULTI_TURN)
    split = tokenize_conversation(tokenizer, MULTI_TURN, prompt_turns=len(MULTI_TURN) - 1)
    assert split["input_ids"] == whole["input_ids"]
    assert loss_text(tokenizer, whole)[0] == "<think>\n\n</think>\n\nHello.<|im_end|><think>\nTwo and two.\n</think>\n\n4<|im_end|>"
    assert loss_text(tokenizer, split)[0] == "<think>\nTwo and two.\n</think>\n\n4<|im_end|>"  # the prompt's earlier answer is context
    assert sum(label != IGNORE for label in split["labels"]) < sum(label != IGNORE for label in whole["labels"])


def test_distill_trains_on_a_prompt_completion_folder_as_on_its_messages(tiny_model: str, tmp_path: Path) -> None:
    mix = mix_folder(tmp_path)
    write_prompt_completion(mix)
    split = mix / PROMPT_COMPLETION
    write_json_atomic(split / "manifest.json", {"stage": "mix/prompt_completion", "run_hash": "abc-pc", "complete": True})
    whole = run_distill(distill_config(tiny_model, mix, tmp_path / "whole", max_steps=2)).manifest
    pairs = run_distill(distill_config(tiny_model, split, tmp_path / "pairs", max_steps=2)).manifest
    # single-turn rows: the same tokens, and the loss on exactly the same ones (the answer and its end of turn)
    assert (pairs["rows"], pairs["train_tokens"], pairs["loss_tokens"]) == (whole["rows"], whole["train_tokens"], whole["loss_tokens"])
    assert 0 < pairs["loss_tokens"] < pairs["train_tokens"]


def test_distill_refuses_text_prompts_and_rows_of_neither_form(tiny_model: str, tmp_path: Path) -> None:
    text = tmp_path / "text"
    write_shard(text, 0, pa.table({"prompt": ["What is 2+2?"], "completion": ["4"]}))
    with pytest.raises(DatakitError, match="`prompt` and `completion` are text, not lists of"):
        run_distill(distill_config(tiny_model, text, tmp_path / "out-text"))
    other = tmp_path / "other"
    write_shard(other, 0, pa.table({"question": ["What is 2+2?"]}))
    with pytest.raises(DatakitError, match="no `messages` column and no `prompt`/`completion` columns"):
        run_distill(distill_config(tiny_model, other, tmp_path / "out-other"))
