"""`datakit mix`: assemble the SFT corpus (R1: ~600K reasoning + ~200K non-reasoning) from filtered samples.

Three passes over the sources, each reading a few files at a time (one a core, on threads, at most
4, one more where tasks often wait on the GIL; fewer where files or rows are large); no pass holds a
per-row table in memory (peak RSS, by bench/mix.py: 0.76-0.79 GB at 10^6 samples, 0.91 GB at 10^7):

1. index: per source file, per row its location, domain, kind and hashes, and per prompt its exact
   key, MinHash bands and any benchmark n-gram it shares (decontamination), written to
   `_work/index/` as each file completes, so a killed run indexes only what it had not.
2. plan (datakit/mix_plan.py, DuckDB over the index under a memory cap): drop contaminated prompts,
   then duplicates (exact and near, across all sources; the earliest source wins), then fill each
   (kind, domain) quota by a seeded random key, without replacement unless asked; a seeded shuffle
   gives every chosen row its output position.
3. write: each source file once, in groups of consecutive files holding about a shard's worth of
   rows to write: a group's chosen rows (turned into TRL's conversational format) into a scratch file
   of one batch per output shard, its removed rows into one shard of removed/ with the reason; then
   each output shard gathers its batches. Every file is written atomically (renamed on a background
   thread, in order) and skipped on a re-run.

What the mix writes is fsynced; its scratch files (`_work/`, deleted when it completes) are not, as
they need never reach the disk: a killed run leaves them whole, and after a crash of the machine
`_work/` belongs to another boot and is emptied (dataset.scratch_needs_sync).
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datakit import __version__
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.dataset import (
    MANIFEST,
    SHARD_DIR,
    Settler,
    claim_folder,
    claim_scratch,
    folder_lock,
    read_json,
    read_manifest,
    scratch_needs_sync,
    shard_path,
    write_atomic,
    write_json_atomic,
    write_loader_card,
    write_shard,
    write_text_atomic,
)
from datakit.decontam import DEFAULT_BENCHMARKS, Benchmark, Decontaminator
from datakit.dedup import MinHasher, mix64, prefixed_keys, sequence_keys, text_hashes, text_word_hashes, words
from datakit.errors import DatakitError, RowError
from datakit.ingest import R1_MATH_INSTRUCTION, map_domain
from datakit.mix_plan import PROMPTS, ROWS, Plan, plan_database, plan_mix, repeated_keys, shuffle_keys, summary
from datakit.progress import StageProgress
from datakit.arrow_buffers import integers
from datakit.r1_turn import WHITESPACE, append_r1_turn
from datakit.reader import FIELDS, Reject, check_frame, conform, duplicate_reason, holds, language_problem, read_jsonl
from datakit.reasoning import THINK_OPEN, split_completion
from datakit.schema import KINDS, MESSAGE, SCHEMA_VERSION, TEXT_HASH, verified_by
from datakit.sft_format import PROMPT_COMPLETION, write_prompt_completion
from datakit.threads import in_parallel

SFT_ROLES = ("system", "user", "assistant")
WORK = "_work"  # scratch space of a running mix; removed when it completes
ROW_MEMORY = 512 * 2**20  # rows a pass's threads may hold at once (each a source file, a scatter group or a shard)
REJECTS = "rejects.jsonl"
READ_COLUMNS = ["prompt_id", "sample_index", "messages", "reasoning", "answer", "domain", "kind", "language", "source", "generator"]
CONVERSATION_EXTRAS = ["think_mode", "verified_by", "correct_verdict", "correct_verifier", "judge_verdict"]  # read where present
ROW_PROBLEM = ["_problem_field", "_problem_reason"]  # why a row as read cannot enter (null: it can)
# read by the index only to check its rows where the file's `text_hash` stands for the text (the widest
# column but `completion`): left unread where the file's schema and statistics show it can hold no bad value
CHECK_UNREAD = ["reasoning"]
# the index's columns of a few values a file (the rest are hashes and ids, all distinct)
INDEX_DICTIONARY = ["src", "unit", "kind", "domain", "decontam_benchmark", "decontam_item", "decontam_ngram"]

# The row format TRL's SFTTrainer reads unchanged (`messages`), plus provenance.
MIX_SCHEMA = pa.schema(
    [
        pa.field("messages", pa.list_(MESSAGE), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("mix_source", pa.string(), nullable=False),
        pa.field("generator", pa.string(), nullable=False),
        pa.field("verified_by", pa.string(), nullable=False),
        pa.field("copy_index", pa.int32(), nullable=False),
    ]
)
REMOVED_FIELDS = [
    pa.field("removed_by", pa.string(), nullable=False),
    pa.field("removed_reason", pa.string(), nullable=False),
    pa.field("duplicate_of", pa.string()),
    pa.field("decontam_benchmark", pa.string()),
    pa.field("decontam_item", pa.string()),
    pa.field("decontam_ngram", pa.string()),
]
REMOVED_SCHEMA = pa.schema(list(MIX_SCHEMA) + REMOVED_FIELDS)
POSITION = "_position"  # a chosen row's place in the shuffled output, while the rows are scattered
SCATTER_SCHEMA = MIX_SCHEMA.append(pa.field(POSITION, pa.int64(), nullable=False))

# R1 reports 600K reasoning and 200K non-reasoning samples but not the split by domain: this one is
# ours (math-heavy, as R1's RL prompts were), to be edited per corpus.
R1_QUOTAS = {
    "reasoning": {"math": 360_000, "code": 150_000, "science": 60_000, "logic": 30_000},
    "non_reasoning": {"writing": 70_000, "qa": 70_000, "translation": 30_000, "general": 20_000, "self_cognition": 10_000},
}


@dataclass
class MixSource:
    """One input: a filter folder (its accepted/ is read), any stage folder, a .parquet/.jsonl file of
    samples in the schema, or a Hub dataset id in the schema (e.g. one `datakit push` made)."""

    path: str
    name: str = ""  # the `mix_source` label; default: the folder or file name
    split: str = "train"  # for Hub ids
    config: str | None = None  # for Hub ids with several configs (a pushed filter folder: accepted)
    sft: SftImport | None = None  # set: the source is an existing SFT set in the `messages` format


@dataclass
class SftImport:
    """How an existing SFT set of `messages` rows ({role, content} turns ending with the assistant's)
    enters the mix, as R1 reused parts of DeepSeek-V3's SFT data: the last turn is the answer (a
    <think> block in it is the reasoning; without one the mix writes R1's empty block), the turns
    before it the prompt. Its rows are then deduplicated, decontaminated and drawn by quota like
    any sampled row; a malformed one goes to rejects.jsonl with its file, row and field."""

    messages: str = "messages"
    id: str = ""  # a column of row ids; empty: a hash of the prompt turns
    kind: str = "non_reasoning"
    domain: str = "general"  # every row's domain, unless `domain_column` is set
    domain_column: str = ""  # e.g. tulu-3's `source`: its values map onto domains through `domains`
    domains: dict[str, str] = field(default_factory=dict)  # a value the map lacks rejects its row
    language: str = "en"
    generator: str = ""  # who wrote the answers; default: the dataset's path


@dataclass
class DedupConfig:
    """Duplicate removal over prompts (exact after normalising case, punctuation and spaces; near by
    MinHash LSH over word shingles) and over identical samples."""

    exact: bool = True
    near: bool = True
    shingle: int = 5  # words per shingle
    bands: int = 14  # LSH bands x rows per band = 112 hashes; collide from Jaccard ~(1/bands)^(1/rows) = 0.72
    rows: int = 8


@dataclass
class DecontaminationConfig:
    """Drop prompts that share a word n-gram with a benchmark problem (n-gram overlap over-flags short
    common phrases and misses paraphrases: removed rows are kept, tagged, for audit)."""

    n: int = 8
    benchmarks: list[Benchmark] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    require_all: bool = False  # True: stop when a benchmark cannot be loaded, instead of reporting it


@dataclass
class MixConfig:
    """Everything `datakit mix` needs; a recipe's `mix:` section maps onto it one-to-one."""

    sources: list[MixSource] = field(default_factory=list)
    output: str = field(default="", metadata=NOT_HASHED)
    quotas: dict[str, dict[str, int]] = field(default_factory=lambda: {k: dict(v) for k, v in R1_QUOTAS.items()})
    replacement: bool = False  # fill a short quota by drawing its rows again (each copy tagged copy_index)
    max_per_prompt: int = 0  # most samples of one prompt in the mix; 0 = no cap
    seed: int = 0
    dedup: DedupConfig = field(default_factory=DedupConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    # Domains whose answers get an empty think block even where the teacher reasoned; rows without
    # reasoning get one anyway, and so do simple queries ("hello") that `sample` marked think_mode empty.
    empty_think_domains: list[str] = field(default_factory=list)
    rows_per_shard: int = 20_000  # ~400 MB of Parquet at R1's lengths
    # also write TRL's prompt/completion split (config `prompt_completion`): completion-only loss on any chat template
    prompt_completion: bool = False
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class MixSummary:
    output: Path
    report: dict[str, Any]
    seconds: float
    already_complete: bool = False
    plots: list[Path] = field(default_factory=list)


def run_mix(config: MixConfig) -> MixSummary:
    """Mix `config.sources` into `config.output`, continuing a killed run."""
    started = time.monotonic()
    _check_config(config)
    out = Path(config.output)
    sources = [open_source(s) for s in config.sources]
    run_hash = fingerprint({"config": hashed_view(config), "sources": [s.fingerprint for s in sources], "schema": SCHEMA_VERSION})
    with folder_lock(out), _heap_frozen(), _arrow_jemalloc_pool():
        return _mix_into(config, sources, out, run_hash, started)


@contextmanager
def _arrow_jemalloc_pool() -> Iterator[None]:
    """Arrow's allocations made from its jemalloc pool while the mix runs, where pyarrow has one. With
    the default pool on Linux, mimalloc, the kernel's page clearing (clear_page_erms) took 9% of a
    10^6-sample mix's CPU, 1.2 of ~15 CPU-s, most of it in the write pass: each batch's large buffers
    came back as freshly mapped memory, cleared whole on first touch. With jemalloc it takes 1%
    (write pass 7.2 -> 6.1 CPU-s), as jemalloc keeps freed pages for ~1 s for the next batch: peak RSS
    +60-100 MB at 10^5-10^6 samples, none at 10^7 (releasing them at once, decay 0, lost the gain)."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        yield
        return
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """The objects alive when a run starts (the modules of numba, DuckDB, polars, Arrow: ~10^6) are left
    out of the garbage collector's full passes while it lasts: each pass would walk them all holding the
    GIL, stalling every thread for ~60 ms, a few times a run. They are handed back at the end."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _mix_into(config: MixConfig, sources: list[Source], out: Path, run_hash: str, started: float) -> MixSummary:
    """The run itself, holding the output folder's lock: claim it, load the benchmarks, then write."""
    previous = claim_folder(out, "mix", run_hash, {"config": hashed_view(config)}, "a source's rows changed")
    if previous and previous.get("complete"):
        return MixSummary(out, json.loads((out / "report.json").read_text()), 0.0, already_complete=True)
    sync = scratch_needs_sync(out / WORK)  # what the passes leave in _work/ is deleted at the end: it need not reach the disk
    # a benchmark that cannot be loaded (require_all) stops the run before anything is written
    decontaminator = None if (out / WORK / "status.json").exists() else load_decontaminator(config)
    manifest = {
        "stage": "mix",
        "schema_version": SCHEMA_VERSION,
        "datakit_version": __version__,
        "command": sys.argv,
        "config": to_dict(config),
        "run_hash": run_hash,
        "sources": [{"name": s.name, "path": s.path, "rows": s.rows, "manifest": s.manifest, "report": s.report} for s in sources],
        "complete": False,
    }
    write_json_atomic(out / MANIFEST, manifest)
    claim_scratch(out / WORK)

    with plan_database(out / WORK) as con, ThreadPoolExecutor(1) as drawing:
        drawing.submit(_import_ahead)
        index = build_index(config, sources, out / WORK, decontaminator, con, sync)
        plan = plan_mix(config, con, index.folder, index.repeated, [s.name for s in sources])
        check_repeats(plan.repeats(), sources)
        report = build_report(config, sources, plan, index)
        plan.keep_only_what_writing_reads()
        plot = drawing.submit(write_plot, out, report)  # drawn while the shards are written
        write_mix(config, sources, plan, out, sync)
        plots = [plot.result()]
    if config.prompt_completion:
        write_prompt_completion(out)
    write_json_atomic(out / "report.json", report)
    write_json_atomic(out / "removed" / MANIFEST, {**manifest, "stage": "mix/removed", "complete": True})
    split = {PROMPT_COMPLETION: f"{PROMPT_COMPLETION}/{SHARD_DIR}/*.parquet"} if config.prompt_completion else {}
    write_loader_card(out, "mix", {"default": f"{SHARD_DIR}/*.parquet", **split, "removed": f"removed/{SHARD_DIR}/*.parquet"})
    shutil.rmtree(out / WORK, ignore_errors=True)
    manifest["complete"] = True
    write_json_atomic(out / MANIFEST, manifest)
    return MixSummary(out, report, time.monotonic() - started, plots=plots)


def _import_ahead() -> None:
    """Import matplotlib, for the plot drawn beside the busier write pass, while the index leaves a core
    idle. (Nothing in a mix hands pyarrow Python values to convert, which would import pandas: ~0.4 s
    holding the GIL.)"""
    importlib.import_module("datakit.plots")


def _check_config(config: MixConfig) -> None:
    if not config.sources or not config.output:
        raise DatakitError("mix needs sources (`sources:` in the recipe, or --source) and an output folder")
    for kind, domains in config.quotas.items():
        if kind not in KINDS:
            raise DatakitError(f"quotas: unknown kind {kind!r}; quotas are grouped by kind: {', '.join(KINDS)}")
        for domain, rows in domains.items():
            if rows < 0:
                raise DatakitError(f"quotas.{kind}.{domain}: must be >= 0, got {rows}")
    names = [s.name or _default_name(s.path) for s in config.sources]
    if len(set(names)) != len(names):
        raise DatakitError(f"sources: two sources have the same name ({names}); give them distinct `name:`s")
    for name, spec in zip(names, config.sources):
        if spec.sft and spec.sft.kind not in KINDS:
            raise DatakitError(f"sources.{name}.sft.kind: expected one of {', '.join(KINDS)}, got {spec.sft.kind!r}")
        if spec.sft and (problem := language_problem(spec.sft.language)):
            raise DatakitError(f"sources.{name}.sft.language: {problem}")
    if config.rows_per_shard < 1 or config.max_per_prompt < 0:
        raise DatakitError("rows_per_shard must be >= 1 and max_per_prompt >= 0")


# --- sources ----------------------------------------------------------------------------------------


@dataclass
class Source:
    """A mix input as a list of units (Parquet files, or slices of a Hub dataset), read one at a time."""

    name: str
    path: str
    units: list[Any]  # Path of a Parquet file, or a pyarrow Table slice
    columns: list[list[str]]  # each unit's column names
    rows: int
    fingerprint: str
    manifest: dict[str, Any] | None
    report: dict[str, Any] | None
    sft: SftImport | None = None  # an SFT set, turned into sample rows as each unit is read
    unit_rows: list[int] = field(default_factory=list)  # each unit's row count
    unit_bytes: list[int] = field(default_factory=list)  # each unit's size uncompressed (Parquet metadata), all columns
    sound: list[set[str]] = field(default_factory=list)  # each unit's CHECK_UNREAD and TEXT_HASH columns that can hold no bad value
    typed: list[bool] = field(default_factory=list)  # each unit: a Parquet file whose schema columns all hold their types
    rejects: list[Reject] = field(default_factory=list)  # a JSONL source's lines that are not sample rows
    lines: list[int] = field(default_factory=list)  # a JSONL source: the line of each row of its one unit

    def read(self, unit: int, columns: list[str]) -> pa.Table:
        """One unit's rows in the sample schema's types (a bad value reads as null); asked for
        ROW_PROBLEM, the rows are checked and it names each bad row's first bad field (the row numbers
        are the file's). The write pass does not ask: the index has checked the same rows."""
        item = self.units[unit]
        if self.sft is not None:
            raw = item if isinstance(item, pa.Table) else pq.read_table(item, columns=sft_columns(self.sft))
            return sft_samples(raw, self.sft, self.path).select(columns)
        wanted = [c for c in columns if c not in ROW_PROBLEM]
        check = any(c in ROW_PROBLEM for c in columns)
        table, problems = conform(item.select(wanted) if isinstance(item, pa.Table) else pq.read_table(item, columns=wanted, use_threads=False), check)
        for name, values in zip(ROW_PROBLEM, _problem_values(problems, table.num_rows)) if check else ():
            table = table.append_column(name, pl.Series(values, dtype=pl.String).to_arrow().cast(pa.string()))
        return table.select(columns)

    def read_frame(self, unit: int, columns: list[str]) -> pl.DataFrame:
        """`read` as a polars frame. A Parquet file whose schema columns all hold their types is read by
        polars itself, in half pyarrow's time and with nothing to copy into polars after."""
        item = self.units[unit]
        if self.sft is not None or not self.typed[unit]:
            return pl.from_arrow(self.read(unit, columns))  # type: ignore[return-value]
        frame = pl.read_parquet(item, columns=[c for c in columns if c not in ROW_PROBLEM], parallel="none", hive_partitioning=False, glob=False)
        if any(c in ROW_PROBLEM for c in columns):
            if problems := check_frame(frame):
                frame = frame.with_columns(pl.Series(name, column, pl.String) for name, column in zip(ROW_PROBLEM, _problem_values(problems, frame.height)))
            else:  # the usual file: null literals, not a list of Nones per row
                frame = frame.with_columns(pl.lit(None, pl.String).alias(name) for name in ROW_PROBLEM)
        return frame.select(columns)

    def where(self, unit: int) -> str:
        item = self.units[unit]
        return str(item) if isinstance(item, Path) else self.path if self.lines else f"{self.path}[rows of unit {unit}]"

    def position(self, unit: int, row: int) -> tuple[str, int]:
        """("line", 1-based line) of a JSONL source's row, else ("row", 0-based row of the unit)."""
        return ("line", self.lines[row]) if self.lines else ("row", row)


def _problem_values(problems: dict[int, tuple[str, str]], rows: int) -> tuple[list[str | None], list[str | None]]:
    """The ROW_PROBLEM columns' values (field, reason) of `rows` rows, from `conform`'s problems."""
    if not problems:  # the usual file: no row looked at one by one
        return [None] * rows, [None] * rows
    return tuple([problems[i][part] if i in problems else None for i in range(rows)] for part in (0, 1))  # type: ignore[return-value]


def open_source(spec: MixSource) -> Source:
    """Resolve a source to its files and check each has the columns the mix reads."""
    path = Path(spec.path)
    name = spec.name or _default_name(spec.path)
    folder = path / "accepted" if (path / "accepted" / SHARD_DIR).is_dir() else path
    manifest, report = read_manifest(path), read_json(path / "report.json", "re-run the stage or fix the file")
    if (folder / SHARD_DIR).is_dir():
        units: list[Any] = sorted((folder / SHARD_DIR).glob("part-*.parquet"))
    elif path.is_file() and path.suffix == ".parquet":
        units = [path]
    elif path.is_dir():
        units = sorted(path.rglob("*.parquet"))
    elif path.is_file() and path.suffix in (".jsonl", ".json"):
        read = read_jsonl(path, samples=spec.sft is None)
        if not read.table.num_rows and read.rejects:
            first = "; ".join(r.message() for r in read.rejects[:3])
            raise DatakitError(f"{spec.path}: none of its {len(read.rejects)} rows can be mixed (first: {first})")
        units = [read.table] if read.table.num_rows else []
    elif path.exists():
        raise DatakitError(f"{spec.path}: not a stage folder, Parquet folder, .parquet or .jsonl file of samples")
    else:
        units = _hub_units(spec)
    if not units:
        raise DatakitError(f"{spec.path}: no samples found (no Parquet shards)")
    unit_rows, unit_bytes, sound, typed, columns = [], [], [], [], []
    for unit in units:
        schema = unit.schema if isinstance(unit, pa.Table) else _read_schema(unit)
        columns.append(READ_COLUMNS + ROW_PROBLEM if spec.sft else list(schema.names) + ROW_PROBLEM)
        missing = [c for c in (sft_columns(spec.sft) if spec.sft else READ_COLUMNS) if c not in schema.names]
        if missing:
            where = unit if isinstance(unit, Path) else spec.path
            what = "the `sft:` import names" if spec.sft else "the sample schema (see data/README.md)"
            raise DatakitError(f"{where}: source {name!r} lacks column(s) {missing} {what}")
        if isinstance(unit, pa.Table):
            unit_rows.append(unit.num_rows)
            unit_bytes.append(unit.nbytes)
            nulls: dict[str, int | None] = {c: unit.column(c).null_count for c in (*CHECK_UNREAD, TEXT_HASH) if c in schema.names}
        else:
            meta = pq.ParquetFile(unit).metadata
            unit_rows.append(meta.num_rows)
            unit_bytes.append(sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)))
            nulls = {c: _parquet_nulls(meta, c) for c in (*CHECK_UNREAD, TEXT_HASH) if c in schema.names}
        sound.append(set() if spec.sft else {c for c, n in nulls.items() if n == 0 and holds(schema.field(c).type, FIELDS[c].type)})
        typed.append(isinstance(unit, Path) and all(holds(schema.field(c).type, FIELDS[c].type) for c in schema.names if c in FIELDS))
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return Source(name, spec.path, units, columns, sum(unit_rows) + len(read.rejects), fingerprint((path.name, path.stat().st_size, path.stat().st_mtime_ns)),
                      manifest, report, spec.sft, unit_rows, unit_bytes, sound, typed, rejects=read.rejects, lines=[number for _, _, number in read.origin])
    digest = fingerprint([(str(u.name), u.stat().st_size, int(u.stat().st_mtime)) if isinstance(u, Path) else u.num_rows for u in units])
    return Source(name, spec.path, units, columns, sum(unit_rows), digest, manifest, report, spec.sft, unit_rows, unit_bytes, sound, typed)


def _parquet_nulls(meta: pq.FileMetaData, column: str) -> int | None:
    """A top-level column's nulls by the row groups' statistics (None where a group has none)."""
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = next((group.column(j).statistics for j in range(group.num_columns) if group.column(j).path_in_schema == column), None)
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def sft_columns(imp: SftImport) -> list[str]:
    """The columns an SFT import reads."""
    return [c for c in (imp.messages, imp.id, imp.domain_column) if c]


def sft_samples(table: pa.Table, imp: SftImport, path: str) -> pa.Table:
    """An SFT set's rows as sample rows (READ_COLUMNS), each with ROW_PROBLEM naming the field at
    fault when it cannot enter the mix (its other columns are then placeholders)."""
    out = []
    for row in table.select(sft_columns(imp)).to_pylist():
        try:
            out.append({**_sft_sample(row, imp, path), "_problem_field": None, "_problem_reason": None})
        except RowError as e:
            out.append({"prompt_id": "", "sample_index": 0, "messages": [], "reasoning": "", "answer": "", "domain": "",
                        "kind": imp.kind, "language": imp.language, "source": path, "generator": "",
                        "_problem_field": e.field or imp.messages, "_problem_reason": e.reason})
    schema = pa.schema([pa.field(c, pa.list_(MESSAGE) if c == "messages" else pa.int32() if c == "sample_index" else pa.string())
                        for c in READ_COLUMNS + ROW_PROBLEM])
    return pa.Table.from_pylist(out, schema=schema)


def _sft_sample(row: dict[str, Any], imp: SftImport, path: str) -> dict[str, Any]:
    turns = row.get(imp.messages)
    if not isinstance(turns, list) or not turns:
        raise RowError(imp.messages, "expected a non-empty list of {role, content} turns")
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            raise RowError(f"{imp.messages}[{i}]", "expected {role: str, content: str}")
        if turn.get("role") not in SFT_ROLES:
            raise RowError(f"{imp.messages}[{i}].role", f"expected one of {', '.join(SFT_ROLES)}, got {turn.get('role')!r}")
    *prompt, last = [{"role": t["role"], "content": t["content"]} for t in turns]
    if last["role"] != "assistant":
        raise RowError(f"{imp.messages}[{len(turns) - 1}].role", f"the last turn must be the assistant's answer, got {last['role']!r}")
    if not any(t["role"] == "user" for t in prompt):
        raise RowError(imp.messages, "no user turn before the answer")
    reasoning, answer = split_completion(last["content"]) if THINK_OPEN in last["content"] else ("", last["content"].strip())
    if not answer:
        what = "its <think> block never closes" if THINK_OPEN in last["content"] else "it is empty"
        raise RowError(f"{imp.messages}[{len(turns) - 1}].content", f"no answer: {what}")
    domain = imp.domain
    if imp.domain_column:
        value = row.get(imp.domain_column)
        domain = map_domain(value if isinstance(value, str) else None, imp.domains, imp.domain_column)
    key = row.get(imp.id) if imp.id else None
    prompt_id = str(key) if key is not None else fingerprint(prompt)
    return {"prompt_id": prompt_id, "sample_index": 0, "messages": prompt, "reasoning": reasoning, "answer": answer,
            "domain": domain, "kind": imp.kind, "language": imp.language, "source": path, "generator": imp.generator or path}


def _default_name(path: str) -> str:
    p = Path(path)
    return p.name if p.exists() else path


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DatakitError(f"{path}: not a readable Parquet file ({e}); restore or remove it") from e


def _hub_units(spec: MixSource, rows_per_unit: int = 100_000) -> list[Any]:
    """A Hub dataset, memory-mapped by `datasets`, cut into slices (zero-copy) that stream like files."""
    try:
        import datasets

        table = datasets.load_dataset(spec.path, spec.config, split=spec.split).data.table
    except Exception as e:  # the hub client raises many types; all mean "could not get it"
        raise DatakitError(f"{spec.path}: not a local file or folder, and loading it as a Hub dataset failed: {e}") from e
    return [table.slice(start, rows_per_unit) for start in range(0, table.num_rows, rows_per_unit)]


# --- pass 1: index ----------------------------------------------------------------------------------


def prompt_texts(messages: pl.Series) -> pl.Series:
    """What dedup and decontamination compare, per prompt's `messages`: its user turns (joined by
    newlines), without R1's math instruction (shared by every math prompt, it would make unrelated
    short problems look alike). Where every prompt has one user turn (most corpora), the turns are
    taken from the flat list of all turns, a fifth of the cost of polars evaluating each list."""
    turns = messages.list.explode()
    user = (turns.struct.field("role") == "user").fill_null(False).to_numpy()
    owner = np.repeat(np.arange(len(messages)), messages.list.len().fill_null(0).to_numpy())
    if (np.bincount(owner[user], minlength=len(messages)) == 1).all():
        texts = turns.struct.field("content").filter(pl.Series(user))
    else:
        texts = messages.list.eval(pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")).list.join("\n")
    # Rebuilding every string costs as much as all the above: only those with the instruction are.
    has = np.flatnonzero(texts.str.contains(R1_MATH_INSTRUCTION, literal=True).fill_null(False).to_numpy())
    return texts.scatter(has, texts.gather(has).str.replace_all(R1_MATH_INSTRUCTION, "", literal=True)) if len(has) else texts


def random_keys(draw_keys: np.ndarray, sample_index: np.ndarray) -> np.ndarray:
    """Each sample's key in the seeded draw: its prompt's `draw_key` (xxh64 of source name and prompt_id,
    seeded) mixed with its sample_index, so a sample keeps its key whatever file or order it comes in."""
    return mix64(draw_keys ^ mix64(sample_index.astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)))


@dataclass
class Index:
    folder: Path  # per source file: rows-NNNNN.parquet and prompts-NNNNN.parquet (see datakit/mix_plan.py)
    repeated: pl.DataFrame  # rows set aside for repeating an earlier row's (prompt_id, sample_index)
    benchmarks: dict[str, Any]  # the decontaminator's status per benchmark
    rejected: int  # malformed rows, listed in rejects.jsonl
    duplicates: int  # of those, rows whose (prompt_id, sample_index) an earlier row of their source has


def load_decontaminator(config: MixConfig) -> Decontaminator:
    """The benchmarks to decontaminate against; with require_all, one that cannot be loaded is an error."""
    decontaminator = Decontaminator(config.decontamination.benchmarks, n=config.decontamination.n)
    if decontaminator.errors and config.decontamination.require_all:
        raise DatakitError("decontamination: cannot load " + "; ".join(f"{k}: {v}" for k, v in decontaminator.errors.items()) + " (require_all is set)")
    return decontaminator


def build_index(config: MixConfig, sources: list[Source], work: Path, decontaminator: Decontaminator | None, con: Any, sync: bool) -> Index:
    """Index every source file into `work/index/` (each file's index written once it is complete, so a
    killed run indexes only the files it had not finished; fsynced only where `sync`), then set aside
    repeated keys."""
    folder, status_file = work / "index", work / "status.json"
    folder.mkdir(parents=True, exist_ok=True)
    units, offsets = source_files(sources)
    hasher = MinHasher(config.dedup.shingle, config.dedup.bands, config.dedup.rows)  # same duplicates whatever the seed
    todo = [number for number in range(len(units)) if not (folder / f"rejects-{number:05d}.jsonl").exists()]
    if todo and decontaminator is None:
        decontaminator = load_decontaminator(config)

    def index_file(number: int) -> int:
        src, unit = units[number]
        source = sources[src]
        # a file with a sound `text_hash` is not read for its text (R1's reasoning is most of a file)
        hashed = TEXT_HASH in source.sound[unit]
        unread = set(CHECK_UNREAD) & source.sound[unit] if hashed else set()
        frame = source.read_frame(unit, [c for c in READ_COLUMNS if c not in unread] + [TEXT_HASH] * hashed + ROW_PROBLEM)
        rows, prompts, rejects = _index_unit(config, src, source, unit, frame, decontaminator, hasher, offsets[number])
        write_index_file(rows, folder / f"{ROWS}-{number:05d}.parquet", settle, sync)
        write_index_file(prompts, folder / f"{PROMPTS}-{number:05d}.parquet", settle, sync)
        _write_rejects(folder / f"rejects-{number:05d}.jsonl", rejects, settle, sync)  # last: it marks the file indexed
        return source.unit_rows[unit]

    with StageProgress("indexing", total=sum(s.rows for s in sources), unit="rows", enabled=config.progress) as progress, Settler() as settle:
        progress.advance(sum(s.rows for s in sources) - sum(sources[units[n][0]].unit_rows[units[n][1]] for n in todo))
        # a file's index is many short steps, some holding the GIL: a thread more than cores keeps them busy
        for rows in in_parallel(index_file, todo, file_workers(largest_file(sources), spare=1)):
            progress.advance(rows)
    pa.default_memory_pool().release_unused()  # what reading the files left cached: the plan needs the room
    repeated = repeated_keys(con, folder)
    if not status_file.exists():
        rejects = [{**r.record(), "source": s.name} for s in sources for r in s.rejects]
        rejects += [json.loads(line) for number in range(len(units)) for line in (folder / f"rejects-{number:05d}.jsonl").read_text().splitlines()]
        duplicates = _repeated_rejects(repeated, sources)
        _write_rejects(work.parent / REJECTS, rejects + duplicates)
        benchmarks = (decontaminator or load_decontaminator(config)).status
        write_json_atomic(status_file, {"benchmarks": benchmarks, "rejected": len(rejects) + len(duplicates), "duplicates": len(duplicates)}, sync)
    status = json.loads(status_file.read_text())
    return Index(folder, repeated, status["benchmarks"], status["rejected"], status["duplicates"])


def source_files(sources: list[Source]) -> tuple[list[tuple[int, int]], list[int]]:
    """Every source file as (src, unit), in the order rows are numbered, and the number (`_i`) of
    each one's first row (one more: the end)."""
    units = [(src, unit) for src, source in enumerate(sources) for unit in range(len(source.units))]
    return units, np.cumsum([0] + [sources[src].unit_rows[unit] for src, unit in units]).tolist()


def largest_file(sources: list[Source]) -> int:
    """The most bytes one source file holds uncompressed (what a thread reading it holds)."""
    return max(size for source in sources for size in source.unit_bytes)


def file_workers(task_bytes: int, spare: int = 0) -> int:
    """Threads a mix pass runs: one per core it may use (at most 4), plus `spare` for a pass whose
    tasks often wait (on the GIL, between their compiled steps), and fewer where each task holds
    `task_bytes` of rows and together they would hold more than ROW_MEMORY (R1-length rows, large files)."""
    cores = max(1, min(len(os.sched_getaffinity(0)), 4))
    return max(1, min(cores + spare, ROW_MEMORY // max(task_bytes, 1)))


def _index_unit(
    config: MixConfig, src: int, source: Source, unit: int, read: pl.DataFrame, decontaminator: Decontaminator, hasher: MinHasher, offset: int
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Index one file's rows (as `Source.read_frame` read them), column-wise; a malformed row becomes a
    reject naming its file, row and field. Rows are numbered from `offset` (`_i`: the row's place
    among all sources' rows)."""
    hashed = TEXT_HASH in read.columns  # else the text is: reasoning is read
    frame = read.select(["prompt_id", "sample_index", "messages", "answer", "domain", "kind", *ROW_PROBLEM, TEXT_HASH if hashed else "reasoning"])
    frame = frame.with_row_index("row").with_columns(_row_problem())
    rejects = []
    bad = frame.filter(pl.col("_field").is_not_null()).select("row", "_field", "_reason")
    if bad.height and not set(READ_COLUMNS) <= set(read.columns):  # a rejected row is kept whole
        read = source.read_frame(unit, READ_COLUMNS + [c for c in read.columns if c not in READ_COLUMNS])
    for i, problem, reason in bad.iter_rows():
        unit_name, number = source.position(unit, i)
        raw = json.dumps({k: v for k, v in read.row(i, named=True).items() if k not in ROW_PROBLEM}, ensure_ascii=False, default=str)
        rejects.append({"file": source.where(unit), unit_name: number, "field": problem, "reason": reason, "raw": raw, "source": source.name})
    valid = frame.filter(pl.col("_field").is_null())
    # the prompt's text is split into words and hashed once per prompt, not per sample, and shared by all three uses
    first_rows, prompt_of = prompt_numbers(valid["prompt_id"])
    firsts = valid[first_rows]
    texts = prompt_texts(firsts["messages"])
    flat, lengths = text_word_hashes(texts)
    prompt_key = sequence_keys(flat, lengths)
    # the draw's key of each sample is derived from its prompt's, hashed once per prompt
    draw_key = prefixed_keys(firsts["prompt_id"], f"{source.name}\x00", config.seed)
    valid = valid.with_columns(prompt_key=pl.Series(prompt_key[prompt_of], dtype=pl.UInt64))
    if not hashed:
        valid = valid.with_columns(text_hashes(valid["reasoning"], valid["answer"]).alias(TEXT_HASH))
    rows = valid.select(
        _i=(pl.col("row") + offset).cast(pl.UInt64),
        src=pl.lit(src, pl.UInt16),
        unit=pl.lit(unit, pl.UInt32),
        row=pl.col("row").cast(pl.UInt32),
        prompt_id=pl.col("prompt_id").cast(pl.String),  # typed: a source with no accepted rows is an empty unit
        sample_index=pl.col("sample_index").cast(pl.Int32),
        kind=pl.col("kind").cast(pl.String),
        domain=pl.col("domain").cast(pl.String),
        # the same reasoning and answer to the same prompt text, in any source
        sample_key=pl.col(TEXT_HASH) ^ pl.col("prompt_key"),
        random_key=pl.Series(random_keys(draw_key[prompt_of], valid["sample_index"].to_numpy()), dtype=pl.UInt64),
    )
    rows = rows.with_columns(shuffle_key=pl.Series(shuffle_keys(rows["random_key"].to_numpy(), 0, config.seed), dtype=pl.UInt64))
    matches = decontaminator.find_hashed(flat, lengths, lambda i: words(texts[i]))
    bands = hasher.hashed_band_keys(flat, lengths)
    matched = any(matches)  # most files match no benchmark: their decontam columns are null literals, not lists of Nones
    prompts = firsts.select(
        src=pl.lit(src, pl.UInt16),
        prompt_id=pl.col("prompt_id").cast(pl.String),
        first_i=(pl.col("row") + offset).cast(pl.UInt64),
        prompt_key=pl.Series(prompt_key, dtype=pl.UInt64),
        # one column a band: clustering reads one band of every prompt at a time
        **{f"band{b}": pl.Series(keys, dtype=pl.UInt64) for b, keys in enumerate(np.ascontiguousarray(bands.T))},
        **{f"decontam_{part}": pl.Series([getattr(m, part) if m else None for m in matches], dtype=pl.String) if matched else pl.lit(None, pl.String)
           for part in ("benchmark", "item", "ngram")},
    )
    return rows, prompts, rejects


def prompt_numbers(prompt_ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each prompt's first row, in order of appearance, and each row's prompt (an index into those).
    A file's samples of one prompt usually lie together (`sample` writes them so): the prompts are then
    the runs of equal ids, found without hashing every id; where an id comes back after another, a
    join numbers them instead."""
    runs = prompt_ids.rle_id().to_numpy()
    starts = np.flatnonzero(np.diff(runs, prepend=-1))
    if prompt_ids.gather(starts).is_unique().all():
        return starts, runs
    frame = pl.DataFrame({"id": prompt_ids}).with_row_index("row")
    firsts = frame.unique("id", keep="first", maintain_order=True).with_row_index("prompt")
    return firsts["row"].to_numpy(), frame.join(firsts.select("id", "prompt"), on="id", how="left", maintain_order="left")["prompt"].to_numpy()


def _row_problem() -> list[pl.Expr]:
    """`_field`, `_reason` when a row cannot enter a mix (null when it can). Types, nulls, kinds and
    language codes were checked as the row was read (ROW_PROBLEM); what is left is the mix's own."""
    read = pl.col("_problem_reason").fill_null("") != ""
    no_user = ~pl.col("messages").list.eval(pl.element().struct.field("role") == "user").list.any()
    empty = pl.col("answer").str.strip_chars(WHITESPACE) == ""
    which = lambda a, b, c: pl.when(read).then(a).when(no_user).then(pl.lit(b)).when(empty).then(pl.lit(c))  # noqa: E731
    return [which(pl.col("_problem_field"), "messages", "answer").alias("_field"), which(pl.col("_problem_reason"), "no user turn", "empty").alias("_reason")]


def _repeated_rejects(repeated: pl.DataFrame, sources: list[Source]) -> list[dict[str, Any]]:
    """The rows set aside for repeating an earlier row's (prompt_id, sample_index) in their source (two
    copies of one sample, possibly with different text, would both be drawn), as rejects naming the
    first copy; each affected file is read once, for the row as it was read."""
    rejects, tables = [], {}
    for row in repeated.iter_rows(named=True):
        source = sources[row["src"]]
        unit_name, number = source.position(row["unit"], row["row"])
        where = (source.where(row["first_unit"]), *source.position(row["first_unit"], row["first_row"]))
        reason = duplicate_reason(row["prompt_id"], row["sample_index"], where)
        if (row["src"], row["unit"]) not in tables:
            tables[row["src"], row["unit"]] = source.read(row["unit"], READ_COLUMNS)
        raw = json.dumps(tables[row["src"], row["unit"]].slice(row["row"], 1).to_pylist()[0], ensure_ascii=False, default=str)
        rejects.append({"file": source.where(row["unit"]), unit_name: number, "field": "sample_index", "reason": reason, "raw": raw, "source": source.name})
    return rejects


def _write_rejects(path: Path, rejects: list[dict[str, Any]], settle: Settler | None = None, sync: bool = True) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects), settle, sync)


def write_index_file(frame: pl.DataFrame, path: Path, settle: Settler, sync: bool) -> None:
    """A scratch Parquet file of the index, written atomically like every shard (through pyarrow, whose
    write errors are OSErrors a full disk can be told by). It is read back once, soon, and whole: no
    statistics and no compression (its hashes and ids do not compress), and dictionaries only for the
    columns of few values (INDEX_DICTIONARY); writing and reading it back cost a fifth less than lz4."""
    dictionary = [c for c in INDEX_DICTIONARY if c in frame.columns]
    write_atomic(path, lambda tmp: pq.write_table(frame.to_arrow(), tmp, compression="none", use_dictionary=dictionary, write_statistics=False), settle=settle, sync=sync)


def check_repeats(repeats: pl.DataFrame, sources: list[Source]) -> None:
    """Samples removed as repeats on the strength of their files' own `text_hash` are checked against
    their text before anything is written: each such row's hash, and its original's, is computed from
    its reasoning and answer. A hash out of step with its text (edited after it was written, or forged)
    thus stops the run, naming the row, rather than remove a distinct sample; at worst it keeps a
    repeat that would have been removed. Only the files holding such rows are read (most corpora
    repeat few samples)."""
    rows = pl.concat([repeats.select("src", "unit", "row"), repeats.select(src="first_src", unit="first_unit", row="first_row")]).unique()
    for (src, unit), group in rows.group_by(["src", "unit"]):
        source = sources[src]
        if TEXT_HASH not in source.sound[unit]:
            continue  # its hashes were computed from the text by this mix
        at = group["row"].sort().to_numpy()
        frame = source.read_frame(unit, ["reasoning", "answer", TEXT_HASH])[at]
        wrong = np.flatnonzero((text_hashes(frame["reasoning"], frame["answer"]) != frame[TEXT_HASH]).to_numpy())
        if len(wrong):
            unit_name, number = source.position(unit, int(at[wrong[0]]))
            stored = frame[TEXT_HASH][int(wrong[0])]
            raise DatakitError(
                f"{source.where(unit)} {unit_name} {number}: field {TEXT_HASH} ({stored}) does not match the row's reasoning and answer, so the "
                f"mix cannot trust it to find repeated samples ({len(wrong)} such row(s) in this file). Was the text edited after `sample` or "
                f"`filter` wrote it? Run `datakit filter` on the folder (it writes the hash afresh) or drop the column, then run the mix again."
            )


# --- pass 3: write ----------------------------------------------------------------------------------


def write_mix(config: MixConfig, sources: list[Source], plan: Plan, out: Path, sync: bool) -> None:
    """Scatter the source files' chosen rows (by output shard) and removed rows; gather the shards
    (the scatter files fsynced only where `sync`: they are deleted once the shards are written).

    Consecutive source files form a group until it holds a shard's worth of rows to write, so the
    plan is looked up, and removed rows are written, once per group, and the gather reads a few files
    per shard however small the sources' files are."""
    work = out / WORK / "chosen"
    work.mkdir(parents=True, exist_ok=True)
    shards = max(1, -(-plan.rows_out // config.rows_per_shard))
    units, offsets = source_files(sources)
    groups = _scatter_groups([plan.written_count(src, unit) for src, unit in units], config.rows_per_shard)
    scattered = [work / f"group-{number:05d}.arrow" for number in range(len(groups))]

    def scatter(group: int) -> int:
        """A group's source files: removed rows into one shard of removed/, chosen rows into one scatter file."""
        if not scattered[group].exists():
            numbers = groups[group]
            picks, dropped = plan.chosen(offsets[numbers[0]], offsets[numbers[-1] + 1]), plan.removed(offsets[numbers[0]], offsets[numbers[-1] + 1])
            files = []
            for number in numbers:
                src, unit = units[number]
                source = sources[src]
                mine = pl.col("_i").is_between(offsets[number], offsets[number + 1], closed="left")
                # what a conversation is built from (not `completion`, the widest column: reasoning and answer are)
                table = source.read_frame(unit, READ_COLUMNS + [c for c in CONVERSATION_EXTRAS if c in source.columns[unit]])
                files.append(_FileRows(source.name, table, picks.filter(mine), dropped.filter(mine)))
            chosen, removed = _written_rows(files, config.empty_think_domains)
            write_shard(out / "removed", group, pa.concat_tables(removed), settle)
            _write_scattered(scattered[group], chosen, config.rows_per_shard, shards, settle, sync)
        return len(groups[group])

    # a scatter task holds a source file and up to a shard's rows, a gather task a shard
    row_bytes = max(sum(s.unit_bytes) // max(sum(s.unit_rows), 1) for s in sources)
    shard_bytes = config.rows_per_shard * row_bytes
    workers = file_workers(shard_bytes)
    # each gathering thread opens every scatter file once, for all its shards, where the process may hold
    # that many files open; elsewhere one thread opens them anew for each shard
    keep_open = _may_open(len(scattered) * workers)
    local = threading.local()

    def gather(shard: int) -> None:
        """Output shard `shard`: its batch of every scatter file."""
        if shard_path(out, shard).exists():
            return
        if keep_open:
            if not hasattr(local, "readers"):
                local.readers = [_open_scattered(p, opened) for p in scattered]
            write_shard(out, shard, _gather(local.readers, shard), settle)
            return
        with ExitStack() as files:
            write_shard(out, shard, _gather([_open_scattered(p, files) for p in scattered], shard), settle)

    with StageProgress("mixing", total=len(units) + shards, unit="files", enabled=config.progress) as progress, ExitStack() as opened:
        with Settler() as settle:  # the scatter files are in place before any gather opens them
            for files in in_parallel(scatter, range(len(groups)), file_workers(shard_bytes + largest_file(sources), spare=1)):
                progress.advance(files)
        with Settler() as settle:
            for _ in in_parallel(gather, range(shards), workers if keep_open else 1):
                progress.advance(1)


def _scatter_groups(written: list[int], rows: int) -> list[list[int]]:
    """Consecutive source files (by number) grouped so that the rows each group writes stay within `rows`
    (a file with more is a group of its own)."""
    groups: list[list[int]] = [[]]
    total = 0
    for number, count in enumerate(written):
        if groups[-1] and total + count > rows:
            groups.append([])
            total = 0
        groups[-1].append(number)
        total += count
    return groups


@dataclass
class _FileRows:
    """A source file as the write pass reads it: its rows, and the plan's chosen and removed rows of it."""

    name: str  # its source's `mix_source` label
    table: pl.DataFrame
    picks: pl.DataFrame  # row, position, copy_index; by position
    dropped: pl.DataFrame  # row and why (REMOVED_FIELDS); by row

    def rows(self, plan: pl.DataFrame) -> pl.DataFrame:
        return self.table[plan["row"].cast(pl.Int64).to_numpy()]


def _written_rows(files: list[_FileRows], empty_think_domains: list[str]) -> tuple[list[pa.Table], list[pa.Table]]:
    """A scatter group's rows in the mix format: per file, its chosen rows with their output positions
    (by position); and its removed rows, tagged with why and by what (one schema, whatever the
    source's extra columns). Consecutive files of one source and the same columns (most groups) are
    turned into conversations in one call, which costs the same per row and ~2 ms less per call."""
    chosen, removed = [], []
    for (name, _), same in itertools.groupby(files, key=lambda f: (f.name, tuple(f.table.columns))):
        run = list(same)
        frame = pl.concat([f.rows(f.picks) for f in run] + [f.rows(f.dropped) for f in run], rechunk=True)  # string views: no text copied
        rows = conversation_rows(frame.to_arrow(compat_level=pl.CompatLevel.newest()), name, empty_think_domains)
        at = 0
        for f in run:
            part = rows.slice(at, f.picks.height).append_column("copy_index", f.picks["copy_index"].to_arrow())
            chosen.append(part.append_column(POSITION, f.picks["position"].to_arrow()).cast(SCATTER_SCHEMA))
            at += f.picks.height
        dropped = pl.concat([f.dropped for f in run])
        part = rows.slice(at).append_column("copy_index", pl.zeros(dropped.height, pl.Int32, eager=True).to_arrow())
        for f in REMOVED_FIELDS:
            part = part.append_column(f, dropped[f.name].to_arrow().cast(f.type))
        removed.append(part.cast(REMOVED_SCHEMA))
    return chosen, removed


def _write_scattered(path: Path, parts: list[pa.Table], rows_per_shard: int, shards: int, settle: Settler, sync: bool) -> None:
    """Chosen rows (tables each sorted by output position) as an Arrow IPC file of one record batch per
    output shard (empty where the shard takes none of them): the gather of shard k reads batch k of
    every file and nothing else, and puts the rows in order. Uncompressed: lz4 there and back cost
    ~1.7 CPU-s per 500K rows, a tenth of the write pass, for half the scratch disk."""
    bounds = [np.searchsorted(integers(part[POSITION]), np.arange(shards + 1) * rows_per_shard) for part in parts]

    def write(tmp: Path) -> None:
        with pa.ipc.new_file(tmp, SCATTER_SCHEMA, options=pa.ipc.IpcWriteOptions(compression=None)) as writer:
            for shard in range(shards):
                pieces = [part.slice(at[shard], at[shard + 1] - at[shard]) for part, at in zip(parts, bounds) if at[shard + 1] > at[shard]]
                writer.write_batch(pa.concat_tables(pieces).combine_chunks().to_batches()[0] if pieces else _empty_batch())

    write_atomic(path, write, settle=settle, sync=sync)


def _empty_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in SCATTER_SCHEMA], schema=SCATTER_SCHEMA)


def _open_scattered(path: Path, stack: ExitStack) -> pa.ipc.RecordBatchFileReader:
    return pa.ipc.open_file(stack.enter_context(pa.OSFile(str(path))))


def _may_open(files: int, spare: int = 256) -> bool:
    """Whether this process may hold `files` more files open (raising its soft limit where allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if files + spare > soft and soft != hard:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft == resource.RLIM_INFINITY or files + spare <= soft


def _gather(readers: list[pa.ipc.RecordBatchFileReader], shard: int) -> pa.Table:
    """Output shard `shard`: batch `shard` of every scatter file, in output order (one take, which
    copies the rows once into one chunk; sorting, then combining chunks, copied them twice)."""
    rows = pa.Table.from_batches([reader.get_batch(shard) for reader in readers], SCATTER_SCHEMA)
    order = np.argsort(integers(rows[POSITION]))
    # handed over as Arrow's view of the numpy buffer: pyarrow converting a numpy array imports pandas
    return rows.drop_columns([POSITION]).take(pa.Array.from_buffers(pa.int64(), len(order), [None, pa.py_buffer(order)]))


def conversation_rows(table: pa.Table, name: str, empty_think_domains: list[str]) -> pa.Table:
    """Samples as TRL conversations: the prompt's turns, then the assistant turn R1-style (datakit.r1_turn;
    an empty think block where there is no reasoning, for a simple query (`think_mode` empty; a folder
    without the column has none) and for `empty_think_domains`). The wide text columns stay in Arrow
    (no copy into polars and back); polars sees the narrow ones."""
    extra = [c for c in CONVERSATION_EXTRAS if c in table.column_names]
    narrow = pl.from_arrow(table.select(["domain", *extra]))
    simple = (pl.col("think_mode") == "empty").fill_null(False) if "think_mode" in narrow.columns else pl.lit(False)
    flags = narrow.select(plain=pl.col("domain").is_in(empty_think_domains) | simple, verified_by=verified_by(narrow.columns))
    columns = {
        "messages": append_r1_turn(table["messages"], table["reasoning"], table["answer"], flags["plain"].to_numpy()),
        **{c: table[c] for c in ("prompt_id", "sample_index", "domain", "kind", "language", "source")},
        "mix_source": pl.repeat(name, table.num_rows, eager=True).to_arrow(),
        "generator": table["generator"],
        "verified_by": flags["verified_by"].to_arrow(),
    }
    return pa.table(columns)


# --- report -----------------------------------------------------------------------------------------


def build_report(config: MixConfig, sources: list[Source], plan: Plan, index: Index) -> dict[str, Any]:
    """What went in, what was removed and why, and every quota against what it got."""
    counts = summary(plan, config, [s.name for s in sources])
    quotas = []
    for kind, domains in config.quotas.items():
        for domain, quota in domains.items():
            taken, copies = counts["taken"].get((kind, domain), (0, 0))
            quotas.append({"kind": kind, "domain": domain, "quota": quota, "available": plan.available.get((kind, domain), 0),
                           "taken": taken, "short_by": quota - taken, "upsampled": copies})
    used = {(q["kind"], q["domain"]) for q in quotas if q["quota"]}
    unused = [{"kind": k, "domain": d, "rows": n} for (k, d), n in sorted(plan.available.items()) if (k, d) not in used]
    return {
        "seed": config.seed,
        "rows_in": sum(s.rows for s in sources),
        "rows_rejected": index.rejected,
        "duplicate_keys": index.duplicates,
        "rows_out": plan.rows_out,
        "sources": [{"name": s.name, "path": s.path, "rows": s.rows, **mine} for s, mine in zip(sources, counts["sources"])],
        "removed": counts["removed"],
        "dedup": {"exact": config.dedup.exact, "near": config.dedup.near, "jaccard_threshold": round(MinHasher(config.dedup.shingle, config.dedup.bands, config.dedup.rows).threshold, 3)},
        "decontamination": {
            "n": config.decontamination.n,
            "benchmarks": {name: {**status, "removed": counts["by_benchmark"].get(name, 0)} for name, status in index.benchmarks.items()},
        },
        "targets": {kind: {"target": sum(q["quota"] for q in quotas if q["kind"] == kind), "taken": sum(q["taken"] for q in quotas if q["kind"] == kind)} for kind in config.quotas},
        "quotas": quotas,
        "shortfalls": [q for q in quotas if q["short_by"] > 0],
        "unused": unused,
        "examples": counts["examples"],
    }


def write_plot(out: Path, report: dict[str, Any]) -> Path:
    """mix.png, drawn by datakit.plots from the report."""
    from datakit.plots import mix_figure, save

    return save(mix_figure(report), out / "mix.png")
