"""The one record that flows through every stage, as Arrow schemas with a version.

A prompt row becomes a sample row by gaining the sample columns; later stages only add columns.
`data/README.md` documents every column listed here (a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl
import pyarrow as pa
from xxhash import xxh64_intdigest

SCHEMA_VERSION = 1

DOMAINS = ("math", "code", "science", "logic", "general", "writing", "qa", "translation", "self_cognition")
KINDS = ("reasoning", "non_reasoning")
VERIFIERS = ("math", "code", "choice", "exact", "judge", "none")
RULE_VERIFIERS = ("math", "code", "choice", "exact")
REASONING_DOMAINS = frozenset({"math", "code", "science", "logic"})

TEXT_HASH = "text_hash"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

PROMPT_FIELDS = [
    pa.field("prompt_id", pa.string(), nullable=False),
    pa.field("messages", pa.list_(MESSAGE), nullable=False),
    pa.field("domain", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("reference", pa.string()),
    pa.field("verifier", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("metadata", pa.string(), nullable=False),
]

SAMPLING = pa.struct(
    [
        ("n", pa.int32()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("top_k", pa.int32()),
        ("max_tokens", pa.int32()),
        ("seed", pa.int64()),
    ]
)

SAMPLE_FIELDS = [
    pa.field("sample_index", pa.int32(), nullable=False),
    pa.field("completion", pa.string(), nullable=False),
    pa.field("reasoning", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=False),
    # native | prompted | empty (datakit.cot); `sample` always sets it, null or absent (older folders,
    # samples made elsewhere) reads as native
    pa.field("think_mode", pa.string()),
    pa.field("finish_reason", pa.string(), nullable=False),
    pa.field("prompt_tokens", pa.int32(), nullable=False),
    pa.field("completion_tokens", pa.int32(), nullable=False),
    pa.field("generator", pa.string(), nullable=False),
    pa.field("sampling", SAMPLING, nullable=False),
    # xxh64 of `reasoning` and `answer` (text_hash below): written by `sample` and afresh by
    # `filter`, so the mix finds repeated samples without reading their text; absent or null (older
    # folders, samples made elsewhere), the mix hashes the text itself
    pa.field(TEXT_HASH, pa.uint64()),
]

PROMPT_SCHEMA = pa.schema(PROMPT_FIELDS)
SAMPLE_SCHEMA = pa.schema(PROMPT_FIELDS + SAMPLE_FIELDS)


def text_hash(reasoning: str, answer: str) -> int:
    """A sample's `text_hash`: xxh64 of its answer's UTF-8 bytes, seeded with the xxh64 of its
    reasoning's. Equal for two samples exactly when their SFT turns are (up to a 64-bit collision)."""
    return xxh64_intdigest(answer.encode(), seed=xxh64_intdigest(reasoning.encode()))


def text_hash_column(frame: pl.DataFrame) -> pl.Series:
    """`text_hash` of every row of a frame with `reasoning` and `answer` (null where either is), a
    Python call a row: what `sample` and `filter` write, without loading the compiled kernels
    (numba: ~0.4 s a process) for ~6 ms a thousand R1-length rows (datakit.dedup.text_hashes is the
    mix's compiled equal)."""
    pairs = zip(frame["reasoning"].to_list(), frame["answer"].to_list())
    return pl.Series(TEXT_HASH, [None if r is None or a is None else text_hash(r, a) for r, a in pairs], dtype=pl.UInt64)


def default_kind(domain: str) -> str:
    """R1 splits its data into reasoning (math, code, science, logic) and non-reasoning (the rest)."""
    return "reasoning" if domain in REASONING_DOMAINS else "non_reasoning"


def default_verifier(domain: str, has_reference: bool) -> str:
    """The check that can prove a sample correct, when the prompt file does not name one."""
    if not has_reference:
        return "none"
    return {"math": "math", "code": "code"}.get(domain, "judge")


def verified_by(columns: Collection[str]) -> pl.Expr:
    """Which check proved a row correct, from the verdict columns `datakit filter` wrote: the rule
    verifier where `correct_verdict` is correct (math, code, choice, exact), `judge` where the judge
    said correct, else `none` (passed unverified under `unverified: keep`, or never checked). A row
    that already carries `verified_by` (a mix of mixes) keeps it. The card's claims count this."""
    if "verified_by" in columns:
        return pl.col("verified_by").fill_null("none")
    found = pl.lit("none")
    if "judge_verdict" in columns:
        found = pl.when(pl.col("judge_verdict") == "correct").then(pl.lit("judge")).otherwise(found)
    if "correct_verdict" in columns and "correct_verifier" in columns:
        by_rule = (pl.col("correct_verdict") == "correct") & pl.col("correct_verifier").is_in(RULE_VERIFIERS)
        found = pl.when(by_rule).then(pl.col("correct_verifier")).otherwise(found)
    return found.alias("verified_by")
