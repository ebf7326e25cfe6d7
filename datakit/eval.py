"""`datakit eval`: pass@1 and cons@k of one or more models on benchmarks, R1's way (§3.1).

For each model and benchmark, `datakit sample` draws exactly k answers per problem (R1's sampling:
temperature 0.6, top-p 0.95, up to 32768 tokens) into its own resumable folder, and the correctness
filter's verifiers grade them. pass@1 is the share of correct answers averaged over problems; cons@k
is majority voting: the most frequent extracted answer of a problem (grouped by normalised text, numbers
by value), right or wrong. Programs have no majority (two right programs are rarely the same text), so a
benchmark graded by the code verifier reports cons@k as not applicable (None), never a made-up number;
pass@1 is its score, as R1 reports for LiveCodeBench and Codeforces. A problem that came back with fewer
or more than k answers stops the run — a known harness generated fewer than asked and silently halved its
scores.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl

from datakit.backends import BackendConfig, SamplingParams, make_backend, resolve_backend_name
from datakit.config import NOT_HASHED
from datakit.dataset import read_manifest, read_table, write_json_atomic
from datakit.errors import DatakitError
from datakit.ingest import IngestConfig
from datakit.models import DEFAULT_MODEL, EMBEDDED
from datakit.verify import normalize_text

SCORES = "scores.json"
DEMO_HELDOUT = "data/demo/heldout.jsonl"  # 40 math problems the demo never samples for training
UNVOTABLE = ("code",)  # verifiers whose extracted answers are programs: no majority vote among them
# verdicts that say nothing about the model: no verifier could decide, or the code could not be checked
UNGRADABLE = ("unverified", "bad_reference", "unsupported_language", "unserializable_result")


@dataclass
class EvalBenchmark:
    """Problems with references: a .jsonl/.parquet file or Hub dataset, read as `datakit sample` reads prompts."""

    name: str = "demo-heldout"
    path: str = DEMO_HELDOUT
    k: int = 4  # answers per problem (R1: 64 for AIME, 4-16 for larger sets)
    domain: str = "math"  # for rows without a domain column: math (boxed answers) or code (tests)
    ingest: IngestConfig = field(default_factory=IngestConfig)  # its domain is `domain`

    def __post_init__(self) -> None:
        """One place says the domain: an ingest.domain that disagrees would sample one domain and grade another."""
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
    progress: bool = field(default=True, metadata=NOT_HASHED)


@dataclass
class ProblemScore:
    prompt_id: str
    samples: int
    correct: int
    vote: str | None  # the majority answer (normalised), None when no sample stated one or there is no vote
    vote_correct: bool | None  # None: no vote among programs


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


def score_problem(prompt_id: str, verdicts: list[str], extracted: list[str | None], votable: bool = True) -> ProblemScore:
    """Grade one problem's k samples: correct count, and the majority vote over stated answers (ties go to
    the answer stated first). A voted answer is correct when the verifier accepted it in any sample.
    Programs (`votable` False) get no vote: vote and vote_correct are None."""
    correct = sum(v == "correct" for v in verdicts)
    if not votable:
        return ProblemScore(prompt_id, len(verdicts), correct, None, None)
    keys = [vote_key(e) if e else None for e in extracted]
    votes = Counter(k for k in keys if k)
    vote = max(votes, key=lambda k: (votes[k], -keys.index(k))) if votes else None
    vote_correct = vote is not None and any(k == vote and v == "correct" for k, v in zip(keys, verdicts))
    return ProblemScore(prompt_id, len(verdicts), correct, vote, vote_correct)


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


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Sample, grade and score every (model, benchmark); resumable; returns what scores.json holds."""
    from datakit.filters.correctness import Correctness
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
                    backend = backend or make_backend(backend_config, sample.model, sample.prefill_think)
                run_sample(sample, backend)
                results.append(_score(grader, folder, model, label, bench))
        finally:
            if backend is not None:
                backend.close()
    scores = {"models": config.models, "sampling": {**config.sampling.__dict__, "n": "k per benchmark"}, "results": results}
    write_json_atomic(out / SCORES, scores)
    write_plot(out, scores)
    return scores


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


def _complete(folder: Path) -> bool:
    return bool((read_manifest(folder) or {}).get("complete"))


def _score(grader: Any, folder: Path, model: str, label: str, bench: EvalBenchmark) -> dict[str, Any]:
    """Grade a finished sample folder; check it holds exactly k samples of every problem."""
    frame = pl.from_arrow(read_table(folder, columns=["prompt_id", "sample_index", "verifier", "answer", "reference"]))
    counts = frame.group_by("prompt_id").len()
    wrong = counts.filter(pl.col("len") != bench.k)
    if wrong.height:
        examples = ", ".join(f"{p} ({n})" for p, n in wrong.head(5).iter_rows())
        raise DatakitError(f"{folder}: {wrong.height} problem(s) came back without exactly k={bench.k} samples: {examples}; re-run to resume, or delete the folder")
    graded = frame.hstack(grader.score(frame)).sort("prompt_id", "sample_index")
    problems = [
        score_problem(pid, group["correct_verdict"].to_list(), group["correct_extracted"].to_list(), group["verifier"][0] not in UNVOTABLE)
        for (pid,), group in graded.group_by("prompt_id", maintain_order=True)
    ]
    unverifiable = graded.filter(pl.col("correct_verdict").is_in(UNGRADABLE)).height
    cons = cons_at_k(problems)
    return {
        "model": model,
        "label": label,
        "benchmark": bench.name,
        "problems": len(problems),
        "k": bench.k,
        "pass@1": round(pass_at_1(problems), 4),
        "cons@k": None if cons is None else round(cons, 4),
        "ungradable_samples": unverifiable,
        "verdicts": dict(Counter(graded["correct_verdict"].to_list())),
        "samples": str(folder),
        "per_problem": [p.__dict__ for p in problems],
    }


def write_plot(out: Path, scores: dict[str, Any]) -> Path:
    """eval.png: pass@1 and cons@k per benchmark, one bar per model; a cons@k that does not apply (code) is
    an empty slot labelled "—" and named so under the axis, not a bar at zero that reads as a score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = scores["results"]
    benches = list(dict.fromkeys(r["benchmark"] for r in results))
    labels = list(dict.fromkeys(r["label"] for r in results))
    voteless = {r["benchmark"] for r in results if r["cons@k"] is None}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    width = 0.8 / max(len(labels), 1)
    for ax, metric in zip(axes, ("pass@1", "cons@k")):
        for j, label in enumerate(labels):
            values = [next((r[metric] for r in results if r["label"] == label and r["benchmark"] == b), 0.0) for b in benches]
            bars = ax.bar([i + j * width for i in range(len(benches))], [(v or 0.0) * 100 for v in values], width, label=label)
            ax.bar_label(bars, labels=["—" if v is None else f"{v * 100:.1f}" for v in values], fontsize=8)
        ticks = [f"{b}\n(no vote: code)" if metric == "cons@k" and b in voteless else b for b in benches]
        ax.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(benches))], ticks)
        ax.set_title(metric if metric == "pass@1" else "cons@k (majority vote)")
        ax.set_ylim(0, 105)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "eval.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
