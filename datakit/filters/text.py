"""Cheap text filters over the split completion: format, long paragraphs, code in the chain of
thought, and degenerate repetition. All vectorised with Polars except the n-gram count (numpy, per row)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from datakit.filters import Filter, reason
from datakit.reasoning import THINK_CLOSE

CODE_FENCE = r"(?m)^\s*```"
_GRAM_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd, with bits spread: each word's hash moves every bit of the n-gram's


@dataclass
class Format(Filter):
    """A closed think block, a non-empty answer, not cut off by max_tokens.

    The think block a row needs depends on its `think_mode` (datakit/cot.py; an input without the
    column, made before it existed, is `native`): a `prompted` row was asked for a chain of thought,
    so it needs one, whatever `require_think`; an `empty` row (a simple query) needs none; a `native`
    row needs a closed block when `require_think`."""

    name = "format"
    reads = ("completion", "reasoning", "answer", "finish_reason")
    scores = {"format_truncated": pl.Boolean, "format_think_closed": pl.Boolean, "format_answer_chars": pl.Int64, "format_think_mode": pl.String}

    require_think: bool = True  # R1 reasoning data must carry its chain of thought
    min_answer_chars: int = 1

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        mode = pl.col("think_mode").fill_null("native") if "think_mode" in rows.columns else pl.lit("native")
        return rows.select(
            format_truncated=pl.col("finish_reason") == "length",
            format_think_closed=pl.col("completion").str.contains(THINK_CLOSE, literal=True),
            format_answer_chars=pl.col("answer").str.strip_chars().str.len_chars().cast(pl.Int64),
            format_think_mode=mode,
        )

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        mode = pl.col("format_think_mode")
        return frame.select(
            pl.when(pl.col("format_truncated"))
            .then(reason("truncated", "finish_reason=length"))
            .when((mode == "prompted") & (pl.col("reasoning").str.strip_chars() == ""))
            .then(reason("no_think_block", "asked for a chain of thought (think_mode prompted), the teacher wrote none"))
            .when((mode == "native") & pl.lit(self.require_think) & ~pl.col("format_think_closed"))
            .then(reason("no_think_block", "no closed <think>...</think> block"))
            .when(pl.col("format_answer_chars") < self.min_answer_chars)
            .then(reason("empty_answer", pl.format("{} characters after </think>", pl.col("format_answer_chars"))))
            .otherwise(None)
        ).to_series()


@dataclass
class LongParagraph(Filter):
    """R1 dropped chains of thought that run on in long paragraphs."""

    name = "long_paragraph"
    reads = ("reasoning",)
    scores = {"longest_paragraph_words": pl.Int64}

    max_words: int = 300

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        paragraphs = pl.col("reasoning").str.split("\n\n").list.eval(pl.element().str.count_matches(r"\S+"))
        return rows.select(longest_paragraph_words=paragraphs.list.max().fill_null(0).cast(pl.Int64))

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        too_long = pl.col("longest_paragraph_words") > self.max_words
        detail = pl.format("a paragraph of {} words > {}", pl.col("longest_paragraph_words"), pl.lit(self.max_words))
        return frame.select(pl.when(too_long).then(reason("long_paragraph", detail)).otherwise(None)).to_series()


@dataclass
class CodeBlock(Filter):
    """R1 dropped chains of thought holding code blocks, except where code is the task."""

    name = "code_block"
    reads = ("reasoning", "domain")
    scores = {"reasoning_code_blocks": pl.Int64}

    allowed_domains: list[str] = field(default_factory=lambda: ["code"])

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        # each block has an opening and a closing fence; an unclosed one still counts
        fences = pl.col("reasoning").str.count_matches(CODE_FENCE)
        return rows.select(reasoning_code_blocks=((fences + 1) // 2).cast(pl.Int64))

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        bad = (pl.col("reasoning_code_blocks") > 0) & ~pl.col("domain").is_in(self.allowed_domains)
        detail = pl.format("{} code block(s) in the chain of thought of a {} prompt", pl.col("reasoning_code_blocks"), pl.col("domain"))
        return frame.select(pl.when(bad).then(reason("code_in_reasoning", detail)).otherwise(None)).to_series()


@dataclass
class Repetition(Filter):
    """Share of word n-grams that repeat an earlier one: near 0 for prose, near 1 for a model stuck in a loop."""

    name = "repetition"
    score_params = ("n",)
    reads = ("reasoning", "answer")
    scores = {"repetition": pl.Float64}

    n: int = 10
    max_repetition: float = 0.3

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        texts = (rows["reasoning"] + "\n" + rows["answer"]).to_list()
        return pl.DataFrame({"repetition": [repeated_ngram_share(t, self.n) for t in texts]}, schema=self.scores)

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        detail = pl.format("{} of {}-grams repeated > {}", pl.col("repetition").round(3), pl.lit(self.n), pl.lit(self.max_repetition))
        bad = pl.col("repetition") > self.max_repetition
        return frame.select(pl.when(bad).then(reason("repetitive", detail)).otherwise(None)).to_series()


def repeated_ngram_share(text: str, n: int) -> float:
    """Share of the text's word n-grams (words split on whitespace) equal to an earlier one.

    The n-grams are compared by a 64-bit hash first, in numpy (~1.5x faster than a set of tuples):
    sorted, equal hashes sit side by side, and only those pairs are compared word by word. Where all
    of them are equal n-grams the count is exact; a pair that only shares its hash (a collision,
    never seen in practice) sends the text to the plain set of tuples."""
    words = text.split()
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    grams = hashes[:total].copy()
    for k in range(1, n):  # (wrapping arithmetic: a 64-bit polynomial hash of each n-gram)
        grams *= _GRAM_MULTIPLIER
        grams ^= hashes[k : k + total]
    order = np.argsort(grams)
    ordered = grams[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    for a, b in zip(order[same].tolist(), order[same + 1].tolist()):
        if words[a : a + n] != words[b : b + n]:
            return _repeated_ngram_share_exact(words, n)
    return len(same) / total


def _repeated_ngram_share_exact(words: list[str], n: int) -> float:
    total = len(words) - n + 1
    distinct = len(set(zip(*(words[i:] for i in range(n)))))  # zip stops at the last full n-gram
    return (total - distinct) / total
