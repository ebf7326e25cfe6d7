"""`datakit run` under torchrun/accelerate: data stages run once, on rank 0, while the other ranks wait;
a failure on rank 0 reaches them as an error. Two real processes on CPU (gloo)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from pathlib import Path
from datakit.launch import on_rank_zero, rank_and_world

out = Path(sys.argv[1])
rank, world = rank_and_world()

def work():
    if sys.argv[2] == "fail":
        raise RuntimeError("teacher unreachable")
    (out / "made-by-rank-0").write_text("x")  # a second rank writing here would be the bug
    (out / f"ran-on-{rank}").write_text("x")

try:
    on_rank_zero(work, "the data stages")
    seen = (out / "made-by-rank-0").exists()  # after the wait, every rank sees rank 0's output
    (out / f"rank-{rank}-saw-{seen}").write_text("x")
except Exception as e:
    (out / f"rank-{rank}-error").write_text(f"{type(e).__name__}: {e}")
"""


def _torchrun(tmp_path: Path, mode: str) -> set[str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    out = tmp_path / mode
    out.mkdir()
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(out), mode],
        env=env, capture_output=True, text=True, timeout=300,
    )
    return {p.name: p.read_text() for p in out.iterdir()} | {"returncode": str(done.returncode)}


@pytest.mark.slow
def test_only_rank_zero_runs_the_data_stages_and_the_others_wait(tmp_path: Path) -> None:
    files = _torchrun(tmp_path, "ok")
    assert "ran-on-0" in files and "ran-on-1" not in files, files
    assert "rank-0-saw-True" in files and "rank-1-saw-True" in files, files


@pytest.mark.slow
def test_a_failure_on_rank_zero_reaches_the_waiting_ranks(tmp_path: Path) -> None:
    files = _torchrun(tmp_path, "fail")
    assert files.get("rank-0-error") == "RuntimeError: teacher unreachable", files
    assert files.get("rank-1-error") == "DatakitError: rank 0 failed in the data stages: RuntimeError: teacher unreachable", files


def test_outside_a_launcher_the_work_simply_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from datakit.launch import on_rank_zero

    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ran = []
    on_rank_zero(lambda: ran.append(1), "x")
    assert ran == [1]
