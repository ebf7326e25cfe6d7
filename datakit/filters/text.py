"""Cheap text filters over the split completion: format, long paragraphs, code in the chain of
thought, and degenerate repetition. All vectorised with Polars except the paragraph and n-gram
counts (compiled scans of the texts' UTF-8 bytes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import polars as pl

from datakit.arrow_buffers import utf8_buffers
from datakit.dedup import xxh64_span
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
        return pl.DataFrame({"longest_paragraph_words": longest_paragraph_words(rows["reasoning"])}, schema=self.scores)

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
        return pl.DataFrame({"repetition": repeated_ngram_shares(rows["reasoning"] + "\n" + rows["answer"], self.n)}, schema=self.scores)

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        detail = pl.format("{} of {}-grams repeated > {}", pl.col("repetition").round(3), pl.lit(self.n), pl.lit(self.max_repetition))
        bad = pl.col("repetition") > self.max_repetition
        return frame.select(pl.when(bad).then(reason("repetitive", detail)).otherwise(None)).to_series()


def longest_paragraph_words(texts: pl.Series) -> np.ndarray:
    """Per text, the words (as `str.split()` finds them) of its longest paragraph, paragraphs being
    what "\\n\\n" separates; 0 for a null text. A compiled scan of the UTF-8 bytes (a regex per
    paragraph in Polars cost as much as the repetition count)."""
    data, offsets = utf8_buffers(texts.fill_null("").to_arrow())
    longest = np.zeros(len(texts), np.int64)
    _longest_paragraph_words(data, offsets, longest)
    return longest


@numba.njit(nogil=True, cache=True)
def _longest_paragraph_words(data: np.ndarray, offsets: np.ndarray, longest: np.ndarray) -> None:
    for t in range(len(longest)):
        words, in_word, i, hi = 0, False, offsets[t], offsets[t + 1]
        while i < hi:
            if data[i] == 10 and i + 1 < hi and data[i + 1] == 10:  # a paragraph ends (a word too: "\n" is a space)
                longest[t], words, in_word = max(longest[t], words), 0, False
                i += 2
                continue
            width = _space_bytes(data, i, hi)
            if width:
                in_word = False
                i += width
            else:
                words += not in_word
                in_word = True
                i += 1
        longest[t] = max(longest[t], words)


def repeated_ngram_shares(texts: pl.Series, n: int) -> np.ndarray:
    """Per text, the share of its word n-grams (words split on whitespace, as `str.split()` does)
    equal to an earlier one: 0.0 where it has fewer than `n` words.

    A compiled scan of the UTF-8 bytes, with no Python string per word (it was 40% of the R1 chain's
    time): each word's xxh64, each n-gram's 64-bit polynomial hash of those, a hash table of the
    n-grams seen, and each n-gram whose hash is there compared byte by byte with the one it found. A
    pair that only shares its hash (a collision, never seen in practice) sends its text to the plain
    set of tuples."""
    if texts.null_count():
        raise ValueError(f"{texts.null_count()} null text(s)")  # scored row by row instead (the stage's fallback)
    data, offsets = utf8_buffers(texts.to_arrow())
    shares = np.zeros(len(texts))
    # work space sized for the longest text, made here and passed as whole arrays: the compiled scan ran
    # ~5x slower when it allocated them, or made a view of any array, itself (measured on R1-length chains)
    capacity = int(np.max(np.diff(offsets), initial=0)) // 2 + 1  # a word takes a byte and a gap
    starts, ends = np.empty(capacity, np.int64), np.empty(capacity, np.int64)  # each word's first byte and the one after
    word_hashes, grams = np.empty(capacity, np.uint64), np.empty(capacity, np.uint64)
    seen = np.empty(4 * capacity, np.int64)  # holds _table_bits' table for any text: a power of two under 4x its words
    _repeated_ngram_shares(data, offsets, n, shares, starts, ends, word_hashes, grams, seen)
    for t in np.flatnonzero(shares < 0):
        shares[t] = _repeated_ngram_share_exact(texts[int(t)].split(), n)
    return shares


@numba.njit(inline="always")
def _space_bytes(data: np.ndarray, i: int, end: int) -> int:
    """How many bytes the character at data[i] takes if `str.isspace` holds for it, else 0 (the
    whitespace `str.split()` splits on: ASCII's, U+001C-U+001F, U+0085, U+00A0, U+1680,
    U+2000-U+200A, U+2028, U+2029, U+202F, U+205F and U+3000)."""
    b = data[i]
    if b == 32 or 9 <= b <= 13 or 28 <= b <= 31:
        return 1
    if b == 0xC2 and i + 1 < end and (data[i + 1] == 0x85 or data[i + 1] == 0xA0):
        return 2
    if 0xE1 <= b <= 0xE3 and i + 2 < end:
        b1, b2 = data[i + 1], data[i + 2]
        if (b == 0xE1 and b1 == 0x9A and b2 == 0x80) or (b == 0xE3 and b1 == 0x80 and b2 == 0x80):
            return 3
        if b == 0xE2 and ((b1 == 0x80 and (b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF)) or (b1 == 0x81 and b2 == 0x9F)):
            return 3
    return 0


@numba.njit(nogil=True, cache=True)
def _repeated_ngram_shares(data: np.ndarray, offsets: np.ndarray, n: int, shares: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                           word_hashes: np.ndarray, grams: np.ndarray, seen: np.ndarray) -> None:
    """Fill shares[t] with the `repeated_ngram_shares` of the text data[offsets[t]:offsets[t+1]], or -1.0
    where its hashes collided (its share is counted in Python). The rest is work space; `seen` is a hash
    table (open addressing by the hash's top bits) of 1 + an n-gram's start word."""
    for t in range(len(shares)):
        count, i, hi = 0, offsets[t], offsets[t + 1]
        while i < hi:
            width = _space_bytes(data, i, hi)
            if width:
                i += width
                continue
            start = i
            i += 1
            while i < hi and not _space_bytes(data, i, hi):
                i += 1
            starts[count], ends[count], word_hashes[count] = start, i, xxh64_span(data, start, i)
            count += 1
        total = count - n + 1
        if total <= 0:
            continue
        for g in range(total):  # (loops, not slices: a view made in here slows every loop in it ~5x)
            grams[g] = word_hashes[g]
        for k in range(1, n):  # (wrapping arithmetic: a 64-bit polynomial hash of each n-gram)
            for g in range(total):
                grams[g] = grams[g] * _GRAM_MULTIPLIER ^ word_hashes[k + g]
        bits = _table_bits(total)
        shift, mask = np.uint64(64 - bits), (1 << bits) - 1
        for slot in range(mask + 1):
            seen[slot] = 0
        repeated = 0
        for g in range(total):
            slot = np.int64(grams[g] >> shift)
            while seen[slot] and grams[seen[slot] - 1] != grams[g]:
                slot = (slot + 1) & mask
            if not seen[slot]:
                seen[slot] = g + 1
            elif _same_words(data, starts, ends, seen[slot] - 1, g, n):
                repeated += 1
            else:
                repeated = -1
                break
        shares[t] = repeated / total if repeated >= 0 else -1.0


@numba.njit(inline="always")
def _table_bits(items: int) -> int:
    """log2 of the power of two at least twice `items`: a hash table at most half full."""
    bits = 1
    while (1 << bits) < 2 * items:
        bits += 1
    return bits


@numba.njit(inline="always")
def _same_words(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, a: int, b: int, n: int) -> bool:
    """Whether the n words from word a equal the n words from word b, byte for byte."""
    for k in range(n):
        size = ends[a + k] - starts[a + k]
        if size != ends[b + k] - starts[b + k]:
            return False
        for i in range(size):
            if data[starts[a + k] + i] != data[starts[b + k] + i]:
                return False
    return True


def _repeated_ngram_share_exact(words: list[str], n: int) -> float:
    total = len(words) - n + 1
    distinct = len(set(zip(*(words[i:] for i in range(n)))))  # zip stops at the last full n-gram
    return (total - distinct) / total
