"""Every shipped recipe passes `datakit run --dry-run`'s checks: a typo in a YAML fails here, not on a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit.config import build, load_recipe_section
from datakit.mix import MixConfig
from datakit.pipeline import check_pipeline, load_pipeline
from datakit.push import PushConfig

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")
WHOLE_PIPELINES = {"demo.yaml", "r1-800k-distill.yaml"}  # every input is shipped, on the Hub, or made by an earlier stage


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_every_shipped_recipe_passes_the_dry_run(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    steps = load_pipeline(recipe)
    problems = check_pipeline(steps)
    if recipe.name in WHOLE_PIPELINES:
        assert problems == []
    else:  # one stage of a larger run: only the inputs earlier runs make may be missing
        assert all("does not exist and no earlier stage writes it" in p for p in problems), problems
    for step in steps:
        if step.stage == "distill":
            assert step.config.source, f"{recipe.name}: a distill recipe cites where its hyperparameters come from"
    build(PushConfig, load_recipe_section(recipe, "push"))


def test_the_dry_run_names_a_missing_input_and_a_broken_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "sample: {input: prompts.jsonl, output: out/s}\n"
        "filter: {input: out/s, output: out/f, chain: nowhere.yaml}\n"
        "distill: {dataset: out/mixx, output: out/student}\n"
    )
    (tmp_path / "out").mkdir()
    problems = check_pipeline(load_pipeline(recipe))
    assert any("sample: input 'prompts.jsonl' does not exist" in p for p in problems)
    assert any("filter: chain:" in p and "nowhere.yaml" in p for p in problems)
    assert any("distill: dataset 'out/mixx' does not exist" in p for p in problems)  # out/ is here: a typo, not a Hub id
    assert not any("'out/s'" in p for p in problems)  # made by the sample stage


def test_the_r1_recipe_asks_for_600k_reasoning_and_200k_non_reasoning() -> None:
    mix = build(MixConfig, load_recipe_section(ROOT / "recipes" / "r1-800k.yaml", "mix"))
    assert {kind: sum(d.values()) for kind, d in mix.quotas.items()} == {"reasoning": 600_000, "non_reasoning": 200_000}
    assert {b.name for b in mix.decontamination.benchmarks} == {"aime24", "math500", "gpqa_diamond", "livecodebench", "humaneval"}


# a few rows in each Hub dataset's published shape (tests/data/code/README.md says where each comes from)
CODE_SHAPES = {"deepmind/code_contests": "code_contests.jsonl", "lighteval/code_generation_lite": "livecodebench.jsonl"}


def test_the_r1_recipe_maps_its_code_datasets_onto_tests() -> None:
    """The recipe's code mappings, read against rows in each dataset's real shape, give code prompts with
    tests: a wrong column name would otherwise surface on the cluster, as every sample failing."""
    from datakit.code_tests import CodeTests
    from datakit.ingest import load_prompts

    steps = load_pipeline(ROOT / "recipes" / "r1-800k-distill.yaml")
    reads = [(s.config.input, s.config.ingest) for s in steps if s.stage == "sample" and s.config.ingest.domain == "code"]
    reads += [(b.path, b.ingest) for s in steps if s.stage == "eval" for b in s.config.benchmarks if b.domain == "code"]
    assert sorted(path for path, _ in reads) == ["data/demo/humaneval.jsonl", "deepmind/code_contests", "lighteval/code_generation_lite"]
    for path, ingest in reads:
        source = ROOT / "tests" / "data" / "code" / CODE_SHAPES[path] if path in CODE_SHAPES else ROOT / path
        got = load_prompts(str(source), ingest)
        assert got.prompts.num_rows and not got.rejects, (path, [r.message() for r in got.rejects])
        assert set(got.prompts["verifier"].to_pylist()) == {"code"}
        assert all(CodeTests.from_reference(ref) for ref in got.prompts["reference"].to_pylist())


def test_the_r1_recipe_fills_the_code_quota_from_a_code_source() -> None:
    mix = build(MixConfig, load_recipe_section(ROOT / "recipes" / "r1-800k.yaml", "mix"))
    distill_mix = next(s.config for s in load_pipeline(ROOT / "recipes" / "r1-800k-distill.yaml") if s.stage == "mix")
    for config in (mix, distill_mix):
        assert "out/r1/code/filtered" in [s.path for s in config.sources] and config.quotas["reasoning"]["code"] == 150_000
