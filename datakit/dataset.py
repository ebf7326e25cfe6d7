"""Stage folders: Parquet shards written atomically, plus a manifest saying what made them.

A shard file exists only once it is complete (written to a hidden temp name, then renamed), so the
set of shard files is the set of finished work units, and resuming a killed stage needs no other
bookkeeping.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from itertools import zip_longest
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import pyarrow as pa
import pyarrow.parquet as pq

from datakit.errors import DatakitError

MANIFEST = "manifest.json"
SHARD_DIR = "shards"
LOCK = ".lock"  # held by the run writing the folder (see folder_lock); .lock-worker-N for cooperative workers
LOCK_HELD = "DATAKIT_FOLDER_LOCK_HELD"  # the folder a parent run holds the lock of, for the processes it starts
LOG_DIR = "logs"  # the engines' output while a stage runs (datakit/logs.py)


def shard_path(folder: Path, index: int) -> Path:
    return folder / SHARD_DIR / f"part-{index:05d}.parquet"


def write_shard(folder: Path, index: int, table: pa.Table, settle: Settler | None = None) -> Path:
    """Write one finished work unit; a kill during the write leaves only a temp file, which the
    re-run of that unit overwrites."""
    final = shard_path(folder, index)
    return write_atomic(final, lambda tmp: pq.write_table(table, tmp, compression="zstd"), settle=settle)


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


def claim_folder(out: Path, stage: str, run_hash: str, settings: dict[str, Any], otherwise: str) -> dict[str, Any] | None:
    """The manifest of an earlier run of this stage into `out` (None for a new folder); refuse a folder
    holding anything else, or a run with other inputs or settings, naming each changed setting.

    `settings` holds what the run hash covers, keyed as the manifest stores it ({"config": hashed view});
    `otherwise` says what changed when no setting did (the input's content)."""
    previous = read_manifest(out)
    if previous is None:
        if not holds_only_run_files(out):
            raise DatakitError(f"{out}: exists, is not empty and holds no {MANIFEST}; choose an empty or new folder")
        return None
    if previous.get("stage") != stage:
        raise DatakitError(f"{out}: holds the output of `{previous.get('stage')}`, not of `{stage}`")
    if previous.get("run_hash") != run_hash:
        changed = changed_settings(previous, settings)
        raise DatakitError(
            f"{out}: was started with different settings ({'; '.join(changed) if changed else otherwise}). "
            "Re-run with the original settings to resume, or choose a new output folder."
        )
    return previous


def holds_only_run_files(out: Path) -> bool:
    """Whether `out` is absent or holds nothing but what any datakit run leaves first: its lock and its logs."""
    return not out.exists() or all(p.name.startswith(LOCK) or p.name == LOG_DIR for p in out.iterdir())


def changed_settings(previous: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """"key: old -> new" for each setting that differs from the manifest's; settings the run hash
    ignores (paths, worker counts, progress bars) are not in `settings`, so they never show."""
    old = flatten({key: previous.get(key) for key in settings})
    new = flatten(json.loads(json.dumps(settings, default=_plain)))  # as the manifest stores them: JSON
    return [_change(key.removeprefix("config."), old.get(key), value) for key, value in new.items() if old.get(key) != value]


def _plain(value: Any) -> Any:
    """A config value as JSON stores it (dataclasses inside lists, e.g. mix sources, as mappings)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def _change(key: str, old: Any, new: Any) -> str:
    """One changed setting; a changed text (a chain's YAML) by its first differing line."""
    if isinstance(old, str) and isinstance(new, str) and "\n" in old + new:
        pairs = enumerate(zip_longest(old.splitlines(), new.splitlines(), fillvalue=""), start=1)
        line, (a, b) = next(((i, pair) for i, pair in pairs if pair[0] != pair[1]), (0, (old[-60:], new[-60:])))
        return f"{key} line {line}: {a!r} -> {b!r}"
    clip = lambda value: repr(value) if len(repr(value)) <= 120 else repr(value)[:117] + "..."  # noqa: E731
    return f"{key}: {clip(old)} -> {clip(new)}"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@contextmanager
def folder_lock(out: Path, worker: tuple[int, int] | None = None) -> Iterator[None]:
    """Hold `out`/.lock for the run, so a second run into the same folder is refused instead of racing
    the first (both redoing work, renaming over each other's files).

    Cooperative workers of one run (`worker` = (index, count): a SLURM array of `sample` jobs) share the
    folder: each holds .lock shared and its own .lock-worker-INDEX exclusively. A process started by a run
    that holds the lock (a data-parallel replica) finds the folder in LOCK_HELD and takes nothing. The
    kernel drops a lock when its holder dies, kill -9 included, so a stale lock never blocks a re-run."""
    out = Path(out)
    if os.environ.get(LOCK_HELD) == str(out.resolve()):
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        if worker is None:
            held.enter_context(_flock(out, out / LOCK, fcntl.LOCK_EX))
        else:
            held.enter_context(_flock(out, out / LOCK, fcntl.LOCK_SH))
            held.enter_context(_flock(out, out / f"{LOCK}-worker-{worker[0]}", fcntl.LOCK_EX, f"worker {worker[0]} of {worker[1]}"))
        yield


@contextmanager
def _flock(out: Path, path: Path, mode: int, what: str = "") -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatakitError(
                f"{out}: another datakit run{' of ' + what if what else ''} is writing into this folder ({_holders(out, path)}); "
                "wait for it to finish, or choose another output folder"
            ) from None
        if mode == fcntl.LOCK_EX:  # the holder's pid, for the message of a refused run
            with suppress(OSError):  # only a hint: on a full disk the run goes on to name the file it cannot write
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _holders(out: Path, path: Path) -> str:
    """Who holds a lock: the exclusive holder's pid, or the pids of the workers holding .lock shared."""
    workers = [p for p in sorted(out.glob(f"{LOCK}-worker-*")) if _is_locked(p)] if path.name == LOCK else []
    pids = [p.read_text().strip() or "?" for p in workers] or [path.read_text().strip() or "?"]
    return f"pid {', '.join(pids)}"


def _is_locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def read_json(path: Path, remedy: str) -> dict[str, Any] | None:
    """A stage's JSON file, None where there is none; a damaged one is an error saying what to do."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatakitError(f"{path}: not valid JSON ({e}); {remedy}") from e


LOADER_CARD = "README.md"


def write_loader_card(folder: Path, stage: str, configs: dict[str, str]) -> None:
    """README.md with a `configs:` header, so `datasets.load_dataset(folder)` (and `trl sft --dataset_name
    folder`) read the shards and nothing else: without it they also try manifest.json and report.json
    and fail on their schemas. `configs` maps a config name to its Parquet glob; the first is the default."""
    from huggingface_hub import DatasetCardData

    entries = card_configs(configs)
    for entry, pattern in zip(entries, configs.values()):
        entry["description"] = f"rows fingerprint {files_fingerprint(folder, pattern)}"
    text = [
        "---", DatasetCardData(configs=entries).to_yaml(), "---", "", f"# A `datakit {stage}` folder", "",
        "The rows are the Parquet files named above; `manifest.json` says what made them and `data/README.md` of",
        "the datakit project describes every column. This file only tells `datasets.load_dataset` where the rows are.", "",
    ]
    write_text_atomic(folder / LOADER_CARD, "\n".join(text))


def files_fingerprint(folder: Path, pattern: str) -> str:
    """A digest of the files a config names (path, size, modification time). `datasets` caches a local
    folder's configs under the folder's name and the config's patterns alone, so without it a re-run
    into the same folder, or another folder of the same name, loads the rows cached the first time;
    the digest sits in the config's `description`, which the cache key covers."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob(pattern)):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def card_configs(configs: dict[str, str]) -> list[dict[str, Any]]:
    """The `configs:` entries of a dataset card: each config's files (a glob) as its train split, the first the default."""
    return [
        {"config_name": name, **({"default": True} if i == 0 else {}), "data_files": [{"split": "train", "path": path}]}
        for i, (name, path) in enumerate(configs.items())
    ]


def write_json_atomic(path: Path, data: Any, sync: bool = True) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", sync=sync)


def write_text_atomic(path: Path, text: str, settle: Settler | None = None, sync: bool = True) -> None:
    """Readers see the old file or the new one, never half of one; workers sharing a folder may race,
    hence a temp name of this process's own."""
    write_atomic(path, lambda tmp: tmp.write_text(text), path.with_name(f".{path.name}.{os.getpid()}.tmp"), settle, sync)


def write_atomic(path: Path, write: Callable[[Path], object], tmp: Path | None = None, settle: Settler | None = None, sync: bool = True) -> Path:
    """`write` the file at `tmp` (default: .NAME.tmp beside it), then fsync and rename it to `path`
    (here, or by `settle` off this thread): readers see the old file or the new one, and a file in
    place survives a crash of the machine; a killed write leaves a temp file that the re-run overwrites.
    `sync=False` (scratch files of this boot, see `scratch_needs_sync`) skips the fsync, and with it the disk.

    On any failure (a full disk, no permission, Ctrl-C) the temp file is removed, so the folder holds
    only finished files and a re-run starts clean; an OSError is raised again naming `path` (write
    errors name no file of their own) so the user learns which file could not be written."""
    tmp = tmp or path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        if settle is None:
            _put_in_place(tmp, path, sync)
        else:
            settle(tmp, path, sync)
    except BaseException as e:
        _failed_write(tmp, path, e)
    return path


def _put_in_place(tmp: Path, path: Path, sync: bool) -> None:
    if sync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux's id of the running boot, new at each
SCRATCH_BOOT = ".boot"  # in a scratch folder: the boot its files were written in


def scratch_needs_sync(folder: Path) -> bool:
    """Whether the scratch files of a run in `folder` (files a stage deletes when it completes) need
    fsync: not where the machine names its boot. A killed process leaves its written files whole in
    the page cache; only a crash of the machine can leave a renamed file torn, and the next boot has
    another id. So a scratch folder records the boot it is filled in (`claim_scratch`), and one filled
    in another boot, or by a run that did not record it, is emptied here, before it is trusted."""
    boot = _boot()
    if boot is None:  # every scratch file is synced, so what a crashed run left can be kept
        return True
    record = folder / SCRATCH_BOOT
    if folder.exists() and not (record.exists() and record.read_text() == boot):
        shutil.rmtree(folder)
    return False


def claim_scratch(folder: Path) -> None:
    """Make the scratch folder and record the boot its files are written in (see `scratch_needs_sync`)."""
    folder.mkdir(parents=True, exist_ok=True)
    boot = _boot()
    if boot is not None and not (folder / SCRATCH_BOOT).exists():
        write_text_atomic(folder / SCRATCH_BOOT, boot, sync=False)


def _boot() -> str | None:
    """This boot's id, where the machine has one (Linux)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def _failed_write(tmp: Path, path: Path, error: BaseException) -> NoReturn:
    """Remove the temp file, and raise `error` again (an OSError naming `path`)."""
    with suppress(OSError):
        tmp.unlink(missing_ok=True)
    if isinstance(error, OSError) and error.filename in (None, str(tmp)):
        raise OSError(error.errno, os.strerror(error.errno) if error.errno else str(error), str(path)) from error
    raise error


class Settler:
    """Puts written files in place off the writers' threads: one background thread fsyncs each temp file
    and renames it, in the order handed over, so a pass's threads go on computing while the disk
    catches up (an fsync waits about 2 ms a MB on a VM disk: seconds over a mix). A file is in place
    once settled, so what marks a unit done is handed over after the unit's other files. After a
    failure nothing more is put in place; `close` (the end of the `with`) waits for the rest and
    raises the first failure, as does any later hand-over."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="settle")
        self._failure: BaseException | None = None

    def __call__(self, tmp: Path, path: Path, sync: bool = True) -> None:
        if self._failure is not None:
            raise self._failure
        self._pool.submit(self._settle, tmp, path, sync)

    def _settle(self, tmp: Path, path: Path, sync: bool) -> None:
        if self._failure is not None:
            tmp.unlink(missing_ok=True)
            return
        try:
            _put_in_place(tmp, path, sync)
        except BaseException as e:
            try:
                _failed_write(tmp, path, e)
            except BaseException as named:
                self._failure = named
                raise

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> Settler:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
        else:  # what is already written is put in place; the error that ended the pass is the one raised
            self._pool.shutdown(wait=True)
