"""CPU threads of the sampling engines: one per CPU the job's affinity allows, unless the user set them,
and what was used recorded in the sample manifest's `cpu_threads`.

The affinity is restricted inside a child process (os.sched_setaffinity, what taskset does), so these
run the same on any machine; the child imports torch first, as datakit does, so its thread pool was
sized for the wider mask before the engine is set up.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_MATH, has_vllm

from datakit.backends import cpu_list

FIRST_CPU = min(os.sched_getaffinity(0))

SETUP = """
import json, os, sys
import torch
torch_before = torch.get_num_threads()
os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(",")})
from datakit.backends.vllm import use_cpu_affinity
records = [use_cpu_affinity(int(sys.argv[2])) for _ in range(int(sys.argv[3]))]
print(json.dumps({"records": records, "torch_before": torch_before, "torch_threads": torch.get_num_threads(),
                  "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND")}}))
"""


def _setup_under(cpus: set[int], env: dict[str, str], ranks: int = 1, engines: int = 1) -> dict:
    """use_cpu_affinity in a child allowed `cpus`, with the thread settings of `env` only."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_ENABLE_V1_MULTIPROCESSING")}
    args = [",".join(map(str, sorted(cpus))), str(ranks), str(engines)]
    proc = subprocess.run([sys.executable, "-c", SETUP, *args], check=False, env={**clean, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cpu_list_is_written_as_taskset_writes_it() -> None:
    assert cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert cpu_list([3]) == "3"


def test_in_process_engine_gets_one_thread_per_allowed_cpu() -> None:
    found = _setup_under({FIRST_CPU}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert found["env"]["OMP_NUM_THREADS"] == "1"  # keeps vLLM from changing torch's threads "for serving"
    assert found["torch_threads"] == 1  # resized, whatever torch chose at import
    assert found["records"] == [{"engine": "in-process", "threads": None, "cpus": str(FIRST_CPU), "set_by": "datakit"}]


def test_a_second_engine_in_the_same_process_is_still_set_by_datakit() -> None:
    found = _setup_under({FIRST_CPU}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, engines=2)
    assert [r["set_by"] for r in found["records"]] == ["datakit", "datakit"]


def test_worker_processes_are_bound_to_every_allowed_cpu() -> None:
    # vLLM's automatic binding would keep one core for its scheduler; datakit gives the worker all of them
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    found = _setup_under(cpus, {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    assert found["env"] == {"OMP_NUM_THREADS": None, "VLLM_CPU_OMP_THREADS_BIND": cpu_list(cpus)}
    assert found["records"] == [{"engine": "worker processes", "threads": len(cpus), "cpus": cpu_list(cpus), "set_by": "datakit"}]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": None}),
        ({"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}, {"OMP_NUM_THREADS": None, "VLLM_CPU_OMP_THREADS_BIND": "nobind"}),
    ],
)
def test_the_users_own_setting_wins_and_is_recorded_as_theirs(env: dict[str, str], expected: dict) -> None:
    found = _setup_under(os.sched_getaffinity(0), env)
    assert found["env"] == expected
    assert found["records"][0]["set_by"] == "user"
    if env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1":
        assert found["records"][0]["cpus"] == "nobind" and found["records"][0]["threads"] is None
    else:
        assert found["torch_threads"] == found["torch_before"] == 1  # torch read OMP_NUM_THREADS itself; left alone


def test_several_ranks_keep_vllms_own_binding() -> None:
    found = _setup_under({FIRST_CPU}, {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, ranks=2)
    assert found["env"] == {"OMP_NUM_THREADS": None, "VLLM_CPU_OMP_THREADS_BIND": None}
    assert found["records"] == [{"engine": "worker processes", "threads": None, "cpus": "auto", "set_by": "vllm"}]


def _sample_cmd(out: Path, model: str, backend: str) -> list[str]:
    return [
        sys.executable, "-m", "datakit.cli", "sample", str(DEMO_MATH), str(out), "--model", model, "--backend", backend,
        "--limit", "2", "--n", "1", "--max-tokens", "8", "--no-progress",
    ]


def _run_on_first_cpu(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND")}
    return subprocess.run(cmd, check=False, env={**clean, **(env or {})}, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {FIRST_CPU}))


def test_the_sample_manifest_records_the_threads_used(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run_on_first_cpu(_sample_cmd(out, tiny_model, "hf"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cpu_threads"] == {"engine": "in-process", "threads": 1, "cpus": str(FIRST_CPU), "set_by": "torch"}


@pytest.mark.slow
@pytest.mark.skipif(not has_vllm(), reason="vllm is not installed")
def test_the_real_vllm_engine_computes_on_every_allowed_cpu(embedded_model_folder: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [*_sample_cmd(out, embedded_model_folder, "vllm"), "--max-model-len", "1024", "--enforce-eager", "--dtype", "bfloat16"]
    # VLLM_LOGGING_LEVEL too: importing TRL earlier in this test process sets it to ERROR, hiding the lines read below
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_LOGGING_LEVEL")}
    proc = subprocess.run(cmd, check=False, env=clean, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    allowed = os.sched_getaffinity(0)
    assert manifest["cpu_threads"] == {"engine": "in-process", "threads": len(allowed), "cpus": cpu_list(allowed), "set_by": "datakit"}
    engine_log = out / "logs" / "sample.log"  # where the engines' own lines go unless --verbose
    said = proc.stdout + proc.stderr + (engine_log.read_text() if engine_log.exists() else "")
    assert "Initializing a V1 LLM engine" in said  # vLLM's lines are in what we read
    assert "Reducing Torch threads" not in said  # vLLM's cut to one thread: OMP_NUM_THREADS tells it the count is chosen
