"""`datakit eval`: pass@1 and cons@k of one or more models on benchmarks, R1's way (§3.1).

For each model and benchmark, `datakit sample` draws exactly k answers per problem (R1's sampling:
temperature 0.6, top-p 0.95, up to 32768 tokens) into its own resumable folder, and the correctness
filter's verifiers grade them. pass@1 is the share of correct answers averaged over problems; cons@k
is majority voting: the most frequent answer of a problem, right or wrong. Answers are grouped first by
`vote_key` (normalised text, numbers by value); on math-verified problems the groups whose answers
math-verify finds equal are then merged, so `x=2`, `2` and `\\frac{4}{2}` are one vote. Programs have no
majority (two right programs are rarely the same text), so a benchmark graded by the code verifier
reports cons@k as not applicable (None), never a made-up number; pass@1 is its score, as R1 reports
for LiveCodeBench and Codeforces. A problem that came back with fewer or more than k answers stops the
run — a known harness generated fewer than asked and silently halved its scores.

Each score gets a 95% interval by bootstrap over problems, and with several models each one is compared
with the first by a paired bootstrap over the same problems: the question a benchmark of 40 problems
answers is "would this hold on other problems drawn the same way", and the intervals say how well.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datakit.backends import BackendConfig, SamplingParams, make_backend, resolve_backend_name
from datakit.config import NOT_HASHED
from datakit.dataset import read_manifest, read_table, write_json_atomic
from datakit.errors import DatakitError
from datakit.ingest import IngestConfig
from datakit.math_check import same_answer
from datakit.models import DEFAULT_MODEL, EMBEDDED
from datakit.pool import map_with_timeout
from datakit.verify import normalize_text

SCORES = "scores.json"
DEMO_HELDOUT = "data/demo/heldout.jsonl"  # 40 math problems the demo never samples for training
UNVOTABLE = ("code",)  # verifiers whose extracted answers are programs: no majority vote among them
# verdicts that say nothing about the model: no verifier could decide, or the code could not be checked
UNGRADABLE = ("unverified", "bad_reference", "unsupported_language", "unserializable_result")
RULE_VERIFIERS = ("math", "code", "choice", "exact")  # what eval grades: the judge needs a model eval does not load
EQUIVALENT = ("math",)  # verifiers whose answers are voted on by math equivalence; choice and exact keep the text key
CONFIDENCE = 0.95  # of every interval
BOOTSTRAP_SEED = 0  # fixed: the same answers give the same intervals on every run and machine


@dataclass
class EvalBenchmark:
    """Problems with references: a .jsonl/.parquet file or Hub dataset, read as `datakit sample` reads prompts.
    R1's four (AIME 2024, MATH-500, GPQA Diamond, LiveCodeBench) are presets: `datakit.benchmarks`."""

    name: str = "demo-heldout"
    path: str = DEMO_HELDOUT
    k: int = 4  # answers per problem (R1: 64 for AIME, 4-16 for larger sets)
    # for rows without a domain column: math (boxed answers), science with options (letters) or code (tests);
    # None: every row names its own in a `domain` column
    domain: str | None = "math"
    ingest: IngestConfig = field(default_factory=IngestConfig)  # its domain is `domain`

    def __post_init__(self) -> None:
        """One place says the domain: an ingest.domain that disagrees would sample one domain and grade another."""
        if self.domain is None:
            return
        if self.ingest.domain not in (IngestConfig.domain, self.domain):
            raise DatakitError(f"benchmarks.{self.name}: ingest.domain is {self.ingest.domain!r} but domain is {self.domain!r}; set `domain:` only")
        self.ingest = replace(self.ingest, domain=self.domain)


@dataclass
class EvalConfig:
    """Everything `datakit eval` needs; a recipe's `eval:` section maps onto it one-to-one."""

    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])  # aliases, folders (a distill output too) or Hub ids
    benchmarks: list[EvalBenchmark] = field(default_factory=lambda: [EvalBenchmark()])
    output: str = field(default="out/eval", metadata=NOT_HASHED)
    sampling: SamplingParams = field(default_factory=SamplingParams)  # `n` is each benchmark's k
    backend: BackendConfig = field(default_factory=BackendConfig)
    prefill_think: bool = False  # open the think block in the prompt, as R1's template does
    workers: int = field(default=0, metadata=NOT_HASHED)  # grading processes; 0 = one per core
    vote_timeout_s: float = field(default=30.0, metadata=NOT_HASHED)  # per problem's equivalence grouping (sympy can hang)
    bootstrap_resamples: int = field(default=2000, metadata=NOT_HASHED)  # resamples of the problems per interval
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class ProblemScore:
    prompt_id: str
    samples: int
    correct: int
    vote: str | None  # the majority answer (its first sample's vote_key), None when no sample stated one or there is no vote
    vote_correct: bool | None  # None: no vote among programs
    vote_count: int | None = None  # samples in the winning group
    vote_count_correct: int | None = None  # of those, graded correct
    vote_grouping: str | None = None  # "math" (vote_key, then equivalence) | "text" (vote_key) | "fallback" (math timed out or failed)


def pass_at_1(problems: list[ProblemScore]) -> float:
    """Mean over problems of the share of correct samples (R1's pass@1 with k samples)."""
    return sum(p.correct / p.samples for p in problems) / len(problems) if problems else 0.0


def cons_at_k(problems: list[ProblemScore]) -> float | None:
    """Share of problems whose majority-vote answer is correct; None when some problem has no vote (programs)."""
    if any(p.vote_correct is None for p in problems):
        return None
    return sum(p.vote_correct for p in problems) / len(problems) if problems else 0.0  # type: ignore[misc]


_FRACTION = re.compile(r"^(-?)\\frac\{(\d+)\}\{(\d+)\}$")


def vote_key(extracted: str) -> str:
    """The form answers are grouped by for the vote: normalised text, numbers by value: 14, 14.0, $14 and
    \\frac{28}{2} are one answer, 1,400 is 1400, 0.5 is \\frac{1}{2}. Other expressions stay as written."""
    text = normalize_text(extracted).replace("\\$", "").replace("$", "").replace("\\!", "").strip()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    fraction = _FRACTION.match(text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    try:
        if fraction:
            return str(Fraction(int(fraction[2]), int(fraction[3])) * (-1 if fraction[1] else 1))
        return str(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return text


def key_groups(extracted: Sequence[str | None]) -> list[list[int]]:
    """Indices of the samples that share a `vote_key`, groups in order of their first sample; samples that
    stated no answer are in none. Equal keys are one answer without asking math-verify."""
    groups: dict[str, list[int]] = {}
    for i, answer in enumerate(extracted):
        key = vote_key(answer) if answer else ""
        if key:  # "" too: an answer of only punctuation states nothing
            groups.setdefault(key, []).append(i)
    return list(groups.values())


def merge_equivalent(representatives: Sequence[str]) -> list[int]:
    """For each group (given by its first answer, in order of first appearance), the index of the group it
    joins: the earliest earlier leader (a group that joined none) whose answer `same_answer` finds equal,
    else itself. Only leaders are compared, in order: equivalence by math-verify need not be transitive
    ("20\\%" equals both 20 and 0.2, which differ), so the order of first appearance decides: 20, 20\\%, 0.2
    gives {20, 20\\%} and {0.2}; 20\\%, 20, 0.2 gives one group led by 20\\%.

    Unbounded like `same_answer`: run it through `datakit.pool.map_with_timeout`."""
    joins: list[int] = []
    for i, answer in enumerate(representatives):
        leaders = (j for j, joined in enumerate(joins) if joined == j)
        joins.append(next((j for j in leaders if same_answer(representatives[j], answer)), i))
    return joins


def score_problem(
    prompt_id: str, verdicts: list[str], extracted: list[str | None], votable: bool = True,
    joins: list[int] | None = None, grouping: str = "text",
) -> ProblemScore:
    """Grade one problem's k samples: the correct count, and the majority vote over stated answers.

    Answers are grouped by `vote_key`; `joins` (from `merge_equivalent` over those groups) merges groups
    further. The largest group wins; a tie goes to the group whose earliest sample comes first. The vote is
    correct when more than half of the winning group was graded correct: a consistent verifier grades a
    whole group alike, and where it does not (the equivalence check merged answers the verifier tells
    apart, or the verifier missed one spelling of a right answer) one accepted spelling must not carry a
    wrong majority. Programs (`votable` False) get no vote: the vote fields are None."""
    correct = sum(v == "correct" for v in verdicts)
    if not votable:
        return ProblemScore(prompt_id, len(verdicts), correct, None, None)
    groups = key_groups(extracted)
    if joins is not None:
        merged: dict[int, list[int]] = {}
        for group, joined in zip(groups, joins):
            merged.setdefault(joined, []).extend(group)
        groups = [sorted(members) for members in merged.values()]
    if not groups:
        return ProblemScore(prompt_id, len(verdicts), correct, None, False, 0, 0, grouping)
    winner = max(groups, key=lambda members: (len(members), -members[0]))
    right = sum(verdicts[i] == "correct" for i in winner)
    vote = vote_key(extracted[winner[0]])  # type: ignore[arg-type]
    return ProblemScore(prompt_id, len(verdicts), correct, vote, 2 * right > len(winner), len(winner), right, grouping)


def score_problems(
    problems: Sequence[tuple[str, str, list[str], list[str | None]]], timeout_s: float = 30.0, workers: int | None = None
) -> list[ProblemScore]:
    """Score (prompt_id, verifier, verdicts, extracted) problems. Math-verified ones with two or more
    `vote_key` groups are merged by equivalence in worker processes, one problem per item with
    `timeout_s` for all its comparisons; a problem whose merging times out or fails keeps its vote_key
    groups and says so (`vote_grouping` "fallback")."""
    pending = {}
    for n, (_, verifier, _, extracted) in enumerate(problems):
        groups = key_groups(extracted)
        if verifier in EQUIVALENT and len(groups) > 1:
            pending[n] = tuple(extracted[g[0]] for g in groups)
    outcomes = dict(zip(pending, map_with_timeout(merge_equivalent, list(pending.values()), timeout_s, workers)))
    scored = []
    for n, (pid, verifier, verdicts, extracted) in enumerate(problems):
        outcome = outcomes.get(n)
        if verifier in UNVOTABLE:
            scored.append(score_problem(pid, verdicts, extracted, votable=False))
        elif outcome is not None and outcome.status != "ok":
            scored.append(score_problem(pid, verdicts, extracted, grouping="fallback"))
        else:
            joins = outcome.value if outcome is not None else None
            scored.append(score_problem(pid, verdicts, extracted, joins=joins, grouping="math" if verifier in EQUIVALENT else "text"))
    return scored


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """The 95% percentile-bootstrap interval of the mean of per-problem values: draw as many problems as
    there are, with replacement, `resamples` times, and take the middle 95% of the means. For a paired
    comparison pass each problem's difference. Seeded, so the same values give the same interval; None
    without values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // data.size)  # bound memory: a chunk of resamples at a time
    means = np.concatenate([
        data[rng.integers(0, data.size, size=(min(chunk, resamples - done), data.size))].mean(axis=1)
        for done in range(0, resamples, chunk)
    ])
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def problem_values(result: dict[str, Any], metric: str) -> dict[str, float] | None:
    """Each problem's share of correct samples (pass@1) or its vote's correctness (cons@k) in a result,
    by prompt id; None where the metric does not apply (cons@k of code)."""
    if metric == "cons@k" and result["cons@k"] is None:
        return None
    key = (lambda p: p["correct"] / p["samples"]) if metric == "pass@1" else (lambda p: float(p["vote_correct"]))
    return {p["prompt_id"]: key(p) for p in result["per_problem"]}


def compare(baseline: dict[str, Any], other: dict[str, Any], resamples: int = 2000) -> dict[str, Any]:
    """`other` minus `baseline` on one benchmark, over the problems both answered, with a paired bootstrap
    interval (the same resampled problems for both models, so problem difficulty cancels out). A difference
    is beyond the noise when its interval excludes 0."""
    passed, baseline_passed = problem_values(other, "pass@1"), problem_values(baseline, "pass@1")
    shared = [pid for pid in passed if pid in baseline_passed]  # type: ignore[union-attr]
    comparison: dict[str, Any] = {"benchmark": other["benchmark"], "model": other["label"], "baseline": baseline["label"], "problems": len(shared)}
    for metric in ("pass@1", "cons@k"):
        mine, theirs = problem_values(other, metric), problem_values(baseline, metric)
        if mine is None or theirs is None or not shared:
            comparison.update({f"{metric}_diff": None, f"{metric}_diff_ci": None, f"{metric}_beyond_noise": None})
            continue
        diffs = [mine[pid] - theirs[pid] for pid in shared]
        ci = bootstrap_ci(diffs, resamples)
        comparison.update({
            f"{metric}_diff": round(sum(diffs) / len(diffs), 4), f"{metric}_diff_ci": ci, f"{metric}_beyond_noise": ci is not None and (ci[0] > 0 or ci[1] < 0),
        })
    return comparison


def comparisons(results: list[dict[str, Any]], resamples: int = 2000) -> list[dict[str, Any]]:
    """Every model against the first model with a result on the same benchmark (the baseline, e.g. the
    teacher before its student), benchmark by benchmark."""
    found = []
    for bench in dict.fromkeys(r["benchmark"] for r in results):
        baseline, *others = [r for r in results if r["benchmark"] == bench]
        found.extend(compare(baseline, other, resamples) for other in others)
    return found


def model_label(model: str) -> str:
    """A folder name for a model's results: the alias, the folder's name, or the Hub id with / as __."""
    if model in EMBEDDED:
        return model
    path = Path(model)
    if path.exists():
        return path.resolve().name
    return re.sub(r"[^A-Za-z0-9._-]+", "__", model)


def model_path(model: str) -> str:
    """What to load: a `datakit distill` folder holds the student in model/."""
    inner = Path(model) / "model"
    return str(inner) if (inner / "config.json").is_file() else model


def model_roles(models: list[str]) -> dict[str, str]:
    """By label: "after" for a model that is a `datakit distill` folder, and "before" for the model it was
    trained from when that one is evaluated too; a model eval cannot place has no role."""
    roles = {}
    for model in models:
        manifest = (read_manifest(Path(model)) if Path(model).is_dir() else None) or {}
        if manifest.get("stage") != "distill":
            continue
        roles[model_label(model)] = "after"
        base = model_label(manifest["config"]["model"])
        if base in map(model_label, models):
            roles[base] = "before"
    return roles


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Sample, grade and score every (model, benchmark); resumable; returns what scores.json holds."""
    from datakit.filters.correctness import Correctness
    from datakit.plots import eval_figure, save
    from datakit.sample import SampleConfig, run_sample

    _check_config(config)
    out = Path(config.output)
    grader = Correctness(workers=config.workers)
    backend_config = replace(config.backend, name=resolve_backend_name(config.backend.name))
    results = []
    for model in config.models:
        label, backend = model_label(model), None
        try:
            for bench in config.benchmarks:
                folder = out / label / bench.name
                sample = SampleConfig(
                    input=bench.path, output=str(folder), model=model_path(model), sampling=replace(config.sampling, n=bench.k),
                    backend=backend_config, ingest=bench.ingest, prefill_think=config.prefill_think, progress=config.progress,
                )
                if not _complete(folder):  # the engine loads only for a model with answers still to draw
                    _check_problems(bench)
                    backend = backend or make_backend(backend_config, sample.model, sample.prefill_think)
                run_sample(sample, backend)
                results.append(_score(grader, folder, model, label, bench, config.vote_timeout_s, config.bootstrap_resamples))
        finally:
            if backend is not None:
                backend.close()
    scores = assemble_scores(config, results)
    write_json_atomic(out / SCORES, scores)
    save(eval_figure(scores), out / "eval.png")
    return scores


def assemble_scores(config: EvalConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    """What scores.json holds: the run's settings, one result per (model, benchmark), and the comparisons."""
    return {
        "models": config.models,
        "sampling": {**config.sampling.__dict__, "n": "k per benchmark"},
        "bootstrap": {"resamples": config.bootstrap_resamples, "seed": BOOTSTRAP_SEED, "confidence": CONFIDENCE},
        "results": results,
        "comparisons": comparisons(results, config.bootstrap_resamples),
        "roles": model_roles(config.models),
    }


def _check_config(config: EvalConfig) -> None:
    if not config.models or not config.benchmarks:
        raise DatakitError("eval needs at least one model and one benchmark")
    labels = [model_label(m) for m in config.models]
    if len(set(labels)) != len(labels):
        raise DatakitError(f"models: two models would share a results folder ({labels}); rename one")
    names = [b.name for b in config.benchmarks]
    if len(set(names)) != len(names) or any(not re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names):
        raise DatakitError(f"benchmarks: names must be distinct and use letters, digits, . _ - ({names})")
    for bench in config.benchmarks:
        if bench.k < 1:
            raise DatakitError(f"benchmarks.{bench.name}.k: must be >= 1, got {bench.k}")
    if config.vote_timeout_s <= 0 or config.bootstrap_resamples < 1:
        raise DatakitError(f"vote_timeout_s must be > 0 and bootstrap_resamples >= 1, got {config.vote_timeout_s} and {config.bootstrap_resamples}")


def _check_problems(bench: EvalBenchmark) -> None:
    """Refuse a benchmark before any answer is drawn when a row could not become a problem (a benchmark with
    problems left out is not that benchmark) or when a problem is not graded by a rule (every answer would
    be "unverified": rows without a `domain` column fall back to `general`, graded by the judge)."""
    from datakit.ingest import load_prompts

    ingested = load_prompts(bench.path, bench.ingest)
    if ingested.rejects:
        first = ingested.rejects[0].message()
        raise DatakitError(f"benchmarks.{bench.name}: {len(ingested.rejects)} of {ingested.rows_read} rows are not problems (first: {first}); fix the mapping (--map) or the rows")
    verifiers = Counter(ingested.prompts.column("verifier").to_pylist())
    ungraded = {v: n for v, n in verifiers.items() if v not in RULE_VERIFIERS}
    if ungraded:
        domains = sorted(set(ingested.prompts.column("domain").to_pylist()))
        raise DatakitError(
            f"benchmarks.{bench.name}: eval grades by rules ({', '.join(RULE_VERIFIERS)}), but {sum(ungraded.values())} problem(s) would be "
            f"graded by {', '.join(sorted(ungraded))} (domains {', '.join(domains)}); give the rows a `domain` column, or set the "
            "benchmark's domain (--domain math|code|science), or a `verifier` column"
        )


def _complete(folder: Path) -> bool:
    return bool((read_manifest(folder) or {}).get("complete"))


def _score(
    grader: Any, folder: Path, model: str, label: str, bench: EvalBenchmark, vote_timeout_s: float = 30.0, resamples: int = 2000,
) -> dict[str, Any]:
    """Grade a finished sample folder; check it holds exactly k samples of every problem."""
    columns = list(dict.fromkeys(["prompt_id", "sample_index", "verifier", "language", *grader.reads]))  # what the grader reads
    frame = pl.from_arrow(read_table(folder, columns=columns))
    counts = frame.group_by("prompt_id").len()
    wrong = counts.filter(pl.col("len") != bench.k)
    if wrong.height:
        examples = ", ".join(f"{p} ({n})" for p, n in wrong.head(5).iter_rows())
        raise DatakitError(f"{folder}: {wrong.height} problem(s) came back without exactly k={bench.k} samples: {examples}; re-run to resume, or delete the folder")
    graded = frame.hstack(grader.score(frame)).sort("prompt_id", "sample_index")
    problems = score_problems([
        (pid, group["verifier"][0], group["correct_verdict"].to_list(), group["correct_extracted"].to_list())
        for (pid,), group in graded.group_by("prompt_id", maintain_order=True)
    ], vote_timeout_s, grader.workers or os.cpu_count())
    too_long = unreadable_problems(folder)
    # counted as failed, never left out; programs get no vote, as for the answered problems
    problems += [ProblemScore(pid, bench.k, 0, None, None if verifier in UNVOTABLE else False) for pid, verifier in too_long]
    unverifiable = graded.filter(pl.col("correct_verdict").is_in(UNGRADABLE)).height
    cons = cons_at_k(problems)
    return {
        "model": model,
        "label": label,
        "benchmark": bench.name,
        "problems": len(problems),
        "k": bench.k,
        "pass@1": round(pass_at_1(problems), 4),
        "pass@1_ci": bootstrap_ci([p.correct / p.samples for p in problems], resamples),
        "cons@k": None if cons is None else round(cons, 4),
        "cons@k_ci": None if cons is None else bootstrap_ci([float(bool(p.vote_correct)) for p in problems], resamples),
        "vote_fallbacks": sum(p.vote_grouping == "fallback" for p in problems),
        "mixed_votes": sum(0 < (p.vote_count_correct or 0) < (p.vote_count or 0) for p in problems),
        "ungradable_samples": unverifiable,
        "problems_too_long": len(too_long),
        "verdicts": dict(Counter(graded["correct_verdict"].to_list())),
        "samples": str(folder),
        "per_problem": [p.__dict__ for p in problems],
    }


def unreadable_problems(folder: Path) -> list[tuple[str, str]]:
    """The problems the model never answered because they did not fit its context (`prompt_too_long` in the
    sample folder's rejects.jsonl): a score leaving them out would be a score on an easier benchmark."""
    path = folder / "rejects.jsonl"
    rejects = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    rows = [json.loads(r["raw"]) for r in rejects if r["reason"].startswith("prompt_too_long")]
    return [(row["prompt_id"], row["verifier"]) for row in rows]
