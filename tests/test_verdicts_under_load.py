"""The correctness filter gives the same verdicts on a quiet machine and beside CPU hogs: every limit a
verifier has counts the check's own CPU time (math in the pool, code in the sandbox), so a shared,
busy node never turns a right answer into a timeout. Tight limits make the comparison bite: under two
hogs per core each check gets a third of a core or less, so a wall-clock limit of the same size would
time out the slower items."""

from __future__ import annotations

import json
import multiprocessing
import os

import polars as pl
import pytest

from conftest import ROOT
from datakit.filters import make_filter
from test_pool import _hog

HUMANEVAL = [json.loads(line) for line in (ROOT / "data" / "demo" / "humaneval.jsonl").read_text().splitlines()[:2]]
STDIO = json.dumps({"cases": [{"input": f"{a} {b}\n", "output": f"{a + b}\n"} for a, b in [(1, 2), (40, 2), (-5, 5), (10**6, 1)]]})

CASES = [  # (verifier, answer, reference)
    ("math", "So the probability is $\\boxed{\\frac{1}{2}}$.", "0.5"),  # the case a busy machine once timed out
    ("math", "\\boxed{\\frac{\\sqrt{8}}{2}}", "\\sqrt{2}"),
    ("math", "The roots are $x = 1$ and $x = -3$, so \\boxed{\\{-3, 1\\}}.", "\\{1, -3\\}"),
    ("math", "\\boxed{\\int_0^1 x^2\\,dx}", "\\frac{1}{3}"),
    ("math", "\\boxed{3}", "2"),
    ("math", "Therefore the answer is $12\\%$.", "0.12"),
    ("choice", "The answer is (C).", "C"),
    ("exact", "Paris.", "paris"),
    ("code", f"```python\n{HUMANEVAL[0]['canonical_solution']}\n```", HUMANEVAL[0]["tests"]),
    ("code", "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```", HUMANEVAL[0]["tests"]),
    ("code", f"```python\n{HUMANEVAL[1]['canonical_solution']}\n```", HUMANEVAL[1]["tests"]),
    ("code", "```python\na, b = map(int, input().split())\nprint(a + b)\n```", STDIO),
    # ~0.4 CPU s a case on this machine class under a 2 s limit: beside the hogs it takes several seconds of
    # wall time, which a wall-clock limit of the same size would call a timeout
    ("code", "```python\ns = 0\nfor i in range(4 * 10**6):\n    s += i * i\na, b = map(int, input().split())\nprint(a + b + s * 0)\n```", STDIO),
    ("code", "```python\nwhile True:\n    pass\n```", STDIO),  # spins: stopped by its CPU limit, under load too
]


def _verdicts() -> list[tuple[str, str]]:
    verifiers, answers, references = zip(*CASES)
    rows = pl.DataFrame({"verifier": list(verifiers), "answer": list(answers), "reference": [r if isinstance(r, str) else json.dumps(r) for r in references], "language": ["en"] * len(CASES)})
    scores = make_filter("correctness", {"timeout_s": 2, "code_case_cpu_s": 2, "code_cpu_s": 10, "workers": 2}, "t").score(rows)
    return list(zip(scores["correct_verdict"].to_list(), scores["correct_extracted"].fill_null("").to_list()))


@pytest.mark.slow
def test_the_same_verdicts_beside_cpu_hogs() -> None:
    quiet = _verdicts()
    assert [v for v, _ in quiet] == [
        "correct", "correct", "correct", "correct", "wrong", "correct", "correct", "correct",
        "correct", "wrong", "correct", "correct", "correct", "timeout",
    ], quiet
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(2 * (os.cpu_count() or 1))]
    for hog in hogs:
        hog.start()
    try:
        busy = _verdicts()
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()
    assert busy == quiet
