"""What the benchmarks share: each side (data maker, baseline, datakit) runs in its own subprocess,
so the peak RSS it prints is its own (Linux keeps ru_maxrss across fork+exec: a side started from a
large parent would inherit the parent's peak)."""

from __future__ import annotations

import compileall
import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run_side(script: str, side: str, args: list[str], may_fail: bool = False) -> dict[str, Any]:
    """Run `script --side SIDE ARGS` and return the JSON object it printed last; a side that fails
    stops the benchmark, unless it `may_fail`: then it is {"failed": the last line it printed}."""
    proc = subprocess.run([sys.executable, script, "--side", side, *args], capture_output=True, text=True)
    if proc.returncode and may_fail:
        return {"failed": (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:300]}
    if proc.returncode:
        sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def report_side(result: dict[str, Any]) -> None:
    """Print a side's result with its peak RSS (this process and its children), for run_side."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({**result, "peak_rss_mb": round(peak_kb / 1024, 1)}))


def run_sides(
    script: str, args: list[str], baseline_may_fail: bool = False, rounds: int = 1, warm_up: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make fresh data, then run the baseline and datakit on it, each in its own process, `rounds` times
    in turn (baseline, datakit, baseline, ...); returns their results (baseline, datakit), each with
    `rate` = rows/s (None for a baseline that failed, where it `baseline_may_fail`) and `runs`, the
    seconds of every counted run. A side's result is its fastest run: other work on the machine only
    ever slows a run down, so the fastest is the least disturbed, and taking it for both sides keeps the
    ratio from following whichever side a burst of load happened to hit. With `warm_up`, each counted
    run comes right after an uncounted run of the same side: on a virtual machine, memory a process
    touches that the host took back while it lay free costs far more to fault in, so a side that
    takes gigabytes runs up to twice as slow after the other side has run (the mix's polars baseline
    at 10^6, 5 GB: 13.4, 11.5, 9.0, 7.1, 6.4 s in five rounds in turn; 13.4, 6.8, 7.9, 6.7, 6.6, 6.5 s
    run after run). The data is deleted afterwards."""
    compile_datakit()
    work = Path(tempfile.mkdtemp(prefix=f"bench-{Path(script).stem}-"))
    common = ["--data", str(work / "samples"), *args]
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "datakit": []}
    try:
        run_side(script, "make", common)

        def counted(side: str, may_fail: bool = False) -> dict[str, Any]:
            first = run_side(script, side, common, may_fail) if warm_up else {}
            return first if "failed" in first else run_side(script, side, common, may_fail)

        for _ in range(rounds):
            if not any("failed" in run for run in runs["baseline"]):  # a baseline that ran out of memory once will again
                runs["baseline"].append(counted("baseline", baseline_may_fail))
            runs["datakit"].append(counted("datakit"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base, ours = (_fastest(runs[side]) for side in ("baseline", "datakit"))
    for side in (base, ours):
        side["rate"] = side["rows"] / side["seconds"] if "failed" not in side else None
    return base, ours


def compile_datakit() -> None:
    """Write datakit's bytecode, as `pip install` does and as any first import does, unless
    PYTHONDONTWRITEBYTECODE is set (as on some CI and sandbox machines): there, every run would
    compile datakit's source again (~0.1-0.2 s), while the baseline's libraries come compiled."""
    package = importlib.util.find_spec("datakit")  # found, not imported: this process stays small (see above)
    compileall.compile_dir(package.submodule_search_locations[0], quiet=1)


def _fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of a side's runs, with the seconds of all of them (a failed run is the result)."""
    failed = [run for run in runs if "failed" in run]
    if failed:
        return failed[0]
    return {**min(runs, key=lambda run: run["seconds"]), "runs": [round(run["seconds"], 2) for run in runs]}
