"""Stage folders: Parquet shards written atomically, plus a manifest saying what made them.

A shard file exists only once it is complete (written to a hidden temp name, then renamed), so the
set of shard files is the set of finished work units, and resuming a killed stage needs no other
bookkeeping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from datakit.errors import DatakitError

MANIFEST = "manifest.json"
SHARD_DIR = "shards"


def shard_path(folder: Path, index: int) -> Path:
    return folder / SHARD_DIR / f"part-{index:05d}.parquet"


def write_shard(folder: Path, index: int, table: pa.Table) -> Path:
    """Write one finished work unit; a kill during the write leaves only a temp file, which the
    re-run of that unit overwrites."""
    final = shard_path(folder, index)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    _fsync(tmp)
    os.replace(tmp, final)
    return final


def completed_shards(folder: Path) -> set[int]:
    """Indices of the shards already written."""
    shard_dir = folder / SHARD_DIR
    if not shard_dir.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in shard_dir.glob("part-*.parquet")}


def shard_files(folder: Path) -> list[Path]:
    files = sorted((Path(folder) / SHARD_DIR).glob("part-*.parquet"))
    if not files:
        raise DatakitError(f"{folder}: no Parquet shards under {SHARD_DIR}/ (is this a datakit stage folder?)")
    return files


def read_table(folder: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read a whole stage folder (all shards, in order) into one Arrow table."""
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in shard_files(Path(folder)))


def iter_batches(folder: str | Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream a stage folder shard by shard, so memory stays flat however large it grows."""
    for f in shard_files(Path(folder)):
        yield from pq.ParquetFile(f).iter_batches(columns=columns)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    return read_json(folder / MANIFEST, "delete the folder or fix the file")


def claim_folder(out: Path, stage: str, run_hash: str) -> dict[str, Any] | None:
    """The manifest of an earlier run of this stage into `out` (None for a new folder); refuse a folder
    holding anything else, or a run with other inputs or settings."""
    previous = read_manifest(out)
    if previous is None:
        if out.exists() and any(out.iterdir()):
            raise DatakitError(f"{out}: exists, is not empty and holds no {MANIFEST}; choose an empty or new folder")
        return None
    if previous.get("stage") != stage:
        raise DatakitError(f"{out}: holds the output of `{previous.get('stage')}`, not of `{stage}`")
    if previous.get("run_hash") != run_hash:
        raise DatakitError(f"{out}: was made with other inputs or settings. Re-run with the original ones to resume, or choose a new output folder.")
    return previous


def read_json(path: Path, remedy: str) -> dict[str, Any] | None:
    """A stage's JSON file, None where there is none; a damaged one is an error saying what to do."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatakitError(f"{path}: not valid JSON ({e}); {remedy}") from e


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one; workers sharing a folder may race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
