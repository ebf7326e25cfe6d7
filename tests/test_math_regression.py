"""The math check against hand-labelled real-world answer/reference pairs (tests/data/math/, see its README):
no wrong answer accepted, and agreement with the true verdict of at least 97% on every table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from datakit.math_check import check_math

TABLES = sorted((Path(__file__).parent / "data" / "math").glob("*.jsonl"))


def _grade(table: Path) -> tuple[list[dict], list[bool]]:
    rows = [json.loads(line) for line in table.read_text().splitlines() if line.strip()]
    return rows, [check_math(r["answer"], r["reference"], r["language"]).verdict == "correct" for r in rows]


@pytest.mark.parametrize("table", TABLES, ids=[t.stem for t in TABLES])
def test_no_wrong_answer_is_accepted_and_right_ones_are(table: Path) -> None:
    rows, accepted = _grade(table)
    assert len(rows) >= 250 and 0.35 < sum(r["correct"] for r in rows) / len(rows) < 0.65  # both directions
    kept_wrong = [r["id"] for r, ok in zip(rows, accepted) if ok and not r["correct"]]
    dropped_right = [r["id"] for r, ok in zip(rows, accepted) if r["correct"] and not ok]
    by_cause = Counter(r["cause"] for r, ok in zip(rows, accepted) if ok != r["correct"])
    agreement = 1 - (len(kept_wrong) + len(dropped_right)) / len(rows)
    print(f"{table.name}: {len(rows)} pairs, agreement {agreement:.3f}, wrong kept {len(kept_wrong)}, right dropped {len(dropped_right)} {dict(by_cause)}")
    assert kept_wrong == []
    assert agreement >= 0.97, dropped_right
