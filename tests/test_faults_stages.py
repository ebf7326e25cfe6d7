"""Fault battery, the later stages (issue 14): bad inputs and settings for `distill`, `eval` and `push`,
each through the real CLI in a subprocess: the one line it prints, exit code 2 (README, "When things go
wrong"), and nothing written where the refusal comes before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import write_jsonl
from datakit.dataset import write_json_atomic, write_shard
from datakit.schema import SAMPLE_SCHEMA
from test_faults_system import cli
from test_mix import SAMPLING, sample


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """A finished sample folder, an unfinished one, a distill-like folder and a benchmark file with one bad row."""
    done, unfinished, student = tmp_path / "samples", tmp_path / "half", tmp_path / "student"
    for folder, complete in ((done, True), (unfinished, False)):
        write_shard(folder, 0, pa.Table.from_pylist([sample(f"p{i}", f"Question {i}?", "math", 0) for i in range(3)], schema=SAMPLE_SCHEMA))
        write_json_atomic(folder / "manifest.json", {"stage": "sample", "model": "teacher-x", "complete": complete, "config": {"sampling": SAMPLING}})
    student.mkdir()
    write_json_atomic(student / "manifest.json", {"stage": "distill", "complete": True})
    write_jsonl(tmp_path / "bench.jsonl", [{"id": "a", "question": "1+1?", "answer": "2", "domain": "math"}, "{broken", {"id": "c", "question": "2+2?", "answer": "4", "domain": "math"}])
    write_jsonl(tmp_path / "judged.jsonl", [{"id": "a", "question": "Write a poem.", "answer": "A poem.", "domain": "writing"}])
    return {"samples": done, "half": unfinished, "student": student, "bench": tmp_path / "bench.jsonl", "judged": tmp_path / "judged.jsonl", "root": tmp_path}


CASES = {
    # name: (argv with {placeholders}, message fragment, folder that must not have been created)
    "distill: no dataset": (["distill", "--output", "{root}/d1"], "distill needs a dataset (a mix folder) and an output folder", "d1"),
    "distill: dataset folder missing": (["distill", "--dataset", "{root}/nowhere", "--output", "{root}/d2", "--set", "max_length=1024"], "nowhere: not a local folder or file, and loading it as a Hub dataset failed", "d2"),
    "distill: a sample folder has no assistant turn to train on": (["distill", "--dataset", "{samples}", "--output", "{root}/d3", "--set", "max_length=1024"], "no row has an assistant turn to learn from (3 rows)", None),
    "distill: max_length too small": (["distill", "--dataset", "{samples}", "--output", "{root}/d4", "--set", "max_length=8"], "max_length must be >= 16", "d4"),
    "distill: unknown loss_on": (["distill", "--dataset", "{samples}", "--output", "{root}/d5", "--set", "loss_on=prompt"], "loss_on: expected assistant or all, got 'prompt'", "d5"),
    "distill: unknown setting": (["distill", "--dataset", "{samples}", "--output", "{root}/d6", "--set", "epochs=2"], "unknown setting 'epochs'", "d6"),
    "distill: into a sample folder": (["distill", "--dataset", "{samples}", "--output", "{samples}"], "holds the output of `sample`, not of `distill`", None),
    "eval: benchmark file missing": (["eval", "--model", "smollm2-135m-instruct", "--benchmark", "b={root}/missing.jsonl", "--output", "{root}/e1"], "missing.jsonl", "e1"),
    "eval: a benchmark row that cannot be read": (["eval", "--model", "smollm2-135m-instruct", "--benchmark", "b={bench}", "--output", "{root}/e2"], "invalid JSON", "e2/smollm2-135m-instruct/b"),
    "eval: rows only a judge could grade": (["eval", "--model", "smollm2-135m-instruct", "--benchmark", "w={judged}", "--output", "{root}/e3"], "judge", "e3/smollm2-135m-instruct/w"),
    "eval: k of 0": (["eval", "--model", "smollm2-135m-instruct", "--benchmark", "b={bench}", "--k", "0", "--output", "{root}/e4"], "k: must be >= 1, got 0", "e4"),
    "eval: one benchmark name twice": (["eval", "--model", "smollm2-135m-instruct", "--benchmark", "b={bench}", "--benchmark", "b={judged}", "--output", "{root}/e5"], "names must be distinct", "e5"),
    "eval: two models in one results folder": (["eval", "--model", "{samples}", "--model", "{root}/other/samples", "--benchmark", "b={bench}", "--output", "{root}/e6"], "two models would share a results folder", "e6"),
    "push: no repo id": (["push", "{samples}"], "push needs a stage folder and a repo id", None),
    "push: malformed repo id": (["push", "{samples}", "not a repo", "--dry-run"], "expected ORG/NAME", None),
    "push: a folder with no manifest": (["push", "{root}", "org/x", "--dry-run"], "no manifest.json", None),
    "push: an unfinished stage": (["push", "{half}", "org/x", "--dry-run"], "has not finished (manifest says complete: false)", None),
    "push: a distill folder": (["push", "{student}", "org/x", "--dry-run"], "stage 'distill' cannot be pushed", None),
    "push: staging inside the stage folder": (["push", "{samples}", "org/x", "--dry-run", "--staging", "{samples}/hub"], "must lie outside the stage folder", None),
    "push: offline without --dry-run": (["push", "{samples}", "org/x", "--staging", "{root}/staged"], "HF_HUB_OFFLINE is set, so nothing can be uploaded; the staged folder is ready", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_later_stages_refuse_bad_input_in_one_line(case: str, folders: dict[str, Path]) -> None:
    argv, message, not_made = CASES[case]
    (folders["root"] / "other" / "samples").mkdir(parents=True, exist_ok=True)
    args = [a.format(**{k: str(v) for k, v in folders.items()}) for a in argv]
    result = cli(*args, env={"HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in lines if line.startswith("error: ")]  # above it only progress bars (distill's tokenizing)
    assert len(errors) == 1 and errors[0] == lines[-1] and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if not_made:
        assert not (folders["root"] / not_made).exists()
    if case.startswith("push"):  # the stage folder is never edited
        assert sorted(p.name for p in folders["samples"].iterdir()) == ["manifest.json", "shards"]
    if case == "push: offline without --dry-run":
        staged = folders["root"] / "staged"
        assert (staged / "README.md").is_file() and json.loads((folders["samples"] / "manifest.json").read_text())["complete"]
