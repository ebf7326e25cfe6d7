"""Code verdicts: take the program from an answer, run it in the sandbox against the problem's tests.

Two kinds of tests (see `datakit.code_tests.CodeTests`): function tests (HumanEval, MBPP, LeetCode
style), run by the judge with the candidate behind a proxy, and stdin/stdout cases (CodeContests,
APPS, LiveCodeBench, Codeforces), compared here token by token. Each verdict is one code: correct,
wrong, timeout, memory, runtime_error, compile_error, unserializable_result, unsupported_language,
no_answer, bad_reference or checker_error (the sandbox could not decide; never the candidate's fault).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import textwrap
from dataclasses import dataclass, field, replace

from datakit.code_tests import CodeTests
from datakit.sandbox import CaseRun, Sandbox, SandboxError, SandboxLimits
from datakit.sandbox_inside import candidate_names, signal_name, wall_backstop
from datakit.verify import Check

SUPPORTED = ("python", "cpp")
# fence tags of programming languages; other tags (text, bash, json, ...) mark examples, not answers
LANGUAGE_TAGS = {
    "python": ("py", "py3", "python", "python3"),
    "cpp": ("cpp", "c++", "cc", "cxx", "cplusplus", "c++17", "c++20"),
    "c": ("c",),
    "java": ("java",),
    "javascript": ("js", "javascript", "node"),
    "typescript": ("ts", "typescript"),
    "rust": ("rust", "rs"),
    "go": ("go", "golang"),
    "kotlin": ("kotlin", "kt"),
    "csharp": ("cs", "csharp", "c#"),
    "ruby": ("ruby", "rb"),
    "pascal": ("pascal",),
    "haskell": ("haskell", "hs"),
}
_LANGUAGE_BY_TAG = {tag: language for language, tags in LANGUAGE_TAGS.items() for tag in tags}
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_VERDICT_FOR_FAILURE = {"test": "wrong", "unserializable": "unserializable_result", "setup": "bad_reference"}


@dataclass(frozen=True)
class Program:
    language: str
    code: str


@dataclass(frozen=True)
class CodeOptions:
    """How code is judged; the correctness filter's `code_*` parameters map onto it."""

    limits: SandboxLimits = field(default_factory=SandboxLimits)
    stop_at_first_failure: bool = True  # False: run every case and say how many passed
    rel_tol: float = 1e-6  # for output tokens that are floats in the expected output
    abs_tol: float = 1e-6
    python_time_factor: float = 3.0  # a problem's declared time limit is for C++; Python gets this multiple


def extract_program(answer: str, declared: str | None = None) -> Program | None:
    """The answer's program: the last fenced block in the problem's declared language, else the last
    block tagged with a programming language, else the last untagged block (in the declared
    language, or Python). Models show scratch versions before the final one; blocks tagged text,
    bash, json... are examples. A truncated answer whose last fence never closed yields its rest."""
    blocks = _fenced_blocks(answer)
    tagged = [(lang, code) for tag, code in blocks if (lang := _LANGUAGE_BY_TAG.get(tag))]
    untagged = [code for tag, code in blocks if not tag]
    if declared and (mine := [code for lang, code in tagged if lang == declared]):
        return Program(declared, mine[-1])
    if tagged:
        return Program(*tagged[-1])
    if untagged:
        return Program(declared or "python", untagged[-1])
    return None


def _fenced_blocks(answer: str) -> list[tuple[str, str]]:
    blocks: list[tuple[str, str]] = []
    body: list[str] | None = None
    fence, tag = "", ""
    for line in answer.splitlines():
        if body is None:
            if match := _FENCE.match(line):
                fence, tag, body = match.group(1), match.group(2).lower(), []
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            blocks.append((tag, textwrap.dedent("\n".join(body))))
            body = None
        else:
            body.append(line)
    if body is not None:
        blocks.append((tag, textwrap.dedent("\n".join(body))))
    return blocks


def check_code(answer: str, reference: str, options: CodeOptions = CodeOptions()) -> Check:
    """Grade one answer against a code reference (canonical JSON, or a legacy test program)."""
    try:
        tests = CodeTests.from_reference(reference)
    except ValueError as exc:
        return Check("bad_reference", None, f"unreadable code tests: {exc}")
    program = extract_program(answer, tests.language)
    if program is None:
        return Check("no_answer", None, "no fenced code block in the answer")
    if program.language not in SUPPORTED:
        return Check("unsupported_language", program.code, f"{program.language} cannot run here (supported: {', '.join(SUPPORTED)})")
    if program.language == "cpp" and not _has_cxx():
        return Check("unsupported_language", program.code, "cpp: no g++ on this machine (install g++ to judge C++)")
    if tests.tests is not None and program.language != "python":
        return Check("unsupported_language", program.code, f"function tests call Python; the answer is {program.language}")
    limits = _limits_for(tests, program, options)
    try:
        with Sandbox(limits) as box:
            verdict, reason = _judge(box, program, tests, options)
    except SandboxError as exc:
        return Check("checker_error", program.code, f"sandbox: {exc}")
    return Check(verdict, program.code, f"{program.language}: {reason}")


def _has_cxx() -> bool:
    return shutil.which("g++") is not None


def _limits_for(tests: CodeTests, program: Program, options: CodeOptions) -> SandboxLimits:
    """The problem's declared time limit (C++ seconds; Python gets a multiple), else the default."""
    if not tests.time_limit_s:
        return options.limits
    factor = options.python_time_factor if program.language == "python" else 1.0
    return replace(options.limits, case_cpu_s=tests.time_limit_s * factor)


def _judge(box: Sandbox, program: Program, tests: CodeTests, options: CodeOptions) -> tuple[str, str]:
    function_tests = tests.tests is not None or tests.fn_name is not None
    loaded = box.load(program.language, program.code, serve=function_tests)
    if "compile_error" in loaded:
        return "compile_error", loaded["compile_error"]
    if function_tests:
        return _function_tests(box, tests, options)
    return _stdio_tests(box, tests, options)


# --- function tests -------------------------------------------------------------------------------


def _function_tests(box: Sandbox, tests: CodeTests, options: CodeOptions) -> tuple[str, str]:
    if tests.fn_name is not None:
        setup, program, names = _call_cases_program(tests, options), "_datakit_run_cases()\n", [tests.fn_name]
    else:
        setup, program = tests.setup or "", tests.tests or ""
        try:
            names = [tests.entry_point] if tests.entry_point else candidate_names(setup, program)
        except SyntaxError as exc:
            return "bad_reference", f"the tests do not parse: {exc.msg} at line {exc.lineno}"
    report = box.run_function_tests(setup, program, names)
    if report.get("passed"):
        return "correct", f"all tests passed ({report['calls']} calls)"
    if "passed" in report:
        return "checker_error", "the judge's report carried no valid proof of completion"
    server = box.finish().get("server") or {}
    return _function_failure(report, server, box, options.limits)


def _function_failure(report: dict, server: dict, box: Sandbox, limits: SandboxLimits) -> tuple[str, str]:
    failed, message = report.get("failed"), report.get("message", "")
    if failed in _VERDICT_FOR_FAILURE:
        return _VERDICT_FOR_FAILURE[failed], message
    if failed == "no_calls":
        return "bad_reference", message
    if failed == "bad_args":
        return "checker_error", message
    if failed in ("candidate", "load"):
        kind = report.get("type", "")
        what = "the program failed to load: " if failed == "load" else ""
        if kind == "MemoryError":
            return "memory", what + message
        return "runtime_error", what + (message if failed == "candidate" else f"{kind}: {message}")
    # "gone": the function server died, overran or stopped answering; its exit says which
    if box.oom_killed():
        return "memory", f"{message} (out of memory: over {limits.memory_mb} MB)"
    if "CPU time" in message or "backstop" in message or server.get("signal") == signal.SIGXCPU:
        return "timeout", message
    if server.get("signal") == signal.SIGKILL and server.get("cpu", 0.0) >= limits.cpu_s:
        return "timeout", f"{message} (over {limits.cpu_s}s CPU in all)"
    return "runtime_error", message


def _call_cases_program(tests: CodeTests, options: CodeOptions) -> str:
    """Trusted-side code that calls the candidate's `fn_name` on each case's arguments (a JSON array)
    and compares the return value with the expected JSON value (tuples as lists, floats within
    tolerance), or asks the problem's checker (JSON texts of input, output and expected)."""
    cases = [[case.input, json.loads(case.input), case.output, json.loads(case.output)] for case in tests.cases]
    compare = (
        "bool(check(text, _datakit_json.dumps(got), want_text))" if tests.checker else "_datakit_same(got, want)"
    )
    return (tests.checker or "") + textwrap.dedent(
        f"""
        import json as _datakit_json, math as _datakit_math
        _DATAKIT_CASES = _datakit_json.loads({json.dumps(json.dumps(cases))})

        def _datakit_same(got, want):
            if isinstance(got, tuple):
                got = list(got)
            if isinstance(want, float) or (isinstance(got, float) and isinstance(want, int)):
                return isinstance(got, (int, float)) and not isinstance(got, bool) and _datakit_math.isclose(
                    got, want, rel_tol={options.rel_tol!r}, abs_tol={options.abs_tol!r})
            if isinstance(want, list) and isinstance(got, list):
                return len(got) == len(want) and all(_datakit_same(g, w) for g, w in zip(got, want))
            if isinstance(want, dict) and isinstance(got, dict):
                return got.keys() == want.keys() and all(_datakit_same(got[k], want[k]) for k in want)
            return type(got) is type(want) and got == want

        def _datakit_run_cases():
            failures, ran = [], 0
            for number, (text, args, want_text, want) in enumerate(_DATAKIT_CASES, 1):
                ran += 1
                got = {tests.fn_name}(*args)
                try:
                    ok = {compare}
                except TypeError:  # the return value is not JSON (a set, bytes)
                    ok = False
                if not ok:
                    failures.append(f"case {{number}}: expected {{want_text:.80}}, got {{got!r:.80}}")
                    if {options.stop_at_first_failure!r}:
                        break
            if failures:
                raise AssertionError(f"{{failures[0]}} ({{ran - len(failures)}}/{{len(_DATAKIT_CASES)}} cases passed)")
        """
    )


# --- stdin/stdout cases ---------------------------------------------------------------------------


def _stdio_tests(box: Sandbox, tests: CodeTests, options: CodeOptions) -> tuple[str, str]:
    limits = box.limits
    first_failure: tuple[str, str] | None = None
    passed = 0
    for number, case in enumerate(tests.cases, 1):
        expected = case.output.encode()
        run = box.run_case(case.input.encode(), 2 * len(expected) + 4096)
        failure = _run_failure(run, limits) or _output_failure(box, tests, case.input, run.stdout, case.output, options)
        if failure is None:
            passed += 1
        elif first_failure is None:
            first_failure = (failure[0], f"case {number}: {failure[1]}")
        if failure is not None and (options.stop_at_first_failure or failure[0] == "checker_error"):
            break
        if box.cpu_used > limits.cpu_s:
            first_failure = first_failure or ("timeout", f"over {limits.cpu_s}s CPU for all cases (after case {number})")
            break
    total = len(tests.cases)
    if first_failure is None:
        return "correct", f"all {total} cases passed"
    verdict, why = first_failure
    return verdict, why if options.stop_at_first_failure else f"{why} ({passed}/{total} cases passed)"


def _run_failure(run: CaseRun, limits: SandboxLimits) -> tuple[str, str] | None:
    """How a run failed before its output could be compared, or None if it ended normally."""
    if run.wall_timeout:
        return "timeout", f"no progress for {wall_backstop(limits.case_cpu_s):.0f}s of wall clock (sleeping or blocked)"
    if run.cpu_s > limits.case_cpu_s or run.signal == signal.SIGXCPU:
        return "timeout", f"used {run.cpu_s:.2f}s CPU, over the {limits.case_cpu_s}s limit"
    if run.oom_killed or "MemoryError" in run.stderr or "std::bad_alloc" in run.stderr:
        return "memory", f"out of memory (limit {limits.memory_mb} MB)"
    if run.status == "signaled":
        return "runtime_error", f"killed by {signal_name(run.signal)}" + _last_line(run.stderr)
    if run.code != 0:
        return "runtime_error", f"exited with code {run.code}" + _last_line(run.stderr)
    return None


def _output_failure(box: Sandbox, tests: CodeTests, stdin: str, stdout: bytes, expected: str, options: CodeOptions) -> tuple[str, str] | None:
    output = stdout.decode("utf-8", "replace")
    if tests.checker:
        result = box.check_output(tests.checker, stdin, output, expected)
        if "error" in result:
            return "checker_error", f"the problem's checker failed: {result['error']}"
        return None if result["ok"] else ("wrong", "rejected by the problem's checker" + (f": {result['message']}" if result["message"] else ""))
    mismatch = compare_output(expected, output, options.rel_tol, options.abs_tol)
    return ("wrong", mismatch) if mismatch else None


def compare_output(expected: str, got: str, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> str | None:
    """None when `got` matches `expected` token by token (any whitespace between tokens, trailing
    spaces and blank lines ignored; a token that is a decimal in the expected output matches a number
    within the tolerance); else what differs, in one line."""
    want, have = expected.split(), got.split()
    for index, (w, h) in enumerate(zip(want, have)):
        if w != h and not _close(w, h, rel_tol, abs_tol):
            return f"token {index + 1}: expected {w[:40]!r}, got {h[:40]!r}"
    if len(want) != len(have):
        return f"expected {len(want)} tokens, got {len(have)}" + (" (empty output)" if not have else "")
    return None


_DECIMAL = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def _close(want: str, have: str, rel_tol: float, abs_tol: float) -> bool:
    """Floats compare by value when the expected token is written as a decimal (has a point or an exponent)."""
    if not (_DECIMAL.fullmatch(want) and _DECIMAL.fullmatch(have)) or want.lstrip("+-").isdigit():
        return False
    a, b = float(want), float(have)
    return math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return f": {lines[-1][:200]}" if lines else ""
