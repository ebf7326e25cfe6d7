"""`datakit run` prints each stage run's wall time at the end and keeps them in run-RECIPE.json beside the
stage folders, rewritten after every stage; on the cheapest recipe: identity prompts, sampled by the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app


def _recipe(folder: Path, model: str) -> Path:
    recipe = folder / "tiny.yaml"
    recipe.write_text(
        "identity: {name: Tiny, creator: Tests, count: 3, languages: [en], output: out/identity.jsonl}\n"
        f"sample: {{input: out/identity.jsonl, output: out/samples, model: {model}, sampling: {{n: 1, max_tokens: 4}},"
        " progress: false, backend: {name: hf}}\n"
    )
    return recipe


def test_run_prints_and_records_each_stages_wall_time(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(_recipe(tmp_path, tiny_model))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((tmp_path / "out" / "run-tiny.json").read_text())
    assert [(s["stage"], s["output"]) for s in summary["stages"]] == [("identity", "out/identity.jsonl"), ("sample", "out/samples")]
    assert all(s["seconds"] >= 0 for s in summary["stages"]) and summary["complete"]
    assert summary["total_seconds"] == pytest.approx(sum(s["seconds"] for s in summary["stages"]), abs=0.1)
    text = result.output[result.output.index("wall time per stage"):]  # the table comes last
    for stage in summary["stages"]:
        assert f"{stage['stage']}" in text and f"{stage['seconds']:,.1f}" in text
    assert "total" in text and "run-tiny.json" in " ".join(text.split())


def test_a_failed_run_keeps_the_times_of_the_stages_that_finished(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = _recipe(tmp_path, tiny_model)
    recipe.write_text(recipe.read_text().replace("max_tokens: 4", "max_tokens: 0"))  # sample refuses it, after identity ran
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code != 0
    summary = json.loads((tmp_path / "out" / "run-tiny.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == ["identity"] and not summary["complete"]
    assert "wall time per stage" not in result.output
