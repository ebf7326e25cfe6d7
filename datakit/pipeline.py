"""`datakit run`: the whole pipeline from one recipe — (identity ->) sample -> filter -> mix -> distill -> eval.

A recipe has one section per stage, each mapping one-to-one onto the stage's config; a section may
also be a list, for a stage run several times (R1 samples reasoning prompts from R1 and non-reasoning
ones from V3, and filters each with its own chain). Every stage resumes by itself and a finished one
is a no-op, so re-running the recipe skips what is done. `check_pipeline` validates a recipe without
running it: every section builds, every file it names exists or is made by an earlier stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit.config import build, load_recipe
from datakit.errors import DatakitError

ORDER = ("identity", "sample", "filter", "mix", "distill", "eval")


def _config_classes() -> dict[str, type]:
    from datakit.distill import DistillConfig
    from datakit.eval import EvalConfig
    from datakit.filter import FilterConfig
    from datakit.mix import MixConfig
    from datakit.identity import IdentityConfig
    from datakit.sample import SampleConfig

    return {"identity": IdentityConfig, "sample": SampleConfig, "filter": FilterConfig, "mix": MixConfig, "distill": DistillConfig, "eval": EvalConfig}


@dataclass
class Step:
    stage: str
    config: Any
    where: str  # "recipe.yaml: filter[1]", for messages


def load_pipeline(recipe: str | Path) -> list[Step]:
    """Every stage run the recipe asks for, in pipeline order, as typed configs."""
    path = Path(recipe)
    data = load_recipe(path)
    classes = _config_classes()
    steps = []
    for stage in ORDER:
        sections = data.get(stage) or []
        for i, section in enumerate(sections if isinstance(sections, list) else [sections]):
            where = f"{path.name}: {stage}" + (f"[{i}]" if isinstance(sections, list) else "")
            if not isinstance(section, dict):
                raise DatakitError(f"{where}: must be a mapping of settings")
            steps.append(Step(stage, build(classes[stage], section, where), where))
    if not steps:
        raise DatakitError(f"{path}: no stage sections ({', '.join(ORDER)})")
    return steps


@dataclass
class Input:
    what: str  # "input", "source", "benchmark aime24", ...
    path: str
    hub_ok: bool = True  # a Hub id (or model alias) is a valid value


def step_inputs(step: Step) -> list[Input]:
    """The files, folders and Hub ids a stage run reads (empty settings left out)."""
    c = step.config
    if step.stage == "identity":
        found = []  # made from the templates in datakit/identity.py
    elif step.stage == "sample":
        found = [Input("input", p) for p in ([c.input] if isinstance(c.input, str) else c.input)]
    elif step.stage == "filter":
        found = [Input("input", c.input)]
    elif step.stage == "mix":
        found = [Input("source", s.path) for s in c.sources]
        found += [Input(f"benchmark {b.name}", b.path, hub_ok=False) for b in c.decontamination.benchmarks if b.path.endswith((".jsonl", ".json", ".parquet"))]
    elif step.stage == "distill":
        found = [Input("dataset", c.dataset), Input("chat_template", c.chat_template or "", False), Input("deepspeed", c.deepspeed or "", False)]
    else:
        found = [Input("model", m) for m in c.models] + [Input(f"benchmark {b.name}", b.path) for b in c.benchmarks]
    return [i for i in found if i.path]


def check_pipeline(steps: list[Step]) -> list[str]:
    """What would stop the run: missing input files, chains that do not load, inputs no stage makes."""
    from datakit.chain import load_chain

    problems: list[str] = []
    made: set[str] = set()
    for step in steps:
        for i in step_inputs(step):
            if _norm(i.path) not in made and not Path(i.path).exists() and not (i.hub_ok and _looks_like_hub_id(i.path)):
                problems.append(f"{step.where}: {i.what} {i.path!r} does not exist and no earlier stage writes it")
        if step.stage == "filter":
            try:
                load_chain(step.config.chain)
            except DatakitError as e:
                problems.append(f"{step.where}: chain: {e}")
        output = getattr(step.config, "output", "")
        if not output and step.stage != "eval":
            problems.append(f"{step.where}: no `output:` folder")
        made.add(_norm(output))
    return problems


def _norm(path: str) -> str:
    return str(Path(path)) if path else ""


def _looks_like_hub_id(text: str) -> bool:
    """org/name with no file suffix: what the Hub (models or datasets) accepts, or a model alias."""
    from datakit.models import EMBEDDED

    if text in EMBEDDED:
        return True
    shaped = bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and not text.endswith((".jsonl", ".json", ".parquet", ".yaml"))
    return shaped and not Path(text).parent.is_dir()  # out/mix with out/ here is a local path
