"""The sample stage on the tiny random model (hf backend): rows, columns, resume, refusals, kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from conftest import write_jsonl
from datakit.backends import BackendConfig, HFOptions, SamplingParams
from datakit.errors import DatakitError
from datakit.sample import SampleConfig, run_sample
from datakit.schema import SAMPLE_SCHEMA, text_hash


def _prompts(tmp_path: Path, count: int) -> Path:
    rows = [{"id": f"p{i:03d}", "question": f"What is {i} + {i}?", "answer": str(2 * i), "domain": "math"} for i in range(count)]
    return write_jsonl(tmp_path / "prompts.jsonl", [*rows, "{broken"])


def _config(model: str, source: Path, out: Path, **sampling: object) -> SampleConfig:
    return SampleConfig(
        input=str(source),
        output=str(out),
        model=model,
        sampling=SamplingParams(**{"n": 2, "max_tokens": 16, **sampling}),
        backend=BackendConfig(name="hf", hf=HFOptions(batch_prompts=2, dtype="float32")),
        shard_size=3,
        progress=False,
    )


def _rows(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "shards" / "*.parquet").sort("prompt_id", "sample_index")


def test_writes_n_rows_per_prompt_with_every_column(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_sample(_config(tiny_model, _prompts(tmp_path, 7), out))
    rows = _rows(out)
    assert summary.rows == rows.height == 14 and summary.prompts == 7 and summary.rejected_prompts == 1
    assert summary.shards_written == 3
    assert rows.columns == SAMPLE_SCHEMA.names
    assert rows.select(pl.struct("prompt_id", "sample_index").is_unique().all()).item()
    for column in SAMPLE_SCHEMA.names:
        if column != "reference":
            assert rows[column].null_count() == 0, column
    assert set(rows["finish_reason"]) <= {"stop", "length"}
    assert rows.filter(pl.col("finish_reason") == "length")["completion_tokens"].to_list() == [16] * rows.filter(pl.col("finish_reason") == "length").height
    assert (rows["prompt_tokens"] > 0).all() and (rows["completion_tokens"] > 0).all()
    assert rows["sampling"][0] == {"n": 2, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 16, "seed": 0}
    assert rows["text_hash"].to_list() == [text_hash(r, a) for r, a in zip(rows["reasoning"], rows["answer"])]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"]["rows"] == 14 and manifest["counts"]["rejected_prompts"] == 1
    reject = json.loads((out / "rejects.jsonl").read_text().splitlines()[0])
    assert reject["line"] == 8 and "invalid JSON" in reject["reason"] and reject["raw"] == "{broken"


def test_rerun_of_a_finished_job_is_a_no_op(tiny_model: str, tmp_path: Path) -> None:
    source, out = _prompts(tmp_path, 4), tmp_path / "out"
    run_sample(_config(tiny_model, source, out))
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    again = run_sample(_config(tiny_model, source, out))
    assert again.already_complete and again.rows == 8
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before


def test_other_settings_into_the_same_folder_are_refused(tiny_model: str, tmp_path: Path) -> None:
    source, out = _prompts(tmp_path, 4), tmp_path / "out"
    run_sample(_config(tiny_model, source, out))
    with pytest.raises(DatakitError, match=r"different settings \(sampling.temperature: 0.6 -> 0.9\)"):
        run_sample(_config(tiny_model, source, out, temperature=0.9))
    write_jsonl(source, [{"id": "other", "question": "Changed?"}])
    with pytest.raises(DatakitError, match="input prompts changed"):
        run_sample(_config(tiny_model, source, out))


def test_a_folder_that_is_not_a_stage_is_refused(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DatakitError, match="not empty"):
        run_sample(_config(tiny_model, _prompts(tmp_path, 2), out))


def test_same_seed_same_samples_other_seed_other_samples(tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 3)
    a = _rows(run_sample(_config(tiny_model, source, tmp_path / "a")).output)
    b = _rows(run_sample(_config(tiny_model, source, tmp_path / "b")).output)
    c = _rows(run_sample(_config(tiny_model, source, tmp_path / "c", seed=1)).output)
    assert a["completion"].to_list() == b["completion"].to_list()
    assert a["completion"].to_list() != c["completion"].to_list()


def _sample_cmd(model: str, source: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "datakit.cli", "sample", str(source), str(out), "--model", model,
        "--backend", "hf", "--n", "2", "--max-tokens", "48", "--shard-size", "2", "--batch-prompts", "2",
        "--dtype", "float32", "--no-progress",
    ]


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 24)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_sample_cmd(tiny_model, source, whole), check=True, capture_output=True)

    proc = subprocess.Popen(_sample_cmd(tiny_model, source, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((killed / "shards").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # land the kill somewhere inside a later shard
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list((killed / "shards").glob("part-*.parquet")))
    assert 1 <= done_before < 12, "the kill must land mid-run"
    assert not json.loads((killed / "manifest.json").read_text())["complete"]

    rerun = subprocess.run(_sample_cmd(tiny_model, source, killed), check=True, capture_output=True, text=True)
    assert f"{12 - done_before} written, {done_before} already done" in rerun.stdout
    assert _rows(killed).equals(_rows(whole))
    assert _rows(killed).height == 48
    assert not list((killed / "shards").glob(".*"))  # no temp files left


def test_cli_error_is_one_clean_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "datakit.cli", "sample", str(tmp_path / "missing.jsonl"), str(tmp_path / "o"), "--n", "0"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "n must be >= 1" in result.stderr and "Traceback" not in result.stderr


def test_workers_sharing_a_folder_equal_one_process(tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 8)
    single = _rows(run_sample(_config(tiny_model, source, tmp_path / "single")).output)
    shared = tmp_path / "shared"
    first = run_sample(replace(_config(tiny_model, source, shared), num_workers=2, worker_index=1))
    assert not first.complete and first.shards_written == 1  # shards 1 of 0..2
    assert not json.loads((shared / "manifest.json").read_text())["complete"]
    last = run_sample(replace(_config(tiny_model, source, shared), num_workers=2, worker_index=0))
    assert last.complete and last.rows == 16 and last.shards_written == 2
    assert _rows(shared).equals(single)


def test_data_parallel_replicas_equal_one_process(tiny_model: str, tmp_path: Path) -> None:
    source = _prompts(tmp_path, 8)
    single = _rows(run_sample(_config(tiny_model, source, tmp_path / "single")).output)
    summary = run_sample(replace(_config(tiny_model, source, tmp_path / "dp"), data_parallel_size=2))
    assert summary.complete and summary.rows == 16
    assert _rows(tmp_path / "dp").equals(single)
    assert sorted(p.name for p in (tmp_path / "dp").iterdir() if p.name != ".lock") == ["README.md", "logs", "manifest.json", "rejects.jsonl", "shards"]
    assert sorted(p.name for p in (tmp_path / "dp" / "logs").iterdir()) == ["sample-worker-0.log", "sample-worker-1.log"]  # each replica's engine output
