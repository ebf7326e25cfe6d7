"""The code sandbox's containment: limits that bound the whole sandbox, no network, no writes outside,
no secrets, no process left behind, nosuid and no_new_privs; and both ways of running a program."""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datakit import sandbox
from datakit.sandbox import CaseRun, Sandbox, SandboxError, SandboxLimits, cgroup_support, describe_isolation, isolation

NAMESPACED = pytest.mark.skipif(isolation() == "none", reason="no unshare here: runs without namespaces")
CGROUP = pytest.mark.skipif(cgroup_support().kind is None, reason=f"no cgroup: {cgroup_support().reason}")


MINE = f"{sandbox.MARKER}\0{sandbox.owner_tag()}\0".encode()  # this test process's sandboxes, not another run's


def marked_pids(token: bytes = MINE) -> set[int]:
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


def assert_gone(before: set[int], token: bytes = MINE) -> None:
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


def run(code: str, stdin: bytes = b"", limits: SandboxLimits = SandboxLimits(), cgroups: bool = True) -> CaseRun:
    """Run a Python program once on stdin, as a stdin/stdout case."""
    with Sandbox(limits, cgroups=cgroups) as box:
        assert box.load("python", code) == {"ok": True, "server_pid": None}
        return box.run_case(stdin, 1 << 20)


def test_stdin_stdout_and_exit_codes():
    result = run("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n", b"1 2\n3\n")
    assert (result.status, result.code, result.stdout) == ("exited", 0, b"6\n")
    assert 0 <= result.cpu_s < 1
    failing = run("import sys\nprint('partial')\nsys.exit(3)\n")
    assert (failing.code, failing.stdout) == (3, b"partial\n")
    crashing = run("raise ValueError('bad input')\n")
    assert crashing.code == 1 and "ValueError: bad input" in crashing.stderr


def test_a_closed_sandbox_leaves_no_file_open_in_the_caller():
    """A long filter run opens a sandbox per sample: each must give back every pipe and cgroup file it
    opened, or the process runs out of descriptors (and select() of fds past 1024) hundreds of samples in."""
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        assert run("print(input())\n", b"x\n").stdout == b"x\n"
    assert set(os.listdir("/proc/self/fd")) - before == set()


HOLDING_MANY_FILES = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
from datakit.sandbox import Sandbox, isolation
with Sandbox() as box:
    box.load("python", "print(int(input()) * 2)")
    print(isolation(), box.run_case(b"21", 100).stdout.decode().strip(), max(held))
"""


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2048, reason="the hard limit on open files is too low to hold 1100")
def test_a_process_holding_over_1024_files_still_runs_sandboxes():
    """select() refuses descriptors past 1023: a host with many files open (a mix raises its limit)
    must still start, isolate and hear its sandboxes."""
    done = subprocess.run([sys.executable, "-c", HOLDING_MANY_FILES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    mode, doubled, highest = done.stdout.split()
    assert (mode, doubled) == (isolation(), "42") and int(highest) > 1024


def test_main_guard_runs_for_stdin_programs():
    assert run("def main():\n    print(input()[::-1])\nif __name__ == '__main__':\n    main()\n", b"abc\n").stdout == b"cba\n"


def test_large_input_and_output_flow_without_deadlock():
    data = b"7\n" * 500_000  # far beyond a pipe buffer each way
    result = run("import sys\nsys.stdout.write(sys.stdin.read())\n", data)
    assert result.stdout == data


def test_output_is_capped():
    with Sandbox() as box:
        box.load("python", "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n")
        result = box.run_case(b"", 4096)
    assert len(result.stdout) == 4096 and result.stdout_truncated and result.code == 0


def test_cpu_limit_counts_cpu_not_wall():
    """A spinning program is stopped by its CPU limit; a sleeping one only by the wall backstop,
    which is far above the CPU limit (a loaded machine never turns a right answer into a timeout)."""
    spin = run("while True:\n    pass\n", limits=SandboxLimits(case_cpu_s=1))
    # the kernel's CPU-limit signal is the proof; the usage read back can fall a few ms short of the limit
    assert spin.signal in (signal.SIGXCPU, signal.SIGKILL) and spin.cpu_s >= 0.9
    assert not spin.wall_timeout


def test_sleeping_program_hits_the_wall_backstop():
    result = run("import time\ntime.sleep(1000)\n", limits=SandboxLimits(case_cpu_s=1))
    assert result.wall_timeout and result.cpu_s < 1


@pytest.mark.parametrize(
    "code",
    ["import os\nwhile True:\n    os.fork()\n", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"],
)
def test_fork_bomb_is_bounded_and_cleaned_up(code):
    result = run(code, limits=SandboxLimits(case_cpu_s=1, max_processes=16))
    assert result.status in ("exited", "signaled")
    assert run("print('still responsive')\n").stdout == b"still responsive\n"


def test_detached_background_process_is_killed():
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"  # a sleep duration no one else uses
    before = marked_pids(token.encode())
    run(f"import subprocess\nsubprocess.Popen(['sleep', '{token}'], start_new_session=True)\n")
    assert_gone(before, token.encode())


# --- memory: one bound for the whole sandbox --------------------------------------------------------

FORKED_HOGS = """
import os, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(200 * 2**20)  # touched: really resident
            for i in range(0, len(block), 4096):
                block[i] = 1
            print('child holds 200 MB', flush=True)
            time.sleep(5)
        finally:
            os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""

MEMFD_BOMB = """
import os
held = []
for i in range(100):
    try:
        fd = os.memfd_create(f'm{i}')
        os.write(fd, b'x' * (15 * 2**20))
        held.append(fd)
    except OSError as exc:
        print('refused', exc.errno, flush=True)
        break
print('held', len(held), flush=True)
"""


@CGROUP
@pytest.mark.parametrize("code", [FORKED_HOGS, MEMFD_BOMB])
def test_memory_bomb_cannot_take_more_than_the_limit(code):
    """Forked children and memfds count against one cgroup: the sandbox's peak stays under the bound."""
    limits = SandboxLimits(memory_mb=256, case_cpu_s=10)
    with Sandbox(limits) as box:
        box.load("python", code)
        result = box.run_case(b"", 1 << 16)
        peak = box.peak_memory_mb()
    assert peak is not None and peak <= 256
    assert result.oom_killed  # the kernel stopped it at the bound (without one it takes 600 MB / 1.5 GB)
    assert result.stdout.count(b"child holds") < 2 and b"held 100" not in result.stdout


def test_memfd_and_shared_memory_are_refused_without_a_cgroup():
    """The fallback where no cgroup can count shared memory: memfd_create fails."""
    result = run(MEMFD_BOMB, cgroups=False)
    if os.uname().machine not in sandbox.sandbox_inside._SECCOMP_DENY:
        pytest.skip("no seccomp rule for this architecture")
    assert b"refused 1" in result.stdout and b"held 0" in result.stdout


def test_a_single_process_memory_bomb_fails():
    result = run("x = bytearray(10**11)\n")
    assert result.code == 1 and "MemoryError" in result.stderr


# --- privileges, files, network, secrets ------------------------------------------------------------


@NAMESPACED
def test_nosuid_mounts_and_no_new_privs():
    code = (
        "status = open('/proc/self/status').read()\n"
        "print([l for l in status.splitlines() if l.startswith('NoNewPrivs')][0].split()[1])\n"
        "root = [l for l in open('/proc/self/mountinfo') if l.split()[4] == '/'][0]\n"
        "print(root.split()[5])\n"
        "import os\nprint(os.getuid())\n"
    )
    nnp, options, uid = run(code).stdout.decode().split()
    assert nnp == "1"
    assert {"ro", "nosuid"} <= set(options.split(","))
    assert uid != "0"


@NAMESPACED
def test_no_network():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (
            "import socket\nfor host, port in (('1.1.1.1', 80), ('127.0.0.1', %d)):\n    try:\n"
            "        socket.create_connection((host, port), timeout=3).close()\n        print('connected')\n"
            "    except OSError:\n        print('refused')\n" % port
        )
        assert run(code).stdout == b"refused\nrefused\n"


@NAMESPACED
def test_writes_outside_the_workdir_do_not_escape():
    token = secrets.token_hex(8)
    targets = [Path(d) / f"datakit_sandbox_escape_{token}" for d in ("/tmp", "/var/tmp", "/dev/shm", Path.home(), Path.cwd())]
    code = (
        f"import os\nfor path in {[str(t) for t in targets]!r}:\n    try:\n"
        "        open(path, 'w').write('escaped')\n    except OSError:\n        pass\n"
        "open('scratch.txt', 'w').write('fine')\nprint(open('scratch.txt').read(), os.getcwd())\n"
    )
    try:
        fine, workdir = run(code).stdout.decode().split()
        assert fine == "fine" and [t for t in targets if t.exists()] == []
        assert not os.path.exists(workdir)  # the temp dir is gone afterwards
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_no_inherited_secrets(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert run("import os\nprint('secret' in str(os.environ))\n").stdout == b"False\n"


def test_file_size_limit():
    result = run("open('big', 'wb').write(b'x' * (20 * 2**20))\n", limits=SandboxLimits(max_file_mb=4))
    assert result.code == 1 or result.signal == signal.SIGXFSZ


def test_sandbox_that_cannot_start_is_an_error(monkeypatch):
    isolation()  # decided (and cached) with the real interpreter
    monkeypatch.setattr(sandbox.sys, "executable", "/nonexistent/python3")
    with pytest.raises(SandboxError), Sandbox():
        pass


def test_isolation_is_described():
    described = describe_isolation()
    assert set(described) == {"namespaces", "memory", "user", "filesystem", "no_new_privs", "time"}
    assert ("cgroup" in described["memory"]) == (cgroup_support().kind is not None)
