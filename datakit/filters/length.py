"""Length in tokens of the chain of thought and of the answer, with the generator's tokenizer.

Answers are short and tokenized. The chain of thought is most of a completion, so where the sample
carries the generator's own `completion_tokens`, its length is that count minus the tokens of the
rest of the completion (think tags and answer) — exact to a token or two at the seams, and ~10x
cheaper than tokenizing tens of thousands of tokens again. Foreign traces without it are tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from tokenizers import Tokenizer

from datakit.errors import DatakitError
from datakit.filters import Filter, reason
from datakit.models import resolve_model


@dataclass
class Length(Filter):
    """Bounds on reasoning and answer tokens (R1 capped its samples' lengths)."""

    name = "length"
    score_params = ("tokenizer",)
    reads = ("reasoning", "answer")
    scores = {"reasoning_tokens": pl.Int64, "answer_tokens": pl.Int64}

    tokenizer: str | None = None  # default: the model that generated the input (its manifest's `model`)
    min_reasoning_tokens: int = 0
    max_reasoning_tokens: int | None = None
    min_answer_tokens: int = 0
    max_answer_tokens: int | None = None

    def setup(self, context: dict[str, Any]) -> None:
        from transformers import AutoTokenizer

        name = self.tokenizer or context.get("model")
        if not name:
            raise DatakitError("the length filter needs `tokenizer:` (the input's manifest names no model)")
        self._tokenizer = _bare_tokenizer(AutoTokenizer.from_pretrained(resolve_model(name)))

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        answers, reasonings = rows["answer"].to_list(), rows["reasoning"].to_list()
        if {"completion", "completion_tokens"} <= set(rows.columns):
            rest = [c.replace(r, "", 1) for c, r in zip(rows["completion"].to_list(), reasonings)]
            counted = self._count(answers + rest)  # one tokenizer call
            answer_tokens, rest_tokens = counted[: rows.height], counted[rows.height :]
            totals = rows["completion_tokens"].to_list()
            reasoning_tokens = [max(0, total - n) if reasoning else 0 for total, n, reasoning in zip(totals, rest_tokens, reasonings)]
        else:
            answer_tokens, reasoning_tokens = self._count(answers), self._count(reasonings)
        return pl.DataFrame({"reasoning_tokens": reasoning_tokens, "answer_tokens": answer_tokens}, schema=self.scores)

    def _count(self, texts: list[str]) -> list[int]:
        """Tokens of each text; each distinct text is tokenized once (samples of a prompt often end alike)."""
        distinct = list(dict.fromkeys(texts))
        if not distinct:
            return []
        if isinstance(self._tokenizer, Tokenizer):
            lengths = [len(encoding.ids) for encoding in self._tokenizer.encode_batch_fast(distinct, add_special_tokens=False)]
        else:
            lengths = [len(ids) for ids in self._tokenizer(distinct, add_special_tokens=False)["input_ids"]]
        counts = dict(zip(distinct, lengths))
        return [counts[text] for text in texts]

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        rules = [
            ("reasoning_tokens", ">", self.max_reasoning_tokens, "too_long"),
            ("reasoning_tokens", "<", self.min_reasoning_tokens, "too_short"),
            ("answer_tokens", ">", self.max_answer_tokens, "too_long"),
            ("answer_tokens", "<", self.min_answer_tokens, "too_short"),
        ]
        verdict = pl.lit(None, dtype=pl.String)
        for column, op, bound, code in reversed(rules):  # the first rule broken names the reason
            if bound is None:
                continue
            broken = pl.col(column) > bound if op == ">" else pl.col(column) < bound
            detail = pl.format(f"{{}} {column.replace('_', ' ')} {op} {bound}", pl.col(column))
            verdict = pl.when(broken).then(reason(code, detail)).otherwise(verdict)
        return frame.select(verdict.alias("reason")).to_series()


def _bare_tokenizer(tokenizer: Any) -> Any:
    """The Rust tokenizer a transformers fast tokenizer calls, set as `tokenizer(texts, add_special_tokens=False)`
    sets it (no truncation, no padding, special tokens as it splits them), so it counts the same tokens. It
    pickles without transformers: the stage's pool workers take it from the stage instead of importing
    transformers and loading the tokenizer again. A tokenizer without one is kept as it is."""
    bare = getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(bare, Tokenizer):
        return tokenizer
    bare.no_truncation()
    bare.no_padding()
    bare.encode_special_tokens = bool(getattr(tokenizer, "split_special_tokens", False))
    return bare
