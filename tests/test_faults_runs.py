"""Fault battery, runs and folders (issue 14): why sample rejected rows, oversized prompts, setup before
the first write, refusals naming what changed, one run per folder, pool workers dying with their stage.

Each case is one bad input or fault, with the message fragment it must give and the counts it must leave.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pyarrow as pa
import pytest

from conftest import ROOT, write_jsonl
from datakit.backends import BackendConfig, HFOptions, OpenAIOptions, SamplingParams
from datakit.dataset import claim_folder, folder_lock, write_json_atomic, write_shard
from datakit.errors import DatakitError
from datakit.filter import FilterConfig, run_filter
from datakit.ingest import ColumnMapping, IngestConfig
from datakit.sample import SampleConfig, run_sample
from datakit.schema import SAMPLE_SCHEMA

from test_filter_stage import _chain, _sample, _samples_folder

GOOD = [{"id": f"p{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i), "domain": "math"} for i in range(3)]
CLI = [sys.executable, "-m", "datakit.cli"]


def _sample_config(source: Path, out: Path, model: str = "smollm2-135m-instruct", **ingest: Any) -> SampleConfig:
    return SampleConfig(
        input=str(source), output=str(out), model=model, sampling=SamplingParams(n=1, max_tokens=4),
        backend=BackendConfig(name="hf", hf=HFOptions(batch_prompts=2, dtype="float32")),
        ingest=IngestConfig(**ingest), shard_size=2, progress=False,
    )


# --- sample: every row rejected: the error itself says why ---------------------------------------

ALL_REJECTED = [
    ("not_json", ["{broken", "also not json", "[1, 2"], {}, ["all 3 rows were rejected", "invalid JSON", "first at"]),
    ("no_question", [{"id": "a", "problem": "1+1?"}, {"id": "b", "problem": "2+2?"}], {},
     ["all 2 rows were rejected", "2 row(s): field 'question': missing", "first at"]),
    ("map_to_absent_column", [{"id": "a", "question": "1+1?", "answer": "2"}, {"id": "b", "question": "2+2?", "answer": "4"}],
     {"mapping": ColumnMapping(question="problem")},
     ["--map question=problem: no row has a column 'problem'; the rows have answer, id, question"]),
    ("not_objects", ["1", "\"text\"", "null"], {}, ["all 3 rows were rejected", "expected a JSON object"]),
    ("bad_domain_map", [{"question": "hi", "category": "x"}], {"domains": {"y": "math"}, "mapping": ColumnMapping(domain="category")},
     ["value 'x' is not in `domains`"]),
    ("duplicate_ids_and_empty", [{"id": "a", "question": ""}, {"id": "a", "question": "  "}], {}, ["2 row(s): field 'question': empty"]),
]


@pytest.mark.parametrize("case, rows, ingest, fragments", ALL_REJECTED, ids=[c[0] for c in ALL_REJECTED])
def test_all_rows_rejected_error_says_why(tmp_path: Path, case: str, rows: list[Any], ingest: dict[str, Any], fragments: list[str]) -> None:
    source, out = write_jsonl(tmp_path / "prompts.jsonl", rows), tmp_path / "out"
    with pytest.raises(DatakitError) as raised:
        run_sample(_sample_config(source, out, **ingest))
    message = str(raised.value)
    assert message.startswith(f"{source}: no valid prompts")
    for fragment in fragments:
        assert fragment in message, message
    assert "see the messages above" not in message
    assert not out.exists()  # refused before anything was written: the fixed re-run starts clean


def test_cli_all_rejected_prints_reasons_and_exits_2(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "prompts.jsonl", [{"id": "a", "question": "1+1?"}])
    done = subprocess.run([*CLI, "sample", str(source), str(tmp_path / "out"), "--map", "question=problem"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "--map question=problem: no row has a column 'problem'; the rows have id, question" in done.stderr
    assert "1 row(s): field 'problem': missing" in done.stderr and f"first at {source}:1" in done.stderr


# --- sample: a prompt longer than the model's context is that row's reject ------------------------


def _long_prompts(tmp_path: Path) -> Path:
    huge = {"id": "huge", "question": "add these numbers: " + " ".join(str(i) for i in range(3000)), "domain": "math"}
    return write_jsonl(tmp_path / "prompts.jsonl", [GOOD[0], huge, GOOD[1], GOOD[2], "{broken"])


def _rows(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "shards" / "*.parquet").sort("prompt_id", "sample_index")


def test_prompt_too_long_is_rejected_per_row_and_resume_agrees(tiny_model: str, tmp_path: Path) -> None:
    source, out = _long_prompts(tmp_path), tmp_path / "out"
    summary = run_sample(_sample_config(source, out, model=tiny_model))
    assert summary.prompts == 4 and summary.too_long == 1 and summary.rejected_prompts == 1 and summary.rows == 3
    assert sorted(_rows(out)["prompt_id"]) == ["p0", "p1", "p2"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["reason"].split(":")[0] for r in rejects] == ["invalid JSON", "prompt_too_long"]
    too_long = rejects[1]
    assert too_long["field"] == "messages" and json.loads(too_long["raw"])["prompt_id"] == "huge"
    assert "tokens after the chat template; the model's context is 512 tokens" in too_long["reason"]
    assert int(too_long["reason"].split()[1]) > 512
    assert json.loads((out / "manifest.json").read_text())["counts"]["prompts_too_long"] == 1

    # a run killed after the first shard: drop the second shard (holding the long prompt) and resume
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "shards" / "part-00000.parquet").unlink()
    (resumed / "rejects" / "part-00000.jsonl").unlink()
    manifest = json.loads((resumed / "manifest.json").read_text())
    write_json_atomic(resumed / "manifest.json", {**manifest, "complete": False})
    run_sample(_sample_config(source, resumed, model=tiny_model))
    assert _rows(resumed).equals(_rows(out))
    assert (resumed / "rejects.jsonl").read_text() == (out / "rejects.jsonl").read_text()


class ContextServer:
    """An OpenAI-compatible server with a 64-token context: a prompt holding "HUGE" gets vLLM's 400."""

    def __init__(self, refusal: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                question = body["messages"][-1]["content"]
                status, reply = (400, {"object": "error", "message": refusal}) if "HUGE" in question else (
                    200, {"choices": [{"message": {"content": f"answer to {question}"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def context_server(request: pytest.FixtureRequest) -> Iterator[ContextServer]:
    server = ContextServer(request.param)
    yield server
    server.httpd.shutdown()


VLLM_400 = "This model's maximum context length is 64 tokens. However, you requested 9000 tokens (8996 in the messages, 4 in the completion)."


@pytest.mark.parametrize("context_server", [VLLM_400], indirect=True)
def test_openai_context_400_is_a_per_row_reject(context_server: ContextServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "prompts.jsonl", [GOOD[0], {"id": "huge", "question": "HUGE " * 3000}, GOOD[1]])
    config = _sample_config(source, tmp_path / "out", model="teacher")
    config.backend = BackendConfig(name="openai", openai=OpenAIOptions(base_url=context_server.url, max_retries=0))
    summary = run_sample(config)
    assert summary.rows == 2 and summary.too_long == 1
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()[0])
    assert reject["reason"].startswith("prompt_too_long: the server refused it: HTTP 400") and "maximum context length is 64" in reject["reason"]


@pytest.mark.parametrize("context_server", ['{"message": "The model `teacher` does not exist."}'], indirect=True)
def test_openai_other_400_still_fails_the_run(context_server: ContextServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "prompts.jsonl", [{"id": "huge", "question": "HUGE"}])
    config = _sample_config(source, tmp_path / "out", model="teacher")
    config.backend = BackendConfig(name="openai", openai=OpenAIOptions(base_url=context_server.url, max_retries=0))
    with pytest.raises(DatakitError, match="refused the request .HTTP 400.*does not exist"):
        run_sample(config)


# --- claims: a refused re-run names each changed setting ----------------------------------------

CLAIMS = [
    ("changed_setting", {"stage": "distill", "run_hash": "a", "config": {"seed": 0, "lr": 1e-5}}, {"config": {"seed": 1, "lr": 1e-5}},
     "different settings (seed: 0 -> 1)"),
    ("two_changed", {"stage": "distill", "run_hash": "a", "config": {"seed": 0, "opt": {"lr": 1e-5}}}, {"config": {"seed": 1, "opt": {"lr": 2e-5}}},
     "(seed: 0 -> 1; opt.lr: 1e-05 -> 2e-05)"),
    ("input_changed", {"stage": "distill", "run_hash": "a", "config": {"seed": 0}}, {"config": {"seed": 0}}, "different settings (the input changed)"),
    ("chain_line", {"stage": "distill", "run_hash": "a", "chain": {"yaml": "filters:\n  - format\n"}}, {"chain": {"yaml": "filters:\n  - language\n"}},
     "chain.yaml line 2: '  - format' -> '  - language'"),
    ("other_stage", {"stage": "sample", "run_hash": "a"}, {"config": {}}, "holds the output of `sample`, not of `distill`"),
]


@pytest.mark.parametrize("case, manifest, settings, fragment", CLAIMS, ids=[c[0] for c in CLAIMS])
def test_claim_refusals_name_what_changed(tmp_path: Path, case: str, manifest: dict[str, Any], settings: dict[str, Any], fragment: str) -> None:
    write_json_atomic(tmp_path / "manifest.json", manifest)
    with pytest.raises(DatakitError) as raised:
        claim_folder(tmp_path, "distill", "b", settings, "the input changed")
    assert fragment in str(raised.value)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest  # a refusal writes nothing


def test_claim_refuses_a_foreign_folder_but_not_a_lock(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_text("123")
    assert claim_folder(tmp_path, "mix", "h", {}, "") is None
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatakitError, match="exists, is not empty and holds no manifest.json"):
        claim_folder(tmp_path, "mix", "h", {}, "")


FORMAT = "name: unit\nfilters:\n  - format\n"


def test_filter_refusal_names_the_chain_line_and_setting(tmp_path: Path) -> None:
    samples, out = _samples_folder(tmp_path), tmp_path / "filtered"
    run_filter(FilterConfig(input=str(samples), output=str(out), chain=str(_chain(tmp_path, FORMAT)), workers=1, progress=False, plots=False))
    changed = FilterConfig(input=str(samples), output=str(out), chain=str(_chain(tmp_path, FORMAT.replace("format", "format: {}"))),
                           workers=1, progress=False, plots=False, rows_per_shard=7)
    with pytest.raises(DatakitError) as raised:
        run_filter(changed)
    message = str(raised.value)
    assert "rows_per_shard: 4096 -> 7" in message and "chain.yaml line 3: '  - format' -> '  - format: {}'" in message
    assert "progress" not in message and "workers" not in message  # settings that do not change the output are not named


def test_filter_setup_error_writes_nothing_and_the_fix_runs(tmp_path: Path) -> None:
    samples, out = _samples_folder(tmp_path), tmp_path / "filtered"
    (samples / "manifest.json").write_text(json.dumps({"stage": "sample"}))  # no model to take a tokenizer from
    chain = _chain(tmp_path, "name: unit\nfilters:\n  - format\n  - length: {max_reasoning_tokens: 100}\n")
    with pytest.raises(DatakitError, match="the length filter needs `tokenizer:`"):
        run_filter(FilterConfig(input=str(samples), output=str(out), chain=str(chain), workers=1, progress=False, plots=False))
    assert not (out / "manifest.json").exists() and not (out / "accepted").exists()
    fixed = _chain(tmp_path, "name: unit\nfilters:\n  - format\n")
    summary = run_filter(FilterConfig(input=str(samples), output=str(out), chain=str(fixed), workers=1, progress=False, plots=False))
    assert summary.report["rows_in"] == 24 and summary.shards_written == 3


def test_sample_unknown_model_writes_nothing(tmp_path: Path) -> None:
    source, out = write_jsonl(tmp_path / "prompts.jsonl", GOOD), tmp_path / "out"
    with pytest.raises(Exception):
        run_sample(_sample_config(source, out, model=str(tmp_path / "no-such-model")))
    assert not (out / "manifest.json").exists() and not (out / "rejects.jsonl").exists()


# --- one run per folder -------------------------------------------------------------------------


def _holder(out: Path, worker: str = "None") -> subprocess.Popen:
    """A process holding `out`'s lock until its stdin closes."""
    code = f"import sys; from pathlib import Path; from datakit.dataset import folder_lock\nwith folder_lock(Path({str(out)!r}), {worker}):\n    print('held', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_filter_into_a_held_folder_is_refused_naming_the_pid(tmp_path: Path) -> None:
    samples, out = _samples_folder(tmp_path), tmp_path / "filtered"
    holder = _holder(out)
    args = [*CLI, "filter", str(samples), str(out), "--chain", str(_chain(tmp_path, FORMAT)), "--workers", "1", "--no-plots", "--no-progress"]
    try:
        refused = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
        assert refused.returncode == 2
        assert f"{out}: another datakit run is writing into this folder (pid {holder.pid})" in refused.stderr
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # refused before anything was written
    finally:
        holder.stdin.close()
        holder.wait()
    assert subprocess.run(args, capture_output=True, text=True, cwd=ROOT).returncode == 0  # the holder gone, the run goes on
    assert (out / "manifest.json").exists()


LOCKS = [
    ("other_worker_shares", "(0, 2)", (1, 2), None),
    ("same_worker_refused", "(0, 2)", (0, 2), "another datakit run of worker 0 of 2 is writing into this folder (pid {pid})"),
    ("single_run_refused_by_worker", "(0, 2)", None, "another datakit run is writing into this folder (pid {pid})"),
    ("worker_refused_by_single_run", "None", (1, 2), "another datakit run is writing into this folder (pid {pid})"),
]


@pytest.mark.parametrize("case, held, wanted, fragment", LOCKS, ids=[c[0] for c in LOCKS])
def test_folder_lock_between_runs_and_workers(tmp_path: Path, case: str, held: str, wanted: tuple[int, int] | None, fragment: str | None) -> None:
    holder = _holder(tmp_path, held)
    try:
        if fragment is None:
            with folder_lock(tmp_path, wanted):
                pass
        else:
            with pytest.raises(DatakitError) as raised, folder_lock(tmp_path, wanted):
                pass
            assert fragment.format(pid=holder.pid) in str(raised.value)
    finally:
        holder.stdin.close()
        holder.wait()


def test_lock_of_a_killed_run_is_released(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with folder_lock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())


# --- pool workers die with their stage ----------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(children)
            todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition: Any, what: str, limit_s: float = 120.0) -> None:
    """Poll until `condition()`; the limit only bounds a broken run, the test does not depend on timing."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _many_shards(root: Path, shards: int = 12) -> Path:
    """A samples folder of `shards` shards of 4 samples each, distinct prompts throughout."""
    folder = root / "samples"
    for shard in range(shards):
        rows = [_sample(shard * 4 + i, 0, f"The answer is \\boxed{{{2 * (shard * 4 + i)}}}.") for i in range(4)]
        write_shard(folder, shard, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    (folder / "manifest.json").write_text(json.dumps({"stage": "sample", "model": "unit"}))
    return folder


def test_kill_9_of_filter_leaves_no_worker(tmp_path: Path) -> None:
    samples, out = _many_shards(tmp_path), tmp_path / "filtered"
    chain = _chain(tmp_path, "name: unit\nfilters:\n  - format\n  - correctness: {timeout_s: 20, workers: 1}\n")
    proc = subprocess.Popen([*CLI, "filter", str(samples), str(out), "--chain", str(chain), "--workers", "2", "--no-plots", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    workers: set[int] = set()

    def pool_started() -> bool:
        workers.update(p for p in _descendants(proc.pid) if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"))
        return (len(workers) >= 2 and any((out / "stats").glob("*.json"))) or proc.poll() is not None

    _wait_for(pool_started, "the filter never started filtering")  # workers in their loop, shards still queued
    assert proc.poll() is None, "the filter finished before it could be killed"
    everything = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted((out / "stats").glob("*.json"))  # final once the stage is dead, if its workers died with it
    _wait_for(lambda: not any(_alive(p) for p in everything), f"workers outlived their killed stage: {[p for p in everything if _alive(p)]}")
    assert len(workers) >= 2
    assert sorted((out / "stats").glob("*.json")) == done  # no worker went on filtering after the kill


def test_kill_9_of_a_math_pool_owner_leaves_no_worker(tmp_path: Path) -> None:
    code = "import time\nfrom datakit.pool import map_with_timeout\nmap_with_timeout(time.sleep, [600, 600], timeout_s=5, workers=2)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    workers: set[int] = set()

    def started() -> bool:
        workers.update(_descendants(proc.pid))
        return len(workers) >= 2
    _wait_for(started, "the pool never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _wait_for(lambda: not any(_alive(p) for p in workers), "pebble workers outlived their owner")
