"""`datakit filter`: run a filter chain over samples; write accepted/, rejected/ and a report.

Each input shard is one work unit: its rows go through the chain (cheap filters first, each seeing
only the rows that survived the ones before), then land in accepted/ or rejected/ with the chain's
score columns, `rejected_by` and `reject_reason`. A per-shard stats file written last marks the unit
done, so a killed run resumes where it stopped. Shards run in parallel processes, one per core.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datakit import __version__
from datakit.chain import Chain, load_chain, parse_chain
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.dataset import MANIFEST, SHARD_DIR, claim_folder, folder_lock, read_manifest, shard_files, write_json_atomic, write_loader_card, write_shard
from datakit.errors import DatakitError
from datakit.filters import Filter, reason_code
from datakit.pool import die_with_parent
from datakit.progress import StageProgress
from datakit.reader import KEY, Reject, Rows, check_mapping, check_schema, duplicate_reason, read_jsonl, read_table, repeated_keys, write_rejects
from datakit.reasoning import split_completion
from datakit.schema import SCHEMA_VERSION, text_hash_column

STATS_DIR = "stats"
REJECTS = "rejects.jsonl"  # input rows that cannot be filtered (bad values, repeated keys), with file, line/row, field, reason
PREVIOUS_VERDICT = "_previous_rejected_by"
# Reasoning-length histogram bins (tokens): 0, 64, 128, ... doubling up to R1's 32K budget and beyond.
LENGTH_BINS = [0] + [2**k for k in range(6, 18)]


@dataclass
class FilterConfig:
    """Everything `datakit filter` needs; a recipe's `filter:` section maps onto it one-to-one."""

    input: str = field(default="", metadata=NOT_HASHED)
    output: str = field(default="", metadata=NOT_HASHED)
    chain: str = field(default="filters/r1-reasoning.yaml", metadata=NOT_HASHED)  # its text is hashed, not its path
    # Parameters of the chain's filters, by filter name, merged onto the chain file's: the judge and the
    # reward model are chosen here (`filters: {judge: {model: deepseek-ai/DeepSeek-V3, backend: {name: vllm}}}`,
    # --judge-model, --set filters.judge.max_tokens=512), so one chain file serves the demo and a cluster.
    filters: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=NOT_HASHED)  # merged into the chain, whose text is hashed
    mapping: dict[str, str] = field(default_factory=dict)  # schema column -> input column, for foreign traces
    rows_per_shard: int = 4096  # for file inputs, which have no shards of their own
    workers: int = field(default=0, metadata=NOT_HASHED)  # processes; 0 = one per core
    # A Ray cluster ("auto", "HOST:PORT", "local"): shards become Ray Data tasks across its nodes, writing
    # the same files as a local run (the output folder must be on storage every node sees).
    ray_address: str | None = field(default=None, metadata=NOT_HASHED)
    plots: bool = field(default=True, metadata=NOT_HASHED)
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class FilterSummary:
    output: Path
    report: dict[str, Any]
    shards_written: int
    shards_skipped: int
    seconds: float
    plots: list[Path] = field(default_factory=list)
    processes: int = 1  # processes that ran the chain on this machine (a heavy chain: the stage's own; 0: Ray actors)


def run_filter(config: FilterConfig) -> FilterSummary:
    """Filter `config.input` into `config.output`, continuing a killed run."""
    if not config.input or not config.output:
        raise DatakitError("filter needs an input (samples) and an output folder")
    started = time.monotonic()
    chain = config_chain(config)
    source = open_source(config)
    _check_columns(chain, source.columns, config.input)
    out = Path(config.output)
    run_hash = fingerprint({"config": hashed_view(config), "chain": chain.text, "input": source.fingerprint, "schema": SCHEMA_VERSION})
    with folder_lock(out):
        return _filter_into(config, chain, source, out, run_hash, started)


def _filter_into(config: FilterConfig, chain: Chain, source: Source, out: Path, run_hash: str, started: float) -> FilterSummary:
    """The run itself, holding the output folder's lock: claim it, set the chain up, then write."""
    claim_folder(out, "filter", run_hash, {"config": hashed_view(config), "chain": {"yaml": chain.text}}, "the input samples changed")
    pending = [i for i in range(source.shards) if not (out / STATS_DIR / f"part-{i:05d}.json").exists()]
    if pending and not (config.ray_address and any(f.heavy for f in chain.filters)):  # Ray actors load heavy models themselves
        _init_worker(config, source)  # every filter's setup (the length filter's tokenizer, ...) fails before anything is written
    manifest = {
        "stage": "filter",
        "schema_version": SCHEMA_VERSION,
        "datakit_version": __version__,
        "command": sys.argv,
        "config": to_dict(config),
        "chain": {"name": chain.name, "yaml": chain.text},
        "run_hash": run_hash,
        "model": source.context.get("model"),
        "judges": chain.models(),
        "input_manifest": source.context or None,
        "complete": False,
    }
    write_json_atomic(out / MANIFEST, manifest)
    write_rejects(out / REJECTS, source.rejects)

    processes = _run_shards(config, source, out, pending)

    report = {**build_report(out, chain, source.shards), "rows_rejected": len(source.rejects), "duplicate_keys": source.duplicates}
    write_json_atomic(out / "report.json", report)
    plots = write_plots(out, report) if config.plots else []
    for part in ("accepted", "rejected"):
        write_json_atomic(out / part / MANIFEST, {**manifest, "stage": f"filter/{part}", "complete": True})
    write_loader_card(out, "filter", {part: f"{part}/{SHARD_DIR}/*.parquet" for part in ("accepted", "rejected")})
    manifest["complete"] = True
    write_json_atomic(out / MANIFEST, manifest)
    return FilterSummary(out, report, len(pending), source.shards - len(pending), time.monotonic() - started, plots, processes)


def config_chain(config: FilterConfig) -> Chain:
    """The chain a filter config runs: its chain file with the config's `filters:` settings merged in."""
    return load_chain(config.chain, config.filters)


# --- input ---------------------------------------------------------------------------------------


@dataclass
class Source:
    """Where the samples come from: a stage folder's shards, or one file cut into shards by prompt."""

    columns: list[str]
    shards: int
    fingerprint: str
    context: dict[str, Any]
    files: list[list[Path]] = field(default_factory=list)  # the files of each shard
    table: pl.DataFrame | None = None
    bounds: list[int] = field(default_factory=list)  # row offsets of the table's shards
    rejects: list[Reject] = field(default_factory=list)  # input rows set aside, for rejects.jsonl
    duplicates: int = 0  # of those, rows whose (prompt_id, sample_index) an earlier row has
    repeated: dict[int, list[int]] = field(default_factory=dict)  # folder inputs: per shard, positions of repeated keys

    def rows(self, index: int) -> int:
        if self.table is None:
            return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files[index])
        return self.bounds[index + 1] - self.bounds[index]

    def read(self, index: int, mapping: dict[str, str]) -> pl.DataFrame:
        if self.table is None:
            frame = pl.concat([pl.read_parquet(f) for f in self.files[index]], how="diagonal_relaxed")
            if index in self.repeated:
                frame = frame.with_row_index("_at").filter(~pl.col("_at").is_in(self.repeated[index])).drop("_at")
            if "rejected_by" in frame.columns:  # a filter output: its verdicts tell which scores are stored
                frame = frame.rename({"rejected_by": PREVIOUS_VERDICT}).drop("reject_reason", strict=False)
            return normalise(frame, mapping).sort("prompt_id", "sample_index", maintain_order=True)
        start, stop = self.bounds[index], self.bounds[index + 1]
        return self.table.slice(start, stop - start)


def open_source(config: FilterConfig) -> Source:
    """The input, checked before any work: shards' schemas (once per shard) or every row of a file,
    `--map` against the columns present, and repeated (prompt_id, sample_index) keys set aside."""
    path = Path(config.input)
    if (path / SHARD_DIR).is_dir() or (path / "accepted" / SHARD_DIR).is_dir():
        # a filter output is read whole (accepted + rejected) to re-decide it with a new chain
        parts = [path] if (path / SHARD_DIR).is_dir() else [path / "accepted", path / "rejected"]
        by_part = [shard_files(part) for part in parts]
        files = [list(group) for group in zip(*by_part, strict=True)]
        schema = _readable_schemas([f for group in files for f in group])
        check_mapping(config.mapping, list(schema.names), config.input)
        columns = _mapped_columns(list(schema.names), config.mapping)
        context = read_manifest(path) or {}
        digest = fingerprint([(f.name, f.stat().st_size, int(f.stat().st_mtime)) for group in files for f in group])
        rejects, repeated = _repeated_in_shards(files, [config.mapping.get(k, k) for k in KEY])
        return Source(columns, len(files), digest, context, files=files, rejects=rejects, duplicates=len(rejects), repeated=repeated)
    rows = _read_file(config.input, config.mapping)
    frame = normalise(pl.from_arrow(rows.table), config.mapping)  # type: ignore[arg-type]
    duplicates = _set_aside_repeated(frame, rows) if set(KEY) <= set(frame.columns) else []
    frame = frame.filter(~pl.int_range(pl.len()).is_in([r for r, _ in duplicates]))
    rejects = rows.rejects + [d for _, d in duplicates]
    if frame.is_empty() and rejects:
        first = "; ".join(r.message() for r in rejects[:3])
        raise DatakitError(f"{config.input}: none of its {len(rejects)} rows can be filtered (first: {first})")
    table = frame.sort("prompt_id", "sample_index", maintain_order=True)
    bounds = _prompt_bounds(table, config.rows_per_shard)
    digest = fingerprint([table.hash_rows().sum(), [(r.file, r.line, r.field, r.reason) for r in rejects]])
    return Source(table.columns, len(bounds) - 1, digest, {}, table=table, bounds=bounds, rejects=rejects, duplicates=len(duplicates))


def _readable_schemas(files: list[Path]) -> Any:
    """Open every shard's footer up front, so a broken or mistyped shard stops the run before any work."""
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f))
        except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
            raise DatakitError(f"{f}: not a readable Parquet file ({e}); restore or remove it") from e
        check_schema(schemas[-1], str(f))
    return schemas[0]


def _repeated_in_shards(files: list[list[Path]], key: list[str]) -> tuple[list[Reject], dict[int, list[int]]]:
    """Rows of a stage folder whose key an earlier row has: rejects, and per shard their positions
    in the shard as `Source.read` concatenates it. Reads only the two key columns."""
    if not set(key) <= set(pq.read_schema(files[0][0]).names):
        return [], {}
    flat = [f for group in files for f in group]
    parts, number = [], 0
    for shard, group in enumerate(files):
        at = 0
        for f in group:
            keys = pl.from_arrow(pq.read_table(f, columns=key)).rename(dict(zip(key, KEY)))  # type: ignore[union-attr]
            parts.append(keys.with_columns(_shard=pl.lit(shard), _at=pl.int_range(at, at + keys.height), _file=pl.lit(number), _row=pl.int_range(keys.height)))
            at, number = at + keys.height, number + 1
    frame = pl.concat(parts)
    rejects, repeated = [], {}
    for pos, first in repeated_keys(frame).select("_pos", "_first").iter_rows():
        prompt_id, sample_index, shard, at, file, row = frame.row(pos)
        *_, first_file, first_row = frame.row(first)
        reason = duplicate_reason(prompt_id, sample_index, (str(flat[first_file]), "row", first_row))
        rejects.append(Reject(str(flat[file]), row, "sample_index", reason, "", unit="row"))
        repeated.setdefault(shard, []).append(at)
    return rejects, repeated


def _set_aside_repeated(frame: pl.DataFrame, rows: Rows) -> list[tuple[int, Reject]]:
    """(position, reject) of each row of a file whose key an earlier row has (frame in input order)."""
    out = []
    for pos, first in repeated_keys(frame).select("_pos", "_first").iter_rows():
        row = frame.row(pos, named=True)
        file, unit, number = rows.origin[pos]
        reason = duplicate_reason(row["prompt_id"], row["sample_index"], rows.origin[first])
        out.append((pos, Reject(file, number, "sample_index", reason, json.dumps(row, ensure_ascii=False, default=str), unit=unit)))
    return out


def _read_file(source: str, mapping: dict[str, str]) -> Rows:
    """A file of samples (JSONL, Parquet, a folder of Parquet files) or a Hub dataset, row by row."""
    path = Path(source)
    if path.is_file() and path.suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(path, mapping)
    if path.suffix == ".parquet" or path.is_dir():
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        if not files:
            raise DatakitError(f"{source}: no .parquet files in this folder")
        return _read_tables([(_read_parquet(f), str(f)) for f in files], mapping)
    if path.exists():
        raise DatakitError(f"{source}: not a datakit stage folder, .jsonl or .parquet file of samples")
    try:
        import datasets

        table = datasets.load_dataset(source, split="train").data.table
    except Exception as e:  # the hub client raises many types; all mean "could not get it"
        raise DatakitError(f"{source}: not a local file or folder, and loading it as a Hub dataset failed: {e}") from e
    return _read_tables([(table, source)], mapping)


def _read_parquet(path: Path) -> Any:
    try:
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DatakitError(f"{path}: not a readable Parquet file ({e}); restore or remove it") from e


def _read_tables(tables: list[tuple[Any, str]], mapping: dict[str, str]) -> Rows:
    """Arrow tables renamed by `mapping` and checked against the sample schema, one file at a time."""
    renamed = {src: dst for dst, src in mapping.items()}
    parts = []
    for table, name in tables:
        check_mapping(mapping, table.column_names, name)
        part = read_table(table.rename_columns([renamed.get(c, c) for c in table.column_names]), name)
        for r in part.rejects:
            r.field = mapping.get(r.field or "", r.field)
        parts.append(part)
    table = pa.concat_tables([p.table for p in parts], promote_options="permissive")
    return Rows(table, [o for p in parts for o in p.origin], [r for p in parts for r in p.rejects])


def normalise(frame: pl.DataFrame, mapping: dict[str, str]) -> pl.DataFrame:
    """Rename mapped columns to the schema's names and derive what a foreign trace may lack; `text_hash`
    is computed afresh (what the rows came with may predate an edit of their text)."""
    frame = frame.rename({src: dst for dst, src in mapping.items() if src in frame.columns and src != dst})
    if "completion" in frame.columns and not {"reasoning", "answer"} <= set(frame.columns):
        split = [split_completion(text or "") for text in frame["completion"].to_list()]
        frame = frame.with_columns(reasoning=pl.Series([r for r, _ in split]), answer=pl.Series([a for _, a in split]))
    if "sample_index" not in frame.columns and "prompt_id" in frame.columns:
        frame = frame.with_columns(sample_index=pl.int_range(pl.len()).over("prompt_id").cast(pl.Int32))
    if {"reasoning", "answer"} <= set(frame.columns):
        frame = frame.with_columns(text_hash_column(frame))
    return frame


def _mapped_columns(columns: list[str], mapping: dict[str, str]) -> list[str]:
    renamed = [next((dst for dst, src in mapping.items() if src == c), c) for c in columns]
    if "completion" in renamed:
        renamed += ["reasoning", "answer"]
    return sorted(set(renamed))


def _prompt_bounds(table: pl.DataFrame, rows_per_shard: int) -> list[int]:
    """Shard boundaries that never split one prompt's samples (group filters need them together)."""
    starts = table.with_row_index("_i").group_by("prompt_id", maintain_order=True).agg(pl.col("_i").first())["_i"].to_list()
    bounds = [0]
    for start in starts[1:]:
        if start - bounds[-1] >= rows_per_shard:
            bounds.append(start)
    return [*bounds, table.height] if table.height else [0, 0]


def _check_columns(chain: Chain, columns: list[str], where: str) -> None:
    available = set(columns)
    for f in chain.filters:
        missing = [c for c in f.columns() if c not in available]
        if missing:
            raise DatakitError(
                f"{where}: filter {f.name!r} needs column(s) {missing}, which the input lacks "
                f"(map them with --map COLUMN=INPUT_COLUMN); the input has {sorted(columns)}"
            )
        available |= set(f.scores)


# --- running the chain ---------------------------------------------------------------------------


_worker: dict[str, Any] = {}


def _run_shards(config: FilterConfig, source: Source, out: Path, pending: list[int]) -> int:
    """Filter the pending shards; returns how many local processes ran the chain (0: Ray actors)."""
    workers = min(config.workers or os.cpu_count() or 1, max(1, len(pending)))
    if any(f.heavy for f in config_chain(config).filters):
        workers = 1  # one engine, batching a whole shard per call, beats one engine per core
    rows = [source.rows(i) for i in range(source.shards)]
    done = sum(rows) - sum(rows[i] for i in pending)
    with StageProgress("filtering", total=sum(rows), completed=done, unit="samples", enabled=config.progress) as progress:
        if workers == 1 and not config.ray_address:  # with the chain run_filter set up
            for index in pending:
                _process_shard(index, out)
                progress.advance(rows[index])
            _close_worker()
            return 1
        if config.ray_address:
            _close_worker()  # run_filter's chain only checked the setup: each actor sets up its own
            for index in _ray_shards(config, source, out, pending):
                progress.advance(rows[index])
            return 0
        # each worker takes a copy of the chain set up here (nothing heavy: a heavy chain runs in-process),
        # rather than importing transformers and loading the tokenizer and LID model again
        chain = _worker["chain"]
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_pool_worker, initargs=(os.getpid(), config, source, chain)) as pool:
                for index, _ in zip(pending, pool.map(_process_shard, pending, [out] * len(pending))):
                    progress.advance(rows[index])
        finally:
            _close_worker()
    return workers


def _ray_shards(config: FilterConfig, source: Source, out: Path, pending: list[int]) -> Iterator[int]:
    """Filter the pending shards with Ray Data: one shard per batch, on a pool of actors that each set the
    chain up once (as the local processes do); yields each shard's index as it finishes."""
    import ray

    from datakit.raycluster import connect

    connect(config.ray_address)
    chain = config_chain(config)
    heavy = any(f.heavy for f in chain.filters)
    size = 1 if heavy else max(1, min(len(pending), config.workers or int(ray.cluster_resources().get("CPU", 1))))
    # a judge or reward model actor asks Ray for the GPUs its engine uses, where the cluster has any
    gpus = sum(f.gpus() for f in chain.filters) if ray.cluster_resources().get("GPU", 0) else 0
    shards = ray.data.from_items([{"index": i} for i in pending], override_num_blocks=max(1, len(pending)))
    done = shards.map_batches(
        _RayShardFilter, fn_constructor_args=(config, source, str(out)), batch_size=1, concurrency=size, num_cpus=1, num_gpus=gpus,
        batch_format="pandas",
    )
    for row in done.iter_rows():
        yield int(row["index"])


class _RayShardFilter:
    """A Ray Data actor: the chain, set up once, applied to one shard per call."""

    def __init__(self, config: FilterConfig, source: Source, out: str) -> None:
        _init_worker(config, source)
        self.out = Path(out)

    def __call__(self, batch: Any) -> Any:
        for index in batch["index"]:
            _process_shard(int(index), self.out)
        return batch


def _init_worker(config: FilterConfig, source: Source) -> None:
    chain = config_chain(config)
    for f in chain.filters:
        f.setup(source.context)
    _use_chain(chain, config, source)


def _use_chain(chain: Chain, config: FilterConfig, source: Source) -> None:
    _worker.update(chain=chain, source=source, mapping=config.mapping, previous=_previous_scores(source.context))


def _init_pool_worker(parent: int, config: FilterConfig, source: Source, chain: Chain) -> None:
    """A pool process: dies with the stage (kill -9 included), then takes the chain the stage set up."""
    die_with_parent(parent)
    _use_chain(chain, config, source)


def _previous_scores(context: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    """For an input made by `datakit filter`: each filter's place in that chain and score identity."""
    if context.get("stage") != "filter":
        return {}
    previous = parse_chain(context["chain"]["yaml"], "the input's chain")
    return {f.name: (i, f.score_identity()) for i, f in enumerate(previous.filters)}


def _close_worker() -> None:
    chain = _worker.pop("chain", None)
    for f in chain.filters if chain else []:
        f.close()


def _process_shard(index: int, out: Path) -> None:
    chain: Chain = _worker["chain"]
    rows = _worker["source"].read(index, _worker["mapping"])
    result = apply_chain(chain, rows, _worker["previous"])
    accepted = result.filter(pl.col("rejected_by").is_null())
    rejected = result.filter(pl.col("rejected_by").is_not_null())
    write_shard(out / "rejected", index, rejected.to_arrow())
    write_shard(out / "accepted", index, accepted.to_arrow())
    write_json_atomic(out / STATS_DIR / f"part-{index:05d}.json", shard_stats(chain, rows, result))


def apply_chain(chain: Chain, rows: pl.DataFrame, previous: dict[str, tuple[int, dict[str, Any] | None]] | None = None) -> pl.DataFrame:
    """Every row with the chain's score columns, `rejected_by` and `reject_reason` (null when kept).

    Each filter sees the rows that survived the filters before it, with their score columns (so a
    judge can read the rule verdicts and best-of-N a judge's score). `previous` (re-filtering a
    filter's output) names the filters whose stored scores can be reused instead of recomputed."""
    frame = rows.with_row_index("_row")
    active = frame
    verdicts: list[pl.DataFrame] = []
    scored: list[pl.DataFrame] = []
    for f in chain.filters:
        if active.is_empty():
            break
        scores, crashes = _reuse_or_score(f, active, previous or {})
        active = pl.concat([active.drop(list(f.scores), strict=False), scores], how="horizontal")
        reasons = crashes.fill_null(f.keep(active.select(*f.columns(), *f.scores)))
        scored.append(active.select("_row", *f.scores))
        dropped = reasons.is_not_null()
        verdicts.append(
            pl.DataFrame({"_row": active["_row"].filter(dropped), "reject_reason": reasons.filter(dropped)})
            .with_columns(rejected_by=pl.lit(f.name))
        )
        active = active.filter(~dropped)
    frame = frame.drop([c for c in chain.score_columns() if c in frame.columns])
    for part in scored:
        frame = frame.join(part, on="_row", how="left")
    missing = {c: pl.lit(None, dtype=t) for c, t in chain.score_columns().items() if c not in frame.columns}
    frame = frame.with_columns(**missing)
    verdict = pl.concat(verdicts) if verdicts else pl.DataFrame(schema={"_row": pl.UInt32, "reject_reason": pl.String, "rejected_by": pl.String})
    frame = frame.join(verdict.select("_row", "rejected_by", "reject_reason"), on="_row", how="left")
    return frame.sort("_row").drop("_row", PREVIOUS_VERDICT, strict=False)


def _reuse_or_score(f: Filter, rows: pl.DataFrame, previous: dict[str, tuple[int, dict[str, Any] | None]]) -> tuple[pl.DataFrame, pl.Series]:
    """Stored scores where the previous chain computed them with the same score parameters (the row
    reached this filter there), fresh scores for the rest."""
    position, identity = previous.get(f.name, (-1, None))
    if identity is None or identity != f.score_identity() or not set(f.scores) <= set(rows.columns):
        return _score_safely(f, rows.drop(list(f.scores), strict=False))
    order = {name: i for name, (i, _) in previous.items()}
    earlier = pl.col(PREVIOUS_VERDICT).replace_strict(order, default=-1, return_dtype=pl.Int64)
    reached = rows.select(pl.col(PREVIOUS_VERDICT).is_null() | (earlier >= position)).to_series()
    kept_scores = rows.select(list(f.scores)).cast(f.scores)  # type: ignore[arg-type]
    if reached.all():
        return kept_scores, pl.Series("reason", [None] * rows.height, dtype=pl.String)
    fresh, crashes = _score_safely(f, rows.filter(~reached).drop(list(f.scores)))
    position_of = pl.Series(range(rows.height))
    merged = pl.concat([
        kept_scores.filter(reached).with_columns(_at=position_of.filter(reached)),
        fresh.with_columns(_at=position_of.filter(~reached)),
    ]).sort("_at").drop("_at")
    all_crashes = pl.Series("reason", [None] * rows.height, dtype=pl.String).scatter(position_of.filter(~reached), crashes)
    return merged, all_crashes


def _score_safely(f: Filter, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
    """Scores for all rows; where scoring crashes, the failing rows (or prompts, for group filters)
    get null scores and the exception as their reject reason, and the rest go on."""
    try:
        return _checked(f, rows, f.score(rows)), pl.Series("reason", [None] * rows.height, dtype=pl.String)
    except Exception:
        pass
    scores, crashes = [], []
    for unit in _units(f, rows):
        try:
            scores.append(_checked(f, unit, f.score(unit)))
            crashes += [None] * unit.height
        except Exception as e:  # a crash on one unit must not stop the run: it becomes that unit's reason
            scores.append(pl.DataFrame({c: [None] * unit.height for c in f.scores}, schema=f.scores))
            crashes += [f"filter_error: {type(e).__name__}: {str(e)[:200]}"] * unit.height
    return pl.concat(scores), pl.Series("reason", crashes, dtype=pl.String)


def _units(f: Filter, rows: pl.DataFrame) -> Iterator[pl.DataFrame]:
    if f.group:
        yield from rows.partition_by("prompt_id", maintain_order=True)
    else:
        yield from (rows.slice(i, 1) for i in range(rows.height))


def _checked(f: Filter, rows: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    if scores.height != rows.height or set(scores.columns) != set(f.scores):
        raise RuntimeError(f"filter {f.name!r} returned {scores.height} rows of {scores.columns} for {rows.height} rows")
    return scores.select(list(f.scores)).cast(f.scores)  # type: ignore[arg-type]


# --- report --------------------------------------------------------------------------------------


def shard_stats(chain: Chain, rows: pl.DataFrame, result: pl.DataFrame) -> dict[str, Any]:
    """What happened to one shard: the report is the sum of these."""
    kept = result.filter(pl.col("rejected_by").is_null())
    length = "reasoning_tokens" if "reasoning_tokens" in result.columns and result["reasoning_tokens"].null_count() == 0 else "completion_tokens"
    by_filter = {f.name: Counter() for f in chain.filters}
    for name, text in result.filter(pl.col("rejected_by").is_not_null()).select("rejected_by", "reject_reason").iter_rows():
        by_filter[name][reason_code(text)] += 1
    accepted_prompts = set(kept["prompt_id"].to_list())
    all_prompts = rows["prompt_id"].unique(maintain_order=True).to_list()
    return {
        "rows_in": rows.height,
        "rows_out": kept.height,
        "dropped": {name: dict(counts) for name, counts in by_filter.items()},
        "prompts_in": len(all_prompts),
        "prompts_zero_accepted": [p for p in all_prompts if p not in accepted_prompts],
        "domains_in": dict(Counter(rows["domain"].to_list())) if "domain" in rows.columns else {},
        "domains_out": dict(Counter(kept["domain"].to_list())) if "domain" in kept.columns else {},
        "agreement": _agreement(result),
        "length_column": length,
        "length_before": _histogram(result[length]) if length in result.columns else [],
        "length_after": _histogram(kept[length]) if length in kept.columns else [],
    }


def _agreement(result: pl.DataFrame) -> dict[str, int]:
    """Rows both a rule verifier and the judge decided: counts by "rule/judge" verdict pair."""
    if not {"correct_verdict", "judge_verdict"} <= set(result.columns):
        return {}
    both = result.filter(pl.col("correct_verdict").is_in(["correct", "wrong"]) & pl.col("judge_verdict").is_in(["correct", "incorrect"]))
    pairs = both.select(pl.concat_str(["correct_verdict", "judge_verdict"], separator="/")).to_series()
    return dict(Counter(pairs.to_list()))


def _histogram(values: pl.Series) -> list[int]:
    counts = [0] * len(LENGTH_BINS)
    for v in values.drop_nulls().to_list():
        counts[bisect_right(LENGTH_BINS, v) - 1] += 1
    return counts


def build_report(out: Path, chain: Chain, shards: int) -> dict[str, Any]:
    """The funnel and its breakdowns, summed over every shard's stats."""
    stats = [json.loads((out / STATS_DIR / f"part-{i:05d}.json").read_text()) for i in range(shards)]
    rows_in = sum(s["rows_in"] for s in stats)
    funnel, remaining = [], rows_in
    for f in chain.filters:
        reasons = Counter()
        for s in stats:
            reasons.update(s["dropped"].get(f.name, {}))
        dropped = sum(reasons.values())
        funnel.append({"filter": f.name, "rows_in": remaining, "dropped": dropped, "rows_out": remaining - dropped, "reasons": dict(reasons.most_common())})
        remaining -= dropped
    zero = [p for s in stats for p in s["prompts_zero_accepted"]]
    agreement = Counter()
    for s in stats:
        agreement.update(s["agreement"])
    both = sum(agreement.values())
    agreeing = agreement["correct/correct"] + agreement["wrong/incorrect"]
    domains_in, domains_out = Counter(), Counter()
    for s in stats:
        domains_in.update(s["domains_in"])
        domains_out.update(s["domains_out"])
    sandboxes = [f.code_sandbox() for f in chain.filters if hasattr(f, "code_sandbox")]
    return {
        "chain": chain.name,
        "judges": chain.models(),
        **({"code_sandbox": sandboxes[0]} if sandboxes else {}),
        "rows_in": rows_in,
        "rows_out": remaining,
        "funnel": funnel,
        "prompts": {"in": sum(s["prompts_in"] for s in stats), "zero_accepted": len(zero), "zero_accepted_examples": zero[:50]},
        # where a rule verifier and the judge both decided a row (judge_rule_verified: true)
        "rule_judge_agreement": {"rows": both, "agree": agreeing, "rate": round(agreeing / both, 4) if both else None, "pairs": dict(agreement)},
        "by_domain": {
            d: {"in": n, "out": domains_out.get(d, 0), "pass_rate": round(domains_out.get(d, 0) / n, 4)} for d, n in sorted(domains_in.items())
        },
        "length_histogram": {
            "column": stats[0]["length_column"] if stats else "completion_tokens",
            "bins": LENGTH_BINS,
            "before": [sum(col) for col in zip(*(s["length_before"] for s in stats))],
            "after": [sum(col) for col in zip(*(s["length_after"] for s in stats))],
        },
    }


def write_plots(out: Path, report: dict[str, Any]) -> list[Path]:
    """funnel.png and lengths.png, drawn by datakit.plots from the report."""
    from datakit.plots import funnel_figure, lengths_figure, save

    return [save(funnel_figure(report), out / "funnel.png"), save(lengths_figure(report), out / "lengths.png")]
