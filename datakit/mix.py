"""`datakit mix`: assemble the SFT corpus (R1: ~600K reasoning + ~200K non-reasoning) from filtered samples.

Three passes over the sources, each streaming one file at a time so memory holds a per-row index
(~100 bytes a row; about 1 KB a row of peak RSS with polars' working copies), never the text:

1. index: per row a location, domain, kind and hashes; per prompt its exact key, MinHash bands and
   any benchmark n-gram it shares (decontamination). Saved in the output folder, so a killed run
   does not redo it.
2. plan: drop contaminated prompts, then duplicates (exact and near, across all sources; the
   earliest source wins), then fill each (kind, domain) quota by a seeded random key, without
   replacement unless asked; a seeded shuffle gives every chosen row its output position.
3. write: each source file once, its chosen rows (turned into TRL's conversational format) into a
   scratch file sorted by position, its removed rows into removed/ with the reason; then each
   output shard gathers its positions. Every file is written atomically and skipped on a re-run.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from datakit import __version__
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.dataset import MANIFEST, SHARD_DIR, claim_folder, folder_lock, read_json, read_manifest, shard_path, write_atomic, write_json_atomic, write_loader_card, write_shard, write_text_atomic
from datakit.decontam import DEFAULT_BENCHMARKS, Benchmark, Decontaminator
from datakit.dedup import MinHasher, cluster, column_word_hashes, mix64, words_column
from datakit.errors import DatakitError, RowError
from datakit.ingest import R1_MATH_INSTRUCTION, map_domain
from datakit.progress import StageProgress
from datakit.reader import Reject, conform, duplicate_reason, language_problem, read_jsonl, repeated_keys
from datakit.reasoning import THINK_OPEN, split_completion
from datakit.schema import KINDS, MESSAGE, SCHEMA_VERSION, verified_by
from datakit.sft_format import PROMPT_COMPLETION, write_prompt_completion

SFT_ROLES = ("system", "user", "assistant")
WORK = "_work"  # scratch space of a running mix; removed when it completes
REJECTS = "rejects.jsonl"
READ_COLUMNS = ["prompt_id", "sample_index", "messages", "reasoning", "answer", "domain", "kind", "language", "source", "generator"]
ROW_PROBLEM = ["_problem_field", "_problem_reason"]  # why a row as read cannot enter (null: it can)
THINK_TEMPLATE = "<think>\n{reasoning}\n</think>\n\n{answer}"

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
    with folder_lock(out):
        return _mix_into(config, sources, out, run_hash, started)


def _mix_into(config: MixConfig, sources: list[Source], out: Path, run_hash: str, started: float) -> MixSummary:
    """The run itself, holding the output folder's lock: claim it, load the benchmarks, then write."""
    previous = claim_folder(out, "mix", run_hash, {"config": hashed_view(config)}, "a source's rows changed")
    if previous and previous.get("complete"):
        return MixSummary(out, json.loads((out / "report.json").read_text()), 0.0, already_complete=True)
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

    index = build_index(config, sources, out / WORK, decontaminator)
    plan = plan_mix(config, index.rows, index.prompts, [s.name for s in sources])
    write_mix(config, sources, plan, out)
    if config.prompt_completion:
        write_prompt_completion(out)

    report = build_report(config, sources, plan, index)
    write_json_atomic(out / "report.json", report)
    plots = [write_plot(out, report)]
    write_json_atomic(out / "removed" / MANIFEST, {**manifest, "stage": "mix/removed", "complete": True})
    split = {PROMPT_COMPLETION: f"{PROMPT_COMPLETION}/{SHARD_DIR}/*.parquet"} if config.prompt_completion else {}
    write_loader_card(out, "mix", {"default": f"{SHARD_DIR}/*.parquet", **split, "removed": f"removed/{SHARD_DIR}/*.parquet"})
    shutil.rmtree(out / WORK, ignore_errors=True)
    manifest["complete"] = True
    write_json_atomic(out / MANIFEST, manifest)
    return MixSummary(out, report, time.monotonic() - started, plots=plots)


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
    rejects: list[Reject] = field(default_factory=list)  # a JSONL source's lines that are not sample rows
    lines: list[int] = field(default_factory=list)  # a JSONL source: the line of each row of its one unit

    def read(self, unit: int, columns: list[str]) -> pa.Table:
        """One unit's rows in the sample schema's types, with ROW_PROBLEM naming the first bad field of
        a row (whose bad value reads as null); the row numbers are the file's."""
        item = self.units[unit]
        if self.sft is not None:
            raw = item if isinstance(item, pa.Table) else pq.read_table(item, columns=sft_columns(self.sft))
            return sft_samples(raw, self.sft, self.path).select(columns)
        wanted = [c for c in columns if c not in ROW_PROBLEM]
        table, problems = conform(item.select(wanted) if isinstance(item, pa.Table) else pq.read_table(item, columns=wanted))
        fields = [problems[i][0] if i in problems else None for i in range(table.num_rows)]
        reasons = [problems[i][1] if i in problems else None for i in range(table.num_rows)]
        table = table.append_column(ROW_PROBLEM[0], pa.array(fields, pa.string())).append_column(ROW_PROBLEM[1], pa.array(reasons, pa.string()))
        return table.select(columns)

    def where(self, unit: int) -> str:
        item = self.units[unit]
        return str(item) if isinstance(item, Path) else self.path if self.lines else f"{self.path}[rows of unit {unit}]"

    def position(self, unit: int, row: int) -> tuple[str, int]:
        """("line", 1-based line) of a JSONL source's row, else ("row", 0-based row of the unit)."""
        return ("line", self.lines[row]) if self.lines else ("row", row)


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
    rows, columns = 0, []
    for unit in units:
        schema = unit.schema if isinstance(unit, pa.Table) else _read_schema(unit)
        columns.append(READ_COLUMNS + ROW_PROBLEM if spec.sft else list(schema.names) + ROW_PROBLEM)
        missing = [c for c in (sft_columns(spec.sft) if spec.sft else READ_COLUMNS) if c not in schema.names]
        if missing:
            where = unit if isinstance(unit, Path) else spec.path
            what = "the `sft:` import names" if spec.sft else "the sample schema (see data/README.md)"
            raise DatakitError(f"{where}: source {name!r} lacks column(s) {missing} {what}")
        rows += unit.num_rows if isinstance(unit, pa.Table) else pq.ParquetFile(unit).metadata.num_rows
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return Source(name, spec.path, units, columns, rows + len(read.rejects), fingerprint((path.name, path.stat().st_size, path.stat().st_mtime_ns)),
                      manifest, report, spec.sft, rejects=read.rejects, lines=[number for _, _, number in read.origin])
    digest = fingerprint([(str(u.name), u.stat().st_size, int(u.stat().st_mtime)) if isinstance(u, Path) else u.num_rows for u in units])
    return Source(name, spec.path, units, columns, rows, digest, manifest, report, spec.sft)


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


def prompt_text() -> pl.Expr:
    """What dedup and decontamination compare, from `messages`: the user turns, without R1's math
    instruction (shared by every math prompt, it would make unrelated short problems look alike)."""
    user = pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
    return pl.col("messages").list.eval(user.str.replace_all(R1_MATH_INSTRUCTION, "", literal=True)).list.join("\n")


def _hash64(text: str, seed: int = 0) -> int:
    return xxhash.xxh64_intdigest(text.encode(), seed)


@dataclass
class Index:
    rows: pl.DataFrame  # per valid row: src, unit, row, prompt_id, sample_index, kind, domain, sample_key, random_key
    prompts: pl.DataFrame  # per (src, prompt_id): prompt_key, bands, decontam_benchmark/item/ngram
    benchmarks: dict[str, Any]  # the decontaminator's status per benchmark
    rejected: int  # malformed rows, listed in rejects.jsonl
    duplicates: int  # of those, rows whose (prompt_id, sample_index) an earlier row of their source has


def load_decontaminator(config: MixConfig) -> Decontaminator:
    """The benchmarks to decontaminate against; with require_all, one that cannot be loaded is an error."""
    decontaminator = Decontaminator(config.decontamination.benchmarks, n=config.decontamination.n)
    failed = {name: s["error"] for name, s in decontaminator.status.items() if "error" in s}
    if failed and config.decontamination.require_all:
        raise DatakitError("decontamination: cannot load " + "; ".join(f"{k}: {v}" for k, v in failed.items()) + " (require_all is set)")
    return decontaminator


def build_index(config: MixConfig, sources: list[Source], work: Path, decontaminator: Decontaminator | None) -> Index:
    """Index every source (cached in `work` once complete, so a run killed after indexing does not redo it)."""
    index_file, prompts_file, status_file = work / "index.parquet", work / "prompts.parquet", work / "status.json"
    if index_file.exists() and prompts_file.exists() and status_file.exists():
        status = json.loads(status_file.read_text())
        return Index(pl.read_parquet(index_file), pl.read_parquet(prompts_file), status["benchmarks"], status["rejected"], status["duplicates"])
    decontaminator = decontaminator if decontaminator is not None else load_decontaminator(config)
    hasher = MinHasher(config.dedup.shingle, config.dedup.bands, config.dedup.rows)  # same duplicates whatever the seed
    rows, prompts, rejects = [], [], []
    total = sum(s.rows for s in sources)
    with StageProgress("indexing", total=total, unit="rows", enabled=config.progress) as progress:
        for src, source in enumerate(sources):
            rejects += [{**r.record(), "source": source.name} for r in source.rejects]
            for unit in range(len(source.units)):
                table = source.read(unit, READ_COLUMNS + [c for c in ("completion", *ROW_PROBLEM) if c in source.columns[unit]])
                unit_rows, unit_prompts, unit_rejects = _index_unit(config, src, source, unit, table, decontaminator, hasher)
                rows.append(unit_rows)
                prompts.append(unit_prompts)
                rejects += unit_rejects
                progress.advance(table.num_rows)
    index, duplicates = _set_aside_repeated(pl.concat(rows), sources)
    rejects += duplicates
    prompt_table = pl.concat(prompts).unique(subset=["src", "prompt_id"], keep="first", maintain_order=True)
    work.mkdir(parents=True, exist_ok=True)
    _write_rejects(work.parent / REJECTS, rejects)
    write_shard_file(index, index_file)
    write_shard_file(prompt_table, prompts_file)
    write_json_atomic(status_file, {"benchmarks": decontaminator.status, "rejected": len(rejects), "duplicates": len(duplicates)})
    return Index(index, prompt_table, decontaminator.status, len(rejects), len(duplicates))


def _index_unit(
    config: MixConfig, src: int, source: Source, unit: int, table: pa.Table, decontaminator: Decontaminator, hasher: MinHasher
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """Index one file's rows, column-wise; a malformed row becomes a reject naming its file, row and field."""
    text = "completion" if "completion" in table.column_names else None
    frame = pl.from_arrow(table.select(["prompt_id", "sample_index", "messages", "answer", "domain", "kind", *ROW_PROBLEM, text or "reasoning"]))
    frame = frame.with_row_index("row").with_columns(_row_problem())
    rejects = []
    for i, problem, reason in frame.filter(pl.col("_field").is_not_null()).select("row", "_field", "_reason").iter_rows():
        unit_name, number = source.position(unit, i)
        raw = json.dumps({k: v for k, v in table.slice(i, 1).to_pylist()[0].items() if k not in ROW_PROBLEM}, ensure_ascii=False, default=str)
        rejects.append({"file": source.where(unit), unit_name: number, "field": problem, "reason": reason, "raw": raw, "source": source.name})
    valid = frame.filter(pl.col("_field").is_null())
    # the prompt's text is split into words and hashed once per prompt, not per sample, and shared by all three uses
    firsts = valid.unique("prompt_id", keep="first", maintain_order=True)
    prompts = firsts.select("prompt_id", tokens=words_column(firsts.select(prompt_text())["messages"]))
    prompts = prompts.with_columns(prompt_key=pl.Series([_hash64(t) for t in prompts["tokens"].list.join(" ").to_list()], dtype=pl.UInt64))
    flat, lengths = column_word_hashes(prompts["tokens"])
    completion = pl.col(text) if text else pl.format("{}\n{}", "reasoning", "answer")
    rows = valid.join(prompts.select("prompt_id", "prompt_key"), on="prompt_id", how="left", maintain_order="left").select(
        src=pl.lit(src, pl.UInt16),
        unit=pl.lit(unit, pl.UInt32),
        row=pl.col("row").cast(pl.UInt32),
        prompt_id=pl.col("prompt_id").cast(pl.String),  # typed: a source with no accepted rows is an empty unit
        sample_index=pl.col("sample_index").cast(pl.Int32),
        kind=pl.col("kind").cast(pl.Categorical),  # a handful of values over millions of rows: 4 bytes a row
        domain=pl.col("domain").cast(pl.Categorical),
        # the same completion to the same prompt text, in any source
        sample_key=completion.hash(0) ^ pl.col("prompt_key"),
        random_key=pl.Series([_hash64(f"{source.name}\x00{p}\x00{i}", config.seed) for p, i in valid.select("prompt_id", "sample_index").iter_rows()], dtype=pl.UInt64),
    )
    # decontamination and MinHash are both numpy over the same hashes, which frees the GIL: one runs beside the other
    with ThreadPoolExecutor(1) as pool:
        found = pool.submit(decontaminator.find_hashed, flat, lengths, lambda i: prompts["tokens"][i].to_list())
        bands = hasher.hashed_band_keys(flat, lengths)
        matches = found.result()
    prompts = prompts.select(
        src=pl.lit(src, pl.UInt16),
        prompt_id=pl.col("prompt_id").cast(pl.String),
        prompt_key="prompt_key",
        bands=pl.Series(bands, dtype=pl.Array(pl.UInt64, hasher.bands)),
        decontam_benchmark=pl.Series([m.benchmark if m else None for m in matches], dtype=pl.String),
        decontam_item=pl.Series([m.item if m else None for m in matches], dtype=pl.String),
        decontam_ngram=pl.Series([m.ngram if m else None for m in matches], dtype=pl.String),
    )
    return rows, prompts, rejects


# Python's str.strip() whitespace, so an answer counts as empty exactly where it always did
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # U+3000 is the last


def _row_problem() -> list[pl.Expr]:
    """`_field`, `_reason` when a row cannot enter a mix (null when it can). Types, nulls, kinds and
    language codes were checked as the row was read (ROW_PROBLEM); what is left is the mix's own."""
    read = pl.col("_problem_reason").fill_null("") != ""
    no_user = ~pl.col("messages").list.eval(pl.element().struct.field("role") == "user").list.any()
    empty = pl.col("answer").str.strip_chars(_WHITESPACE) == ""
    which = lambda a, b, c: pl.when(read).then(a).when(no_user).then(pl.lit(b)).when(empty).then(pl.lit(c))  # noqa: E731
    return [which(pl.col("_problem_field"), "messages", "answer").alias("_field"), which(pl.col("_problem_reason"), "no user turn", "empty").alias("_reason")]


def _set_aside_repeated(index: pl.DataFrame, sources: list[Source]) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """The index without the rows whose (prompt_id, sample_index) an earlier row of the same source
    has (two copies of one sample, possibly with different text, would both be drawn), and those
    rows as rejects naming the first copy."""
    key = ("src", "prompt_id", "sample_index")
    # a key repeats only where its 64-bit hash does: the exact check runs on those rows alone, not on
    # every row's strings (a copy of the index and a table of all its keys)
    suspects = index.with_row_index("_at").filter(pl.struct(*key).hash().is_duplicated())
    repeated, at = repeated_keys(suspects, key), suspects["_at"].to_numpy()
    positions = at[repeated["_pos"].to_numpy()].tolist()
    rejects, tables = [], {}
    for pos, first in zip(positions, at[repeated["_first"].to_numpy()].tolist()):
        row, of = index.row(pos, named=True), index.row(first, named=True)
        source = sources[row["src"]]
        unit_name, number = source.position(row["unit"], row["row"])
        where = (source.where(of["unit"]), *source.position(of["unit"], of["row"]))
        reason = duplicate_reason(row["prompt_id"], row["sample_index"], where)
        if (row["src"], row["unit"]) not in tables:  # the set-aside row as read, each affected file read once
            tables[row["src"], row["unit"]] = source.read(row["unit"], READ_COLUMNS)
        raw = json.dumps(tables[row["src"], row["unit"]].slice(row["row"], 1).to_pylist()[0], ensure_ascii=False, default=str)
        rejects.append({"file": source.where(row["unit"]), unit_name: number, "field": "sample_index", "reason": reason, "raw": raw, "source": source.name})
    if positions:
        index = index.filter(~pl.int_range(pl.len()).is_in(pl.Series(positions, dtype=pl.UInt32).implode()))
    return index, rejects


def _write_rejects(path: Path, rejects: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))


def write_shard_file(frame: pl.DataFrame, path: Path) -> None:
    """A scratch Parquet file, written atomically like every shard (through pyarrow, whose write errors
    are OSErrors a full disk can be told by)."""
    write_atomic(path, lambda tmp: frame.write_parquet(tmp, use_pyarrow=True))


# --- pass 2: plan -----------------------------------------------------------------------------------


@dataclass
class Plan:
    rows: pl.DataFrame  # the index, with `_i` and, for removed rows, removed_by/removed_reason/...
    picks: pl.DataFrame  # one row per output row: _i, copy_index, position
    available: dict[tuple[str, str], int]  # candidate rows per (kind, domain) after removals and caps


def plan_mix(config: MixConfig, index: pl.DataFrame, prompts: pl.DataFrame, names: list[str]) -> Plan:
    """Decide every row's fate: removed (and why), chosen (at which output positions), or left out."""
    rows = index.with_row_index("_i").join(_prompt_removals(config, prompts, names), on=["src", "prompt_id"], how="left")
    if config.dedup.exact:
        rows = _drop_repeated_samples(rows, names)
    candidates = rows.filter(pl.col("removed_by").is_null())
    if config.max_per_prompt:
        candidates = candidates.filter(pl.col("random_key").rank("ordinal").over("src", "prompt_id") <= config.max_per_prompt)
    available = {(k, d): n for k, d, n in candidates.group_by("kind", "domain").len().iter_rows()}
    picks = [_fill_quota(config, candidates, kind, domain, quota) for kind, domains in config.quotas.items() for domain, quota in domains.items()]
    chosen = pl.concat(picks) if picks else pl.DataFrame(schema={"_i": pl.UInt32, "copy_index": pl.Int32})
    # the seeded shuffle: order by a mix of each row's random key and copy number
    keys = chosen.join(rows.select("_i", "random_key"), on="_i", how="left")
    order = mix64(keys["random_key"].to_numpy() ^ mix64(keys["copy_index"].to_numpy().astype(np.uint64) + np.uint64(config.seed)))
    chosen = keys.with_columns(_order=pl.Series(order, dtype=pl.UInt64)).sort("_order", "_i").drop("_order", "random_key")
    return Plan(rows, chosen.with_row_index("position"), available)


def _prompt_removals(config: MixConfig, prompts: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Per prompt: contaminated, or a duplicate of an earlier prompt (exact or near), or null."""
    n = config.decontamination.n
    contaminated = prompts.filter(pl.col("decontam_benchmark").is_not_null()).with_columns(
        removed_by=pl.lit("contaminated"),
        removed_reason=pl.format('{} {}: shares the {}-gram "{}"', "decontam_benchmark", "decontam_item", pl.lit(n), "decontam_ngram"),
        duplicate_of=pl.lit(None, dtype=pl.String),
    )
    clean = prompts.filter(pl.col("decontam_benchmark").is_null())
    columns = []
    if config.dedup.exact:
        columns.append(clean["prompt_key"].to_numpy()[:, None])
    if config.dedup.near:
        columns.append(clean["bands"].to_numpy())
    if columns and clean.height:
        rep = cluster(np.hstack(columns).astype(np.uint64))
        label = pl.Series([f"{names[s]}:{p}" for s, p in zip(clean["src"].to_list(), clean["prompt_id"].to_list())])
        keys = clean["prompt_key"].to_numpy()
        duplicate = rep != np.arange(clean.height)
        exact = keys == keys[rep]
        kind = np.where(exact, "exact_duplicate", "near_duplicate")
        of = label.to_numpy()[rep]
        clean = clean.with_columns(
            removed_by=pl.Series([k if d else None for k, d in zip(kind, duplicate)], dtype=pl.String),
            duplicate_of=pl.Series([o if d else None for o, d in zip(of, duplicate)], dtype=pl.String),
        ).with_columns(removed_reason=pl.format("prompt {} {}", pl.col("removed_by").str.replace("_duplicate", "ly duplicates"), "duplicate_of"))
    else:
        clean = clean.with_columns(removed_by=pl.lit(None, pl.String), duplicate_of=pl.lit(None, pl.String), removed_reason=pl.lit(None, pl.String))
    columns = ["src", "prompt_id", "removed_by", "removed_reason", "duplicate_of", "decontam_benchmark", "decontam_item", "decontam_ngram"]
    return pl.concat([contaminated.select(columns), clean.select(columns)]).filter(pl.col("removed_by").is_not_null())


def _drop_repeated_samples(rows: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """A completion already in the mix for the same prompt text adds nothing: keep its first copy."""
    first = rows.filter(pl.col("removed_by").is_null()).group_by("sample_key").agg(_first=pl.col("_i").min())
    rows = rows.join(first, on="sample_key", how="left")
    repeated = pl.col("removed_by").is_null() & (pl.col("_i") != pl.col("_first"))
    keepers = rows.filter(repeated).select("_first").unique()
    label = pl.format("{}:{}#{}", pl.col("src").replace_strict(dict(enumerate(names)), return_dtype=pl.String), "prompt_id", "sample_index")
    labels = rows.join(keepers, left_on="_i", right_on="_first", how="semi").select(_first="_i", _of=label)
    rows = rows.join(labels, on="_first", how="left")
    return rows.with_columns(
        removed_by=pl.when(repeated).then(pl.lit("exact_duplicate")).otherwise("removed_by"),
        removed_reason=pl.when(repeated).then(pl.format("sample repeats {}", "_of")).otherwise("removed_reason"),
        duplicate_of=pl.when(repeated).then("_of").otherwise("duplicate_of"),
    ).drop("_first", "_of").sort("_i")


def _fill_quota(config: MixConfig, candidates: pl.DataFrame, kind: str, domain: str, quota: int) -> pl.DataFrame:
    """`quota` rows of one (kind, domain): the lowest random keys; drawn again only with replacement."""
    group = candidates.filter((pl.col("kind") == kind) & (pl.col("domain") == domain)).sort("random_key", "_i")
    taken = group.head(quota).select("_i", copy_index=pl.lit(0, pl.Int32))
    short = quota - taken.height
    if not (config.replacement and short > 0 and taken.height):
        return taken
    rng = np.random.default_rng([config.seed, _hash64(f"{kind}/{domain}")])
    extra = taken.select("_i")[rng.integers(0, taken.height, size=short)]
    extra = extra.with_columns(copy_index=(pl.int_range(pl.len()).over("_i") + 1).cast(pl.Int32))
    return pl.concat([taken, extra])


# --- pass 3: write ----------------------------------------------------------------------------------


def write_mix(config: MixConfig, sources: list[Source], plan: Plan, out: Path) -> None:
    """Scatter each source file's chosen rows (by output shard) and removed rows; gather the shards."""
    work = out / WORK / "chosen"
    work.mkdir(parents=True, exist_ok=True)
    located = plan.picks.join(plan.rows.select("_i", "src", "unit", "row"), on="_i", how="left")
    by_unit = located.partition_by("src", "unit", as_dict=True)
    removed = plan.rows.filter(pl.col("removed_by").is_not_null())
    removed_by_unit = removed.partition_by("src", "unit", as_dict=True)
    shards = max(1, -(-plan.picks.height // config.rows_per_shard))
    units = [(src, unit) for src, source in enumerate(sources) for unit in range(len(source.units))]
    with StageProgress("mixing", total=len(units) + shards, unit="files", enabled=config.progress) as progress:
        for number, (src, unit) in enumerate(units):
            done = work / f"unit-{number:05d}.parquet"
            if not done.exists():
                source = sources[src]
                # not `completion`: the conversation is built from reasoning and answer, and it is the widest column
                table = source.read(unit, [c for c in source.columns[unit] if c != "completion"])
                gone = removed_by_unit.get((src, unit), removed.clear())
                write_shard(out / "removed", number, _removed_rows(table, gone, config, source.name))
                _write_chosen(done, table, by_unit.get((src, unit), located.clear()), source.name, config)
            progress.advance(1)
        for shard in range(shards):
            if not shard_path(out, shard).exists():
                lo, hi = shard * config.rows_per_shard, (shard + 1) * config.rows_per_shard
                part = pl.scan_parquet(work / "unit-*.parquet").filter(pl.col("_position").is_between(lo, hi, closed="left"))
                rows = part.sort("_position").drop("_position").collect()
                write_shard(out, shard, rows.to_arrow().cast(MIX_SCHEMA))
            progress.advance(1)


def _write_chosen(path: Path, table: pa.Table, picks: pl.DataFrame, name: str, config: MixConfig) -> None:
    """This file's chosen rows in the mix format, sorted by output position, one row group per
    output shard so the gather reads only its own."""
    picks = picks.sort("position")
    rows = conversation_rows(table.take(pa.array(picks["row"].to_numpy())), name, config.empty_think_domains)
    rows = rows.append_column("copy_index", pa.array(picks["copy_index"].to_numpy(), pa.int32()))
    rows = rows.append_column("_position", pa.array(picks["position"].to_numpy(), pa.int64()))
    schema = MIX_SCHEMA.append(pa.field("_position", pa.int64()))
    shard_of = picks["position"] // config.rows_per_shard

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            for shard in shard_of.unique(maintain_order=True).to_list():
                writer.write_table(rows.filter(pa.array((shard_of == shard).to_numpy())).select(schema.names).cast(schema))

    write_atomic(path, write)


def conversation_rows(table: pa.Table, name: str, empty_think_domains: list[str]) -> pa.Table:
    """Samples as TRL conversations: the prompt's turns, then the assistant turn R1-style,
    "<think>\\n{reasoning}\\n</think>\\n\\n{answer}" (an empty think block where there is no reasoning, for a
    simple query (`think_mode` empty; a folder without the column has none) and for `empty_think_domains`)."""
    extra = [c for c in ("think_mode", "verified_by", "correct_verdict", "correct_verifier", "judge_verdict") if c in table.column_names]
    frame = pl.from_arrow(table.select(READ_COLUMNS + extra))
    simple = (pl.col("think_mode") == "empty").fill_null(False) if "think_mode" in frame.columns else pl.lit(False)
    thought = pl.when(pl.col("domain").is_in(empty_think_domains) | simple).then(pl.lit("")).otherwise(pl.col("reasoning").str.strip_chars())
    content = pl.format(THINK_TEMPLATE.replace("{reasoning}", "{}").replace("{answer}", "{}"), thought, pl.col("answer").str.strip_chars())
    turn = pl.struct(role=pl.lit("assistant"), content=content)
    frame = frame.select(
        pl.col("messages").list.concat(pl.concat_list(turn)),
        *("prompt_id", "sample_index", "domain", "kind", "language", "source"),
        mix_source=pl.lit(name),
        generator="generator",
        verified_by=verified_by(frame.columns),
    )
    return frame.to_arrow()


def _removed_rows(table: pa.Table, removed: pl.DataFrame, config: MixConfig, name: str) -> pa.Table:
    """The removed rows as they would have entered the mix (one schema, whatever the source's
    extra columns), tagged with why and by what."""
    rows = conversation_rows(table.take(pa.array(removed["row"].to_numpy(), pa.int64())), name, config.empty_think_domains)
    rows = rows.append_column("copy_index", pa.array([0] * rows.num_rows, pa.int32()))
    for f in REMOVED_FIELDS:
        rows = rows.append_column(f, removed[f.name].to_arrow().cast(f.type))
    return rows.cast(REMOVED_SCHEMA)


# --- report -----------------------------------------------------------------------------------------


def build_report(config: MixConfig, sources: list[Source], plan: Plan, index: Index) -> dict[str, Any]:
    """What went in, what was removed and why, and every quota against what it got."""
    rows = plan.rows
    picked = plan.picks.join(rows.select("_i", "src", "kind", "domain", "removed_by"), on="_i", how="left")
    removed = rows.filter(pl.col("removed_by").is_not_null())
    quotas = []
    for kind, domains in config.quotas.items():
        for domain, quota in domains.items():
            mine = picked.filter((pl.col("kind") == kind) & (pl.col("domain") == domain))
            taken, copies = mine.height, mine.filter(pl.col("copy_index") > 0).height
            quotas.append({"kind": kind, "domain": domain, "quota": quota, "available": plan.available.get((kind, domain), 0),
                           "taken": taken, "short_by": quota - taken, "upsampled": copies})
    used = {(q["kind"], q["domain"]) for q in quotas if q["quota"]}
    unused = [{"kind": k, "domain": d, "rows": n} for (k, d), n in sorted(plan.available.items()) if (k, d) not in used]
    contaminated = removed.filter(pl.col("removed_by") == "contaminated")
    by_benchmark = dict(contaminated.group_by("decontam_benchmark").len().iter_rows())
    per_source = []
    for src, source in enumerate(sources):
        mine = rows.filter(pl.col("src") == src)
        per_source.append({"name": source.name, "path": source.path, "rows": source.rows, "indexed": mine.height,
                           "removed": mine.filter(pl.col("removed_by").is_not_null()).height,
                           "chosen": picked.filter(pl.col("src") == src).height})
    examples = lambda reason, cols: removed.filter(pl.col("removed_by") == reason).head(5).select(cols).to_dicts()  # noqa: E731
    return {
        "seed": config.seed,
        "rows_in": sum(s.rows for s in sources),
        "rows_rejected": index.rejected,
        "duplicate_keys": index.duplicates,
        "rows_out": plan.picks.height,
        "sources": per_source,
        "removed": {r: removed.filter(pl.col("removed_by") == r).height for r in ("exact_duplicate", "near_duplicate", "contaminated")},
        "dedup": {"exact": config.dedup.exact, "near": config.dedup.near, "jaccard_threshold": round(MinHasher(config.dedup.shingle, config.dedup.bands, config.dedup.rows).threshold, 3)},
        "decontamination": {
            "n": config.decontamination.n,
            "benchmarks": {name: {**status, "removed": by_benchmark.get(name, 0)} for name, status in index.benchmarks.items()},
        },
        "targets": {kind: {"target": sum(q["quota"] for q in quotas if q["kind"] == kind), "taken": sum(q["taken"] for q in quotas if q["kind"] == kind)} for kind in config.quotas},
        "quotas": quotas,
        "shortfalls": [q for q in quotas if q["short_by"] > 0],
        "unused": unused,
        "examples": {
            "contaminated": examples("contaminated", ["prompt_id", "decontam_benchmark", "decontam_item", "decontam_ngram"]),
            "near_duplicate": examples("near_duplicate", ["prompt_id", "duplicate_of"]),
        },
    }


def write_plot(out: Path, report: dict[str, Any]) -> Path:
    """mix.png, drawn by datakit.plots from the report."""
    from datakit.plots import mix_figure, save

    return save(mix_figure(report), out / "mix.png")
