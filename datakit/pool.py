"""Run a function over items in worker processes, with a hard time limit on each item.

Verifiers call sympy, which can spin for hours on a pathological answer (a power tower, a huge
factorial). math-verify's own guard is `signal.alarm`, which only works in the main thread of the
main interpreter, so the correctness filter disables it and bounds time here instead: every item
runs in a pebble worker process, and a worker that overruns is killed and replaced. A slow or
crashing item therefore costs one outcome, never the whole run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from pebble import ProcessFuture, ProcessPool

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: its value, or why there is none."""

    status: str  # "ok" | "timeout" | "error"
    value: Any = None
    reason: str = ""


def map_with_timeout(
    fn: Callable[[T], R], items: Sequence[T], timeout_s: float, workers: int | None = None
) -> list[Outcome]:
    """Apply `fn` to every item, one outcome per item in input order; exceptions never propagate.

    `fn` must be a picklable top-level function. Even a single item goes to a worker process:
    running it in-process would leave nothing able to stop it. All workers are gone on return.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if not items:
        return []
    pool = ProcessPool(max_workers=_worker_count(workers, len(items)))
    try:
        futures = [pool.schedule(fn, args=(item,), timeout=timeout_s) for item in items]
        return [_outcome(future, timeout_s) for future in futures]
    finally:
        pool.stop()
        pool.join()


def _worker_count(workers: int | None, n_items: int) -> int:
    """No more workers than items: each one is a forked process that must be started and reaped."""
    wanted = workers if workers is not None else (os.cpu_count() or 1)
    if wanted < 1:
        raise ValueError(f"workers must be at least 1, got {wanted}")
    return min(wanted, n_items)


def _outcome(future: ProcessFuture, timeout_s: float) -> Outcome:
    """Wait for one item; pebble's timeout clock starts when a worker picks the item up."""
    try:
        return Outcome("ok", value=future.result())
    except FutureTimeout:
        return Outcome("timeout", reason=f"timed out after {timeout_s}s")
    except Exception as exc:  # fn's own exception, or pebble's ProcessExpired when a worker dies
        return Outcome("error", reason=f"{type(exc).__name__}: {exc}")
