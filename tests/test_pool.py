"""map_with_timeout: results in order, items over their CPU time or blocked killed, exceptions contained,
no stray workers, and a time-out that does not depend on how busy the machine is."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from datakit.pool import Outcome, map_with_timeout


def _double(x: int) -> int:
    return 2 * x


def _slow_square(x: int) -> int:
    """Finishes out of order: earlier items sleep longer."""
    time.sleep(0.05 * (5 - x % 5))
    return x * x


def _sleep_if_negative(x: int) -> int:
    if x < 0:
        time.sleep(60)
    return x


def _spin_if_negative(x: int) -> int:
    """A hung check as sympy hangs: computing, forever."""
    while x < 0:
        pass
    return x


def _cpu_seconds(x: float) -> float:
    """Compute for `x` CPU seconds, however long that takes on the wall clock (the clock is read every
    10^5 steps, so reading it costs no system time to speak of)."""
    start = time.process_time()
    while time.process_time() - start < x:
        for _ in range(100_000):
            pass
    return x


def _hog() -> None:
    while True:
        pass


def _divide_ten(x: int) -> float:
    return 10 / x


def _die(x: int) -> int:
    os._exit(3)


def _children() -> set[int]:
    """Live or unreaped (zombie) processes whose parent is this one, read from /proc."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == me:
            found.add(int(stat.parent.name))
    return found


@pytest.fixture
def no_stray_workers():
    """Fail a test that leaves a worker process behind, alive or as a zombie."""
    before = _children()
    yield
    assert multiprocessing.active_children() == []
    assert _children() - before == set()


def test_results_come_back_in_input_order(no_stray_workers) -> None:
    outcomes = map_with_timeout(_slow_square, list(range(10)), timeout_s=5, workers=2)
    assert [o.value for o in outcomes] == [x * x for x in range(10)]
    assert {o.status for o in outcomes} == {"ok"}


def test_hung_item_times_out_while_the_others_succeed(no_stray_workers) -> None:
    outcomes = map_with_timeout(_spin_if_negative, [1, -1, 2, 3], timeout_s=1.0, workers=2)
    assert outcomes[1] == Outcome("timeout", reason="used more than 1 CPU seconds")
    assert [outcomes[i].value for i in (0, 2, 3)] == [1, 2, 3]


def test_an_item_blocked_without_computing_meets_the_wall_clock_backstop(no_stray_workers) -> None:
    outcomes = map_with_timeout(_sleep_if_negative, [1, -1], timeout_s=1.0, wall_s=1.0)
    assert outcomes[0].value == 1
    assert outcomes[1] == Outcome("timeout", reason="no result after 1 s of wall time (blocked, not computing)")


def test_the_limit_is_cpu_time_so_a_busy_machine_changes_no_outcome(no_stray_workers) -> None:
    """Two CPU hogs per core beside the pool: an item needing 1.5 CPU s under a 3 s limit takes longer
    on the wall clock than its limit, and still finishes; one needing more than its limit still stops."""
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(2 * (os.cpu_count() or 1))]
    for hog in hogs:
        hog.start()
    try:
        outcomes = map_with_timeout(_cpu_seconds, [1.5, 5.0], timeout_s=3.0, workers=2)
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()
    assert outcomes[0] == Outcome("ok", value=1.5)
    assert outcomes[1].status == "timeout"


def test_single_item_is_still_bounded(no_stray_workers) -> None:
    assert map_with_timeout(_spin_if_negative, [-1], timeout_s=0.5)[0].status == "timeout"


def test_exceptions_become_error_outcomes(no_stray_workers) -> None:
    outcomes = map_with_timeout(_divide_ten, [2, 0, 5], timeout_s=5, workers=2)
    assert outcomes[0] == Outcome("ok", value=5.0)
    assert outcomes[1] == Outcome("error", reason="ZeroDivisionError: division by zero")
    assert outcomes[2].value == 2.0


def test_a_dying_worker_is_an_error_outcome(no_stray_workers) -> None:
    [outcome] = map_with_timeout(_die, [1], timeout_s=5)
    assert outcome.status == "error"
    assert outcome.reason.startswith("ProcessExpired")


def test_works_from_a_non_main_thread(no_stray_workers) -> None:
    results: list[list[Outcome]] = []
    thread = threading.Thread(
        target=lambda: results.append(map_with_timeout(_spin_if_negative, [4, -1], timeout_s=0.5))
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [o.status for o in results[0]] == ["ok", "timeout"]


def test_empty_input_and_more_workers_than_items(no_stray_workers) -> None:
    assert map_with_timeout(_double, [], timeout_s=1) == []
    assert [o.value for o in map_with_timeout(_double, [1, 2], timeout_s=5, workers=8)] == [2, 4]


def test_rejects_nonpositive_limits() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        map_with_timeout(_double, [1], timeout_s=0)
    with pytest.raises(ValueError, match="workers"):
        map_with_timeout(_double, [1], timeout_s=1, workers=0)
