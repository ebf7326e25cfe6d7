"""R1's evaluation table: each preset's mapping on a local copy in its published schema, the CLI's
`--benchmark` forms, the recipe, and one real eval of the embedded model over all four."""

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT
from test_eval import graded_answers

from datakit.backends import BackendConfig, SamplingParams
from datakit.benchmarks import PRESETS, benchmark_settings
from datakit.code_tests import CodeTests
from datakit.config import build, load_recipe_section
from datakit.errors import DatakitError
from datakit.eval import EvalBenchmark, EvalConfig, _check_problems, run_eval
from datakit.ingest import CHOICE_LETTERS, load_prompts

FIXTURES = ROOT / "tests" / "data" / "benchmarks"
R1 = ["aime24", "math500", "gpqa_diamond", "livecodebench"]


def local(name: str, k: int | None = None) -> EvalBenchmark:
    """A preset read from its fixture, as `--benchmark NAME=tests/data/benchmarks/NAME.jsonl` builds it."""
    (settings,) = benchmark_settings(f"{name}={FIXTURES / name}.jsonl", k=k)
    return build(EvalBenchmark, settings)


@pytest.mark.parametrize(("name", "domain", "verifier"), [
    ("aime24", "math", "math"), ("math500", "math", "math"), ("gpqa_diamond", "science", "choice"), ("livecodebench", "code", "code"),
])
def test_each_preset_ingests_its_published_schema(name: str, domain: str, verifier: str) -> None:
    bench = local(name)
    got = load_prompts(bench.path, bench.ingest)
    assert got.rejects == [] and got.prompts.num_rows == 5
    rows = got.prompts.to_pylist()
    assert {(r["domain"], r["verifier"], r["kind"]) for r in rows} == {(domain, verifier, "reasoning")}
    source = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    _check_problems(bench)  # every row is a problem eval can grade
    if name == "aime24":
        assert [r["reference"] for r in rows] == [s["answer"] for s in source] and rows[0]["prompt_id"] == str(source[0]["id"])
    if name == "math500":
        assert [r["prompt_id"] for r in rows] == [s["unique_id"] for s in source] and rows[0]["reference"] == "5\\sqrt{2}"
    if name == "gpqa_diamond":
        for row, raw in zip(rows, source):
            meta = json.loads(row["metadata"])
            assert row["prompt_id"] == raw["Record ID"] and meta["choices"][CHOICE_LETTERS.index(row["reference"])] == raw["Correct Answer"]
            assert meta["High-level domain"] == raw["High-level domain"]
            assert raw["Question"] in row["messages"][-1]["content"] and f"{row['reference']}) {raw['Correct Answer']}" in row["messages"][-1]["content"]
    if name == "livecodebench":
        tests = [CodeTests.from_reference(r["reference"]) for r in rows]
        assert [r["prompt_id"] for r in rows] == [s["question_id"] for s in source]
        assert [t.fn_name for t in tests] == [None, "sumPlus", None, None, "spread"]
        assert [len(t.cases) for t in tests] == [2, 3, 3, 3, 3]  # public and private cases together
        assert rows[0]["messages"][-1]["content"] == "Read A and B and print A+B."  # stdin: no starter code, no gap
        assert rows[4]["messages"][-1]["content"].endswith("\n\nclass Solution:\n    def spread(self, nums: List[int]) -> int:")


def test_gpqa_answers_are_graded_by_their_shuffled_letter(tmp_path: Path) -> None:
    bench = local("gpqa_diamond", k=3)
    prompts = load_prompts(bench.path, bench.ingest).prompts.to_pylist()
    letters = {r["prompt_id"]: r["reference"] for r in prompts}
    assert len(set(letters.values())) > 1  # GPQA lists the right answer first; the prompts do not
    other = {pid: next(x for x in "ABCD" if x != letter) for pid, letter in letters.items()}
    answers = {
        pid: [f"The answer is \\boxed{{{letter}}}.", f"**Final Answer**\n\\boxed{{{other[pid]}}}", "The answer is (A) or (B) or (C) or (D)."]
        for pid, letter in letters.items()
    }
    result = graded_answers(tmp_path, Path(bench.path), bench, answers)
    assert [(p["correct"], p["vote_correct"]) for p in result["per_problem"]] == [(1, True)] * 5  # the hedge states nothing: 1-1, first wins
    assert result["verdicts"] == {"correct": 5, "wrong": 5, "no_answer": 5} and result["pass@1"] == pytest.approx(1 / 3, abs=1e-4)


def test_the_r1_table_on_the_command_line_builds_four_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import datakit.eval
    from datakit.cli import app

    seen: list[EvalConfig] = []
    monkeypatch.setattr(datakit.eval, "run_eval", lambda config: seen.append(config) or {"results": [], "comparisons": []})

    def benches(*args: str) -> list[EvalBenchmark]:
        out = CliRunner().invoke(app, ["eval", "--model", "m", "--output", str(tmp_path), *args])
        assert out.exit_code == 0, out.output + repr(out.exception)
        return seen[-1].benchmarks

    table = benches("--benchmark", "r1")
    assert [(b.name, b.path, b.k, b.domain, b.ingest.config, b.ingest.split) for b in table] == [
        ("aime24", "HuggingFaceH4/aime_2024", 64, "math", None, "train"),
        ("math500", "HuggingFaceH4/MATH-500", 4, "math", None, "test"),
        ("gpqa_diamond", "Idavidrein/gpqa", 8, "science", "gpqa_diamond", "train"),
        ("livecodebench", "lighteval/code_generation_lite", 8, "code", "v4_v5", "test"),
    ]
    assert table[2].ingest.mapping.choices == "Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3"
    assert table[3].ingest.mapping.tests == "public_test_cases,private_test_cases" and seen[-1].sampling == SamplingParams()
    (gpqa,) = benches("--benchmark", f"gpqa_diamond={FIXTURES / 'gpqa_diamond.jsonl'}", "--k", "2")
    assert (gpqa.path, gpqa.k, gpqa.domain, gpqa.ingest.domain, gpqa.ingest.mapping.id) == (str(FIXTURES / "gpqa_diamond.jsonl"), 2, "science", "science", "Record ID")
    (one,) = benches("--benchmark", "math500")
    assert (one.name, one.path, one.k) == ("math500", "HuggingFaceH4/MATH-500", 4)
    mine, coded = benches("--benchmark", "mine=problems.jsonl", "--benchmark", "other.jsonl", "--map", "question=problem")
    assert (mine.name, mine.domain, mine.k, mine.ingest.mapping.question) == ("mine", None, 4, "problem")
    assert (coded.name, coded.domain) == ("other", None)
    (forced,) = benches("--benchmark", "mine=problems.jsonl", "--domain", "code")
    assert (forced.domain, forced.ingest.domain) == ("code", "code")


def test_a_benchmark_takes_its_domain_from_its_rows_and_refuses_what_it_cannot_grade(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"id": "m", "question": "2+2?", "answer": "4", "domain": "math"}) + "\n"
                     + json.dumps({"id": "s", "question": "Gas?", "choices": ["Ne", "Ar"], "answer": "Ar", "domain": "science"}) + "\n")
    (settings,) = benchmark_settings(f"mixed={mixed}")
    bench = build(EvalBenchmark, settings)
    prompts = load_prompts(bench.path, bench.ingest).prompts.to_pylist()
    assert [(p["domain"], p["verifier"]) for p in prompts] == [("math", "math"), ("science", "choice")]  # not forced to math
    _check_problems(bench)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": "b", "question": "2+2?", "answer": "4"}) + "\n")
    with pytest.raises(DatakitError, match=r"benchmarks\.bare: .* 1 problem\(s\) would be graded by judge \(domains general\); .*--domain"):
        _check_problems(build(EvalBenchmark, benchmark_settings(f"bare={bare}")[0]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"id": "x", "question": "Gas?", "choices": ["Ne", "Ar"], "answer": "Kr", "domain": "science"}) + "\n")
    with pytest.raises(DatakitError, match=rf"benchmarks\.broken: 1 of 1 rows are not problems \(first: {re.escape(str(broken))}:1: field 'answer'"):
        _check_problems(build(EvalBenchmark, benchmark_settings(f"broken={broken}")[0]))
    with pytest.raises(DatakitError, match="expected r1, a preset"):
        benchmark_settings("=x.jsonl")


def test_the_full_recipe_lists_the_r1_presets_as_they_are() -> None:
    config = build(EvalConfig, load_recipe_section(ROOT / "recipes" / "r1-800k-distill.yaml", "eval"))
    assert config.benchmarks[:4] == [build(EvalBenchmark, PRESETS[n].settings()) for n in R1]
    assert (config.sampling.temperature, config.sampling.top_p, config.sampling.max_tokens) == (0.6, 0.95, 32768)


@pytest.mark.slow
def test_the_r1_table_of_the_embedded_model_on_the_local_copies(embedded_model_folder: str, tmp_path: Path) -> None:
    benchmarks = [local(name, k=2 if name == "gpqa_diamond" else 1) for name in R1]
    config = EvalConfig(
        models=[embedded_model_folder], benchmarks=benchmarks, output=str(tmp_path / "eval"), sampling=SamplingParams(max_tokens=12),
        backend=BackendConfig(name="hf"), workers=1, progress=False, bootstrap_resamples=200,
    )
    scores = run_eval(config)
    written = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert [(r["benchmark"], r["problems"], r["k"]) for r in written["results"]] == [
        ("aime24", 5, 1), ("math500", 5, 1), ("gpqa_diamond", 5, 2), ("livecodebench", 5, 1)
    ]
    for result in written["results"]:
        assert 0.0 <= result["pass@1"] <= 1.0 and sum(result["verdicts"].values()) == 5 * result["k"]
        assert (result["cons@k"] is None) == (result["benchmark"] == "livecodebench")
    assert written == json.loads(json.dumps(scores)) and (tmp_path / "eval" / "eval.png").stat().st_size > 1000
