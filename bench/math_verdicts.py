"""Math verdict throughput: the correctness filter's math checks per second per core, against
math-verify alone and the previous filter (datakit@2a0f1c0, read from git history), on the same answers
in one run.

    python bench/math_verdicts.py                # 3000 answers (600 of each kind)
    python bench/math_verdicts.py --answers 500  # a quick look

Answers are R1-like final answer sections with distinct values (so no check is a cache hit), of five
kinds: boxed integers (the in-process number path), boxed fractions against decimal references,
boxed radicals, "the answer is $...$" phrases, and unboxed answers ("Therefore $x = 7$."), 1 in 4
wrong. Each side runs in its own process with one checker process (workers=1), so its rate is per core:
- datakit: `Correctness.score` of this tree.
- previous: `Correctness.score` of datakit@2a0f1c0, before answers were found outside boxes and
  phrases. It returns `no_answer` for unboxed answers without calling math-verify, so the like-for-like
  ratio is over the four kinds both grade; unboxed answers are timed apart.
- math-verify: `verify(parse(reference), parse(answer))` in a loop, its own timeouts off; what a user
  writes without datakit (it has no process isolation and no hard timeout).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import report_side, run_side

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "2a0f1c0"  # the last commit whose math check read only boxes and answer phrases
KINDS = ("boxed_integer", "boxed_fraction", "boxed_radical", "phrase", "unboxed")


def make_answers(count: int, seed: int = 0) -> list[dict]:
    """`count` answers, as many of each kind, distinct values, 1 in 4 wrong."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        a, b = 7 * i + 3, 2 * i + 5
        wrong = rng.random() < 0.25
        if kind == "boxed_integer":
            answer, reference = f"Adding the parts gives {a} in total, so the answer is $\\boxed{{{a + wrong}}}$.", str(a)
        elif kind == "boxed_fraction":
            answer, reference = f"Simplifying, the probability is $\\boxed{{\\frac{{{a}}}{{{b}}}}}$.", f"{a / b + wrong:.12f}"
        elif kind == "boxed_radical":
            answer, reference = f"The side length is $\\boxed{{{a}\\sqrt{{{b}}}}}$.", f"\\sqrt{{{a * a * b + wrong}}}"
        elif kind == "phrase":
            answer, reference = f"Checking both cases again, the answer is $\\frac{{{a}}}{{{b}}}\\pi$.", f"\\frac{{{a + wrong}}}{{{b}}}\\pi"
        else:
            answer, reference = f"Substituting back confirms every equation.\n\nTherefore $x = \\frac{{{a}}}{{{b}}}$.", f"\\frac{{{a}}}{{{b + wrong}}}"
        rows.append({"kind": kind, "verifier": "math", "answer": answer, "reference": reference, "language": "en"})
    return rows


def run_filter(rows: list[dict]) -> dict:
    """This process's `datakit` (this tree or the previous one, by PYTHONPATH): Correctness.score per kind."""
    import polars as pl

    from datakit.filters.correctness import Correctness

    grader = Correctness(workers=1, timeout_s=30)
    return {kind: _timed(lambda part: grader.score(pl.DataFrame(part))["correct_verdict"].to_list(), [r for r in rows if r["kind"] == kind]) for kind in KINDS}


def run_math_verify(rows: list[dict]) -> dict:
    from math_verify import parse, verify

    def check(part: list[dict]) -> list[bool]:
        return [bool(verify(parse(r["reference"], parsing_timeout=None), parse(r["answer"], parsing_timeout=None), timeout_seconds=None)) for r in part]

    return {kind: _timed(check, [r for r in rows if r["kind"] == kind]) for kind in KINDS}


def _timed(check, part: list[dict]) -> dict:
    """Wall seconds and CPU seconds (this process and its children) of one kind, and how many were correct."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    started = time.perf_counter()
    verdicts = check(part)
    seconds = time.perf_counter() - started
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, usage))
    return {"answers": len(part), "seconds": seconds, "cpu_s": cpu, "correct": sum(v in (True, "correct") for v in verdicts)}


def previous_tree(work: Path) -> Path | None:
    """datakit@PREVIOUS extracted from git history; None where there is none (a shallow clone, an sdist)."""
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", PREVIOUS], capture_output=True, check=False).returncode:
        return None
    work.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS, "datakit"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    return work


def compare(answers: int) -> list[dict]:
    """Every side on the same answers, each in its own process; rows for bench/run.py's table."""
    work = Path(tempfile.mkdtemp(prefix="bench-math-"))
    try:
        data = work / "answers.json"
        data.write_text(json.dumps(make_answers(answers)))
        script = str(Path(__file__).resolve())
        sides = {"datakit": run_side(script, "datakit", ["--data", str(data)]), "math-verify": run_side(script, "math-verify", ["--data", str(data)])}
        old = previous_tree(work / "previous")
        if old is not None:
            sides["previous"] = run_side(script, "previous", ["--data", str(data), "--tree", str(old)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _table_rows(sides)


def _table_rows(sides: dict[str, dict]) -> list[dict]:
    graded_by_both = KINDS[:-1]

    def rate(side: dict, kinds: tuple[str, ...]) -> dict:
        n, seconds = sum(side[k]["answers"] for k in kinds), sum(side[k]["seconds"] for k in kinds)
        return {"rate": n / seconds, "cpu_ms": 1000 * sum(side[k]["cpu_s"] for k in kinds) / n, "peak_rss_mb": side.get("peak_rss_mb")}

    ours, rows = sides["datakit"], []
    for name, kinds, baselines in (("math boxed", graded_by_both, ("math-verify", "previous")), ("math unboxed", ("unboxed",), ("math-verify",))):
        answers = sum(ours[k]["answers"] for k in kinds)
        for baseline in baselines:
            if baseline in sides:
                label = PREVIOUS if baseline == "previous" else baseline
                rows.append({"stage": f"{name} vs {label}", "rows": answers, "unit": "chk/s", "datakit": rate(ours, kinds), "baseline": rate(sides[baseline], kinds)})
    for row in rows:
        row["ratio"] = row["datakit"]["rate"] / row["baseline"]["rate"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--side", choices=["datakit", "previous", "math-verify"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        rows = json.loads(Path(args.data).read_text())
        if args.side == "previous":
            sys.path.insert(0, args.tree)
        else:
            sys.path.insert(0, str(ROOT))
        report_side(run_math_verify(rows) if args.side == "math-verify" else run_filter(rows))
        return
    rows = compare(args.answers)
    print(f"{args.answers:,} answers, one checker process per side (rates are per core)")
    print(f"{'':<28} {'datakit chk/s':>14} {'baseline chk/s':>15} {'ratio':>6} {'datakit CPU ms':>15} {'baseline CPU ms':>16}")
    for row in rows:
        ours, base = row["datakit"], row["baseline"]
        print(f"{row['stage']:<28} {ours['rate']:>14.1f} {base['rate']:>15.1f} {row['ratio']:>6.2f} {ours['cpu_ms']:>15.2f} {base['cpu_ms']:>16.2f}")
    print(f"unboxed answers: {PREVIOUS} called them no_answer without a check, so there is no like-for-like row for it")


if __name__ == "__main__":
    main()
