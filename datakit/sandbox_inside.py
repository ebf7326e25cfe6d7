"""The inside of the code sandbox: the harness, the trusted judge and the candidate's processes.

`datakit.sandbox` starts this file as `python -I sandbox_inside.py datakit-sandbox host-pid=N CONFIG` inside
fresh namespaces. What runs here, and who may see what:

- the harness (PID 1 of the namespace): sets up the mounts, then forks the judge, then serves the
  host's requests: compile or load the candidate's program, run it on one stdin/stdout case. It
  holds the candidate's code and the cases' inputs, never tests or expected outputs.
- the judge: forked before any secret arrives, under its own uid (as root) or unable to be traced
  (`PR_SET_DUMPABLE` 0), it gets the tests and expected values straight from the host on a pipe of
  its own, runs function tests against a proxy of the candidate, and reports to the host on another.
- the candidate: every process that runs model-written code (the function server, one process per
  stdin/stdout case, the compiler) is forked from the harness before it knew anything secret, joins
  the sample's cgroup, drops to the candidate uid with `no_new_privs`, and only exchanges plain data
  (JSON: None, bool, int, float, str, bytes, list, tuple, dict, set) with the judge.

So nothing the candidate does to its own interpreter (builtins, frames, tracing, memory) can reach
a verdict: the tests, the comparison and the proof of completion live in another process.
Module-level code must stay stdlib-only: the harness imports nothing else.
"""

from __future__ import annotations

import ast
import base64
import builtins
import ctypes
import json
import math
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types
from typing import Any, NoReturn

MARKER = "datakit-sandbox"  # argv[1] of every sandbox process: finds leftovers in /proc
MiB = 1 << 20
MAX_MESSAGE = 256 * MiB
_HEADER = struct.Struct(">I")
_MAX_DEPTH = 200
_PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 4, 38, 22
_CLONE_NEWUSER = 0x10000000
_TMPFS_FLAGS = 2 | 4  # MS_NOSUID | MS_NODEV
_MS_BIND_REC = 4096 | 16384  # MS_BIND | MS_REC
_SYS_MOUNT_SETATTR = 442  # same number on every architecture
_MOUNT_ATTR_RDONLY_NOSUID = 0x1 | 0x2
# seccomp fallback where no cgroup bounds shared memory: memfd_create and shmget fail with EPERM
_SECCOMP_DENY = {"x86_64": (0xC000003E, (319, 29)), "aarch64": (0xC00000B7, (279, 194))}
_SOURCES = {"<candidate>": "candidate", "<tests>": "test", "<setup>": "setup"}


# --- framing: a 4-byte length, then JSON (ASCII, so lone surrogates survive) ----------------------


def send(fd: int, message: Any) -> None:
    data = json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode()
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


class Reader:
    """Reads framed messages from one fd; `recv` waits at most until `deadline` (monotonic)."""

    def __init__(self, fd: int, limit: int = MAX_MESSAGE):
        self.fd, self.limit, self.buffer = fd, limit, bytearray()

    def pop(self) -> Any:
        """The next complete message in the buffer, or `_NOTHING` when none is complete yet."""
        if len(self.buffer) < 4:
            return _NOTHING
        size = _HEADER.unpack_from(self.buffer)[0]
        if size > self.limit:
            raise ValueError(f"message of {size} bytes is over the {self.limit}-byte limit")
        if len(self.buffer) < 4 + size:
            return _NOTHING
        data = bytes(self.buffer[4 : 4 + size])
        del self.buffer[: 4 + size]
        return json.loads(data)

    def feed(self) -> None:
        """One read into the buffer; EOFError when the writer is gone."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def recv(self, deadline: float | None = None, on_wait: Any = None) -> Any:
        """The next message. EOFError when the writer is gone, TimeoutError past the deadline;
        `on_wait()` is called between polls (it may raise to give up early)."""
        while (message := self.pop()) is _NOTHING:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if on_wait is not None:
                wait = 0.05 if wait is None else min(wait, 0.05)
            if select.select([self.fd], [], [], wait)[0]:
                self.feed()
                continue
            if on_wait is not None:
                on_wait()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError
        return message


_NOTHING = object()


# --- plain data: the only values that cross between candidate and judge ---------------------------


class Unserializable(Exception):
    """The candidate's value is not plain data."""


_TAGS = ("$int", "$tuple", "$set", "$frozenset", "$bytes", "$dict")


def to_plain(value: Any, depth: int = 0) -> Any:
    """Encode plain data as JSON-able values. Subclasses of the plain types (a namedtuple, an
    OrderedDict, an IntEnum, numpy's float64) travel as their base value; anything else is refused."""
    if depth > _MAX_DEPTH:
        raise Unserializable("nested deeper than 200 levels")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -(1 << 53) < value < (1 << 53) else {"$int": format(value, "x")}
    if kind is float:
        return value
    if kind is list:
        return [to_plain(v, depth + 1) for v in value]
    if kind is tuple:
        return {"$tuple": [to_plain(v, depth + 1) for v in value]}
    if kind is dict:
        return {"$dict": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind is set or kind is frozenset:
        return {"$" + kind.__name__: [to_plain(v, depth + 1) for v in value]}
    if kind is bytes:
        return {"$bytes": base64.b64encode(value).decode()}
    return to_plain(_base_value(value), depth + 1)


def _base_value(value: Any) -> Any:
    for base in (bool, int, float, str, bytes, tuple, list, dict, frozenset, set):
        if isinstance(value, base):
            if base in (tuple, list, frozenset, set):
                return base(base.__iter__(value))
            return dict(dict.items(value)) if base is dict else base(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise Unserializable(f"returned a {type(value).__module__}.{type(value).__qualname__}, not plain data")


def from_plain(obj: Any, depth: int = 0) -> Any:
    """Decode what `to_plain` made into fresh builtin values; anything else is a ValueError."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested deeper than 200 levels")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is list:
        return [from_plain(v, depth + 1) for v in obj]
    if type(obj) is not dict or len(obj) != 1:
        raise ValueError("not an encoded value")
    (tag, payload), = obj.items()
    if tag == "$int" and type(payload) is str and len(payload) <= 100_000:
        return int(payload, 16)
    if tag == "$bytes" and type(payload) is str:
        return base64.b64decode(payload, validate=True)
    if type(payload) is not list or tag not in _TAGS:
        raise ValueError(f"unknown tag {tag!r}")
    items = [from_plain(v, depth + 1) for v in payload] if tag != "$dict" else None
    if tag == "$tuple":
        return tuple(items)
    if tag in ("$set", "$frozenset"):
        return (set if tag == "$set" else frozenset)(items)  # TypeError on unhashable items
    if not all(type(pair) is list and len(pair) == 2 for pair in payload):
        raise ValueError("bad dict entry")
    return {from_plain(k, depth + 1): from_plain(v, depth + 1) for k, v in payload}


# --- the harness (PID 1) --------------------------------------------------------------------------


def _renumber_low(config: dict[str, Any]) -> None:
    """The host's pipes and cgroup files under the lowest free numbers: they come with the host's
    numbers, past 1024 where the host holds many files, and select() takes none past 1023."""

    def low(fd: int) -> int:
        new = os.dup(fd)
        os.set_inheritable(new, True)
        os.close(fd)
        return new

    for name in ("harness_in", "harness_out", "judge_in", "judge_out"):
        config[name] = low(config[name])
    config["cgroup_fds"] = [low(fd) for fd in config["cgroup_fds"]]


def harness() -> NoReturn:
    """Sandbox entry point: mounts, the judge, then the host's requests until it says finish."""
    config = json.loads(sys.argv[3])
    _close_stdin()
    _renumber_low(config)
    reply = config["harness_out"]
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        _prctl(libc, _PR_SET_NO_NEW_PRIVS, 1)
        _prctl(libc, _PR_SET_DUMPABLE, 0)
        if config["mounts"]:
            _mounts(libc, config)
        _prepare_workdir(config)
        # the judge <-> function server pipes are made here, not by the host: `unshare`, which
        # stays alive, would hold copies of them and the judge would never see the server's exit
        config["to_server"], config["to_server_w"] = os.pipe()
        config["from_server_r"], config["from_server"] = os.pipe()
        judge_pid = _fork_judge(config)
    except BaseException as exc:
        send(reply, {"error": f"sandbox setup failed: {type(exc).__name__}: {exc}"})
        os._exit(70)
    send(reply, {"ready": True})
    Harness(config, libc, judge_pid).serve(Reader(config["harness_in"]))


class Harness:
    """The harness's state: the program once loaded, the children it must account for."""

    def __init__(self, config: dict[str, Any], libc: Any, judge_pid: int):
        self.config, self.libc, self.judge_pid = config, libc, judge_pid
        self.limits = config["limits"]
        self.code: types.CodeType | None = None
        self.binary: str | None = None
        self.server: int | None = None
        self.exits: dict[int, dict[str, Any]] = {}  # exit records of waited children by pid
        self.judge_reported = False

    def serve(self, requests: Reader) -> NoReturn:
        reply = self.config["harness_out"]
        while True:
            try:
                request = requests.recv(on_wait=self._watch_judge)
            except EOFError:
                os._exit(0)
            op = request.get("op")
            if op == "load":
                send(reply, self.load(request["language"], request["source"], request.get("serve", False)))
            elif op == "case":
                send(reply, self.run_case(base64.b64decode(request["input"]), request["output_cap"]))
            elif op == "finish":
                send(reply, self.finish())
                os._exit(0)

    def load(self, language: str, source: str, serve: bool) -> dict[str, Any]:
        """Compile the program once: Python to a code object (a SyntaxError is the candidate's
        compile error), C++ with g++ -O2 -std=c++17 inside the sandbox. `serve` starts the
        function server that answers the judge's calls."""
        if language == "python":
            try:
                self.code = compile(source, "<candidate>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
                return {"compile_error": _exception_line(exc)}
            if serve:
                self.server = self._fork_candidate(self._serve_functions, None, None, None, self.limits["cpu_s"])
            self._close_server_pipes()  # the server holds them now: its exit must be the judge's EOF
            return {"ok": True, "server_pid": self.server}
        if language == "cpp":
            self._close_server_pipes()
            path = os.path.join(self.config["workdir"], "main.cpp")
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(source)
            argv = [self.config["cxx"], "-std=c++17", "-O2", "-pipe", "-o", "main", "main.cpp"]
            result = self._run(lambda: os.execv(argv[0], argv), b"", 65536, self.limits["compile_cpu_s"])
            if result["status"] != "exited" or result["code"] != 0:
                why = _tail(base64.b64decode(result["stderr"]).decode("utf-8", "replace"))
                return {"compile_error": f"{_describe(result)}: {why}" if why else _describe(result), "cpu": result["cpu"]}
            self.binary = os.path.join(self.config["workdir"], "main")
            return {"ok": True, "cpu": result["cpu"]}
        return {"unsupported": language}

    def run_case(self, stdin: bytes, output_cap: int) -> dict[str, Any]:
        """Run the loaded program once with `stdin`; how it ended, its CPU time and output."""
        if self.binary is not None:
            binary = self.binary
            return self._run(lambda: os.execv(binary, [binary]), stdin, output_cap, self.limits["case_cpu_s"])
        code = self.code
        return self._run(lambda: _run_main(code), stdin, output_cap, self.limits["case_cpu_s"])

    def _watch_judge(self) -> None:
        """While idle: tell the host at once if the judge died (where the candidate shares its uid it
        can kill it), since `unshare` holds a copy of the judge's pipe and the host would see no EOF."""
        self._reap()
        if self.judge_pid in self.exits and not self.judge_reported:
            self.judge_reported = True
            send(self.config["harness_out"], {"judge_exited": _describe(self.exits[self.judge_pid])})

    def _close_server_pipes(self) -> None:
        for name in ("to_server", "from_server"):
            if self.config[name] is not None:
                os.close(self.config[name])
                self.config[name] = None

    def finish(self) -> dict[str, Any]:
        """Stop the function server and the judge; report how the server ended."""
        report: dict[str, Any] = {}
        if self.server is not None:
            report["server"] = self._stop(self.server)
        self._stop(self.judge_pid)
        return report

    def _stop(self, pid: int) -> dict[str, Any]:
        if pid not in self.exits:
            _kill(pid)
            self._reap_until(pid)
        return self.exits[pid]

    def _fork_candidate(self, main: Any, stdin: int | None, stdout: int | None, stderr: int | None, cpu_s: float) -> int:
        """Fork a candidate process: it joins the cgroup, drops privileges and runs `main()`."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _become_candidate(self.libc, self.config, cpu_s, stdin, stdout, stderr)
                main()
            except BaseException:
                traceback.print_exc()
                os._exit(71)
            os._exit(0)
        return pid

    def _serve_functions(self) -> NoReturn:
        serve_functions(self.code, self.config["to_server"], self.config["from_server"])

    def _run(self, main: Any, stdin: bytes, output_cap: int, cpu_s: float) -> dict[str, Any]:
        """Fork a candidate process on pipes; feed stdin, keep at most `output_cap` bytes of stdout
        (and 64 KiB of stderr), until it exits or shows no progress within the wall backstop."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = self._fork_candidate(main, in_r, out_w, err_w, cpu_s)
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        os.set_blocking(in_w, False)
        backstop = time.monotonic() + wall_backstop(cpu_s)
        caps = {out_r: output_cap, err_r: 65536}
        bufs = {out_r: bytearray(), err_r: bytearray()}
        truncated = {out_r: False, err_r: False}
        pending, writer = memoryview(stdin), in_w
        if not pending:
            os.close(in_w)
            writer = None
        live = [out_r, err_r]
        wall_timeout = False
        while pid not in self.exits:
            if time.monotonic() >= backstop:
                wall_timeout = True
                _kill(pid)
                self._reap_until(pid)
                break
            readers, writers, _ = select.select(live, [writer] if writer is not None else [], [], 0.02)
            for fd in readers:
                if not _read_capped(fd, bufs[fd], caps[fd], truncated):
                    live.remove(fd)
            if writers:
                try:
                    pending = pending[os.write(writer, pending[: 1 << 16]) :]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    os.close(writer)
                    writer = None
            self._reap()
        for fd in live:  # what it wrote before exiting is in the pipe: read it all, wait for nothing
            os.set_blocking(fd, False)
            while True:
                try:
                    if not _read_capped(fd, bufs[fd], caps[fd], truncated):
                        break
                except BlockingIOError:
                    break
        for fd in (out_r, err_r) + ((writer,) if writer is not None else ()):
            os.close(fd)
        _kill_group(pid)  # whatever it left running in its process group
        record = dict(self.exits[pid])
        record |= {
            "stdout": base64.b64encode(bytes(bufs[out_r])).decode(),
            "stdout_truncated": truncated[out_r],
            "stderr": base64.b64encode(bytes(bufs[err_r])).decode(),
            "wall_timeout": wall_timeout,
        }
        return record

    def _reap(self) -> None:
        """Reap every exited child (PID 1 adopts the orphans), recording status and CPU time."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = _exit_record(status, usage)

    def _reap_until(self, pid: int) -> None:
        while pid not in self.exits:
            try:
                got, status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                self.exits.setdefault(pid, {"status": "lost", "code": None, "signal": None, "cpu": 0.0})
                return
            self.exits[got] = _exit_record(status, usage)


def _exit_record(status: int, usage: Any) -> dict[str, Any]:
    record = {"cpu": usage.ru_utime + usage.ru_stime, "code": None, "signal": None}
    if os.WIFSIGNALED(status):
        return record | {"status": "signaled", "signal": os.WTERMSIG(status)}
    return record | {"status": "exited", "code": os.WEXITSTATUS(status)}


def _describe(record: dict[str, Any]) -> str:
    if record["status"] == "signaled":
        return f"killed by {signal_name(record['signal'])}"
    return f"exited with code {record['code']}"


def signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number).name  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return f"signal {number}"


def wall_backstop(cpu_s: float) -> float:
    """Wall seconds before a process that is not using its CPU time (sleeping, blocked) is stopped:
    far above the CPU limit so that a loaded machine never turns a right answer into a timeout."""
    return max(10.0, 5.0 * cpu_s)


def _read_capped(fd: int, buf: bytearray, cap: int, truncated: dict[int, bool]) -> bool:
    chunk = os.read(fd, 1 << 16)
    if len(buf) + len(chunk) > cap:
        truncated[fd] = True
    buf += chunk[: max(0, cap - len(buf))]
    return bool(chunk)


def _tail(text: str, limit: int = 300) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    first_error = next((line for line in lines if "error" in line), lines[-1] if lines else "")
    return first_error.strip()[:limit]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _close_stdin() -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _prctl(libc: Any, option: int, value: int) -> None:
    if libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}): {os.strerror(ctypes.get_errno())}")


def _mounts(libc: Any, config: dict[str, Any]) -> None:
    """Inside the private mount namespace: shadow hidden interpreter dirs, make every mount read-only
    and nosuid (mount_setattr, recursive), then give /tmp, /dev/shm and the workdir fresh size-bounded
    tmpfs. The cgroup files were opened before, by the host."""
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    for top, keep in config["reveal"]:
        held = [os.open(path, os.O_PATH) for path in keep]  # reachable after `top` is shadowed
        _mount(libc, b"tmpfs", top, b"tmpfs", _TMPFS_FLAGS, "mode=0755,size=1m")
        for path, fd in zip(keep, held):
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}".encode(), path, None, _MS_BIND_REC, None)
            os.close(fd)
    attr = ctypes.create_string_buffer(_MOUNT_ATTR_RDONLY_NOSUID.to_bytes(8, "little") + bytes(24))
    args = (ctypes.c_int(-100), b"/", ctypes.c_uint(0x8000), attr, ctypes.c_size_t(32))  # AT_FDCWD, AT_RECURSIVE
    if libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), *args) != 0:
        raise OSError(ctypes.get_errno(), "mount_setattr(/, read-only, nosuid): " + os.strerror(ctypes.get_errno()))
    size = 4 * config["limits"]["max_file_mb"]
    for path in ("/tmp", "/dev/shm", config["workdir"]):
        if path == config["workdir"] or os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            _mount(libc, b"tmpfs", path, b"tmpfs", _TMPFS_FLAGS, f"mode=1777,size={size}m,nr_inodes=16384")


def _mount(libc: Any, source: bytes, target: str, fstype: bytes | None, flags: int, data: str | None) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data.encode() if data else None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def _prepare_workdir(config: dict[str, Any]) -> None:
    if config["uid"] is not None:
        os.chown(config["workdir"], config["uid"], config["uid"])


def _drop_privileges(libc: Any, config: dict[str, Any], uid: int | None) -> None:
    """As root: become `uid` (no account uses it) so RLIMIT_NPROC bites and root's files stay shut.
    Not root (a user namespace we are root of): a nested user namespace sheds every capability."""
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif config["mounts"] and libc.unshare(_CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER): " + os.strerror(ctypes.get_errno()))


def _become_candidate(libc: Any, config: dict[str, Any], cpu_s: float, stdin: int | None, stdout: int | None, stderr: int | None) -> None:
    """In a freshly forked child: the cgroup, its own process group, stdio, rlimits, the candidate
    uid, and (without a cgroup) the seccomp rule that keeps shared memory countable."""
    for fd in config["cgroup_fds"]:
        os.write(fd, b"0")
    os.setpgid(0, 0)
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        if fd is not None:
            os.dup2(fd, target)
    _close_all_but({0, 1, 2} | ({config["to_server"], config["from_server"]} if stdin is None else set()))
    limits = config["limits"]
    cpu = max(1, math.ceil(cpu_s))
    memory = limits["memory_mb"] * MiB
    for which, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU first, SIGKILL a second later
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, limits["max_file_mb"] * MiB, limits["max_file_mb"] * MiB),
        (resource.RLIMIT_NPROC, limits["max_processes"], limits["max_processes"]),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))
    _drop_privileges(libc, config, config["uid"])
    os.chdir(config["workdir"])
    if config["seccomp"]:
        _deny_shared_memory(libc)


def _close_all_but(keep: set[int]) -> None:
    """Close every inherited descriptor not in `keep`: a child holds only the pipes it must."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _deny_shared_memory(libc: Any) -> None:
    """A seccomp filter: memfd_create and shmget fail with EPERM (no cgroup would count their pages)."""
    arch, numbers = _SECCOMP_DENY[os.uname().machine]
    # (code, jump if true, jump if false, k): BPF_LD|BPF_W|BPF_ABS loads seccomp_data.arch (offset 4), .nr (0)
    program = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, 0x80000000)]  # another arch: kill
    program.append((0x20, 0, 0, 0))
    for number in numbers:
        program += [(0x15, 0, 1, number), (0x06, 0, 0, 0x00050000 | 1)]  # SECCOMP_RET_ERRNO | EPERM
    program.append((0x06, 0, 0, 0x7FFF0000))  # SECCOMP_RET_ALLOW
    raw = b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in program)
    filters = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HxxxxxxQ", len(program), ctypes.addressof(filters))
    buffer = ctypes.create_string_buffer(fprog)
    if libc.prctl(_PR_SET_SECCOMP, ctypes.c_ulong(2), buffer, ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp: " + os.strerror(ctypes.get_errno()))


def _run_main(code: types.CodeType | None) -> NoReturn:
    """A stdin/stdout Python program: run as `__main__` with fresh standard streams; exit as Python does."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", errors="surrogateescape", closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    code_ = 0
    try:
        exec(code, module.__dict__)  # noqa: S102 - the candidate's program, in the sandbox
    except SystemExit as exc:
        code_ = _exit_code(exc)
    except BaseException:
        traceback.print_exc()
        code_ = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code_ = code_ or 1
    os._exit(code_)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


# --- the function server (candidate side) ---------------------------------------------------------


def serve_functions(code: types.CodeType | None, requests_fd: int, replies_fd: int) -> NoReturn:
    """Load the candidate's module, then answer calls: plain-data arguments in, the return value (or
    the exception's type and message) out. Runs as the candidate; everything here is untrusted."""
    module = types.ModuleType("__candidate__")  # not __main__: an answer's demo block stays quiet
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - the candidate's program, in the sandbox
        send(replies_fd, {"loaded": True})
    except BaseException as exc:
        send(replies_fd, {"raised": _exception_record(exc)})
        os._exit(1)
    requests = Reader(requests_fd)
    while True:
        try:
            request = requests.recv()
        except EOFError:
            os._exit(0)
        send(replies_fd, _call(module, request))


def _call(module: types.ModuleType, request: dict[str, Any]) -> dict[str, Any]:
    try:
        function = _resolve(module, request["name"])
        args = from_plain(request["args"])
        value = function(*args)
    except BaseException as exc:
        return {"raised": _exception_record(exc)}
    try:
        return {"value": to_plain(value)}
    except Unserializable as exc:
        return {"unserializable": str(exc)}
    except BaseException as exc:
        return {"unserializable": f"{type(exc).__name__} while encoding the result"}


def _resolve(module: types.ModuleType, name: str) -> Any:
    """A function of the candidate's module, or a method of its `Solution` class (LeetCode style)."""
    function = module.__dict__.get(name)
    if function is None and isinstance(module.__dict__.get("Solution"), type):
        function = getattr(module.__dict__["Solution"](), name, None)
    if function is None:
        raise NameError(f"name {name!r} is not defined")
    return function


def _exception_record(exc: BaseException) -> dict[str, Any]:
    where = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<candidate>":
            where = f" at candidate line {tb.tb_lineno}"
        tb = tb.tb_next
    if isinstance(exc, SystemExit):
        return {"type": "SystemExit", "message": f"exited with code {exc.code}{where}"}
    return {"type": type(exc).__name__, "message": _safe_message(exc) + where}


def _safe_message(exc: BaseException) -> str:
    try:
        text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        return (str(text).strip().splitlines() or [""])[0][:300]
    except BaseException:
        return ""


def _exception_line(exc: BaseException) -> str:
    line = f" at line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
    return f"{type(exc).__name__}: {_safe_message(exc)}{line}"


# --- the judge (trusted side) ---------------------------------------------------------------------


def _fork_judge(config: dict[str, Any]) -> int:
    """Fork the judge before anything secret reached this process. It keeps only its own pipes."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            _close_all_but({0, 1, 2, config["judge_in"], config["judge_out"], config["to_server_w"], config["from_server_r"]})
            limits = config["limits"]
            judge_memory = max(2048, 2 * limits["memory_mb"]) * MiB
            resource.setrlimit(resource.RLIMIT_AS, (judge_memory, judge_memory))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            _drop_privileges(ctypes.CDLL(None, use_errno=True), config, config["judge_uid"])
            os.chdir("/")
            Judge(config).serve()
        except BaseException:
            traceback.print_exc()
        os._exit(72)
    for fd in (config["judge_in"], config["judge_out"], config["to_server_w"], config["from_server_r"]):
        os.close(fd)
    return pid


class CandidateGone(BaseException):
    """The candidate cannot answer any more (it died, overran its time, or sent garbage). A
    BaseException, so a test's `except Exception` cannot swallow it."""


class UnserializableResult(BaseException):
    """The candidate returned something that is not plain data."""


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin one; its type name and message."""


class Judge:
    """Runs the problem's own setup and tests in a fresh namespace where the candidate's functions
    are proxies; the only report of success goes to the host after the last test line ran."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.limits = config["limits"]
        self.to_server = config["to_server_w"]
        self.replies = Reader(config["from_server_r"])
        self.sticky: dict[str, str] | None = None  # a failure the tests may not swallow
        self.calls = 0
        self.call_cpu_limit = float("inf")
        self.loaded = False
        self.server_pid: int | None = None
        self.checkers: dict[str, Any] = {}

    def serve(self) -> NoReturn:
        host = Reader(self.config["judge_in"])
        while True:
            try:
                job = host.recv()
            except EOFError:
                os._exit(0)
            if job["op"] == "tests":
                result = self.run_tests(job)
            else:
                result = self.run_checker(job)
            send(self.config["judge_out"], result)

    def run_tests(self, job: dict[str, Any]) -> dict[str, Any]:
        self.server_pid = job["server_pid"]
        if not self.loaded:
            try:
                hello = self.replies.recv(time.monotonic() + wall_backstop(self.limits["case_cpu_s"]), self._watch_cpu)
            except (EOFError, TimeoutError, ValueError, CandidateGone) as exc:
                return {"failed": "gone", "message": f"the program did not load: {_gone_reason(exc)}"}
            if "raised" in hello:
                return {"failed": "load", **hello["raised"]}
            self.loaded = True
        namespace: dict[str, Any] = {"__name__": "__tests__", "__builtins__": builtins}
        try:
            exec(compile(job.get("setup") or "", "<setup>", "exec", dont_inherit=True), namespace)  # noqa: S102
        except BaseException as exc:
            return {"failed": "setup", "message": _test_failure(exc)}
        try:
            for name in job["names"]:
                namespace[name] = self.proxy(name)
            exec(compile(job["tests"], "<tests>", "exec", dont_inherit=True), namespace)  # noqa: S102
        except CandidateGone as exc:
            return {"failed": "gone", "message": str(exc)}
        except UnserializableResult as exc:
            return {"failed": "unserializable", "message": str(exc)}
        except BaseException as exc:
            if self.sticky:
                return self.sticky
            origin = "candidate" if getattr(exc, "_datakit_candidate", False) else "test"
            return {"failed": origin, "type": type(exc).__name__, "message": _test_failure(exc), "calls": self.calls}
        if self.sticky:
            return self.sticky
        if self.calls == 0:
            return {"failed": "no_calls", "message": "the tests never called the candidate"}
        return {"passed": job["nonce"], "calls": self.calls}

    def proxy(self, name: str) -> Any:
        judge = self

        def call(*args: Any) -> Any:
            return judge.call(name, args)

        call.__name__ = call.__qualname__ = name
        return call

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        """One call into the sandbox: arguments go out by value as plain data (the candidate cannot
        change the tests' own objects), the answer comes back as fresh builtin values."""
        if self.sticky:
            raise CandidateGone(self.sticky["message"])
        try:
            request = {"name": name, "args": to_plain(list(args))}
        except Unserializable as exc:
            self.sticky = {"failed": "bad_args", "message": f"{name}(): the tests pass an argument that is not plain data: {exc}"}
            raise CandidateGone(self.sticky["message"]) from None
        self.calls += 1
        send(self.to_server, request)
        self.call_cpu_limit = self._server_cpu() + self.limits["case_cpu_s"]
        try:
            reply = self.replies.recv(time.monotonic() + wall_backstop(self.limits["case_cpu_s"]), self._watch_cpu)
            value = from_plain(reply["value"]) if "value" in reply else None
            raised = _rebuild(reply["raised"]) if "value" not in reply and "unserializable" not in reply else None
        except (EOFError, TimeoutError, ValueError, TypeError, KeyError, AttributeError, CandidateGone) as exc:
            self.sticky = {"failed": "gone", "message": f"{name}(): {_gone_reason(exc)}"}
            raise CandidateGone(self.sticky["message"]) from None
        if "value" in reply:
            return value
        if raised is not None:
            raise raised
        self.sticky = {"failed": "unserializable", "message": f"{name}(): {reply['unserializable']}"}
        raise UnserializableResult(self.sticky["message"])

    def _watch_cpu(self) -> None:
        if self._server_cpu() > self.call_cpu_limit:
            raise CandidateGone(f"call exceeded {self.limits['case_cpu_s']}s CPU time")

    def _server_cpu(self) -> float:
        """CPU seconds the function server has used (kernel accounting: not the wall clock)."""
        try:
            with open(f"/proc/{self.server_pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def run_checker(self, job: dict[str, Any]) -> dict[str, Any]:
        """A problem's own checker: `check(input, output, expected)` says whether an output is right."""
        try:
            check = self.checkers.get(job["checker"])
            if check is None:
                namespace: dict[str, Any] = {"__name__": "__checker__", "__builtins__": builtins}
                exec(compile(job["checker"], "<checker>", "exec", dont_inherit=True), namespace)  # noqa: S102
                check = self.checkers[job["checker"]] = namespace["check"]
            verdict = check(job["input"], job["output"], job["expected"])
            ok, message = (verdict if isinstance(verdict, tuple) else (verdict, ""))
            return {"ok": bool(ok), "message": str(message)[:300]}
        except BaseException as exc:
            return {"error": f"{type(exc).__name__}: {_safe_message(exc)}"}


def _gone_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the program ended during the call"
    if isinstance(exc, TimeoutError):
        return "no answer within the wall-clock backstop (blocked or sleeping)"
    if isinstance(exc, CandidateGone):
        return str(exc)
    return f"malformed reply ({type(exc).__name__}: {_safe_message(exc)})"


def _rebuild(raised: dict[str, Any]) -> BaseException:
    """The candidate's exception as a fresh one on this side: a builtin type by name (so a test's
    `except ValueError` still works), else CandidateError. Marked as coming from the candidate."""
    kind = getattr(builtins, str(raised.get("type")), None)
    message = str(raised.get("message", ""))
    if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
        try:
            exc: BaseException = kind(message)
        except Exception:
            exc = CandidateError(f"{raised.get('type')}: {message}")
    else:
        exc = CandidateError(f"{raised.get('type')}: {message}")
    exc._datakit_candidate = True  # type: ignore[attr-defined]
    exc._datakit_type = str(raised.get("type"))  # type: ignore[attr-defined]
    return exc


def _test_failure(exc: BaseException) -> str:
    """`Type: first line of the message at test line N`, short."""
    where, tb = "", exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in _SOURCES:
            where = f" at {_SOURCES[name]} line {tb.tb_lineno}"
        tb = tb.tb_next
    text = _safe_message(exc)
    return f"{getattr(exc, '_datakit_type', type(exc).__name__)}" + (f": {text}" if text else "") + where


def candidate_names(setup: str, tests: str) -> list[str]:
    """Names the tests use but neither the tests nor the problem's setup define, nor builtins:
    the candidate's functions (MBPP's `assert remove_Occ(...) == ...`)."""
    defined: set[str] = set(dir(builtins))
    used: list[str] = []
    for source in (setup, tests):
        tree = ast.parse(source or "")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name):
                (defined.add if isinstance(node.ctx, (ast.Store, ast.Del)) else used.append)(node.id)
            elif isinstance(node, ast.alias):
                defined.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
    return [name for name in dict.fromkeys(used) if name not in defined]


if __name__ == "__main__" and sys.argv[1:2] == [MARKER]:
    harness()
