"""Every shipped recipe builds into its stage configs: a typo in a YAML fails here, not on a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakit.config import build, load_recipe_section
from datakit.filter import FilterConfig
from datakit.mix import MixConfig
from datakit.push import PushConfig
from datakit.sample import SampleConfig

ROOT = Path(__file__).resolve().parent.parent
STAGES = {"sample": SampleConfig, "filter": FilterConfig, "mix": MixConfig, "push": PushConfig}
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_section_of_a_shipped_recipe_builds_its_stage_config(recipe: Path) -> None:
    built = {stage: build(cls, load_recipe_section(recipe, stage), f"{recipe.name}:{stage}") for stage, cls in STAGES.items()}
    assert any(load_recipe_section(recipe, stage) for stage in STAGES), f"{recipe.name} configures no stage"
    mix = built["mix"]
    if load_recipe_section(recipe, "mix"):
        assert mix.sources and all(q >= 0 for domains in mix.quotas.values() for q in domains.values())
        names = [b.name for b in mix.decontamination.benchmarks]
        assert len(names) == len(set(names)) and all(b.fields for b in mix.decontamination.benchmarks)


def test_the_r1_recipe_asks_for_600k_reasoning_and_200k_non_reasoning() -> None:
    mix = build(MixConfig, load_recipe_section(ROOT / "recipes" / "r1-800k.yaml", "mix"))
    assert {kind: sum(d.values()) for kind, d in mix.quotas.items()} == {"reasoning": 600_000, "non_reasoning": 200_000}
    assert {b.name for b in mix.decontamination.benchmarks} == {"aime24", "math500", "gpqa_diamond", "livecodebench", "humaneval"}
