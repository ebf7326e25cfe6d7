"""`datakit sample`: N completions per prompt, written as resumable Parquet shards.

The prompts are cut into fixed shards of `shard_size` prompts; each shard is one work unit, written
atomically when complete. A re-run with the same config skips finished shards; each prompt's seed
comes from the run seed and its prompt_id, so a resumed shard samples what it would have sampled.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datakit import __version__
from datakit.backends import Backend, BackendConfig, PromptResult, SamplingParams, make_backend, resolve_backend_name
from datakit.config import NOT_HASHED, fingerprint, hashed_view, to_dict
from datakit.dataset import MANIFEST, completed_shards, read_manifest, read_table, write_json_atomic, write_shard
from datakit.errors import DatakitError
from datakit.ingest import IngestConfig, Reject, load_prompts
from datakit.models import DEFAULT_MODEL, generator_id
from datakit.progress import StageProgress
from datakit.reasoning import split_completion
from datakit.schema import SAMPLE_SCHEMA, SCHEMA_VERSION

REJECTS = "rejects.jsonl"


@dataclass
class SampleConfig:
    """Everything `datakit sample` needs; recipes' `sample:` sections map onto it one-to-one."""

    # The prompts' content, not their path, identifies a run: a moved file or folder still resumes.
    input: str = field(default="", metadata=NOT_HASHED)
    output: str = field(default="", metadata=NOT_HASHED)
    model: str = DEFAULT_MODEL
    sampling: SamplingParams = field(default_factory=SamplingParams)
    backend: BackendConfig = field(default_factory=BackendConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    prefill_think: bool = False  # open the think block in the prompt, as R1's template does
    shard_size: int = 256  # prompts per shard: the unit of resume
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
    already_complete: bool = False

    @classmethod
    def from_manifest(cls, out: Path, manifest: dict[str, Any], written: int = 0, skipped: int = 0, seconds: float = 0.0, already_complete: bool = False) -> SampleSummary:
        counts = manifest["counts"]
        return cls(
            output=out,
            prompts=counts["prompts"],
            rejected_prompts=counts["rejected_prompts"],
            rows=counts["rows"],
            completion_tokens=counts["completion_tokens"],
            shards_written=written,
            shards_skipped=skipped,
            seconds=seconds,
            finish_reasons=counts["finish_reasons"],
            already_complete=already_complete,
        )

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


def run_sample(config: SampleConfig, backend: Backend | None = None) -> SampleSummary:
    """Generate into `config.output`, continuing a killed run; refuse a folder made with other settings.

    Pass a `backend` to reuse an engine that is already loaded (it is left open); otherwise one is
    built from `config.backend` and closed at the end.
    """
    if not config.input or not config.output:
        raise DatakitError("sample needs an input (prompts) and an output folder")
    _check_values(config)
    config.backend.name = resolve_backend_name(config.backend.name)
    out = Path(config.output)
    started = time.monotonic()

    ingested = load_prompts(config.input, config.ingest)
    prompts = ingested.prompts
    if prompts.num_rows == 0:
        raise DatakitError(f"{config.input}: no valid prompts ({len(ingested.rejects)} rows rejected); see the messages above")
    run_hash = fingerprint({"config": hashed_view(config), "prompts": _prompts_fingerprint(prompts), "schema": SCHEMA_VERSION})
    previous = read_manifest(out)
    if previous is not None:
        _check_same_run(out, previous, config, run_hash)
        if previous.get("complete"):
            return SampleSummary.from_manifest(out, previous, already_complete=True)
    elif out.exists() and any(out.iterdir()):
        raise DatakitError(f"{out}: exists, is not empty and holds no {MANIFEST}; choose an empty or new folder")

    _write_rejects(out / REJECTS, ingested.rejects)
    manifest = _manifest(config, run_hash, prompts.num_rows, ingested)
    write_json_atomic(out / MANIFEST, manifest)

    shards = [(i, prompts.slice(start, config.shard_size)) for i, start in enumerate(range(0, prompts.num_rows, config.shard_size))]
    done = completed_shards(out)
    pending = [(i, shard) for i, shard in shards if i not in done]
    if pending:
        already = prompts.num_rows - sum(shard.num_rows for _, shard in pending)
        owned = backend is None
        backend = backend or make_backend(config.backend, config.model, config.prefill_think)
        try:
            _generate_shards(config, backend, out, pending, already, prompts.num_rows)
        finally:
            if owned:
                backend.close()

    return _finish(out, manifest, len(pending), len(shards) - len(pending), time.monotonic() - started)


def _check_values(config: SampleConfig) -> None:
    s = config.sampling
    checks = [
        (s.n >= 1, f"n must be >= 1, got {s.n}"),
        (s.max_tokens >= 1, f"max_tokens must be >= 1, got {s.max_tokens}"),
        (s.temperature >= 0, f"temperature must be >= 0, got {s.temperature}"),
        (0 < s.top_p <= 1, f"top_p must be in (0, 1], got {s.top_p}"),
        (config.shard_size >= 1, f"shard_size must be >= 1, got {config.shard_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise DatakitError(message)


def _generate_shards(
    config: SampleConfig, backend: Backend, out: Path, pending: list[tuple[int, pa.Table]], already: int, total: int
) -> None:
    generator = generator_id(config.model)
    with StageProgress("sampling", total=total, completed=already, unit="prompts", enabled=config.progress) as progress:

        def advance(_: int, result: PromptResult) -> None:
            progress.advance(1, tokens=sum(g.completion_tokens for g in result.generations))

        for index, shard in pending:
            rows = shard.to_pylist()
            seeds = [prompt_seed(config.sampling.seed, row["prompt_id"]) for row in rows]
            results = backend.generate([row["messages"] for row in rows], config.sampling, seeds, advance)
            write_shard(out, index, _sample_rows(rows, results, generator, config.sampling))


def prompt_seed(run_seed: int, prompt_id: str) -> int:
    """A seed per prompt, stable across runs, resumes and batch layouts."""
    digest = hashlib.sha256(f"{run_seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _sample_rows(rows: list[dict[str, Any]], results: list[PromptResult], generator: str, params: SamplingParams) -> pa.Table:
    sampling = to_dict(params)
    records = []
    for row, result in zip(rows, results, strict=True):
        for index, generation in enumerate(result.generations):
            reasoning, answer = split_completion(generation.text, result.prefilled_think)
            records.append(
                {
                    **row,
                    "sample_index": index,
                    "completion": generation.text,
                    "reasoning": reasoning,
                    "answer": answer,
                    "finish_reason": generation.finish_reason,
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "generator": generator,
                    "sampling": sampling,
                }
            )
    return pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA)


def _prompts_fingerprint(prompts: pa.Table) -> str:
    digest = hashlib.sha256()
    for column in ("prompt_id", "messages", "reference", "domain", "verifier"):
        digest.update(json.dumps(prompts.column(column).to_pylist(), ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def _check_same_run(out: Path, previous: dict[str, Any], config: SampleConfig, run_hash: str) -> None:
    if previous.get("stage") != "sample":
        raise DatakitError(f"{out}: holds the output of `{previous.get('stage')}`, not of `sample`")
    if previous.get("run_hash") == run_hash:
        return
    old, new = _flatten(previous.get("config", {})), _flatten(to_dict(config))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    detail = "; ".join(changed) if changed else "the input prompts changed"
    raise DatakitError(
        f"{out}: was started with different settings ({detail}). "
        "Re-run with the original settings to resume, or choose a new output folder."
    )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _manifest(config: SampleConfig, run_hash: str, prompts: int, ingested: Any) -> dict[str, Any]:
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
        "counts": {"input_rows": ingested.rows_read, "prompts": prompts, "rejected_prompts": len(ingested.rejects)},
        "complete": False,
    }


def _write_rejects(path: Path, rejects: list[Reject]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        for r in rejects:
            f.write(json.dumps({"file": r.file, "line": r.line, "field": r.field, "reason": r.reason, "raw": r.raw}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _finish(out: Path, manifest: dict[str, Any], written: int, skipped: int, seconds: float) -> SampleSummary:
    """Count what the shards hold (not what this run did) and mark the folder complete."""
    table = read_table(out, columns=["completion_tokens", "finish_reason"])
    finish = Counter(table.column("finish_reason").to_pylist())
    manifest["counts"].update(
        rows=table.num_rows,
        completion_tokens=int(pc.sum(table.column("completion_tokens")).as_py() or 0),
        finish_reasons=dict(sorted(finish.items())),
    )
    manifest["complete"] = True
    write_json_atomic(out / MANIFEST, manifest)
    return SampleSummary.from_manifest(out, manifest, written=written, skipped=skipped, seconds=seconds)
