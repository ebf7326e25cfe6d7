"""Best-of-N: among a prompt's surviving samples keep at most k, by length, by chance or by a score."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from datakit.errors import DatakitError
from datakit.filters import Filter, reason

ORDERS = ("shortest", "random")


@dataclass
class BestOfN(Filter):
    """Keep the k best correct samples per prompt: `by` is shortest, random (seeded), or the name of a
    score column (judge or reward model), highest first."""

    name = "best_of_n"
    score_params = None  # a rank depends on which samples survived before
    reads = ("prompt_id", "sample_index", "completion_tokens")
    scores = {"best_of_n_rank": pl.Int64}
    group = True

    k: int = 1
    by: str = "shortest"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise DatakitError(f"best_of_n: k must be >= 1, got {self.k}")

    def columns(self) -> tuple[str, ...]:
        return self.reads if self.by in ORDERS else (*self.reads, self.by)

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        if self.by == "shortest":
            order = [pl.col("completion_tokens"), pl.col("sample_index")]
            descending = [False, False]
        elif self.by == "random":
            key = pl.concat_str([pl.col("prompt_id"), pl.col("sample_index").cast(pl.String)], separator="/")
            order, descending = [key.hash(seed=self.seed), pl.col("sample_index")], [False, False]
        else:
            order, descending = [pl.col(self.by).fill_null(float("-inf")), pl.col("sample_index")], [True, False]
        ranked = rows.with_row_index("_best_of_n_order").sort(order, descending=descending)
        ranked = ranked.with_columns(best_of_n_rank=(pl.int_range(pl.len()).over("prompt_id") + 1).cast(pl.Int64))
        return ranked.sort("_best_of_n_order").select("best_of_n_rank")

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        detail = pl.format("rank {} by {}, keeping {} per prompt", pl.col("best_of_n_rank"), pl.lit(self.by), pl.lit(self.k))
        return frame.select(pl.when(pl.col("best_of_n_rank") > self.k).then(reason("not_best_of_n", detail)).otherwise(None)).to_series()
