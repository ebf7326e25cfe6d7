"""Run a function over items in worker processes, with a hard limit on each item's CPU time.

Verifiers call sympy, which can spin for hours on a pathological answer (a power tower, a huge
factorial). math-verify's own guard is `signal.alarm`, which only works in the main thread of the
main interpreter, so the correctness filter disables it and bounds time here instead: every item
runs in a pebble worker process under a CPU-time limit (RLIMIT_CPU: the kernel stops the worker when
the item has used its seconds), and a worker that overruns is replaced. The limit counts the item's
own CPU, never the wall clock, so whether an item times out does not depend on how busy the machine
is; a wall-clock backstop, many times longer, only stops an item that waits without computing. A
slow or crashing item therefore costs one outcome, never the whole run.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessFuture, ProcessPool

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: its value, or why there is none."""

    status: str  # "ok" | "timeout" | "error"
    value: Any = None
    reason: str = ""


def map_with_timeout(
    fn: Callable[[T], R], items: Sequence[T], timeout_s: float, workers: int | None = None, wall_s: float | None = None
) -> list[Outcome]:
    """Apply `fn` to every item, one outcome per item in input order; exceptions never propagate.

    `timeout_s` is CPU seconds per item (rounded up to whole seconds, the kernel's granularity);
    `wall_s` (default: 10 x timeout_s, at least 60 s) stops an item that blocks without using CPU.
    `fn` must be a picklable top-level function. Even a single item goes to a worker process:
    running it in-process would leave nothing able to stop it. All workers are gone on return.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if not items:
        return []
    wall = wall_s if wall_s is not None else max(10 * timeout_s, 60.0)
    pool = ProcessPool(max_workers=_worker_count(workers, len(items)), initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        futures = [pool.schedule(_within_cpu_limit, args=(fn, timeout_s, item), timeout=wall) for item in items]
        return [_outcome(future, timeout_s, wall) for future in futures]
    finally:
        pool.stop()
        pool.join()


def die_with_parent(parent: int) -> None:
    """In a worker process: have the kernel kill it when the process that started it dies (kill -9
    included), so no worker goes on computing, or sits holding memory, after its stage was killed."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _within_cpu_limit(fn: Callable[[T], R], cpu_s: float, item: T) -> R:
    """In the worker: `fn(item)` with the process's CPU-time limit set `cpu_s` past what it has used so
    far; past it the kernel sends SIGXCPU, whose default action ends the worker (no core file)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used.ru_utime + used.ru_stime + cpu_s)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    try:
        return fn(item)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _worker_count(workers: int | None, n_items: int) -> int:
    """No more workers than items: each one is a forked process that must be started and reaped."""
    wanted = workers if workers is not None else (os.cpu_count() or 1)
    if wanted < 1:
        raise ValueError(f"workers must be at least 1, got {wanted}")
    return min(wanted, n_items)


def _outcome(future: ProcessFuture, timeout_s: float, wall_s: float) -> Outcome:
    """Wait for one item; pebble's wall clock starts when a worker picks the item up."""
    try:
        return Outcome("ok", value=future.result())
    except ProcessExpired as exc:
        if exc.exitcode == -signal.SIGXCPU:
            return Outcome("timeout", reason=f"used more than {timeout_s:g} CPU seconds")
        return Outcome("error", reason=f"ProcessExpired: {exc} (exit code {exc.exitcode})")
    except FutureTimeout:
        return Outcome("timeout", reason=f"no result after {wall_s:g} s of wall time (blocked, not computing)")
    except Exception as exc:  # fn's own exception
        return Outcome("error", reason=f"{type(exc).__name__}: {exc}")
