"""Quiet by default (issue 15): the real `datakit` CLI in a subprocess with stdout and stderr piped (not a
terminal, as under SLURM, CI or nohup) shows only datakit's own lines and periodic progress; what the
engines print lands in OUT/logs/STAGE.log; `--verbose` shows it on the terminal as well; a failure names
the log. DATAKIT_PROGRESS_INTERVAL=0 prints a progress line at every update, so no check depends on speed.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from conftest import DEMO_MATH, has_vllm
from datakit.errors import DatakitError
from datakit.logs import VERBOSE_ENV, err_console, log_tail, stage_log
from datakit.models import cache_dir
from datakit.progress import INTERVAL_ENV, StageProgress, progress_interval

# What engines print and datakit never does: log records, Python warnings, C++ warnings (NUMA, tcmalloc),
# tqdm bars ("Loading weights: 100%|...", "Loading safetensors checkpoint shards: ... 1/1 [...]").
ENGINE_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b|FutureWarning|UserWarning|DeprecationWarning|Warning:|Loading (weights|safetensors)|\d+/\d+ \[")


def cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datakit.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, INTERVAL_ENV: "0", **env},
    )


def assert_only_datakit_lines(result: subprocess.CompletedProcess) -> None:
    terminal = result.stdout + result.stderr
    noise = [line for line in terminal.splitlines() if ENGINE_LINE.search(line)]
    assert not noise, terminal
    for cache in (str(Path.home() / ".cache"), str(cache_dir())):
        assert cache not in terminal, terminal


def prompts(tmp_path: Path, count: int = 2) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(DEMO_MATH.read_text().splitlines(keepends=True)[:count]))
    return path


SMALL = ["--n", "1", "--max-tokens", "8", "--shard-size", "1"]


@pytest.fixture
def progress_lines() -> Iterator[io.StringIO]:
    """What datakit prints on stderr, where stderr is not a terminal."""
    printed = io.StringIO()
    err_console.file = printed
    try:
        yield printed
    finally:
        err_console.file = None  # back to sys.stderr


def test_a_quiet_run_of_sample_and_eval_shows_datakit_lines_and_progress_and_logs_each_engine(tiny_model: str, tmp_path: Path) -> None:
    import datasets

    source = prompts(tmp_path)
    recipe = tmp_path / "recipe.yaml"  # the embedded model samples; a tiny random one answers the eval, to keep it short
    recipe.write_text(yaml.safe_dump({
        "sample": {"input": str(source), "output": str(tmp_path / "samples"), "sampling": {"n": 1, "max_tokens": 8}, "shard_size": 1, "backend": {"name": "hf"}},
        "eval": {"models": [tiny_model], "benchmarks": [{"name": "tiny", "path": str(source), "k": 1}], "output": str(tmp_path / "eval"),
                 "sampling": {"max_tokens": 8}, "backend": {"name": "hf"}},
    }))
    result = cli("run", str(recipe))
    assert result.returncode == 0, result.stderr
    assert_only_datakit_lines(result)
    progress = [line for line in result.stderr.splitlines() if line.startswith("sampling: ")]
    assert progress[0].startswith("sampling: 0/2 prompts (0%)") and "ETA unknown" in progress[0], result.stderr
    assert progress[1].startswith("sampling: 1/2 prompts (50%)") and re.search(r"ETA \d+:\d\d:\d\d$", progress[1]), result.stderr
    assert progress[2].startswith("sampling: 2/2 prompts (100%)") and re.search(r"prompts/s, \d+ tok/s, \d+:\d\d:\d\d elapsed, done$", progress[2])
    # the eval's two answers come from one transformers batch, so its count goes from 0/2 straight to 2/2
    assert len(progress) == 5, result.stderr
    assert progress[3].startswith("sampling: 0/2 prompts (0%)") and progress[4].startswith("sampling: 2/2 prompts (100%)"), result.stderr
    assert "samples written" in result.stdout and "example" in result.stdout and "pass@1" in result.stdout

    for stage, folder in (("sample", tmp_path / "samples"), ("eval", tmp_path / "eval")):
        log = (folder / "logs" / f"{stage}.log").read_text()
        assert log.startswith(f"==== datakit {stage}, ") and "Loading weights" in log, log  # transformers' loading bar
    # the log is not data: the sample folder still loads as its rows, and only them
    assert datasets.load_dataset(str(tmp_path / "samples"), split="train").num_rows == 2


def test_verbose_shows_the_engine_output_on_the_terminal_and_writes_no_log(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    result = cli("--verbose", "sample", str(prompts(tmp_path, 1)), str(out), "--backend", "hf", "--model", tiny_model, *SMALL)
    assert result.returncode == 0, result.stderr
    assert "Loading weights" in result.stderr and "sampling: 1/1 prompts (100%)" in result.stderr
    assert not (out / "logs").exists()


def test_an_engine_failure_names_the_log_and_shows_its_last_lines(tiny_model: str, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU: the failure is asking for one")
    out = tmp_path / "samples"
    result = cli("sample", str(prompts(tmp_path, 1)), str(out), "--backend", "hf", "--model", tiny_model, "--set", "backend.hf.device=cuda", *SMALL)
    log = out / "logs" / "sample.log"
    assert result.returncode == 1 and "Torch not compiled with CUDA enabled" in result.stderr, result.stderr
    assert f"the last lines the engines wrote to {log}:" in result.stderr
    tail = result.stderr.split(f"{log}:", 1)[1]
    assert "Loading weights" in tail and "Loading weights" in log.read_text()


def test_the_log_takes_what_is_written_to_the_descriptors_and_the_console_keeps_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    for run in (1, 2):
        with stage_log("sample", tmp_path) as path:
            os.write(1, b"engine on fd 1\n")
            os.write(2, b"engine on fd 2\n")
            ctypes.CDLL(None).write(2, b"from C\n", 7)
            err_console.print(f"datakit line {run}")
        assert path == tmp_path / "logs" / "sample.log"
    terminal = capfd.readouterr()
    assert "datakit line 1" in terminal.err and "datakit line 2" in terminal.err and "engine" not in terminal.out + terminal.err
    log = path.read_text()
    assert log.count("==== datakit sample, ") == 2 and log.count("engine on fd 1") == 2 and log.count("from C") == 2  # appended
    assert "datakit line" not in log


def test_a_log_the_engines_left_empty_or_of_a_refused_input_goes_with_the_folders_made_for_it(tmp_path: Path) -> None:
    with stage_log("mix", tmp_path / "quiet" / "mix"):
        pass  # nothing printed
    assert not (tmp_path / "quiet").exists()
    with pytest.raises(DatakitError), stage_log("sample", tmp_path / "refused"):
        os.write(2, b"a warning while reading the input\n")
        raise DatakitError("prompts.jsonl: no valid prompts")
    assert not (tmp_path / "refused").exists()  # the error line says why; a fixed re-run starts clean
    with pytest.raises(RuntimeError) as crash, stage_log("sample", tmp_path / "crashed"):
        os.write(2, b"engine core died\n")
        raise RuntimeError("EngineCore failed")
    assert crash.value.log_file == tmp_path / "crashed" / "logs" / "sample.log"  # named in the CLI's error, with its last lines
    assert log_tail(crash.value.log_file, crash.value.log_start) == ["engine core died"]


def test_no_log_with_verbose_or_in_a_folder_that_is_not_datakits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine\n")
    with stage_log("sample", foreign) as path:
        assert path is None
    assert sorted(p.name for p in foreign.iterdir()) == ["todo.txt"]
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with stage_log("sample", tmp_path / "new") as path:
        assert path is None
    assert not (tmp_path / "new").exists()


def test_distill_shows_its_optimiser_steps_as_progress_lines(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progress_lines: io.StringIO) -> None:
    from datakit.distill import run_distill
    from test_distill import distill_config, mix_folder

    monkeypatch.setenv(INTERVAL_ENV, "0")
    run_distill(distill_config(tiny_model, mix_folder(tmp_path), tmp_path / "student", max_steps=3, progress=True))
    steps = [line.split(",")[0] for line in progress_lines.getvalue().splitlines()]
    assert steps == ["training: 0/3 steps (0%)", "training: 1/3 steps (33%)", "training: 2/3 steps (67%)", "training: 3/3 steps (100%)"], progress_lines.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(not has_vllm(), reason="vllm is not installed")
def test_a_quiet_vllm_sample_keeps_the_engine_out_of_the_terminal(tmp_path: Path) -> None:
    out = tmp_path / "samples"
    # vLLM's default level, set here because importing TRL (the distill tests do) puts ERROR in this process's environment
    result = cli("sample", str(prompts(tmp_path, 1)), str(out), "--backend", "vllm", "--enforce-eager", "--max-model-len", "256", *SMALL,
                 VLLM_LOGGING_LEVEL="INFO")
    assert result.returncode == 0, result.stderr
    assert_only_datakit_lines(result)
    assert "sampling: 1/1 prompts (100%)" in result.stderr
    log = (out / "logs" / "sample.log").read_text()
    # vLLM's own log records, the C++ NUMA/tcmalloc notes and the loading bar, and the model's cache path
    assert re.search(r"\bINFO\b", log) and "Loading safetensors checkpoint shards" in log, log[-3000:]
    assert str(cache_dir()) in log


def test_plain_progress_lines_come_at_every_interval_even_when_nothing_finishes(monkeypatch: pytest.MonkeyPatch, progress_lines: io.StringIO) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.01")
    with StageProgress("sampling", total=5, unit="prompts", show_tokens=True):
        give_up = time.monotonic() + 300  # only so a broken timer fails instead of hanging
        while progress_lines.getvalue().count("\n") < 3 and time.monotonic() < give_up:  # the timer's lines; no advance at all
            time.sleep(0.01)
    lines = progress_lines.getvalue().splitlines()
    assert len(lines) >= 3, lines  # the first line and the timer's
    assert all(line.startswith("sampling: 0/5 prompts (0%), 0.00 prompts/s, 0 tok/s, ") and line.endswith("ETA unknown") for line in lines), lines


def test_a_line_at_every_update_with_resumed_work_and_no_repeated_last_line(monkeypatch: pytest.MonkeyPatch, progress_lines: io.StringIO) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    with StageProgress("filtering", total=4, completed=2, unit="samples") as progress:
        progress.advance(1)
        progress.advance(1)
    lines = progress_lines.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["filtering: 2/4 samples (50%)", "filtering: 3/4 samples (75%)", "filtering: 4/4 samples (100%)"], lines
    assert "ETA unknown" in lines[0] and re.search(r"ETA \d+:\d\d:\d\d$", lines[1]) and lines[2].endswith("done"), lines
    assert "tok/s" not in lines[0]


@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_a_bad_progress_interval_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(INTERVAL_ENV, value)
    with pytest.raises(DatakitError, match=f"{INTERVAL_ENV}='{re.escape(value)}': expected seconds"):
        progress_interval()
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert progress_interval() == 2.5
