"""Quiet by default: while a stage runs, everything the engines print goes to its log file, and the
terminal keeps datakit's own lines, progress and tables.

vLLM, transformers, torch and the C libraries under them (tcmalloc, NUMA, oneDNN) write to file
descriptors 1 and 2 directly, from Python loggers bound to sys.stdout/sys.stderr at import, from
C code, and from engine subprocesses that inherit the descriptors. Redirecting Python's logging
catches only part of that, so `stage_log` points descriptors 1 and 2 at OUTPUT/logs/STAGE.log and
gives datakit's consoles a copy of the original terminal descriptors. `--verbose` (or
DATAKIT_VERBOSE=1) leaves everything on the terminal.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO, Iterator

from rich.console import Console

VERBOSE_ENV = "DATAKIT_VERBOSE"
TAIL_LINES = 15  # the log's last lines shown with an engine failure
TAIL_WIDTH = 300  # characters kept of each (vLLM logs its whole config on one line)

console = Console()  # datakit's results: tables and summaries (stdout)
err_console = Console(stderr=True)  # datakit's notes, warnings, errors and progress (stderr)


def verbose() -> bool:
    """Whether engine output stays on the terminal (`--verbose` sets DATAKIT_VERBOSE=1 for the worker processes too)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def capturing() -> bool:
    """Whether a stage's engine output is being sent to its log file right now."""
    return _active is not None


_active: Path | None = None


@contextmanager
def stage_log(stage: str, output: str | Path) -> Iterator[Path | None]:
    """Run a stage with descriptors 1 and 2 on OUTPUT/logs/STAGE.log (appended: a resumed run adds to it);
    yields the log's path, or None where nothing is redirected: --verbose, a stage inside another's log,
    or an output folder that is not datakit's (the stage refuses it; datakit writes nothing there).

    An exception leaving the stage carries the log's path as `log_file`, for the CLI's error line. A log
    the engines left empty goes again, and so does one of a run refused for its input before it wrote
    anything (the error line says why), with the folders made for it: a fixed re-run starts clean."""
    global _active
    from datakit.dataset import LOG_DIR  # pyarrow: not for `datakit --help`

    out = Path(output) if output else None
    if out is None or verbose() or _active is not None or not _may_write(out):
        yield None
        return
    path = out / LOG_DIR / f"{stage}.log"
    made = [p for p in (path, *path.parents) if not p.exists()]  # what to remove if the log goes again, innermost first
    log = _open_log(path, f"==== datakit {stage}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, pid {os.getpid()}: {' '.join(sys.argv)}\n")
    if log is None:
        _remove(made)
        yield None
        return
    _flush()
    keep = True
    try:
        with ExitStack() as stack:
            stack.enter_context(log)
            start = log.tell()
            for fd, stream, own in ((1, sys.stdout, console), (2, sys.stderr, err_console)):
                stack.enter_context(_descriptor_to(fd, log.fileno(), stream, own))
            _active = path
            stack.callback(_deactivate)
            try:
                yield path
            except BaseException as e:
                _flush()
                keep = path.stat().st_size > start and not _refused_before_work(e, out)
                if keep:  # the engines said something: it may hold the cause
                    e.log_file = path  # type: ignore[attr-defined]
                    e.log_start = start  # type: ignore[attr-defined]
                raise
            keep = path.stat().st_size > start
    finally:
        if not keep:
            _remove(made)


def _refused_before_work(e: BaseException, out: Path) -> bool:
    """An input or settings error (exit 2) raised before the stage wrote anything but its lock."""
    from datakit.dataset import holds_only_run_files
    from datakit.errors import EXIT_BAD_INPUT, DatakitError, exit_code

    return isinstance(e, DatakitError) and exit_code(e) == EXIT_BAD_INPUT and holds_only_run_files(out)


def _remove(made: list[Path]) -> None:
    """Remove the log file and the folders made for it, innermost first, each only if empty."""
    for made_path in made:
        with suppress(OSError):  # not empty (the stage wrote into it), or already gone
            if made_path.is_dir():
                made_path.rmdir()
            else:
                made_path.unlink()


def _open_log(path: Path, header: str) -> IO[bytes] | None:
    """The log, opened for appending with `header` written; None on a full disk or a read-only folder,
    which the stage then meets and reports itself, naming its own file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "ab", buffering=0)  # unbuffered: a failed write leaves nothing to fail again on close
    except OSError:
        return None
    try:
        log.write(header.encode())
    except OSError:
        log.close()
        return None
    return log


def _deactivate() -> None:
    global _active
    _flush()
    _active = None


@contextmanager
def _descriptor_to(fd: int, target: int, stream: IO[str], own: Console) -> Iterator[None]:
    """Point descriptor `fd` at `target` and `own` (datakit's console for it) at a copy of the original,
    restoring both on exit. A console whose stream is not on `fd` (a test runner's buffer) is left as is."""
    saved = os.dup(fd)
    terminal = None
    if _descriptor_of(stream) == fd:
        terminal = open(os.dup(saved), "w", encoding=stream.encoding, errors="replace", buffering=1)
        own.file = terminal
    os.dup2(target, fd)
    try:
        yield
    finally:
        _flush()
        os.dup2(saved, fd)
        os.close(saved)
        if terminal is not None:
            own.file = None  # back to following sys.stdout / sys.stderr
            terminal.close()


def _descriptor_of(stream: IO[str]) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _flush() -> None:
    """Flush Python's and C's buffered output, so it lands where it was written, before a descriptor moves."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _may_write(out: Path) -> bool:
    """A new or empty folder, or one a datakit stage made (a manifest, or its first run's logs): never put a
    log into someone else's folder."""
    from datakit.dataset import LOG_DIR, MANIFEST, holds_only_run_files

    return not out.exists() or (out.is_dir() and ((out / MANIFEST).is_file() or (out / LOG_DIR).is_dir() or holds_only_run_files(out)))


def log_tail(path: Path, start: int = 0, lines: int = TAIL_LINES) -> list[str]:
    """The last lines written to a log since byte `start`, a progress bar's redraws (\\r) reduced to their last."""
    with open(path, "rb") as f:
        f.seek(max(start, os.path.getsize(path) - 64 * 1024))
        text = f.read().decode(errors="replace")
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    shown = [line if len(line) <= TAIL_WIDTH else line[:TAIL_WIDTH] + " …" for line in shown if line]
    return shown[-lines:]
