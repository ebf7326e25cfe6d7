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
