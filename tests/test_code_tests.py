"""The canonical code-test reference and ingest of each dataset's published test columns."""

import base64
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, write_jsonl
from datakit.code_tests import APPS_CALL_CHECKER, Case, CodeTests, normalise_language
from datakit.code_tests import tests_from_row as read_tests  # aliased: pytest would collect a name starting with "test"
from datakit.ingest import ColumnMapping, IngestConfig, RowError, load_prompts

CODE = ROOT / "tests" / "data" / "code"


def _load(name: str, **mapping: str) -> tuple[list[dict], list]:
    got = load_prompts(str(CODE / name), IngestConfig(mapping=ColumnMapping(**mapping), domain="code"))
    return got.prompts.to_pylist(), got.rejects


def _tests(row: dict) -> CodeTests:
    return CodeTests.from_reference(row["reference"])


def _lcb(payload: object) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(payload))).decode()


# --- the canonical form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tests",
    [
        CodeTests(tests="def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n", entry_point="f", setup="def helper():\n    return 1\n"),
        CodeTests(cases=(Case("1 2\n", "3\n"), Case("", "é\n")), time_limit_s=2, memory_mb=256, language="C++17", note="checker dropped"),
        CodeTests(cases=[Case("[1, [2]]", "[3]")], fn_name="solve", checker=APPS_CALL_CHECKER),
    ],
)
def test_round_trip_through_the_reference_text(tests: CodeTests) -> None:
    text = tests.to_reference()
    assert CodeTests.from_reference(text) == tests
    assert text == json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert "null" not in text and "\\u00e9" not in text


def test_the_reference_keeps_only_the_fields_that_are_set() -> None:
    assert CodeTests(cases=[Case("1\n", "2\n")], time_limit_s=1.5, language="Python3").to_reference() == (
        '{"cases":[{"input":"1\\n","output":"2\\n"}],"language":"python","time_limit_s":1.5}'
    )
    assert CodeTests(tests="assert True\n").to_reference() == '{"tests":"assert True\\n"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"tests": "assert 1", "cases": [{"input": "", "output": ""}]}', "exactly one of"),
        ('{"entry_point": "f"}', "exactly one of"),
        ('{"cases": []}', "exactly one of"),
        ('{"tests": "assert 1", "fn_name": "f"}', "`fn_name` goes with `cases`"),
        ('{"cases": [{"input": "", "output": ""}], "entry_point": "f"}', "`entry_point` goes with a test program"),
        ('{"cases": [{"input": "", "output": ""}], "setup": "x = 1"}', "`setup` goes with a test program"),
        ('{"tests": "assert 1", "timeout": 3}', "unknown field(s) timeout"),
        ('{"cases": [{"input": "1"}]}', "cases[0]: expected an object with exactly `input` and `output`"),
        ('{"cases": [{"input": 1, "output": "2"}]}', "cases[0]: case input: expected a string, got int"),
        ('{"cases": "1 2"}', "`cases` must be a list"),
        ('{"cases": [{"input": "", "output": ""}], "fn_name": "not a name"}', "`fn_name` must be a Python identifier"),
        ('{"cases": [{"input": "", "output": ""}], "checker": "def judge(a, b, c):\\n    return True"}', "must define check(input, output, expected)"),
        ('{"cases": [{"input": "", "output": ""}], "time_limit_s": -1}', "`time_limit_s` must be a positive number"),
        ('{"cases": [{"input": "", "output": ""}], "memory_mb": true}', "`memory_mb` must be a positive integer"),
        ('{"tests": "def f(:\\n"}', "`tests` is not valid Python"),
        ('{"tests": 3}', "`tests` must be a string"),
        ("   ", "the code reference is empty"),
    ],
)
def test_malformed_references_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        CodeTests.from_reference(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_reference_that_is_not_a_json_object_is_a_legacy_test_program() -> None:
    program = "def check(candidate):\n    assert candidate(2) == 4\n\ncheck(double)\n"
    assert CodeTests.from_reference(program) == CodeTests(tests=program)
    assert CodeTests.from_reference("[f(1) == 2]").tests == "[f(1) == 2]"  # JSON, but not an object


def test_languages_are_normalised_and_summaries_read_well() -> None:
    assert [normalise_language(n) for n in ("Python 3", "pypy3", "GNU C++17", "c++", "cpp20", "Rust")] == ["python", "python", "cpp", "cpp", "cpp", "rust"]
    assert CodeTests(cases=[Case("1\n", "1\n")] * 12, language="cpp", time_limit_s=2, memory_mb=256).summary() == "12 stdin/stdout cases, cpp, 2 s, 256 MB"
    assert CodeTests(tests="check(find_zero)\n", entry_point="find_zero").summary() == "function tests, entry point find_zero"
    assert CodeTests(cases=[Case("[1]", "2")], fn_name="f", checker=APPS_CALL_CHECKER).summary() == "1 call-based case of f(), custom checker"


# --- each dataset's published shape, through ingest -----------------------------------------------


def test_humaneval_test_entry_point_and_prompt() -> None:
    rows, rejects = _load("humaneval.jsonl", id="task_id", question="prompt", tests="test")
    assert rejects == []
    first, second = (_tests(r) for r in rows)
    assert first.entry_point == "has_close_elements" and first.tests.endswith("\n\ncheck(has_close_elements)\n")
    assert first.setup.startswith("from typing import List") and "def has_close_elements(" in first.setup
    assert second.entry_point == "find_zero" and "def poly(" in second.setup  # the tests call the prompt's poly
    assert rows[0]["verifier"] == "code" and json.loads(rows[0]["metadata"])["entry_point"] == "has_close_elements"


def test_demo_humaneval_rows_hold_the_canonical_object() -> None:
    rows = [json.loads(line) for line in (ROOT / "data" / "demo" / "humaneval.jsonl").read_text().splitlines()]
    assert all(CodeTests.from_dict(r["tests"]).setup for r in rows)
    got = load_prompts(str(ROOT / "data" / "demo" / "humaneval.jsonl"), IngestConfig())
    assert got.rejects == []
    tests = _tests(got.prompts.to_pylist()[32])
    assert tests.entry_point == "find_zero" and "def poly(" in tests.setup and tests.tests.endswith("check(find_zero)\n")


def test_mbpp_asserts_setup_code_and_challenge_tests() -> None:
    rows, rejects = _load("mbpp.jsonl", id="task_id", question="text", tests="test_list")
    assert rejects == []
    plain, with_setup = (_tests(r) for r in rows)
    assert plain == CodeTests(tests="assert sum_squares([1, 2, 3]) == 14\nassert sum_squares([]) == 0\nassert sum_squares([-2]) == 4\n")
    assert with_setup.setup == "from collections import namedtuple\nPoint = namedtuple('Point', 'x y')"
    assert with_setup.tests.splitlines() == [
        "assert origin_distance(Point(3, 4)) == 5.0",
        "assert origin_distance(Point(0, 0)) == 0.0",
        "assert origin_distance(Point(-5, 12)) == 13.0",  # challenge_test_list, appended
    ]


def test_mbpp_sanitized_imports_are_setup_and_its_prompt_is_not() -> None:
    rows, rejects = _load("mbpp_sanitized.jsonl", id="task_id", question="prompt", tests="test_list")
    assert rejects == []
    assert _tests(rows[0]) == CodeTests(tests="assert round_up(1.2) == 2\nassert round_up(math.pi) == 4\n", setup="import math")


def test_apps_stdin_lines_and_call_based_wrapped_outputs() -> None:
    rows, rejects = _load("apps.jsonl", id="problem_id", tests="input_output")
    assert rejects == []
    stdin, vowels, min_max = (_tests(r) for r in rows)
    assert stdin == CodeTests(cases=[Case("3\n1 2 3\n", "6\n"), Case("2\n10 -4\n", "6\n")])
    assert vowels.fn_name == "count_vowels" and vowels.checker == APPS_CALL_CHECKER
    assert vowels.cases == (Case('["banana"]', "[3]"), Case('[""]', "[0]"), Case('["sky"]', "0"))
    assert min_max.cases == (Case("[[3, 1, 2]]", "[[1, 3]]"), Case("[[5]]", "[5, 5]"))


@pytest.mark.parametrize(
    ("output", "expected", "passes"),
    [
        ("3", "[3]", True),  # APPS wrapped the expected value
        ("[3]", "[3]", True),  # a function that really returns a one-element list
        ("[1, 3]", "[[1, 3]]", True),
        ("[1, 3]", "[1, 3]", True),
        ("1", "[1, 3]", False),  # APPS's harness would accept the first element of a longer list
        ("4", "[3]", False),
        ("{\"1\": 2}", "[{\"1\": 2}]", True),
    ],
)
def test_apps_checker_keeps_the_harness_unwrapping_without_its_loophole(output: str, expected: str, passes: bool) -> None:
    namespace: dict = {}
    exec(APPS_CALL_CHECKER, namespace)  # our own trusted source
    assert namespace["check"]("[]", output, expected) is passes


def test_taco_limits_in_words_and_unwrapped_call_based() -> None:
    rows, rejects = _load("taco.jsonl", id="name", tests="input_output")
    assert rejects == []
    stdin, double = (_tests(r) for r in rows)
    assert stdin == CodeTests(cases=[Case("1 2\n", "2\n"), Case("7 -3\n", "7\n")], time_limit_s=1, memory_mb=256)
    assert double == CodeTests(cases=[Case("[2]", "4"), Case("[0]", "0")], fn_name="double")  # nothing wrapped: plain equality


def test_code_contests_joins_its_test_columns_and_reads_its_limits() -> None:
    rows, rejects = _load("code_contests.jsonl", id="name", question="description", tests="public_tests,private_tests,generated_tests")
    assert rejects == []
    first, second = (_tests(r) for r in rows)
    assert [c.input for c in first.cases] == ["1 2\n", "5 5\n", "0 0\n", "-1 1\n"]
    assert (first.time_limit_s, first.memory_mb, first.language) == (2.0, 245, None)  # 256,000,000 bytes, rounded up to MiB
    assert (second.cases, second.time_limit_s, second.memory_mb) == ((Case("hi\n", "hi\n"),), 0.5, 256)
    metadata = json.loads(rows[0]["metadata"])
    assert "solutions" in metadata and not {"public_tests", "private_tests", "generated_tests"} & set(metadata)


def test_livecodebench_public_and_encoded_private_tests() -> None:
    rows, rejects = _load("livecodebench.jsonl", id="question_id", question="question_content", tests="public_test_cases,private_test_cases")
    assert rejects == []
    stdin, functional = (_tests(r) for r in rows)
    assert stdin == CodeTests(cases=[Case("1 2\n", "3\n"), Case("10 20\n", "30\n")])
    assert functional == CodeTests(cases=[Case("[[1, 2], 3]", "6"), Case("[[], 0]", "0"), Case("[[5], -5]", "0")], fn_name="sumPlus")


def test_codeforces_limits_declared_language_and_checkers_that_cannot_run() -> None:
    rows, rejects = _load("codeforces.jsonl", question="prompt", tests="official_tests")
    assert rejects == []
    python, cpp, cpp_checker = (_tests(r) for r in rows)
    assert python == CodeTests(cases=[Case("2\n", "4\n"), Case("0\n", "0\n")], time_limit_s=2, memory_mb=256, language="python")
    assert cpp.language == "cpp" and cpp.checker is None
    assert cpp.note.startswith("generated_checker (not a Python check(input, output, expected) function) was not kept")
    assert cpp_checker.checker is None and cpp_checker.note.startswith("checker (C++ source) was not kept")
    assert {r["language"] for r in rows} == {"en"}  # the programming language is not the answer's language


def test_canonical_objects_and_case_lists_pass_through(tmp_path: Path) -> None:
    canonical = CodeTests(cases=[Case("1\n", "2\n")], checker="def check(input, output, expected):\n    return output.split() == expected.split()\n")
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "obj", "question": "q", "domain": "code", "tests": canonical.to_dict()},
        {"id": "text", "question": "q", "domain": "code", "tests": canonical.to_reference()},
        {"id": "list", "question": "q", "domain": "code", "tests": [{"input": "1\n", "output": "2\n"}]},
        {"id": "legacy", "question": "q", "domain": "code", "tests": "assert f(1) == 2\n"},
        {"id": "none", "question": "q", "domain": "code"},
        {"id": "solution", "question": "q", "domain": "code", "answer": "def f(x):\n    return x + 1\n"},
        {"id": "answer-json", "question": "q", "domain": "code", "answer": canonical.to_reference()},
        {"id": "judged", "question": "q", "domain": "code", "verifier": "judge", "answer": "print(2)"},
        {"id": "declared", "question": "q", "domain": "general", "verifier": "code", "tests": [{"input": "", "output": "x\n"}]},
    ])
    got = load_prompts(str(path), IngestConfig())
    assert got.rejects == []
    refs = {r["prompt_id"]: (r["reference"], r["verifier"]) for r in got.prompts.to_pylist()}
    assert refs["obj"] == refs["text"] == (canonical.to_reference(), "code")
    assert refs["list"] == ('{"cases":[{"input":"1\\n","output":"2\\n"}]}', "code")
    assert refs["legacy"] == ('{"tests":"assert f(1) == 2\\n"}', "code")
    assert refs["none"] == refs["solution"] == (None, "none")  # a plain-text answer is no test program
    assert json.loads(got.prompts.to_pylist()[5]["metadata"]) == {"answer": "def f(x):\n    return x + 1\n"}
    assert refs["answer-json"] == (canonical.to_reference(), "code")
    assert refs["judged"] == ("print(2)", "judge")  # an explicit non-code verifier keeps the answer as it is
    assert refs["declared"] == ('{"cases":[{"input":"","output":"x\\n"}]}', "code")


# --- row errors -----------------------------------------------------------------------------------


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_bad_test_columns_are_rejected_naming_the_column(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    functional = json.dumps([{"input": "1", "output": "1", "testtype": "functional"}])
    rows = [
        {"id": "bad-json", "input_output": '{"inputs": ["1\\n"], "outputs": '},
        {"id": "empty", "input_output": ""},
        {"id": "lengths", "input_output": json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["1\n"]})},
        {"id": "args", "input_output": json.dumps({"fn_name": "f", "inputs": ["1"], "outputs": [1]})},
        {"id": "no-output", "official_tests": [{"input": "1\n"}]},
        {"id": "no-func", "public_test_cases": functional, "metadata": "{}"},
        {"id": "exploit", "private_test_cases": _lcb(_Exploit(marker))},
        {"id": "not-a-string", "private_test_cases": _lcb([{"input": "1", "output": "1"}])},
        {"id": "truncated", "private_test_cases": base64.b64encode(zlib.compress(pickle.dumps("[]" * 1000))[:-8]).decode()},
        {"id": "interactive", "official_tests": [{"input": "1\n", "output": "1\n"}], "interaction_format": "Ask queries."},
        {"id": "file-io", "official_tests": [{"input": "1\n", "output": "1\n"}], "input_mode": "file"},
        {"id": "no-cases", "public_tests": {"input": [], "output": []}, "private_tests": {"input": [], "output": []}},
        {"id": "joined-program", "test_list": ["assert f(1) == 1"], "tests": [{"input": "", "output": ""}]},
        {"id": "number", "input_output": 7},
    ]
    columns = {
        "bad-json": "input_output", "empty": "input_output", "lengths": "input_output", "args": "input_output",
        "no-output": "official_tests", "no-func": "public_test_cases", "exploit": "private_test_cases",
        "not-a-string": "private_test_cases", "truncated": "private_test_cases", "interactive": "official_tests",
        "file-io": "official_tests", "no-cases": "public_tests,private_tests", "joined-program": "tests,test_list", "number": "input_output",
    }
    errors = {}
    for row in rows:
        with pytest.raises(RowError) as error:
            read_tests(row, columns[row["id"]])
        errors[row["id"]] = (error.value.field, error.value.reason)
    assert not marker.exists()  # the pickle's os.system was never called
    assert errors["bad-json"][0] == "input_output" and errors["bad-json"][1].startswith("invalid JSON")
    assert errors["empty"] == ("input_output", "empty")
    assert errors["lengths"] == ("input_output", "2 inputs but 1 outputs")
    assert errors["args"] == ("input_output", "inputs[0]: expected a list of arguments, got str")
    assert errors["no-output"] == ("official_tests", "[0]: missing 'output'")
    assert errors["no-func"][0] == "metadata" and "func_name" in errors["no-func"][1]
    assert errors["exploit"][0] == "private_test_cases" and "refused to load" in errors["exploit"][1] and "system" in errors["exploit"][1]
    assert errors["not-a-string"] == ("private_test_cases", "the pickle holds a list, expected a JSON string")
    assert errors["truncated"][0] == "private_test_cases" and "truncated" in errors["truncated"][1]
    assert errors["interactive"][0] == "interaction_format" and errors["file-io"][0] == "input_mode"
    assert errors["no-cases"] == ("public_tests,private_tests", "no test cases")
    assert errors["joined-program"][0] == "test_list" and "only columns of input/output cases can be joined" in errors["joined-program"][1]
    assert errors["number"] == ("input_output", "expected test cases or a test program, got int")


def test_ingest_writes_bad_code_rows_to_rejects_and_goes_on(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "apps.jsonl", [
        {"problem_id": 1, "question": "q", "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})},
        {"problem_id": 2, "question": "q", "input_output": '{"inputs": ['},
        {"problem_id": 3, "question": "q", "input_output": json.dumps({"inputs": ["1\n"]})},
    ])
    got = load_prompts(str(path), IngestConfig(mapping=ColumnMapping(id="problem_id", tests="input_output"), domain="code"))
    assert got.prompts.column("prompt_id").to_pylist() == ["1"]
    assert [(r.line, r.field) for r in got.rejects] == [(2, "input_output"), (3, "input_output")]
    assert "expected `inputs` and `outputs` lists" in got.rejects[1].message()


def test_datakit_sample_map_tests_joins_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datakit.cli as cli

    seen = []
    monkeypatch.setattr(cli, "sample_and_report", seen.append)
    result = CliRunner().invoke(cli.app, [
        "sample", str(CODE / "code_contests.jsonl"), str(tmp_path / "out"), "--domain", "code",
        "--map", "question=description", "--map", "tests=public_tests,private_tests",
    ])
    assert result.exit_code == 0, result.output
    (config,) = seen
    got = load_prompts(config.input, config.ingest)
    assert [len(_tests(r).cases) for r in got.prompts.to_pylist()] == [2, 1]
