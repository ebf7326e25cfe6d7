"""Run untrusted, model-written Python against reference tests.

The code filter executes thousands of candidate programs written by a model, so each one runs in a
fresh interpreter (`sys.executable -I`) in its own process group, with rlimits, a minimal
environment, a throwaway temp dir as cwd and, where the host allows, private network, PID and mount
namespaces (bubblewrap, else `unshare`) in which / is read-only. As root the candidate runs under a
random unused uid: that makes RLIMIT_NPROC bite (root is exempt from it) and keeps root-owned files
out of reach.

A verdict of "passed" needs proof that the tests ran to the end: the harness reads a random nonce
from stdin and writes it to a dedicated pipe only after `check()` returned, so a candidate that
exits early (`sys.exit(0)`, `os._exit(0)`, killing itself) fails however it exits.

This file is also the harness: the sandbox runs `python -I sandbox.py datakit-sandbox CONFIG`, and
the `_harness*` functions below run inside it. Module-level code must stay stdlib-only.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import linecache
import os
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import types
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

MARKER = "datakit-sandbox"  # argv[1] of every sandbox process: finds leftovers in /proc
MiB = 1 << 20
_STATUS_CAP = 4096  # bytes kept from the result and status pipes
_FENCE = re.compile(r"^[ \t]*(`{3,})[ \t]*([^`\s]*)[^`]*$")
_PYTHON_TAGS = {"", "py", "py3", "python", "python3"}
_SOURCES = {"<candidate>": "candidate", "<tests>": "test"}
_TMPFS_FLAGS = 2 | 4  # MS_NOSUID | MS_NODEV
_MS_BIND_REC = 4096 | 16384  # MS_BIND | MS_REC
_SYS_MOUNT_SETATTR = 442  # same number on every architecture
_CLONE_NEWUSER = 0x10000000
_isolation: str | None = None
_isolation_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock for the whole run
    cpu_s: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS
    max_processes: int = 64  # RLIMIT_NPROC, enforced because the candidate never runs as root
    max_file_mb: int = 16  # RLIMIT_FSIZE; each private tmpfs holds 4x this
    max_output_bytes: int = 65536  # captured stdout/stderr are truncated to this


@dataclass(frozen=True)
class SandboxResult:
    status: str  # passed | failed | timeout | error ("error": the sandbox could not run; never the candidate's fault)
    reason: str  # one short line
    stdout: str
    stderr: str
    seconds: float


def extract_code(answer: str) -> str | None:
    """The last Python fenced block of an answer (```python, ```py, ```Python3 or a bare ```), because
    models show scratch versions before the final one; blocks in other languages are skipped. A
    truncated answer whose last fence never closed yields what follows that fence; none gives None."""
    blocks: list[str] = []
    body: list[str] | None = None
    fence, wanted = "", False
    for line in answer.splitlines():
        if body is None:
            if match := _FENCE.match(line):
                fence, wanted, body = match.group(1), match.group(2).lower() in _PYTHON_TAGS, []
        elif line.strip().startswith(fence) and not line.strip().strip("`"):
            blocks += [textwrap.dedent("\n".join(body))] if wanted else []
            body = None
        else:
            body.append(line)
    if body is not None and wanted:
        blocks.append(textwrap.dedent("\n".join(body)))
    return blocks[-1] if blocks else None


def isolation() -> str:
    """The network isolation in use: "bwrap", "unshare" or "none". Decided once per process by running
    a trivial sandbox with each mechanism, because a binary on PATH may still be refused by the host."""
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = next((m for m in ("bwrap", "unshare") if _works(m)), "none")
        return _isolation


def _works(mode: str) -> bool:
    if shutil.which(mode) is None:
        return False
    return _execute("probe = 1\n", "assert probe == 1\n", SandboxLimits(timeout_s=30.0), mode).status == "passed"


def run_tests(code: str, tests: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run `code` then `tests` (HumanEval style: they define `check` and end with `check(entry_point)`)
    in one fresh sandboxed interpreter. Safe to call from many threads at once: no signals, no
    preexec_fn, every pipe owned by its caller."""
    return _execute(code, tests, limits, isolation())


def _execute(code: str, tests: str, limits: SandboxLimits, mode: str) -> SandboxResult:
    start = time.monotonic()
    nonce = secrets.token_hex(16).encode()
    payload = nonce + b"\n" + json.dumps({"code": code, "tests": tests}).encode()
    workdir = None
    try:
        workdir = tempfile.mkdtemp(prefix="datakit-sandbox-")
        with _Pipe() as result, _Pipe() as status:
            proc = _launch(mode, _config(mode, workdir, result.write, status.write, limits), workdir)
            result.close_write()
            status.close_write()
            out, timed_out = _supervise(proc, payload, [result.read, status.read], start + limits.timeout_s, limits)
    except OSError as exc:
        return SandboxResult("error", f"could not run the sandbox: {exc}", "", "", time.monotonic() - start)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    verdict, why = _verdict(out[2], out[3], nonce, proc.returncode, timed_out, limits)
    stdout, stderr = (b.decode("utf-8", "replace") for b in out[:2])
    if verdict == "error" and not why:
        why = "the sandbox did not start: " + (stderr.strip().splitlines() or ["no output"])[-1]
    return SandboxResult(verdict, why, stdout, stderr, time.monotonic() - start)


def _supervise(
    proc: subprocess.Popen[bytes], payload: bytes, fds: list[int], deadline: float, limits: SandboxLimits
) -> tuple[list[bytearray], bool]:
    """Feed stdin, collect stdout, stderr and the two status pipes; whatever happens (even an
    exception here), the process group is dead and reaped on return."""
    try:
        _feed(proc, payload)
        streams = [proc.stdout.fileno(), proc.stderr.fileno(), *fds]  # type: ignore[union-attr]
        return _collect(proc, streams, deadline, limits.max_output_bytes)
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


class _Pipe:
    """An os.pipe whose ends are closed however the run ends (the write end goes to the child)."""

    def __enter__(self) -> _Pipe:
        self.read, self.write = os.pipe()
        self._open = {self.read, self.write}
        return self

    def close_write(self) -> None:
        self._open.discard(self.write)
        os.close(self.write)

    def __exit__(self, *exc: object) -> None:
        for fd in self._open:
            os.close(fd)


def _config(mode: str, workdir: str, result_fd: int, status_fd: int, limits: SandboxLimits) -> dict[str, Any]:
    """What the harness needs, passed as one JSON argument (small; the code travels on stdin)."""
    # as root: a uid no account uses, unique per run, so RLIMIT_NPROC counts this run's processes only
    uid = (1 << 30) + secrets.randbelow(1 << 30) if os.geteuid() == 0 else None
    if uid is not None and mode == "none" and _hidden_dirs():  # never fall back to running it as root
        top = _hidden_dirs()[0][0]
        raise PermissionError(
            f"the interpreter is under {top}, closed to other users; without a mount namespace the sandbox uid"
            " cannot import from it"
        )
    return {
        "mounts": mode == "unshare",
        "workdir": workdir,
        "uid": uid,
        "result_fd": result_fd,
        "status_fd": status_fd,
        "reveal": _hidden_dirs() if mode != "none" else (),
        "limits": asdict(limits),
    }


@functools.cache
def _hidden_dirs() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Directories other users cannot enter that hold the interpreter or this file (pyenv under a 0700
    /root): the namespaced sandbox shadows each with an empty tmpfs and binds those paths back, so
    the unprivileged uid can still import the stdlib, and nothing else of the directory shows."""
    needed = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, os.path.dirname(__file__))}
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


def _launch(mode: str, config: dict[str, Any], workdir: str) -> subprocess.Popen[bytes]:
    """Start the harness in a new session (its own process group, killed as a whole), with only the
    two status pipes besides stdio, and an environment that carries no secrets."""
    argv = [sys.executable, "-I", os.path.abspath(__file__), MARKER, json.dumps(config)]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    env |= {"LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2"}  # fewer 64 MiB malloc arenas under RLIMIT_AS
    env |= {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(
        _wrapper(mode, config) + argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(config["result_fd"], config["status_fd"]),
        cwd=workdir,
        env=env,
        start_new_session=True,
    )


def _wrapper(mode: str, config: dict[str, Any]) -> list[str]:
    """The namespace launcher. unshare: new net, mount, PID, IPC and UTS namespaces; the harness is
    PID 1 there, so when it exits (or unshare is killed, via --kill-child) every process it left dies.
    The harness itself then makes the mounts read-only (see _harness_mounts)."""
    if mode == "bwrap":
        return _bwrap_args(config)
    if mode != "unshare":
        return []
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    namespaces = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts"]
    return [shutil.which("unshare") or "unshare", *user, *namespaces, "--"]


def _bwrap_args(config: dict[str, Any]) -> list[str]:
    """bubblewrap: / read-only, fresh /dev and /proc, size-bounded tmpfs on /tmp, /dev/shm and the
    workdir, hidden interpreter dirs revealed, and (as root) only the caps to drop to the sandbox uid."""
    size = str(4 * config["limits"]["max_file_mb"] * MiB)
    args = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for top, keep in config["reveal"]:
        args += ["--tmpfs", top]
        for path in keep:
            between = os.path.relpath(os.path.dirname(path), top).split("/")
            parents = [os.path.join(top, *between[: i + 1]) for i in range(len(between)) if between != ["."]]
            args += [a for d in parents for a in ("--perms", "0755", "--dir", d)]  # bwrap's default is 0700
            args += ["--ro-bind", path, path]
    for path in ("/tmp", "/dev/shm", config["workdir"]):
        args += ["--size", size, "--tmpfs", path]
    if os.geteuid() == 0:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_CHOWN"]
    return args + ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--"]


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write nonce and payload from a helper thread: a payload over the pipe buffer must not block the
    caller past its deadline if the sandbox never reads it."""

    def write() -> None:
        with contextlib.suppress(OSError):  # the sandbox died first; its verdict says why
            proc.stdin.write(data)  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]

    threading.Thread(target=write, name="sandbox-stdin", daemon=True).start()


def _collect(proc: subprocess.Popen[bytes], fds: list[int], deadline: float, cap: int) -> tuple[list[bytearray], bool]:
    """Read every pipe incrementally, keeping at most `cap` bytes of each, until the process exits or
    the deadline passes; then kill its whole group and drain what is left (briefly)."""
    caps = [cap, cap, _STATUS_CAP, _STATUS_CAP]
    bufs = {fd: bytearray() for fd in fds}
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    live, timed_out, drain_until = set(fds), False, None
    while True:
        now = time.monotonic()
        exited = drain_until is None and _exited(proc.pid)
        if drain_until is None and (exited or now >= deadline):
            timed_out = not exited
            _kill_group(proc.pid)  # before reaping, so the group id cannot have been reused
            drain_until = now + 1.0
        elif drain_until is not None and (not live or now >= drain_until):
            break
        for fd, _ in poller.poll(10):
            if not _read_into(bufs[fd], fd, caps[fds.index(fd)]):
                poller.unregister(fd)
                live.discard(fd)
    proc.wait()
    return [bufs[fd] for fd in fds], timed_out


def _read_into(buf: bytearray, fd: int, limit: int) -> bool:
    """One read; bytes past `limit` are dropped (but still read, so the writer never blocks). False at EOF."""
    chunk = os.read(fd, 65536)
    buf += chunk[: max(0, limit - len(buf))]
    return bool(chunk)


def _exited(pid: int) -> bool:
    """Has it exited? Without reaping it: its pid, hence its group id, stays reserved until we do."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped behind our back (SIGCHLD ignored)
        return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _verdict(
    result: bytes, status: bytes, nonce: bytes, code: int, timed_out: bool, limits: SandboxLimits
) -> tuple[str, str]:
    """Passed only when the result pipe holds exactly the nonce. The status pipe, which the candidate
    never holds, says whether the harness started, failed to set up, and how the candidate exited."""
    if timed_out:
        return "timeout", f"exceeded {limits.timeout_s}s wall clock"
    if not status.startswith(b"S"):
        return "error", ""
    records = status[1:].decode("utf-8", "replace").splitlines()
    errors = [r[1:] for r in records if r.startswith("E")]
    if errors:
        return "error", errors[0]
    if result == nonce:
        return "passed", "all tests passed"
    if result.startswith(b"F"):
        return "failed", (result[1:].decode("utf-8", "replace").strip().splitlines() or ["failed"])[0][:300]
    exits = [int(r[1:]) for r in records if r.startswith("X") and r[1:].lstrip("-").isdigit()]
    code = exits[0] if exits else code
    if code == -signal.SIGXCPU:
        return "timeout", f"exceeded {limits.cpu_s}s CPU time"
    return "failed", f"{_exit_reason(code)} before the tests finished"


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


# --- the harness: everything below runs inside the sandbox -------------------------------------


def _harness() -> NoReturn:
    """Sandbox entry point. Reads nonce and payload from stdin before anything else runs, sets up
    mounts (unshare mode), then forks the worker that runs the candidate, and reports how it exited
    on the status pipe. As PID 1 of the namespace its exit kills whatever the candidate left."""
    nonce, _, body = sys.stdin.buffer.read().partition(b"\n")
    _harness_close_stdin()
    config = json.loads(sys.argv[2])
    status_fd = config["status_fd"]
    os.write(status_fd, b"S")
    try:
        if config["mounts"]:
            _harness_mounts(config)
        if config["uid"] is not None:
            os.chown(config["workdir"], config["uid"], config["uid"])
        payload = json.loads(body)
        child = os.fork()
    except BaseException as exc:
        _harness_setup_failed(status_fd, exc)
    if child == 0:
        _harness_worker(config, payload, nonce)
    os.close(config["result_fd"])
    code = _harness_wait(child)
    os.write(status_fd, f"X{code}\n".encode())
    os._exit(code if code >= 0 else 128 - code)


def _harness_close_stdin() -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _harness_setup_failed(status_fd: int, exc: BaseException) -> NoReturn:
    os.write(status_fd, f"Esandbox setup failed: {type(exc).__name__}: {exc}".encode()[:1000] + b"\n")
    os._exit(70)


def _harness_wait(child: int) -> int:
    """Reap every process (PID 1 adopts the orphans) until the worker itself exits; its exit code."""
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


def _harness_mounts(config: dict[str, Any]) -> None:
    """Inside the private mount namespace: shadow hidden interpreter dirs, make every mount read-only
    (mount_setattr, recursive), then give /tmp, /dev/shm and the workdir fresh size-bounded tmpfs."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    for top, keep in config["reveal"]:
        held = [os.open(path, os.O_PATH) for path in keep]  # reachable after `top` is shadowed
        _harness_mount(libc, b"tmpfs", top, b"tmpfs", _TMPFS_FLAGS, "mode=0755,size=1m")
        for path, fd in zip(keep, held):
            os.makedirs(path, exist_ok=True)
            _harness_mount(libc, f"/proc/self/fd/{fd}".encode(), path, None, _MS_BIND_REC, None)
            os.close(fd)
    attr = ctypes.create_string_buffer((1).to_bytes(8, "little") + bytes(24))  # struct mount_attr{.attr_set=RDONLY}
    args = (ctypes.c_int(-100), b"/", ctypes.c_uint(0x8000), attr, ctypes.c_size_t(32))  # AT_FDCWD, AT_RECURSIVE
    if libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), *args) != 0:
        raise OSError(ctypes.get_errno(), "mount_setattr(/, read-only): " + os.strerror(ctypes.get_errno()))
    size = 4 * config["limits"]["max_file_mb"]
    for path in ("/tmp", "/dev/shm", config["workdir"]):
        if path == config["workdir"] or os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            _harness_mount(libc, b"tmpfs", path, b"tmpfs", _TMPFS_FLAGS, f"mode=1777,size={size}m,nr_inodes=16384")


def _harness_mount(libc: Any, source: bytes, target: str, fstype: bytes | None, flags: int, data: str | None) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data.encode() if data else None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _harness_worker(config: dict[str, Any], payload: dict[str, str], nonce: bytes) -> NoReturn:
    """Confine this process, then run candidate and tests in one fresh namespace. Only the original
    process reports (a forked copy that finishes the tests too stays silent), and the nonce is
    written only after the last line of the tests ran."""
    me = os.getpid()
    try:
        _harness_confine(config)
    except BaseException as exc:
        _harness_setup_failed(config["status_fd"], exc)
    os.close(config["status_fd"])  # the candidate never holds the status pipe
    result_fd = config["result_fd"]
    try:
        namespace = _harness_namespace()
        for name, source in (("<candidate>", payload["code"]), ("<tests>", payload["tests"])):
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)
            exec(compile(source, name, "exec", dont_inherit=True), namespace)
    except BaseException as exc:
        if os.getpid() == me:
            _harness_report(result_fd, exc)
        os._exit(1)
    if os.getpid() == me:
        _harness_flush()
        os.write(result_fd, nonce)
    os._exit(0)


def _harness_confine(config: dict[str, Any]) -> None:
    """rlimits, then the unprivileged uid (as root) under which RLIMIT_NPROC is enforced, or (not
    root, where RLIMIT_NPROC already applies) no capabilities over the mount namespace."""
    limits = config["limits"]
    for which, soft, hard in (
        (resource.RLIMIT_CPU, limits["cpu_s"], limits["cpu_s"] + 1),  # SIGXCPU first, SIGKILL a second later
        (resource.RLIMIT_AS, limits["memory_mb"] * MiB, limits["memory_mb"] * MiB),
        (resource.RLIMIT_FSIZE, limits["max_file_mb"] * MiB, limits["max_file_mb"] * MiB),
        (resource.RLIMIT_NPROC, limits["max_processes"], limits["max_processes"]),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))
    uid = config["uid"]
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif config["mounts"]:  # not root: root of our own user namespace; a nested one sheds the caps to remount /
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER): " + os.strerror(ctypes.get_errno()))
    os.chdir(config["workdir"])


def _harness_namespace() -> dict[str, Any]:
    """A fresh module for candidate and tests, registered so dataclasses, pickle and typing work; not
    named __main__, so an `if __name__ == "__main__":` demo in an answer does not run."""
    module = types.ModuleType("__candidate__")
    sys.modules[module.__name__] = module
    return module.__dict__


def _harness_report(result_fd: int, exc: BaseException) -> None:
    try:  # from the candidate's or tests' frame on: the harness frame is noise
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
    except BaseException:
        pass
    _harness_flush()
    os.write(result_fd, b"F" + _harness_reason(exc).encode("utf-8", "replace")[:1000])


def _harness_reason(exc: BaseException) -> str:
    """`Type: first line of the message at test line N` (or candidate line N), short."""
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        return f"exited with code {code} before the tests finished"
    try:
        text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        text = (text.strip().splitlines() or [""])[0][:200]
    except BaseException:
        text = ""
    where, tb = "", exc.__traceback__
    if isinstance(exc, SyntaxError) and exc.filename in _SOURCES:
        where = f" at {_SOURCES[exc.filename]} line {exc.lineno}"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in _SOURCES:
            where = f" at {_SOURCES[tb.tb_frame.f_code.co_filename]} line {tb.tb_lineno}"
        tb = tb.tb_next
    return type(exc).__name__ + (f": {text}" if text else "") + where


def _harness_flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


if __name__ == "__main__" and sys.argv[1:2] == [MARKER]:
    _harness()
