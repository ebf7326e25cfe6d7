"""Code verdicts through the public filter API: stdin/stdout cases in Python and C++, function tests,
every verdict code, and the reward hacks a program could try on its judge (each must fail)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest

from datakit.code_tests import Case, CodeTests
from datakit.code_verify import CodeOptions, check_code, compare_output, extract_program
from datakit.filters import make_filter
from datakit.sandbox import SandboxLimits

CXX = pytest.mark.skipif(shutil.which("g++") is None, reason="no g++ here: C++ answers are unsupported_language")

# one stdin/stdout problem: n, then n integers -> their sum and their maximum
SUM_MAX = CodeTests(
    cases=(
        Case("3\n1 2 3\n", "6 3\n"),
        Case("1\n-5\n", "-5 -5\n"),
        Case("4\n10 20 30 40\n", "100 40\n"),
    )
).to_reference()
PY_SUM_MAX = "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs), max(xs))\n"
CPP_SUM_MAX = """#include <bits/stdc++.h>
using namespace std;
int main() {
    int n; cin >> n; long long s = 0, m = LLONG_MIN;
    for (int i = 0; i < n; i++) { long long x; cin >> x; s += x; m = max(m, x); }
    cout << s << " " << m << "\\n";
}
"""
ADD_ONE_TESTS = CodeTests(tests="def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n\ncheck(add_one)\n").to_reference()


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n\n```{tag}\n{code}```\n"


def grade(items: list[tuple[str, str]], **params) -> pl.DataFrame:
    """(answer, reference) pairs through the correctness filter; its score columns."""
    rows = pl.DataFrame({
        "verifier": ["code"] * len(items),
        "answer": [answer for answer, _ in items],
        "reference": [reference for _, reference in items],
    })
    return make_filter("correctness", {"code_case_cpu_s": 2, **params}, "t").score(rows)


# --- stdin/stdout --------------------------------------------------------------------------------


@CXX
def test_stdio_verdicts_python_and_cpp():
    answers = {
        "python": (fenced(PY_SUM_MAX), "correct"),
        "cpp": (fenced(CPP_SUM_MAX, "cpp"), "correct"),
        "python, trailing spaces and blank lines": (fenced("n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs), ' ', max(xs), '   ')\nprint()\nprint()\n"), "correct"),
        "wrong": (fenced("input()\nxs = list(map(int, input().split()))\nprint(sum(xs), min(xs))\n"), "wrong"),
        "slow": (fenced("while True:\n    pass\n"), "timeout"),
        "crash": (fenced("n = int(input())\nprint(1 / 0)\n"), "runtime_error"),
        "exit code": (fenced("print('6 3')\nimport sys\nsys.exit(4)\n"), "runtime_error"),
        "memory": (fenced("x = bytearray(10**11)\n"), "memory"),
        "cpp crash": (fenced("int main() { int *p = nullptr; return *p; }\n", "cpp"), "runtime_error"),
        "cpp memory": (fenced("#include <vector>\nint main() { std::vector<long long> v(1LL << 33, 1); return (int)v[5]; }\n", "cpp"), "memory"),
        "cpp compile error": (fenced("int main() { return undefined_name; }\n", "cpp"), "compile_error"),
        "python syntax error": (fenced("print('unclosed'\n"), "compile_error"),
        "java": (fenced("class Main { public static void main(String[] a) {} }\n", "java"), "unsupported_language"),
        "no code": ("The answer is 6 3.", "no_answer"),
        "empty output": (fenced("pass\n"), "wrong"),
    }
    scores = grade([(answer, SUM_MAX) for answer, _ in answers.values()])
    got = dict(zip(answers, scores["correct_verdict"].to_list()))
    assert got == {name: verdict for name, (_, verdict) in answers.items()}, scores["correct_detail"].to_list()
    details = dict(zip(answers, scores["correct_detail"].to_list()))
    assert details["wrong"] == "python: case 1: token 2: expected '3', got '1'"
    assert details["cpp compile error"].startswith("cpp: ") and "undefined_name" in details["cpp compile error"]
    assert "CPU" in details["slow"]


def test_floats_compare_within_tolerance():
    reference = CodeTests(cases=(Case("2\n", "0.6666666667\n"),)).to_reference()
    close = fenced("print(f'{2 / 3:.9f}')\n")
    far = fenced("print(0.67)\n")
    integer = CodeTests(cases=(Case("", "3\n"),)).to_reference()
    as_float = fenced("print(3.0)\n")
    verdicts = grade([(close, reference), (far, reference), (as_float, integer)])["correct_verdict"].to_list()
    assert verdicts == ["correct", "wrong", "wrong"]  # an integer answer is compared exactly


@pytest.mark.parametrize(
    "expected, got, mismatch",
    [
        ("1 2\n3\n", "1 2 3", None),
        ("1 2\n", "1  2   \n\n\n", None),
        ("YES\n", "yes\n", "token 1: expected 'YES', got 'yes'"),
        ("1.5\n", "1.5000001\n", None),
        ("1.5\n", "1.6\n", "token 1: expected '1.5', got '1.6'"),
        ("1 2\n", "1\n", "expected 2 tokens, got 1"),
        ("7\n", "", "expected 1 tokens, got 0 (empty output)"),
        ("1e-9\n", "0.0\n", None),
        ("nan\n", "nan\n", None),
        ("5\n", "5.0\n", "token 1: expected '5', got '5.0'"),
    ],
)
def test_compare_output(expected, got, mismatch):
    assert compare_output(expected, got) == mismatch


def test_all_cases_mode_counts_passes():
    half_right = fenced("n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs), max(xs) if n > 1 else 0)\n")
    first, every = (grade([(half_right, SUM_MAX)], code_all_cases=flag)["correct_detail"][0] for flag in (False, True))
    assert first == "python: case 2: token 2: expected '-5', got '0'"
    assert every == "python: case 2: token 2: expected '-5', got '0' (2/3 cases passed)"


def test_a_problems_checker_accepts_any_right_answer():
    checker = "def check(input, output, expected):\n    n = int(input)\n    k = int(output)\n    return k > n and k % 2 == 0\n"
    reference = CodeTests(cases=(Case("3\n", "4\n"), Case("10\n", "12\n")), checker=checker).to_reference()
    other_right = fenced("print(int(input()) * 2 + 2)\n")
    wrong = fenced("print(int(input()) + 1)\n")
    assert grade([(other_right, reference), (wrong, reference)])["correct_verdict"].to_list() == ["correct", "wrong"]


def test_call_based_cases_plain_function_and_leetcode_class():
    reference = CodeTests(cases=(Case("[[2, 7, 11, 15], 9]", "[0, 1]"), Case("[[3, 2, 4], 6]", "[1, 2]")), fn_name="twoSum").to_reference()
    solution = (
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
        "        for i, x in enumerate(nums):\n            if target - x in seen:\n                return (seen[target - x], i)\n"
        "            seen[x] = i\n"
    )
    plain = "def twoSum(nums, target):\n    return [0, 1]\n"
    verdicts = grade([(fenced(solution), reference), (fenced(plain), reference)])
    assert verdicts["correct_verdict"].to_list() == ["correct", "wrong"]
    assert "AssertionError: case 2: expected [1, 2], got [0, 1] (1/2 cases passed)" in verdicts["correct_detail"][1]


def test_declared_time_limit_applies_per_case():
    burn = fenced("import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end:\n    pass\nprint(1)\n")
    tight = CodeTests(cases=(Case("", "1\n"),), time_limit_s=0.1).to_reference()  # python gets 3x: 0.3 s
    roomy = CodeTests(cases=(Case("", "1\n"),), time_limit_s=1.0).to_reference()
    assert grade([(burn, tight), (burn, roomy)])["correct_verdict"].to_list() == ["timeout", "correct"]


def test_verdicts_do_not_depend_on_load():
    """Two CPU hogs beside the sandbox: a program that needs 0.6 s of CPU under a 1.5 s limit is still
    correct (the limit counts CPU time, not the wall clock), and a spinning one is still a timeout."""
    burn = fenced("import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end:\n    pass\nprint(1)\n")
    spin = fenced("while True:\n    pass\n")
    reference = CodeTests(cases=(Case("", "1\n"),)).to_reference()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        verdicts = grade([(burn, reference)] * 3 + [(spin, reference)], code_case_cpu_s=1.5)["correct_verdict"].to_list()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert verdicts == ["correct", "correct", "correct", "timeout"]


# --- function tests ------------------------------------------------------------------------------


def test_humaneval_canonical_solutions_pass_and_stubs_fail():
    """All 164 HumanEval problems through the demo's references (setup = the problem's prompt, so the
    tests of HumanEval/32 call the problem's own `poly`, never the candidate's)."""
    from conftest import ROOT

    rows = [json.loads(line) for line in (ROOT / "data" / "demo" / "humaneval.jsonl").read_text().splitlines()]
    assert len(rows) == 164
    items = []
    for row in rows:
        reference = CodeTests.from_dict(row["tests"]).to_reference()
        items += [(fenced(row["canonical_solution"]), reference), (fenced(CodeTests.from_dict(row["tests"]).setup), reference)]
    scores = grade(items)
    verdicts, details = scores["correct_verdict"].to_list(), scores["correct_detail"].to_list()
    good = [(rows[i // 2]["id"], details[i]) for i in range(0, len(items), 2) if verdicts[i] != "correct"]
    stubs = [(rows[i // 2]["id"], verdicts[i]) for i in range(1, len(items), 2) if verdicts[i] == "correct"]
    assert good == [] and stubs == []


@pytest.mark.parametrize(
    "code, verdict, detail",
    [
        ("def add_one(x):\n    return x + 1\n", "correct", "all tests passed (2 calls)"),
        ("def add_one(x):\n    return x + 2\n", "wrong", "AssertionError at test line 2"),
        ("def add_one(x):\n    return 1 / 0\n", "runtime_error", "ZeroDivisionError: division by zero at candidate line 2 at test line 2"),
        ("def add_one(x):\n    return add_one(x)\n", "runtime_error", "RecursionError: maximum recursion depth exceeded"),
        ("", "runtime_error", "NameError: name 'add_one' is not defined"),
        ("def add_one(x) return x\n", "compile_error", "SyntaxError: expected ':' at line 1"),
        ("import sys\nsys.exit(0)\n", "runtime_error", "the program failed to load: SystemExit"),
        ("x = input()\ndef add_one(x):\n    return x + 1\n", "runtime_error", "the program failed to load: EOFError"),
        ("def add_one(x):\n    return [0] * 10**10\n", "memory", "MemoryError"),
        ("def add_one(x):\n    while True:\n        x += 1\n", "timeout", "add_one(): call exceeded 2.0s CPU time"),
        ("def add_one(x):\n    return {x + 1}\n", "wrong", "AssertionError at test line 2"),
        ("from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\ndef add_one(x):\n    return P(x).x + 1\nif __name__ == '__main__':\n    raise SystemExit(input())\n", "correct", "all tests passed (2 calls)"),
    ],
)
def test_function_test_verdicts(code, verdict, detail):
    scores = grade([(fenced(code), ADD_ONE_TESTS)])
    assert scores["correct_verdict"][0] == verdict
    assert scores["correct_detail"][0].startswith("python: " + detail), scores["correct_detail"][0]


def test_arguments_go_by_value_and_tests_may_expect_exceptions():
    tests = (
        "data = [3, 1, 2]\nassert sort_copy(data) == [1, 2, 3]\nassert data == [3, 1, 2]\n"
        "try:\n    sort_copy(None)\n    raise AssertionError('no error')\nexcept AttributeError:\n    pass\n"
    )
    reference = CodeTests(tests=tests).to_reference()
    mutating = fenced("def sort_copy(xs):\n    xs.sort()\n    return list(xs)\n")  # mutates its own copy only
    assert grade([(mutating, reference)])["correct_verdict"].to_list() == ["correct"]


def test_setup_helpers_come_from_the_problem_not_the_candidate():
    """HumanEval/32: the tests call `poly` from the problem text; a candidate redefining `poly` so any
    answer looks like a root cannot change what the tests compute."""
    reference = CodeTests(
        setup="def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n\ndef find_zero(xs):\n    ...\n",
        tests="def check(candidate):\n    assert abs(poly([-6, 11, -6, 1], candidate([-6, 11, -6, 1]))) < 1e-6\n\ncheck(find_zero)\n",
        entry_point="find_zero",
    ).to_reference()
    cheat = fenced("def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 123.0\n")
    right = fenced("def find_zero(xs):\n    return 1.0\n")
    assert grade([(cheat, reference), (right, reference)])["correct_verdict"].to_list() == ["wrong", "correct"]


# --- reward hacks: each one must fail --------------------------------------------------------------

SECRET = "datakit-secret-7f3a9c"
SECRET_TESTS = CodeTests(tests=f"def check(candidate):\n    assert candidate(1) == {SECRET!r}\n\ncheck(guess)\n").to_reference()

HACKS = {
    "__eq__ always True": "class A:\n    def __eq__(s, o): return True\n    def __ne__(s, o): return False\n    def __hash__(s): return 0\ndef add_one(x):\n    return A()\n",
    "int subclass with __eq__": "class I(int):\n    def __eq__(s, o): return True\ndef add_one(x):\n    return I(7)\n",
    "str subclass with __eq__": "class S(str):\n    def __eq__(s, o): return True\ndef add_one(x):\n    return S('no')\n",
    "list subclass with __eq__": "class L(list):\n    def __eq__(s, o): return True\ndef add_one(x):\n    return L()\n",
    "replace builtins.exec/compile": "import builtins\nbuiltins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: compile('pass', 'x', 'exec')\ndef add_one(x):\n    return 0\n",
    "replace AssertionError": "import builtins\nclass Quiet(Exception):\n    pass\nbuiltins.AssertionError = Quiet\ndef add_one(x):\n    return 0\n",
    "walk frames to the harness": (
        "import sys\nf = sys._getframe()\nwhile f is not None:\n    for name in ('nonce', 'job'):\n        f.f_locals.get(name)\n"
        "    f.f_globals['send'] = lambda fd, message: None\n    f = f.f_back\ndef add_one(x):\n    return 0\n"
    ),
    "patch the judge in __main__": "import sys\nm = sys.modules['__main__']\nm.Judge.run_tests = lambda self, job: {'passed': job['nonce'], 'calls': 1}\nm.Judge.call = lambda *a: 2\ndef add_one(x):\n    return 0\n",
    "settrace swaps check": (
        "import sys, threading\ndef tracer(frame, event, arg):\n    if event == 'call' and frame.f_code.co_name == 'check':\n"
        "        frame.f_globals['check'] = lambda c: None\n    return tracer\nsys.settrace(tracer)\nthreading.settrace(tracer)\n"
        "def add_one(x):\n    return 0\n"
    ),
    "forged reports on every fd": (
        "import os, json, struct\nfor message in ({'passed': '0' * 32, 'calls': 1}, {'value': 2}):\n"
        "    data = json.dumps(message).encode()\n    for fd in range(3, 256):\n        try:\n"
        "            os.write(fd, struct.pack('>I', len(data)) + data)\n        except OSError:\n            pass\n"
        "def add_one(x):\n    return 0\n"
    ),
    "forged reply to each call": (
        "import sys\nm = sys.modules['__main__']\nm._call = lambda module, request: {'value': 2}\n"
        "def add_one(x):\n    return 0\n"
    ),
    "exit during the call": "import os\ndef add_one(x):\n    os._exit(0)\n",
    "kill everything it can": "import os, signal\ndef add_one(x):\n    os.kill(-1, signal.SIGKILL)\n    return 0\n",
    "ptrace and poke other processes": (
        "import ctypes, os\nlibc = ctypes.CDLL(None)\nfor pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid != os.getpid():\n        libc.ptrace(16, pid, 0, 0)\n"
        "        try:\n            open(f'/proc/{pid}/mem', 'r+b').write(b'x')\n        except OSError:\n            pass\n"
        "def add_one(x):\n    return 0\n"
    ),
}


@pytest.mark.parametrize("name", list(HACKS))
def test_reward_hacks_fail(name):
    scores = grade([(fenced(HACKS[name]), ADD_ONE_TESTS)])
    assert scores["correct_verdict"][0] in ("wrong", "runtime_error", "unserializable_result", "timeout"), scores["correct_detail"][0]


def test_eq_hack_is_an_unserializable_result():
    scores = grade([(fenced(HACKS["__eq__ always True"]), ADD_ONE_TESTS)])
    assert scores["correct_verdict"][0] == "unserializable_result"
    assert scores["correct_detail"][0] == "python: add_one(): returned a __candidate__.A, not plain data"


SCAN_MEMORY = f"""
import ctypes, os, re
def guess(x):
    pattern = re.compile(rb"{SECRET[:14]}[0-9a-f]{{6}}")
    found = set()
    for pid in ['self'] + [p for p in os.listdir('/proc') if p.isdigit()]:
        for name in ('cmdline', 'environ'):
            try:
                found.update(pattern.findall(open(f'/proc/{{pid}}/{{name}}', 'rb').read()))
            except OSError:
                pass
        try:
            maps = open(f'/proc/{{pid}}/maps').read().splitlines()
            mem = open(f'/proc/{{pid}}/mem', 'rb')
        except OSError:
            continue
        for line in maps:
            start, end = (int(v, 16) for v in line.split()[0].split('-'))
            if 'r' not in line.split()[1] or end - start > 2**28:
                continue
            try:
                mem.seek(start)
                found.update(pattern.findall(mem.read(end - start)))
            except (OSError, ValueError, OverflowError):
                pass
    return found.pop().decode() if found else 'nothing found'
"""


def test_the_tests_are_not_in_the_candidates_reach():
    """A program that scans its own memory and every process it can see (cmdline, environ, mem) for
    the expected value finds nothing: the tests live in the judge, under another uid, not dumpable."""
    scores = grade([(fenced(SCAN_MEMORY), SECRET_TESTS)], code_case_cpu_s=10)
    assert scores["correct_verdict"][0] == "wrong", scores["correct_detail"][0]


def test_expected_outputs_never_enter_the_sandbox():
    reference = CodeTests(cases=(Case("1\n", SECRET + "\n"),)).to_reference()
    program = SCAN_MEMORY + "print(guess(0))\n"
    scores = grade([(fenced(program), reference)], code_case_cpu_s=10)
    assert scores["correct_verdict"][0] == "wrong", scores["correct_detail"][0]


# --- the program in an answer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, declared, expected",
    [
        ("Here:\n```python\nx = 1\n```\nbetter:\n```python\nx = 2\n```\ndone", None, ("python", "x = 2")),
        ("```py\nprint(1)\n```", None, ("python", "print(1)")),
        ("```\nplain = True\n```", None, ("python", "plain = True")),
        ("```\nint main() {}\n```", "cpp", ("cpp", "int main() {}")),
        ("```Python3\nimport math\n```", None, ("python", "import math")),
        ("```python\nfirst = 1\n```\n```bash\npip install foo\n```\n", None, ("python", "first = 1")),
        ("```cpp\nint main() {}\n```\nExample:\n```\n3\n1 2 3\n```", None, ("cpp", "int main() {}")),
        ("```cpp\nint main() {}\n```\n```python\nx = 1\n```", "cpp", ("cpp", "int main() {}")),
        ("```c++\nint main() {}\n```", None, ("cpp", "int main() {}")),
        ("```java\nclass A {}\n```", None, ("java", "class A {}")),
        ("text\n```python\ndef f():\n    return 1\n", None, ("python", "def f():\n    return 1")),  # truncated
        ("1. step\n    ```python\n    y = 3\n    ```\n", None, ("python", "y = 3")),
        ("````python\ns = '''\n```\n'''\n````", None, ("python", "s = '''\n```\n'''")),
        ("no fences at all, just `inline` code", None, None),
        ("", None, None),
    ],
)
def test_extract_program(answer, declared, expected):
    program = extract_program(answer, declared)
    assert (program and (program.language, program.code)) == expected


def test_bad_references_are_not_the_candidates_fault():
    never_calls = CodeTests(tests="assert 1 + 1 == 2\n").to_reference()
    broken_setup = CodeTests(tests="assert f(1) == 1\n", setup="raise RuntimeError('bad problem')\n").to_reference()
    answer = fenced("def f(x):\n    return x\n")
    verdicts = grade([(answer, never_calls), (answer, broken_setup), (answer, "{\"cases\": 3}")])["correct_verdict"].to_list()
    assert verdicts == ["bad_reference", "bad_reference", "bad_reference"]


def test_check_code_direct_api():
    check = check_code(fenced(PY_SUM_MAX), SUM_MAX, CodeOptions(SandboxLimits(case_cpu_s=2)))
    assert (check.verdict, check.reason) == ("correct", "python: all 3 cases passed")
    assert check.extracted == PY_SUM_MAX.rstrip("\n")
