"""The judge as a stage setting: chosen in the recipe's filter section or on the CLI, merged into the chain,
shown in the manifest and report, refused when it is the demo model grading a real teacher; rows only a
judge can decide reach it, loaded lazily, and a missing reference is a rejection, never a pass."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from datakit.chain import load_chain
from datakit.cli import app
from datakit.dataset import write_shard
from datakit.errors import DatakitError
from datakit.filter import FilterConfig, config_chain, run_filter
from datakit.filters import make_filter
from datakit.pipeline import check_pipeline, domain_plan, load_pipeline
from datakit.schema import SAMPLE_SCHEMA
from test_filter_stage import _sample
from test_openai_backend import FakeServer

from conftest import ROOT, write_jsonl


def test_recipe_settings_are_merged_into_the_chain_and_recorded() -> None:
    config = FilterConfig(chain=str(ROOT / "filters" / "r1-non-reasoning.yaml"), filters={"judge": {"model": "org/judge", "backend": {"name": "openai"}}})
    chain = config_chain(config)
    judge = next(f for f in chain.filters if f.name == "judge")
    assert judge.model == "org/judge" and judge.backend.name == "openai"
    assert judge.max_tokens == 16 and judge.prompt_version == "v2"  # what the settings leave alone stays the chain's
    assert chain.models() == [{"filter": "judge", "model": "org/judge", "backend": "openai", "prompt_version": "v2"}]
    assert "org/judge" in chain.text  # manifests, reports and cards show the judge that decided
    assert chain.text != load_chain(config.chain).text
    with pytest.raises(DatakitError, match=r"filters.reward_model: the chain .* has no 'reward_model' filter"):
        config_chain(FilterConfig(chain=config.chain, filters={"reward_model": {"model": "x"}}))
    with pytest.raises(DatakitError, match="unknown setting"):
        config_chain(FilterConfig(chain=config.chain, filters={"judge": {"modle": "x"}}))


def _samples(root: Path, teacher: str, rows: list[dict]) -> Path:
    folder = root / "samples"
    write_shard(folder, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    (folder / "manifest.json").write_text(json.dumps({"stage": "sample", "model": teacher}))
    return folder


def _science(prompt: int, answer: str, reference: str | None = "photosynthesis") -> dict:
    row = _sample(prompt, 0, answer)
    return {**row, "domain": "science", "verifier": "judge", "reference": reference, "messages": [{"role": "user", "content": "How do plants make sugar?"}]}


class ContinuingJudge(FakeServer):
    """A server that continues the prefilled "VERDICT:" of prompt v2, as vLLM serve does."""

    def reply_for(self, prompt: str) -> str:
        return " INCORRECT\nThe city differs." if "Candidate answer:\nLyon" in prompt else " CORRECT"


def test_the_cli_judge_flags_reach_the_judge_and_the_report(tmp_path: Path) -> None:
    """`datakit filter --judge-model/--judge-backend --set filters.judge...`: the reasoning chain sends the science
    row the rules cannot decide to the judge (a server here), a math row never loads it, a row without a reference
    is rejected."""
    server = ContinuingJudge()
    rows = [_science(1, "Paris"), _science(2, "Lyon"), _sample(3, 0, "\\boxed{6}"), _science(4, "Paris", reference=None)]
    samples = _samples(tmp_path, "org/teacher", rows)
    try:
        result = CliRunner().invoke(app, [
            "filter", str(samples), str(tmp_path / "out"), "--chain", str(ROOT / "filters" / "r1-reasoning.yaml"), "--no-progress",
            "--no-plots", "--judge-model", "org/judge", "--judge-backend", "openai", "--set", f"filters.judge.backend.openai.base_url={server.url}",
            "--set", "filters.format.require_think=false", "--set", "filters.language.min_consistency=0",
            "--set", "filters.length.tokenizer=smollm2-135m-instruct",  # the teacher's own is on the Hub
        ])
    finally:
        server.httpd.shutdown()
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "judge: org/judge (backend openai, prompt_version v2)" in " ".join(result.output.split())
    out = pl.read_parquet(tmp_path / "out" / "*" / "shards" / "*.parquet").sort("prompt_id")
    assert out["judge_verdict"].to_list() == ["correct", "incorrect", "skipped", "no_reference"]
    assert out["rejected_by"].to_list() == [None, "judge", None, "judge"]
    assert out["reject_reason"][3] == "judge_no_reference: the prompt has no reference answer to judge against"
    assert len(server.requests) == 2  # the math row was decided by the rule, the unreferenced one never asked
    request = server.requests[0]
    assert request["messages"][-1] == {"role": "assistant", "content": "VERDICT:"} and request["continue_final_message"] is True
    assert out["judge_reply"][1] == "VERDICT: INCORRECT\nThe city differs."
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert report["judges"] == manifest["judges"] == [{"filter": "judge", "model": "org/judge", "backend": "openai", "prompt_version": "v2"}]
    assert "org/judge" in manifest["chain"]["yaml"]


def test_a_math_only_run_never_loads_the_judge(tmp_path: Path) -> None:
    """The reasoning chain holds a judge; math rows the rules decide must not start its engine (an unreachable
    server here would fail every row)."""
    samples = _samples(tmp_path, "org/teacher", [_sample(1, 0, "\\boxed{2}"), _sample(1, 1, "\\boxed{3}")])
    summary = run_filter(FilterConfig(
        input=str(samples), output=str(tmp_path / "out"), chain=str(ROOT / "filters" / "r1-reasoning.yaml"), progress=False, plots=False,
        workers=1, filters={"length": {"tokenizer": "smollm2-135m-instruct"}, "judge": {"model": "org/judge", "backend": {"name": "openai", "openai": {"base_url": "http://127.0.0.1:9/v1"}}}},
    ))
    out = pl.read_parquet(tmp_path / "out" / "*" / "shards" / "*.parquet").sort("sample_index")
    assert out["judge_verdict"].to_list() == ["skipped", None]
    assert out["rejected_by"].to_list() == [None, "correctness"]
    assert summary.report["rows_out"] == 1


def test_the_demo_judge_never_grades_a_real_teacher(tmp_path: Path) -> None:
    judge = make_filter("judge", {}, "t")
    judge.setup({"model": "deepseek-ai/DeepSeek-V3"})
    rows = pl.DataFrame([_science(1, "Paris")], schema_overrides={"reference": pl.String})
    with pytest.raises(DatakitError, match="the judge is 'smollm2-135m-instruct', the demo model, and the samples are deepseek-ai/DeepSeek-V3's"):
        judge.score(rows)


@pytest.mark.parametrize(
    "reply, verdict",
    [(" CORRECT", "correct"), (" **INCORRECT**\nbecause", "incorrect"), (" correct.", "correct"), (" The answer is CORRECT", "unparseable"),
     (" CORRECTLY", "unparseable"), ("", "unparseable"), (" INCORRECT. Actually CORRECT", "incorrect")],
)
def test_v2_reads_the_first_word_the_judge_wrote_after_verdict(reply: str, verdict: str) -> None:
    from datakit.filters.judge import parse_verdict

    assert parse_verdict("VERDICT:" + reply, "VERDICT:") == verdict


def test_a_prefilled_reply_is_continued_not_answered_anew() -> None:
    """The chat template renders the judge's written "VERDICT:" as the open end of its turn: no new
    assistant header after it, no end-of-turn marker closing it."""
    from transformers import AutoTokenizer

    from datakit.backends import render_prompts
    from datakit.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    [text] = render_prompts(tokenizer, [[{"role": "user", "content": "Grade this."}, {"role": "assistant", "content": "VERDICT:"}]], False)
    assert text.endswith("<|im_start|>assistant\nVERDICT:") and text.count("<|im_start|>assistant") == 1


def _recipe(tmp_path: Path, filter_settings: str) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": "s1", "question": "Why is the sky blue?", "answer": "Rayleigh scattering", "domain": "science"},
        {"id": "m1", "question": "1+1?", "answer": "2", "domain": "math"},
    ])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "sample: {input: prompts.jsonl, output: out/s, model: deepseek-ai/DeepSeek-R1}\n"
        f"filter: {{input: out/s, output: out/f, chain: {ROOT / 'filters' / 'r1-reasoning.yaml'}{filter_settings}}}\n"
    )
    return recipe


def test_the_dry_run_refuses_the_demo_judge_on_a_real_teacher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    problems = check_pipeline(load_pipeline(_recipe(tmp_path, "")))
    assert any("the judge is 'smollm2-135m-instruct', the 135M demo model, grading deepseek-ai/DeepSeek-R1's answers" in p for p in problems), problems
    chosen = _recipe(tmp_path, ", filters: {judge: {model: deepseek-ai/DeepSeek-V3, backend: {name: vllm}}}")
    assert check_pipeline(load_pipeline(chosen)) == []
    plan = {(p.domain, p.verifier, p.judge) for p in domain_plan(load_pipeline(chosen))}
    assert plan == {("math", "math", "deepseek-ai/DeepSeek-V3"), ("science", "judge", "deepseek-ai/DeepSeek-V3")}
    result = CliRunner().invoke(app, ["run", str(chosen), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "deepseek-ai/DeepSeek-V3" in result.output and "science" in result.output


def test_the_dry_run_refuses_judge_rows_a_chain_would_reject_unjudged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R1's science and logic answers need a judge: a chain without one that rejects unverified rows would
    throw every one away, which the dry run says before any GPU hour is spent."""
    monkeypatch.chdir(tmp_path)
    chain = tmp_path / "rules-only.yaml"
    chain.write_text("filters:\n  - correctness: {unverified: reject}\n")
    recipe = _recipe(tmp_path, "")
    recipe.write_text(recipe.read_text().replace(str(ROOT / "filters" / "r1-reasoning.yaml"), str(chain)))
    problems = check_pipeline(load_pipeline(recipe))
    assert problems == ["recipe.yaml: sample: science rows need a judge (verifier judge) but the chain that filters them has none and rejects them unverified"]


@pytest.mark.slow
def test_a_grading_request_longer_than_the_judge_s_context_is_a_rejection_not_a_crash() -> None:
    """The embedded judge (8,192 tokens of context) given a reference of ~12,000 words: that row is rejected as
    too long, saying by how much; the other row is judged."""
    judge = make_filter("judge", {"backend": {"name": "hf"}, "prompt_version": "v2", "max_tokens": 4}, "t")
    judge.setup({"model": "smollm2-135m-instruct"})
    rows = pl.DataFrame([_science(1, "Paris", reference="word " * 12_000), _science(2, "Paris", reference="Paris")])
    try:
        scores = judge.score(rows)
    finally:
        judge.close()
    assert scores["judge_verdict"][0] == "too_long" and scores["judge_verdict"][1] in ("correct", "incorrect")
    reasons = judge.keep(pl.concat([rows, scores], how="horizontal")).to_list()
    assert reasons[0].startswith("judge_too_long: the grading request does not fit the judge: prompt_too_long:") and "tokens" in reasons[0]
