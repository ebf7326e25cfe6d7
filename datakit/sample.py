"""`datakit sample`: N completions per prompt, written as resumable Parquet shards.

The prompts are cut into fixed shards of `shard_size` prompts; each shard is one work unit, written
atomically when complete. A re-run with the same config skips finished shards; each prompt's seed
comes from the run seed and its prompt_id, so a resumed shard samples what it would have sampled.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from datakit import __version__
from datakit.backends import Backend, BackendConfig, PromptResult, SamplingParams, make_backend, resolve_backend_name
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.cot import CotConfig, check_cot, describe, resolve_template, teacher_messages, think_mode
from datakit.dataset import (
    LOCK_HELD,
    MANIFEST,
    SHARD_DIR,
    claim_folder,
    completed_shards,
    folder_lock,
    read_table,
    shard_path,
    write_json_atomic,
    write_loader_card,
    write_shard,
    write_text_atomic,
)
from datakit.errors import DatakitError
from datakit.ingest import ColumnMapping, IngestConfig, Ingested, Reject, load_prompts
from datakit.models import DEFAULT_MODEL, generator_id
from datakit.progress import StageProgress
from datakit.reasoning import split_completion, split_prompted
from datakit.schema import SAMPLE_SCHEMA, SCHEMA_VERSION, TEXT_HASH, text_hash

REJECTS = "rejects.jsonl"
SHARD_REJECTS = "rejects"  # rejects/part-NNNNN.jsonl: a shard's prompts refused by the engine (prompt_too_long)


@dataclass
class SampleConfig:
    """Everything `datakit sample` needs; recipes' `sample:` sections map onto it one-to-one."""

    # The prompts' content, not their path, identifies a run: a moved file or folder still resumes.
    input: str | list[str] = field(default="", metadata=NOT_HASHED)  # a list: several files, read in order
    output: str = field(default="", metadata=NOT_HASHED)
    model: str = DEFAULT_MODEL
    sampling: SamplingParams = field(default_factory=SamplingParams)
    backend: BackendConfig = field(default_factory=BackendConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    prefill_think: bool = False  # open the think block in the prompt, as R1's template does
    cot: CotConfig = field(default_factory=CotConfig)  # ask a chat teacher for a chain of thought (non-reasoning prompts)
    shard_size: int = 256  # prompts per shard: the unit of resume
    # Several processes (one per GPU group, or a SLURM array) can share one output folder: worker i of
    # k takes shards i, i+k, i+2k, ...; the last one to finish marks the folder complete.
    num_workers: int = field(default=1, metadata=NOT_HASHED)
    worker_index: int = field(default=0, metadata=NOT_HASHED)
    # Engine replicas on this machine (data parallel): one worker process each, each given its own
    # tensor_parallel_size x pipeline_parallel_size GPUs. Samples do not depend on it.
    data_parallel_size: int = field(default=1, metadata=NOT_HASHED)
    # A Ray cluster ("auto", "HOST:PORT", "local"): the data_parallel_size replicas become Ray actors placed
    # across its nodes (each with tensor x pipeline parallel GPUs), writing shards into the same folder,
    # which must be on storage every node sees. Samples do not depend on it.
    ray_address: str | None = field(default=None, metadata=NOT_HASHED)
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class SampleSummary:
    output: Path
    prompts: int
    rejected_prompts: int
    rows: int
    completion_tokens: int
    shards_written: int
    shards_skipped: int
    seconds: float
    finish_reasons: dict[str, int]
    too_long: int = 0  # prompts refused as longer than the model's context (in rejects.jsonl)
    already_complete: bool = False
    complete: bool = True  # False: this worker is done, other workers' shards are still missing

    @classmethod
    def from_manifest(
        cls, out: Path, manifest: dict[str, Any], written: int = 0, skipped: int = 0, seconds: float = 0.0,
        already_complete: bool = False, complete: bool = True,
    ) -> SampleSummary:
        counts = manifest["counts"]
        return cls(
            output=out,
            prompts=counts["prompts"],
            rejected_prompts=counts["rejected_prompts"],
            rows=counts.get("rows", 0),
            completion_tokens=counts.get("completion_tokens", 0),
            shards_written=written,
            shards_skipped=skipped,
            seconds=seconds,
            finish_reasons=counts.get("finish_reasons", {}),
            too_long=counts.get("prompts_too_long", 0),
            already_complete=already_complete,
            complete=complete,
        )

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


def run_sample(config: SampleConfig, backend: Backend | None = None) -> SampleSummary:
    """Generate into `config.output`, continuing a killed run; refuse a folder made with other settings,
    or one another run is writing into.

    Pass a `backend` to reuse an engine that is already loaded (it is left open); otherwise one is
    built from `config.backend` and closed at the end.
    """
    if not config.input or not config.output:
        raise DatakitError("sample needs an input (prompts) and an output folder")
    _check_values(config)
    config.backend.name = resolve_backend_name(config.backend.name)
    ingested = load_prompts(config.input, config.ingest)
    if ingested.prompts.num_rows == 0:
        raise DatakitError(_nothing_valid(config, ingested))
    worker = (config.worker_index, config.num_workers) if config.num_workers > 1 else None
    with folder_lock(Path(config.output), worker):
        return _sample_into(config, ingested, backend)


def _sample_into(config: SampleConfig, ingested: Ingested, backend: Backend | None) -> SampleSummary:
    """The run itself, in a folder whose lock this process (or the run that started it) holds."""
    out = Path(config.output)
    started = time.monotonic()
    prompts = ingested.prompts
    run_hash = fingerprint({"config": _hashed_config(config), "prompts": _prompts_fingerprint(prompts), "schema": SCHEMA_VERSION})
    previous = claim_folder(out, "sample", run_hash, {"config": hashed_view(config)}, "the input prompts changed")
    if previous is not None and previous.get("complete"):
        return SampleSummary.from_manifest(out, previous, already_complete=True)

    shards = [(i, prompts.slice(start, config.shard_size)) for i, start in enumerate(range(0, prompts.num_rows, config.shard_size))]
    done = completed_shards(out)
    mine = [(i, shard) for i, shard in shards if i % config.num_workers == config.worker_index]
    pending = [(i, shard) for i, shard in mine if i not in done]
    replicas = config.data_parallel_size > 1 or config.ray_address
    owned = backend is None and bool(pending) and not replicas
    if owned:  # the model loads before anything is written: a wrong model leaves no folder to refuse the fixed re-run
        backend = make_backend(config.backend, config.model, config.prefill_think)
    try:
        manifest = _manifest(config, run_hash, ingested)
        manifest["cpu_threads"] = backend.cpu_threads() if backend else None
        write_json_atomic(out / MANIFEST, manifest)  # first: a folder without it is refused as someone else's
        _write_rejects(out / REJECTS, ingested.rejects)
        if pending and replicas:
            _run_replicas(config, out, shards)
        elif pending:
            already = sum(shard.num_rows for _, shard in mine) - sum(shard.num_rows for _, shard in pending)
            _generate_shards(config, backend, out, pending, already, sum(shard.num_rows for _, shard in mine))
    finally:
        if owned:
            backend.close()

    seconds = time.monotonic() - started
    if len(completed_shards(out)) < len(shards):  # other workers are still at it
        return SampleSummary.from_manifest(out, manifest, written=len(pending), skipped=len(mine) - len(pending), seconds=seconds, complete=False)
    return _finish(out, manifest, ingested.rejects, len(shards), len(pending), len(mine) - len(pending), seconds)


def _nothing_valid(config: SampleConfig, ingested: Ingested) -> str:
    """Why no row became a prompt: a --map naming a column no row has, then the commonest reasons."""
    where = config.input if isinstance(config.input, str) else ", ".join(config.input)
    lines = [f"{where}: no valid prompts: all {len(ingested.rejects)} rows were rejected"]
    seen: set[str] = set()
    for r in ingested.rejects:
        try:
            row = json.loads(r.raw)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            seen |= set(row)
    defaults = to_dict(ColumnMapping())
    for name, column in to_dict(config.ingest.mapping).items():
        absent = [c for c in column.split(",") if c.split(".")[0] not in seen]
        if column != defaults[name] and seen and absent:
            lines.append(f"--map {name}={column}: no row has a column {absent[0]!r}; the rows have {', '.join(sorted(seen))}")
    reasons = Counter((r.field, r.reason) for r in ingested.rejects)
    first = {}
    for r in ingested.rejects:
        first.setdefault((r.field, r.reason), r)
    for (name, reason), count in reasons.most_common(3):
        field_part = f"field {name!r}: " if name else ""
        lines.append(f"{count} row(s): {field_part}{reason} (first at {first[(name, reason)].file}:{first[(name, reason)].line})")
    if len(reasons) > 3:
        lines.append(f"and {len(reasons) - 3} other reason(s)")
    return "\n  ".join(lines)


def _check_values(config: SampleConfig) -> None:
    s = config.sampling
    checks = [
        (s.n >= 1, f"n must be >= 1, got {s.n}"),
        (s.max_tokens >= 1, f"max_tokens must be >= 1, got {s.max_tokens}"),
        (s.temperature >= 0, f"temperature must be >= 0, got {s.temperature}"),
        (0 < s.top_p <= 1, f"top_p must be in (0, 1], got {s.top_p}"),
        (config.shard_size >= 1, f"shard_size must be >= 1, got {config.shard_size}"),
        (config.num_workers >= 1, f"num_workers must be >= 1, got {config.num_workers}"),
        (config.data_parallel_size >= 1, f"data_parallel_size must be >= 1, got {config.data_parallel_size}"),
        (config.data_parallel_size == 1 or config.num_workers == 1, "use either data_parallel_size (one machine or a Ray cluster) or num_workers (several jobs), not both"),
        (0 <= config.worker_index < config.num_workers, f"worker_index must be in [0, {config.num_workers}), got {config.worker_index}"),
    ]
    for ok, message in checks:
        if not ok:
            raise DatakitError(message)
    check_cot(config.cot, config.prefill_think)


def _hashed_config(config: SampleConfig) -> Any:
    """What decides the samples; cot settings only when on, so folders made before they existed resume."""
    view = hashed_view(config)
    if config.cot.mode == "off":
        view.pop("cot")
    else:
        view["cot"] = describe(config.cot)  # the template's text and the simple-query rules' version too
    return view


def _generate_shards(
    config: SampleConfig, backend: Backend, out: Path, pending: list[tuple[int, pa.Table]], already: int, total: int
) -> None:
    generator = generator_id(config.model)
    template = resolve_template(config.cot) if config.cot.mode != "off" else None
    with StageProgress("sampling", total=total, completed=already, unit="prompts", enabled=config.progress, show_tokens=True) as progress:

        for index, shard in pending:
            rows = shard.to_pylist()
            seeds = [prompt_seed(config.sampling.seed, row["prompt_id"]) for row in rows]
            modes = [think_mode(row["messages"], row["kind"], config.cot) for row in rows]
            chats = [teacher_messages(row["messages"], mode, template) for row, mode in zip(rows, modes, strict=True)]
            results = backend.generate(chats, config.sampling, seeds, progress.advance)
            refused = [Reject(config.input if isinstance(config.input, str) else row["source"], None, "messages", result.rejected, json.dumps(row, ensure_ascii=False))
                       for row, result in zip(rows, results, strict=True) if result.rejected]
            if refused:  # before the shard: a finished shard always has its rejects beside it
                _write_rejects(out / SHARD_REJECTS / f"part-{index:05d}.jsonl", refused)
            write_shard(out, index, _sample_rows(rows, modes, results, generator, config.sampling))


def _run_replicas(config: SampleConfig, out: Path, shards: list[tuple[int, pa.Table]]) -> None:
    """Start one worker per replica (a process here, or a Ray actor anywhere on the cluster), each on
    its share of the shards, and follow their shards as they land."""
    replicas = config.data_parallel_size
    per_replica = config.backend.vllm.tensor_parallel_size * config.backend.vllm.pipeline_parallel_size
    children = [
        replace(config, data_parallel_size=1, num_workers=replicas, worker_index=rank, progress=False, ray_address=None) for rank in range(replicas)
    ]
    workers = _RayReplicas(config.ray_address, per_replica) if config.ray_address else _LocalReplicas(out, per_replica)
    workers.start(children)
    rows = {i: shard.num_rows for i, shard in shards}
    seen = completed_shards(out)
    try:
        with StageProgress("sampling", total=sum(rows.values()), completed=sum(rows[i] for i in seen), unit="prompts", enabled=config.progress, show_tokens=True) as progress:
            while workers.running():
                time.sleep(1.0)
                for i in sorted(completed_shards(out) - seen):
                    tokens = pq.read_table(shard_path(out, i), columns=["completion_tokens"]).column(0)
                    progress.advance(rows[i], tokens=int(pc.sum(tokens).as_py() or 0))
                    seen.add(i)
    finally:
        workers.stop()
    failed = workers.failed()
    if failed:
        raise DatakitError(f"data-parallel worker(s) {sorted(failed)} failed: {failed[min(failed)]}. Re-run to resume.")
    for leftover in out.glob(".worker-*"):
        leftover.unlink()


class _LocalReplicas:
    """Replicas as processes on this machine, each given its own GPUs."""

    def __init__(self, out: Path, per_replica: int) -> None:
        self.out, self.per_replica, self.procs = out, per_replica, []

    def start(self, children: list[SampleConfig]) -> None:
        gpus = _visible_gpus()
        if gpus and len(gpus) < len(children) * self.per_replica:
            raise DatakitError(f"{len(children)} replicas x {self.per_replica} GPUs each need {len(children) * self.per_replica} GPUs; {len(gpus)} are visible")
        for rank, child in enumerate(children):
            recipe = self.out / f".worker-{rank}.yaml"
            write_text_atomic(recipe, yaml.safe_dump({"sample": to_dict(child)}, sort_keys=False))
            env = {**os.environ, LOCK_HELD: str(self.out.resolve())}  # the replicas write under this run's lock
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[rank * self.per_replica : (rank + 1) * self.per_replica])
            log = (self.out / f".worker-{rank}.log").open("w")
            cmd = [sys.executable, "-m", "datakit.cli", "sample", "--recipe", str(recipe)]
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))

    def running(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def failed(self) -> dict[int, str]:
        return {rank: f"see {self.out}/.worker-{rank}.log" for rank, p in enumerate(self.procs) if p.returncode != 0}


class _RayReplicas:
    """Replicas as Ray actors: Ray places each on a node with the GPUs (or, without GPUs, a CPU) it needs."""

    def __init__(self, address: str, per_replica: int) -> None:
        from datakit.raycluster import connect

        connect(address)
        self.per_replica, self.pending, self.errors = per_replica, {}, {}

    def start(self, children: list[SampleConfig]) -> None:
        import ray

        gpus = self.per_replica if ray.cluster_resources().get("GPU", 0) else 0
        per_node = max((n["Resources"].get("GPU", 0) for n in ray.nodes() if n["Alive"]), default=0)
        if gpus > per_node:
            raise DatakitError(
                f"a replica needs {gpus} GPUs (tensor x pipeline parallel) but the largest node has {per_node:g}: a datakit replica "
                "lives on one node; run a multi-node engine per job instead (num_workers, one job each, see docs/scaling.md)"
            )
        task = ray.remote(num_gpus=gpus, num_cpus=1, max_retries=0)(_sample_replica)
        self.pending = {task.remote(child): rank for rank, child in enumerate(children)}

    def running(self) -> bool:
        import ray

        done, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in done:
            rank = self.pending.pop(ref)
            try:
                ray.get(ref)
            except Exception as e:  # a Ray task error wraps whatever the replica raised
                self.errors[rank] = str(e).splitlines()[-1]
        return bool(self.pending)

    def stop(self) -> None:
        import ray

        for ref in self.pending:
            ray.cancel(ref, force=True)

    def failed(self) -> dict[int, str]:
        return self.errors


def _sample_replica(config: SampleConfig) -> None:
    """One replica's share of a sample run, inside a Ray worker; the driver holds the folder's lock."""
    _sample_into(config, load_prompts(config.input, config.ingest), None)


def _visible_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return listed.split(",") if listed else [str(i) for i in range(torch.cuda.device_count())]


def prompt_seed(run_seed: int, prompt_id: str) -> int:
    """A seed per prompt, stable across runs, resumes and batch layouts."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _sample_rows(
    rows: list[dict[str, Any]], modes: list[str], results: list[PromptResult], generator: str, params: SamplingParams
) -> pa.Table:
    sampling = to_dict(params)
    records = []
    for row, mode, result in zip(rows, modes, results, strict=True):
        for index, generation in enumerate(result.generations):
            if mode == "prompted":
                reasoning, answer = split_prompted(generation.text)
            else:
                reasoning, answer = split_completion(generation.text, result.prefilled_think)
            records.append(
                {
                    **row,
                    "sample_index": index,
                    "completion": generation.text,
                    "reasoning": reasoning,
                    "answer": answer,
                    "think_mode": mode,
                    "finish_reason": generation.finish_reason,
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "generator": generator,
                    "sampling": sampling,
                    TEXT_HASH: text_hash(reasoning, answer),
                }
            )
    return pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA)


def _prompts_fingerprint(prompts: pa.Table) -> str:
    digest = hashlib.sha256()
    for column in ("prompt_id", "messages", "reference", "domain", "verifier"):
        digest.update(json.dumps(prompts.column(column).to_pylist(), ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def _manifest(config: SampleConfig, run_hash: str, ingested: Any) -> dict[str, Any]:
    prompts = ingested.prompts.num_rows
    rows = ingested.prompts.select(["messages", "kind"]).to_pylist()
    think_modes = Counter(think_mode(row["messages"], row["kind"], config.cot) for row in rows)  # per prompt
    return {
        "stage": "sample",
        "schema_version": SCHEMA_VERSION,
        "datakit_version": __version__,
        "command": sys.argv,
        "config": to_dict(config),
        "run_hash": run_hash,
        "model": config.model,
        "generator": generator_id(config.model),
        "seed": config.sampling.seed,
        "cot": describe(config.cot),
        "counts": {"input_rows": ingested.rows_read, "prompts": prompts, "rejected_prompts": len(ingested.rejects), "think_modes": dict(sorted(think_modes.items()))},
        "complete": False,
    }


def _write_rejects(path: Path, rejects: list[Reject], more: Sequence[str] = ()) -> None:
    """rejects.jsonl: the input rows ingest refused, then `more` (lines of shards' rejects, already JSON)."""
    lines = [json.dumps({"file": r.file, "line": r.line, "field": r.field, "reason": r.reason, "raw": r.raw}, ensure_ascii=False) for r in rejects]
    write_text_atomic(path, "".join(line + "\n" for line in [*lines, *more]))


def _finish(out: Path, manifest: dict[str, Any], rejects: list[Reject], shards: int, written: int, skipped: int, seconds: float) -> SampleSummary:
    """Count what the shards hold (not what this run did), gather every reject into rejects.jsonl and
    mark the folder complete."""
    table = read_table(out, columns=["completion_tokens", "finish_reason"])
    finish = Counter(table.column("finish_reason").to_pylist())
    refused = [out / SHARD_REJECTS / f"part-{i:05d}.jsonl" for i in range(shards)]
    lines = [line for f in refused if f.exists() for line in f.read_text().splitlines()]
    _write_rejects(out / REJECTS, rejects, lines)
    manifest["counts"].update(
        rows=table.num_rows,
        completion_tokens=int(pc.sum(table.column("completion_tokens")).as_py() or 0),
        finish_reasons=dict(sorted(finish.items())),
        prompts_too_long=len(lines),
    )
    write_loader_card(out, "sample", {"default": f"{SHARD_DIR}/*.parquet"})
    manifest["complete"] = True
    write_json_atomic(out / MANIFEST, manifest)
    return SampleSummary.from_manifest(out, manifest, written=written, skipped=skipped, seconds=seconds)
