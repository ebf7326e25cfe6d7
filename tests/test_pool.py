"""map_with_timeout: results in order, hung items killed, exceptions contained, no stray workers."""

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
    start = time.monotonic()
    outcomes = map_with_timeout(_sleep_if_negative, [1, -1, 2, 3], timeout_s=1.0, workers=2)
    assert time.monotonic() - start < 10
    assert outcomes[1] == Outcome("timeout", reason="timed out after 1.0s")
    assert [outcomes[i].value for i in (0, 2, 3)] == [1, 2, 3]


def test_single_item_is_still_bounded(no_stray_workers) -> None:
    assert map_with_timeout(_sleep_if_negative, [-1], timeout_s=0.5)[0].status == "timeout"


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
        target=lambda: results.append(map_with_timeout(_sleep_if_negative, [4, -1], timeout_s=0.5))
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
