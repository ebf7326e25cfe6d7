"""Work on threads, a few items at a time: the passes of a mix run their files so."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, as_completed, wait
from typing import Any


def in_parallel(work: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """`work(item)` for each item on `workers` threads (reading, polars, Arrow, numpy and the numba
    kernels let go of the GIL), results as they complete. An item is handed out only when a thread is
    free, so a failure or a kill starts nothing more: the running items end, then it is raised."""
    pool, running = ThreadPoolExecutor(workers), set()
    try:
        for item in items:
            if len(running) == workers:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
            running.add(pool.submit(work, item))
        yield from (future.result() for future in as_completed(running))
    finally:
        pool.shutdown(wait=True)
