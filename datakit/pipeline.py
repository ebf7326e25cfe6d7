"""`datakit run`: the whole pipeline from one recipe — (identity ->) sample -> filter -> mix -> distill -> eval.

A recipe has one section per stage, each mapping one-to-one onto the stage's config; a section may
also be a list, for a stage run several times (R1 samples reasoning prompts from R1 and non-reasoning
ones from V3, and filters each with its own chain). Every stage resumes by itself and a finished one
is a no-op, so re-running the recipe skips what is done. `check_pipeline` validates a recipe without
running it: every section builds, every file it names exists or is made by an earlier stage.
Each stage run's wall time goes into `run-RECIPE.json` beside the stage folders as the run goes.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datakit import __version__
from datakit.config import build, load_recipe
from datakit.dataset import write_json_atomic
from datakit.errors import DatakitError
from datakit.schema import default_verifier

ORDER = ("identity", "sample", "filter", "mix", "distill", "eval")


def _config_classes() -> dict[str, type]:
    from datakit.distill import DistillConfig
    from datakit.eval import EvalConfig
    from datakit.filter import FilterConfig
    from datakit.identity import IdentityConfig
    from datakit.mix import MixConfig
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
class StageTime:
    """One stage run's wall time in a `datakit run` (a stage finished by an earlier run takes ~0 s: it is skipped)."""

    stage: str
    where: str
    output: str
    seconds: float


def run_summary_path(recipe: str | Path, steps: list[Step]) -> Path:
    """`run-RECIPE.json` in the folder that holds the stage folders (out/demo/ for the demo)."""
    outputs = [str(Path(out).resolve().parent) for step in steps if (out := getattr(step.config, "output", ""))]
    return Path(os.path.commonpath(outputs) if outputs else ".") / f"run-{Path(recipe).stem}.json"


def write_run_summary(path: Path, recipe: str | Path, times: list[StageTime], complete: bool) -> None:
    """Rewritten after every stage, so a killed or failed run still shows what the finished stages took."""
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "recipe": str(recipe),
        "datakit_version": __version__,
        "stages": [asdict(t) for t in times],
        "total_seconds": round(sum(t.seconds for t in times), 1),
        "complete": complete,
    }
    write_json_atomic(path, summary)


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
    """What would stop the run: missing input files, chains that do not load, inputs no stage makes, and a
    demo-sized judge set to grade a real teacher's answers."""
    from datakit.filter import config_chain
    from datakit.models import EMBEDDED

    problems: list[str] = []
    made: set[str] = set()
    teachers = {_norm(s.config.output): s.config.model for s in steps if s.stage == "sample"}
    for step in steps:
        for i in step_inputs(step):
            if _norm(i.path) not in made and not Path(i.path).exists() and not (i.hub_ok and _looks_like_hub_id(i.path)):
                problems.append(f"{step.where}: {i.what} {i.path!r} does not exist and no earlier stage writes it")
        if step.stage == "filter":
            try:
                chain = config_chain(step.config)
            except DatakitError as e:
                problems.append(f"{step.where}: chain: {e}")
                continue
            teacher = teachers.get(_norm(step.config.input))
            for used in chain.models():
                if teacher and teacher not in EMBEDDED and used["model"] in EMBEDDED:
                    problems.append(
                        f"{step.where}: the {used['filter']} is {used['model']!r}, the 135M demo model, grading {teacher}'s answers; "
                        f"set a strong one (`filters: {{{used['filter']}: {{model: ..., backend: {{name: vllm}}}}}}` or --judge-model)"
                    )
        output = getattr(step.config, "output", "")
        if not output and step.stage != "eval":
            problems.append(f"{step.where}: no `output:` folder")
        made.add(_norm(output))
    return problems + judge_gaps(domain_plan(steps))


def _norm(path: str) -> str:
    return str(Path(path)) if path else ""


def _looks_like_hub_id(text: str) -> bool:
    """org/name with no file suffix: what the Hub (models or datasets) accepts, or a model alias."""
    from datakit.models import EMBEDDED

    if text in EMBEDDED:
        return True
    shaped = bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and not text.endswith((".jsonl", ".json", ".parquet", ".yaml"))
    return shaped and not Path(text).parent.is_dir()  # out/mix with out/ here is a local path


@dataclass
class DomainPlan:
    """Where one domain's rows come from and what decides them: what `datakit run --dry-run` lists."""

    domain: str
    source: str  # the sample run's prompts
    verifier: str  # the rule check of its rows (judge: none can)
    judge: str  # the model deciding what rules cannot ("" where the chain has no judge)
    unjudged: str  # without a judge, what happens to rows no rule decides: kept | rejected
    where: str  # the sample run, for messages


def domain_plan(steps: list[Step]) -> list[DomainPlan]:
    """Each (domain, verifier) of each sample run, with the judge of the chain that filters its output.
    Local prompt files are read for their rows' domains; Hub sets are planned from the ingest settings."""
    from datakit.filter import config_chain

    chains = {}
    for step in steps:
        if step.stage == "filter":
            try:
                chains[_norm(step.config.input)] = config_chain(step.config)
            except DatakitError:
                continue  # check_pipeline reports it
    plan = []
    for step in steps:
        if step.stage != "sample":
            continue
        chain = chains.get(_norm(step.config.output))
        filters = {f.name: f for f in chain.filters} if chain else {}
        judge = filters["judge"].model if "judge" in filters else ""
        correctness = filters.get("correctness")
        unjudged = "rejected" if correctness is not None and correctness.unverified == "reject" else "kept"
        inputs = [step.config.input] if isinstance(step.config.input, str) else step.config.input
        for domain, verifier in _domains_and_verifiers(inputs, step.config.ingest):
            plan.append(DomainPlan(domain, ", ".join(inputs), verifier, judge, unjudged, step.where))
    return plan


def _domains_and_verifiers(inputs: list[str], ingest: Any) -> list[tuple[str, str]]:
    """The (domain, verifier) pairs a sample run's prompts carry: read from local files (their rows may name
    their own), else what the ingest settings give every row of a Hub set."""
    from datakit.ingest import ColumnMapping, load_prompts

    if all(Path(i).exists() for i in inputs):
        table = load_prompts(inputs, ingest).prompts.select(["domain", "verifier"])
        return sorted(set(zip(table.column("domain").to_pylist(), table.column("verifier").to_pylist())))
    choice = ingest.mapping.choices != ColumnMapping.choices  # options mapped: a multiple-choice set
    domains = set(ingest.domains.values()) or {ingest.domain}  # with a map, every row takes a mapped domain
    return sorted((d, "choice" if choice else default_verifier(d, True)) for d in domains)


def judge_gaps(plan: list[DomainPlan]) -> list[str]:
    """Domains whose rows only a judge can decide, filtered by a chain that has none and rejects what the rules
    leave unverified: every one of those rows would be thrown away."""
    return [
        f"{p.where}: {p.domain} rows need a judge (verifier judge) but the chain that filters them has none and rejects them unverified"
        for p in plan if p.verifier == "judge" and not p.judge and p.unjudged == "rejected"
    ]
