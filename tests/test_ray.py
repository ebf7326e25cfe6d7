"""The Ray paths on a local Ray cluster (started here, on loopback, CPUs only): sample replicas as Ray
actors and filter shards as Ray Data tasks write the same rows as the local runs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("ray")

from datakit.filter import FilterConfig, run_filter  # noqa: E402
from datakit.sample import run_sample  # noqa: E402
from test_filter_stage import CHAIN, _chain, _samples_folder  # noqa: E402
from test_sample import _config, _prompts, _rows  # noqa: E402

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """`ray start --head` on 127.0.0.1 with 2 CPUs; yields its address; stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
             "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=150000000",
             f"--temp-dir={tmp_path_factory.mktemp('ray')}"]
    subprocess.run(start, check=True, capture_output=True, text=True, timeout=120)
    yield f"127.0.0.1:{port}"
    import ray

    ray.shutdown()
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def test_sample_replicas_as_ray_actors_equal_one_process(ray_cluster: str, tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 8)
    single = _rows(run_sample(_config(tiny_model, source, tmp_path / "single")).output)
    summary = run_sample(replace(_config(tiny_model, source, tmp_path / "ray"), data_parallel_size=2, ray_address=ray_cluster))
    assert summary.complete and summary.rows == 16
    assert _rows(tmp_path / "ray").equals(single)
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["complete"]


def test_a_killed_ray_sample_resumes_to_the_same_rows(ray_cluster: str, tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 8)
    single = _rows(run_sample(_config(tiny_model, source, tmp_path / "single")).output)
    out = tmp_path / "ray"
    run_sample(replace(_config(tiny_model, source, out), data_parallel_size=2, ray_address=ray_cluster))
    (out / "shards" / "part-00001.parquet").unlink()  # as if its replica died before writing it
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    again = run_sample(replace(_config(tiny_model, source, out), data_parallel_size=2, ray_address=ray_cluster))
    assert again.shards_written == 1 and _rows(out).equals(single)


def test_filter_on_ray_data_writes_what_the_local_run_writes(ray_cluster: str, tmp_path: Path) -> None:
    samples, chain = _samples_folder(tmp_path), _chain(tmp_path, CHAIN)
    local = run_filter(FilterConfig(input=str(samples), output=str(tmp_path / "local"), chain=str(chain), workers=1, progress=False, plots=False))
    on_ray = run_filter(FilterConfig(input=str(samples), output=str(tmp_path / "ray"), chain=str(chain), ray_address=ray_cluster, progress=False, plots=False))
    for part in ("accepted", "rejected"):
        read = lambda root: pl.read_parquet(root / part / "shards" / "*.parquet").sort("prompt_id", "sample_index")  # noqa: E731
        assert read(tmp_path / "ray").equals(read(tmp_path / "local")), part
    assert on_ray.report["funnel"] == local.report["funnel"] and on_ray.shards_written == local.shards_written == 3
    shutil.rmtree(tmp_path / "ray" / "stats")  # a lost stats file marks its shard undone: the re-run redoes them
    (tmp_path / "ray" / "manifest.json").write_text(json.dumps({**json.loads((tmp_path / "ray" / "manifest.json").read_text()), "complete": False}))
    again = run_filter(FilterConfig(input=str(samples), output=str(tmp_path / "ray"), chain=str(chain), ray_address=ray_cluster, progress=False, plots=False))
    assert again.shards_written == 3 and again.report["funnel"] == local.report["funnel"]
