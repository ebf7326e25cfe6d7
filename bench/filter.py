"""Filter throughput: the R1 reasoning chain (its judge never called: rules decide every row) against a
plain `datasets.map` + math-verify loop, on the same synthetic samples of R1-like length, in one run.

    python bench/filter.py                 # 10^4 samples
    python bench/filter.py --rows 100000   # the issue's 10^5 (several minutes on 2 cores)

Each side runs in its own subprocess so peak RSS is its own. The ratio is per core: rows per
CPU-second of each side (its process and its children: pool workers, checker processes, Polars
threads), datakit's over the baseline's: what a core does for each, however many a side ran on (the
R1 chain holds the judge, so the stage runs it in one process), and far steadier than wall time on a
shared machine. The wall-clock rows/s and the processes that ran the chain are printed too, and the
load average. Target >= 3x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

from harness import report_side, run_sides

ROOT = Path(__file__).resolve().parents[1]
WORDS = (
    "let me compute the sum first then check each step carefully so the total becomes clear "
    "wait this needs another look because the second term was doubled earlier therefore we "
    "subtract it again and verify that nothing else changed in the expression"
).split()


def synthetic_samples(rows: int, words: int, seed: int = 0) -> "object":
    """R1-like samples: long English chains of thought (paragraphs drawn from a pool of random
    ones), a boxed answer, 1 in 4 wrong, 1 in 20 truncated. Prompt ids carry the seed, so shards
    made with different seeds never repeat a (prompt_id, sample_index) key."""
    import pyarrow as pa

    from datakit.schema import SAMPLE_SCHEMA

    rng = random.Random(seed)
    pool = [
        "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "." for _ in range(6))
        for _ in range(500)
    ]
    per_paragraph = sum(len(p.split()) for p in pool) / len(pool)
    records = []
    for i in range(rows):
        prompt, index = divmod(i, 4)
        reasoning = "\n\n".join(rng.choices(pool, k=max(1, round(words / per_paragraph))))
        truth = 7 * prompt + 3
        value = truth if rng.random() > 0.25 else truth + 1
        answer = f"The total is {value}, so the answer is \\boxed{{{value}}}."
        truncated = rng.random() < 0.05
        records.append({
            "prompt_id": f"s{seed}p{prompt}", "messages": [{"role": "user", "content": f"Compute 7*{prompt}+3."}],
            "domain": "math", "kind": "reasoning", "language": "en", "reference": str(truth), "verifier": "math",
            "source": "bench", "metadata": "{}", "sample_index": index,
            "completion": f"<think>\n{reasoning}\n</think>\n\n{answer}", "reasoning": reasoning, "answer": answer,
            "finish_reason": "length" if truncated else "stop", "prompt_tokens": 20, "completion_tokens": int(words * 1.3),
            "generator": "bench", "sampling": {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 32768, "seed": 0},
        })
    return pa.Table.from_pylist(records, schema=SAMPLE_SCHEMA)


def make_data(folder: Path, rows: int, words: int) -> None:
    from datakit.dataset import write_shard

    for shard, start in enumerate(range(0, rows, 1024)):
        write_shard(folder, shard, synthetic_samples(min(1024, rows - start), words, seed=shard))
    (folder / "manifest.json").write_text(json.dumps({"stage": "sample", "model": "smollm2-135m-instruct"}))


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children so far."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def run_datakit(folder: Path, out: Path) -> dict:
    from datakit.filter import FilterConfig, run_filter

    started, cpu = time.perf_counter(), cpu_seconds()
    summary = run_filter(FilterConfig(input=str(folder), output=str(out), chain=str(ROOT / "filters" / "r1-reasoning.yaml"), progress=False, plots=False))
    seconds = time.perf_counter() - started
    return {"rows": summary.report["rows_in"], "kept": summary.report["rows_out"], "seconds": seconds, "cpu_seconds": cpu_seconds() - cpu,
            "cores": os.cpu_count(), "processes": summary.processes}


def run_baseline(folder: Path) -> dict:
    """What a user without datakit writes: datasets.map over rows, math-verify on each completion."""
    import datasets
    from math_verify import parse, verify

    data = datasets.load_dataset("parquet", data_files=str(folder / "shards" / "*.parquet"), split="train")

    def check(row: dict) -> dict:
        return {"correct": bool(verify(parse(row["reference"]), parse(row["completion"])))}

    started, cpu = time.perf_counter(), cpu_seconds()
    result = data.map(check)
    seconds = time.perf_counter() - started
    return {"rows": len(result), "kept": sum(result["correct"]), "seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "cores": 1, "processes": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=1500, help="words per chain of thought (R1's run to thousands)")
    parser.add_argument("--side", choices=["make", "datakit", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "make":
        make_data(Path(args.data), args.rows, args.words)
        return
    if args.side:
        folder = Path(args.data)
        report_side(run_datakit(folder, folder.parent / "filtered") if args.side == "datakit" else run_baseline(folder))
        return

    result = compare(args.rows, args.words)
    base, ours = result["baseline"], result["datakit"]
    print(f"{args.rows:,} samples x {args.words:,} words of reasoning; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'':<10} {'rows/s':>9} {'processes':>10} {'CPU s':>8} {'rows/CPU-s':>11} {'peak RSS MB':>12}")
    for name, side in (("baseline", base), ("datakit", ours)):
        print(f"{name:<10} {side['rate']:>9.1f} {side['processes']:>10} {side['cpu_seconds']:>8.1f} {side['rows'] / side['cpu_seconds']:>11.1f} {side['peak_rss_mb']:>12.0f}")
    print(f"ratio per core (rows per CPU-second): {result['ratio']:.2f}x (target >= 3x); wall-clock rows/s: {result['wall_ratio']:.2f}x; "
          "datakit also checks format, repetition, paragraphs, code blocks, language and length")


def compare(rows: int, words: int = 1500) -> dict:
    """Both sides on the same fresh data, each in its own process (the data too, so each peak RSS is
    that side's alone). `ratio` is per core: datakit's rows per CPU-second over the baseline's;
    `wall_ratio` compares rows/s on the wall clock."""
    base, ours = run_sides(__file__, ["--rows", str(rows), "--words", str(words)])
    return {"stage": "filter", "rows": rows, "unit": "rows/s", "baseline": base, "datakit": ours,
            "ratio": (ours["rows"] / ours["cpu_seconds"]) / (base["rows"] / base["cpu_seconds"]), "ratio_means": "rows per CPU-second",
            "wall_ratio": ours["rate"] / base["rate"]}


if __name__ == "__main__":
    main()
