"""Run untrusted, model-written programs against a problem's tests: the host side of the sandbox.

One `Sandbox` per sample. It starts `datakit/sandbox_inside.py` as PID 1 of fresh network, PID,
mount, IPC and UTS namespaces (`unshare`), where / is read-only and nosuid, /tmp, /dev/shm and the
working directory are small private tmpfs, and `no_new_privs` is set. Inside, the candidate's
processes run under a random unprivileged uid (as root) and, where the host allows, in a cgroup of
their own that bounds the memory of all of them together (shared memory, memfds and page cache
included) and their number; elsewhere each process gets an address-space rlimit and memfd_create and
shmget are denied (seccomp), so shared memory cannot escape the count. `isolation()` says which.

The tests never share an interpreter with the candidate: function tests run in the judge process,
which calls the candidate through a proxy (plain data both ways), and stdin/stdout outputs are
compared here, on the host. See `datakit/sandbox_inside.py` for who holds what.

Time limits count CPU time (kernel accounting), never the wall clock, so a verdict does not depend
on how busy the machine is; the wall clock only stops a program that makes no progress (sleeps,
blocks) after several times its CPU limit. Safe to use from many threads at once: no signals, no
preexec_fn, every pipe owned by its caller.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datakit import sandbox_inside
from datakit.sandbox_inside import MARKER, MiB, Reader, send

INSIDE = os.path.abspath(sandbox_inside.__file__)
_START_TIMEOUT_S = 30.0
_isolation: str | None = None
_isolation_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxLimits:
    """Bounds for one sample's sandbox. CPU limits are kernel-counted CPU seconds."""

    case_cpu_s: float = 5.0  # one stdin/stdout run, or one call of a function test
    cpu_s: float = 60.0  # all the candidate's runs and calls together
    compile_cpu_s: float = 30.0  # g++
    memory_mb: int = 1024  # all the candidate's processes together (cgroup), and each one's address space
    max_processes: int = 64
    max_file_mb: int = 16  # RLIMIT_FSIZE; each private tmpfs holds 4x this
    max_output_bytes: int = 65536  # captured stdout/stderr of function tests; a case's stdout is capped by its expected size
    wall_s: float = 0.0  # backstop for the whole sandbox; 0 = derived from the CPU limits

    def backstop_s(self) -> float:
        return self.wall_s or 60.0 + 5.0 * (self.cpu_s + self.compile_cpu_s)


@dataclass
class CaseRun:
    """How one stdin/stdout run ended."""

    status: str  # exited | signaled | lost
    code: int | None
    signal: int | None
    cpu_s: float
    stdout: bytes
    stdout_truncated: bool
    stderr: str
    wall_timeout: bool
    oom_killed: bool


class SandboxError(Exception):
    """The sandbox itself failed (could not start, died): never the candidate's fault."""


def isolation() -> str:
    """The namespace isolation in use: "unshare" or "none". Decided once per process by running a
    trivial program, because a binary on PATH may still be refused by the host."""
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = "unshare" if shutil.which("unshare") and _works("unshare") else "none"
        return _isolation


def _works(mode: str) -> bool:
    try:
        with Sandbox(SandboxLimits(), mode=mode) as box:
            box.load("python", "print(6 * 7)\n")
            return box.run_case(b"", 100).stdout == b"42\n"
    except SandboxError:
        return False


def describe_isolation(limits: SandboxLimits = SandboxLimits()) -> dict[str, str]:
    """The isolation a verdict was made under, for reports and cards."""
    cgroup = cgroup_support()
    if cgroup.kind:
        memory = (
            f"cgroup {cgroup.kind}: {limits.memory_mb} MB for all of a sample's processes together (shared memory"
            f" included, no swap), at most {limits.max_processes} processes"
        )
    else:
        memory = (
            f"no cgroup ({cgroup.reason}): {limits.memory_mb} MB address space per process, at most"
            f" {limits.max_processes} processes, memfd_create and shmget denied (seccomp)"
        )
    namespaces = isolation()
    return {
        "namespaces": "network, PID, mount, IPC, UTS (unshare)" if namespaces == "unshare" else "none (no unshare)",
        "memory": memory,
        "user": (
            "a random unprivileged uid per sample; the judge under another"
            if os.geteuid() == 0
            else "a user namespace without capabilities; the judge shares the uid (not dumpable: unreadable, but"
            " the program can kill it, which ends as checker_error)"
        ),
        "filesystem": "read-only, nosuid; private tmpfs /tmp, /dev/shm and working dir" if namespaces == "unshare" else "the host's",
        "no_new_privs": "set",
        "time": f"CPU time: {limits.case_cpu_s}s per case or call, {limits.cpu_s}s per sample",
    }


# --- cgroups --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupSupport:
    """Where this process may make per-sample cgroups: v1 memory (+pids) or v2; kind None: none."""

    kind: str | None
    memory: str = ""  # the parent directory for memory (v1) or everything (v2)
    pids: str = ""  # v1 only
    reason: str = ""


@functools.cache
def cgroup_support() -> CgroupSupport:
    """Probe once: create a child cgroup under our own and set a memory limit in it."""
    mounts = _cgroup_mounts()
    own = _own_cgroups()
    if "memory" in mounts and "memory" in own:
        memory = mounts["memory"] + own["memory"]
        pids = mounts["pids"] + own["pids"] if "pids" in mounts and "pids" in own else ""
        support = CgroupSupport("v1", memory, pids)
    elif "cgroup2" in mounts and "" in own:
        support = CgroupSupport("v2", mounts["cgroup2"] + own[""])
    else:
        return CgroupSupport(None, reason="no memory cgroup mounted")
    try:
        Cgroup(support, 64, 8).remove()
    except OSError as exc:
        return CgroupSupport(None, reason=f"cannot make a child cgroup: {exc.strerror or exc}")
    return support


def _cgroup_mounts() -> dict[str, str]:
    """Mount points by v1 controller name, and "cgroup2" for the unified hierarchy."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()
        if not fstype:
            continue
        if fstype[0] == "cgroup2":
            found.setdefault("cgroup2", fields[4])
        elif fstype[0] == "cgroup":
            for option in fstype[-1].split(","):
                if option in ("memory", "pids"):
                    found.setdefault(option, fields[4])
    return found


def _own_cgroups() -> dict[str, str]:
    """Our cgroup path per v1 controller ("" for v2), from /proc/self/cgroup."""
    own: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                own[name] = path.rstrip("/")
    return own


class Cgroup:
    """One sample's cgroup: its memory (swap included) and process limits, its peak and OOM kills."""

    def __init__(self, support: CgroupSupport, memory_mb: int, max_processes: int):
        self.support = support
        name = f"datakit-{os.getpid()}-{secrets.token_hex(6)}"
        self.dirs: list[str] = []
        limit = str(memory_mb * MiB)
        if support.kind == "v1":
            self._make(os.path.join(support.memory, name))
            self._write("memory.limit_in_bytes", limit)
            self._write("memory.memsw.limit_in_bytes", limit, optional=True)  # absent without swap accounting
            if support.pids:
                self._make(os.path.join(support.pids, name))
                self._write("pids.max", str(max_processes), where=self.dirs[-1])
        else:
            self._make(os.path.join(support.memory, name))
            if not os.path.exists(os.path.join(self.dirs[0], "memory.max")):
                with open(os.path.join(support.memory, "cgroup.subtree_control"), "w") as f:
                    f.write("+memory +pids")  # EBUSY where our own cgroup holds processes
            self._write("memory.max", limit)
            self._write("memory.swap.max", "0", optional=True)
            self._write("pids.max", str(max_processes), optional=True)

    def _make(self, path: str) -> None:
        try:
            os.mkdir(path)
        except OSError:
            self.remove()
            raise
        self.dirs.append(path)

    def _write(self, name: str, value: str, optional: bool = False, where: str | None = None) -> None:
        path = os.path.join(where or self.dirs[0], name)
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            if not optional:
                self.remove()
                raise

    def open_procs(self) -> list[int]:
        """Write ends of every cgroup.procs: a child writes "0" into each to join."""
        return [os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def peak_mb(self) -> float | None:
        name = "memory.max_usage_in_bytes" if self.support.kind == "v1" else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int(Path(self.dirs[0], name).read_text()) / MiB
        return None

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.support.kind == "v1" else "memory.events"
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(self.dirs[0], name).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup (none escapes it, whatever it did to its session)."""
        for _ in range(50):
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)

    def _pids(self) -> list[int]:
        found = []
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found += [int(p) for p in Path(d, "cgroup.procs").read_text().split()]
        return found

    def remove(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(100):  # a killed process leaves its cgroup a moment after it dies
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        self.dirs = []


# --- the sandbox ------------------------------------------------------------------------------------


class Sandbox:
    """One sample's sandbox: load a program once, then run it on cases or against function tests.

    Use as a context manager; on exit every process of the sandbox is dead and its files are gone."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), mode: str | None = None, cgroups: bool = True):
        self.limits = limits
        self.mode = mode
        self.use_cgroups = cgroups
        self.cgroup: Cgroup | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: str | None = None
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.server_pid: int | None = None
        self.cpu_used = 0.0
        self._fds: list[int] = []

    def __enter__(self) -> Sandbox:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --

    def load(self, language: str, source: str, serve: bool = False) -> dict[str, Any]:
        """Compile (C++) or parse (Python) the program; `serve` starts the function server.
        Returns {"ok": True} or {"compile_error": why} or {"unsupported": language}."""
        reply = self._ask({"op": "load", "language": language, "source": source, "serve": serve}, self.limits.compile_cpu_s)
        self.cpu_used += reply.get("cpu", 0.0)
        self.server_pid = reply.get("server_pid")
        return reply

    def run_case(self, stdin: bytes, output_cap: int) -> CaseRun:
        """Run the loaded program once with `stdin` on its standard input."""
        ooms = self.cgroup.oom_kills() if self.cgroup else 0
        reply = self._ask({"op": "case", "input": base64.b64encode(stdin).decode(), "output_cap": output_cap}, self.limits.case_cpu_s)
        self.cpu_used += reply["cpu"]
        return CaseRun(
            status=reply["status"],
            code=reply["code"],
            signal=reply["signal"],
            cpu_s=reply["cpu"],
            stdout=base64.b64decode(reply["stdout"]),
            stdout_truncated=reply["stdout_truncated"],
            stderr=base64.b64decode(reply["stderr"]).decode("utf-8", "replace"),
            wall_timeout=reply["wall_timeout"],
            oom_killed=bool(self.cgroup) and self.cgroup.oom_kills() > ooms,
        )

    def run_function_tests(self, setup: str, tests: str, names: list[str]) -> dict[str, Any]:
        """Run the problem's setup and tests in the judge, `names` bound to proxies of the loaded
        program's functions. {"passed": True, "calls": n} only with the judge's proof of completion."""
        nonce = secrets.token_hex(16)
        job = {"op": "tests", "setup": setup, "tests": tests, "names": names, "nonce": nonce, "server_pid": self.server_pid}
        send(self.judge_in, job)
        reply = self._from_judge()
        if "passed" in reply:
            return {"passed": reply["passed"] == nonce, "calls": reply.get("calls", 0)}
        return reply

    def check_output(self, checker: str, stdin: str, output: str, expected: str) -> dict[str, Any]:
        """The problem's own checker, in the judge: {"ok": bool, "message"} or {"error": why}."""
        send(self.judge_in, {"op": "check", "checker": checker, "input": stdin, "output": output, "expected": expected})
        return self._from_judge()

    def _from_judge(self) -> dict[str, Any]:
        """The judge's report; the harness interrupts the wait if the judge died without one."""
        message = self._receive(self.judge_reader, self.limits.backstop_s(), also=self.harness_reader)
        if "judge_exited" in message:
            raise SandboxError(f"the judge ended without a report ({message['judge_exited']})")
        return message

    def finish(self) -> dict[str, Any]:
        """Stop the function server; how it ended ({"server": exit record} when there was one)."""
        return self._ask({"op": "finish"}, 10.0)

    def oom_killed(self) -> bool:
        return bool(self.cgroup) and self.cgroup.oom_kills() > 0

    def peak_memory_mb(self) -> float | None:
        return self.cgroup.peak_mb() if self.cgroup else None

    @property
    def stderr(self) -> str:
        return self.output["stderr"].decode("utf-8", "replace")

    # -- lifecycle --

    def _start(self) -> None:
        mode = self.mode or isolation()
        self.workdir = tempfile.mkdtemp(prefix="datakit-sandbox-")
        support = cgroup_support()
        if self.use_cgroups and support.kind:
            self.cgroup = Cgroup(support, self.limits.memory_mb, self.limits.max_processes)
        pipes = {name: os.pipe() for name in ("harness_in", "harness_out", "judge_in", "judge_out")}
        self._fds = [fd for pair in pipes.values() for fd in pair]
        cgroup_fds = self.cgroup.open_procs() if self.cgroup else []
        self._fds += cgroup_fds
        config = self._config(mode, pipes, cgroup_fds)
        child_fds = [pipes["harness_in"][0], pipes["harness_out"][1], pipes["judge_in"][0], pipes["judge_out"][1]]
        child_fds += cgroup_fds
        try:
            self.proc = _launch(mode, config, self.workdir, child_fds)
        except OSError as exc:
            raise SandboxError(f"could not run the sandbox: {exc}") from exc
        for fd in child_fds:
            self._close_fd(fd)
        self.harness_in, self.judge_in = pipes["harness_in"][1], pipes["judge_in"][1]
        self.harness_reader = Reader(pipes["harness_out"][0])
        self.judge_reader = Reader(pipes["judge_out"][0])
        self._drains = {self.proc.stdout.fileno(): self.output["stdout"], self.proc.stderr.fileno(): self.output["stderr"]}  # type: ignore[union-attr]
        try:
            ready = self._receive(self.harness_reader, _START_TIMEOUT_S)
        except SandboxError as exc:
            last = (self.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"the sandbox did not start: {exc}: {last}") from None
        if "error" in ready:
            raise SandboxError(ready["error"])

    def _config(self, mode: str, pipes: dict[str, tuple[int, int]], cgroup_fds: list[int]) -> dict[str, Any]:
        """What the harness needs, passed as one JSON argument."""
        root = os.geteuid() == 0
        uid = (1 << 30) + secrets.randbelow(1 << 30) if root else None
        if root and mode == "none" and _hidden_dirs():  # never fall back to running it as root
            raise SandboxError(
                f"the interpreter is under {_hidden_dirs()[0][0]}, closed to other users; without a mount namespace"
                " the sandbox uid cannot import from it"
            )
        return {
            "mounts": mode == "unshare",
            "workdir": self.workdir,
            "uid": uid,
            "judge_uid": (1 << 30) + secrets.randbelow(1 << 30) if root else None,
            "reveal": _hidden_dirs() if mode != "none" else (),
            "limits": asdict(self.limits),
            "harness_in": pipes["harness_in"][0],
            "harness_out": pipes["harness_out"][1],
            "judge_in": pipes["judge_in"][0],
            "judge_out": pipes["judge_out"][1],
            "cgroup_fds": cgroup_fds,
            "seccomp": not cgroup_fds and os.uname().machine in sandbox_inside._SECCOMP_DENY,
            "cxx": shutil.which("g++") or "/usr/bin/g++",
        }

    def close(self) -> None:
        """Kill everything the sandbox started and remove its cgroup and files."""
        if self.proc is not None:
            _kill_group(self.proc.pid)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc.stderr.close()  # type: ignore[union-attr]
            self.proc = None
        for fd in list(self._fds):  # a copy: closing one takes it off the list
            self._close_fd(fd)
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def _ask(self, request: dict[str, Any], cpu_s: float) -> dict[str, Any]:
        send(self.harness_in, request)
        while "judge_exited" in (reply := self._receive(self.harness_reader, 30.0 + 5.0 * cpu_s)):
            continue  # news of a judge that died while no report was awaited
        return reply

    def _receive(self, reader: Reader, wait_s: float, also: Reader | None = None) -> dict[str, Any]:
        """The next message from `reader` (or from `also`, whichever comes first), draining the
        sandbox's stdout/stderr meanwhile. The wall limit is a generous backstop: the limits that
        decide verdicts count CPU."""
        deadline = time.monotonic() + wait_s
        readers = {r.fd: r for r in (reader, also) if r is not None}
        while True:
            for r in readers.values():
                if (message := r.pop()) is not sandbox_inside._NOTHING:
                    return message
            now = time.monotonic()
            if now >= deadline:
                raise SandboxError(f"no reply within {wait_s:.0f}s")
            for fd in readable([*readers, *self._drains], deadline - now):
                if fd in readers:
                    try:
                        readers[fd].feed()
                    except EOFError:
                        raise SandboxError("the sandbox ended unexpectedly") from None
                else:
                    self._drain(fd)

    def _drain(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            del self._drains[fd]
            return
        buf = self._drains[fd]
        buf += chunk[: max(0, self.limits.max_output_bytes - len(buf))]


@functools.cache
def _hidden_dirs() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Directories other users cannot enter that hold the interpreter or this file (pyenv under a 0700
    /root): the namespaced sandbox shadows each with an empty tmpfs and binds those paths back, so
    the unprivileged uid can still import the stdlib, and nothing else of the directory shows."""
    needed = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, os.path.dirname(INSIDE))}
    needed.add(os.path.dirname(os.path.realpath(sys.executable)))
    hidden: dict[str, list[str]] = {}
    for path in sorted(needed):
        parts = path.split("/")
        for depth in range(2, len(parts)):
            top = "/".join(parts[:depth])
            if not os.stat(top).st_mode & 0o001:
                keep = hidden.setdefault(top, [])
                if not any(path.startswith(k + "/") for k in keep):
                    keep.append(path)
                break
    return tuple((top, tuple(keep)) for top, keep in sorted(hidden.items()))


def readable(fds: list[int], wait_s: float) -> list[int]:
    """Those of `fds` ready to read (or closed at the other end) within `wait_s` seconds; poll(), not
    select(), which fails for a descriptor past 1023 (a process may hold more files than that)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0, math.ceil(wait_s * 1000)))]


def _launch(mode: str, config: dict[str, Any], workdir: str, fds: list[int]) -> subprocess.Popen[bytes]:
    """Start the harness in a new session (its own process group, killed as a whole), with only its
    pipes besides stdio, and an environment that carries no secrets."""
    argv = [sys.executable, "-I", INSIDE, MARKER, owner_tag(), json.dumps(config)]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    env |= {"LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}  # fewer 64 MiB malloc arenas under RLIMIT_AS
    env |= {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        _wrapper(mode) + argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=fds,
        cwd=workdir,
        env=env,
        start_new_session=True,
    )


def owner_tag() -> str:
    """argv[2] of this process's sandboxes: tells them apart from other processes' in /proc."""
    return f"host-pid={os.getpid()}"


def _wrapper(mode: str) -> list[str]:
    """unshare: new net, mount, PID, IPC and UTS namespaces; the harness is PID 1 there, so when it
    exits (or unshare is killed, via --kill-child) every process it left dies."""
    if mode != "unshare":
        return []
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    namespaces = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
    return [shutil.which("unshare") or "unshare", *user, *namespaces, "--"]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)



