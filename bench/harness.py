"""What the benchmarks share: each side (data maker, baseline, datakit) runs in its own subprocess,
so the peak RSS it prints is its own (Linux keeps ru_maxrss across fork+exec: a side started from a
large parent would inherit the parent's peak)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any


def run_side(script: str, side: str, args: list[str]) -> dict[str, Any]:
    """Run `script --side SIDE ARGS` and return the JSON object it printed last."""
    proc = subprocess.run([sys.executable, script, "--side", side, *args], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def report_side(result: dict[str, Any]) -> None:
    """Print a side's result with its peak RSS (this process and its children), for run_side."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({**result, "peak_rss_mb": round(peak_kb / 1024, 1)}))
