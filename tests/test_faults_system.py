"""Fault battery, system side (issue 14): a full disk, no permission, Ctrl-C and a misbehaving teacher
server, each against the real `datakit` CLI in a subprocess. Every case checks the one line printed,
the exit code (README, "When things go wrong") and the rows on disk, and where work was cut short,
that a re-run gives exactly the uninterrupted output.

A full disk is a real tmpfs of a few pages (mounting needs root or CAP_SYS_ADMIN; skipped with the
reason otherwise), grown with `mount -o remount` to "free space"; a file-size limit (RLIMIT_FSIZE, EFBIG)
stands in where no mount is possible. Permission faults run the CLI as `nobody` when the tests run
as root, for whom permissions do not bite.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
import pytest

from test_openai_backend import FakeServer

ROWS = 12  # prompts; n = 1, shards of 2: 6 work units per stage
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2  # linux/prctl.h, linux/capability.h


def cli(*args: str, env: dict[str, str] | None = None, preexec: Callable[[], None] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datakit.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, preexec_fn=preexec,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The stderr of a failed run: exactly one line, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def rows(folder: Path) -> pl.DataFrame:
    """A stage folder's rows in a stable order ("accepted" of a filter folder)."""
    files = sorted(folder.glob("shards/part-*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort(pl.all().exclude(pl.List, pl.Struct, pl.Object)) if files else pl.DataFrame()


def shard_count(folder: Path) -> int:
    return len(list(folder.glob("shards/part-*.parquet")))


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.name.endswith(".tmp")]


class Teacher(FakeServer):
    """The teacher and judge of the battery: answers "The answer is \\boxed{1}." and CORRECT."""

    def reply_for(self, prompt: str) -> str:
        return " CORRECT" if "VERDICT" in prompt or "Candidate answer" in prompt else "The answer is \\boxed{1}."


@pytest.fixture
def teacher() -> Iterator[Teacher]:
    server = Teacher()
    yield server
    server.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} - {i - 1}?", "answer": "1", "domain": "science"}) + "\n" for i in range(ROWS)))
    os.chmod(path.parent, 0o755)
    return path


def sample_args(source: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        "sample", str(source), str(out), "--model", "teacher", "--backend", "openai", "--set", f"backend.openai.base_url={url}",
        "--set", "backend.openai.max_concurrency=1", "--set", "backend.openai.max_retries=2", "--set", "backend.openai.timeout_s=1",
        "--n", "1", "--shard-size", "2", "--no-progress", *extra,
    ]


CHAIN = "name: battery\nfilters:\n  - format: {require_think: false}\n  - repetition: {n: 5, max_repetition: 0.5}\n"


def filter_args(source: Path, out: Path, chain: Path) -> list[str]:
    return ["filter", str(source), str(out), "--chain", str(chain), "--workers", "1", "--no-progress", "--no-plots"]


def mix_args(source: Path, out: Path, recipe: Path) -> list[str]:
    return ["mix", str(out), "--recipe", str(recipe), "--source", str(source), "--rows-per-shard", "2", "--no-progress"]


@pytest.fixture(scope="module")
def whole(prompts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each stage run once, uninterrupted, on a roomy disk: what every interrupted run must equal."""
    root = tmp_path_factory.mktemp("whole")
    os.chmod(root, 0o755)
    server = Teacher()
    try:
        assert cli(*sample_args(prompts, root / "sample", server.url)).returncode == 0
    finally:
        server.close()
    (root / "chain.yaml").write_text(CHAIN)
    assert cli(*filter_args(root / "sample", root / "filter", root / "chain.yaml")).returncode == 0
    (root / "mix.yaml").write_text("mix:\n  quotas:\n    reasoning: {science: 8}\n  decontamination:\n    benchmarks: []\n")
    assert cli(*mix_args(root / "filter" / "accepted", root / "mix", root / "mix.yaml")).returncode == 0
    assert rows(root / "sample").height == ROWS and rows(root / "filter" / "accepted").height == ROWS and rows(root / "mix").height == 8
    return {"sample": root / "sample", "filter": root / "filter", "mix": root / "mix", "chain": root / "chain.yaml", "recipe": root / "mix.yaml", "prompts": prompts}


def stage_args(stage: str, whole: dict[str, Path], out: Path, url: str) -> list[str]:
    if stage == "sample":
        return sample_args(whole["prompts"], out, url)
    if stage == "filter":
        return filter_args(whole["sample"], out, whole["chain"])
    return mix_args(whole["filter"] / "accepted", out, whole["recipe"])


def output_rows(stage: str, out: Path) -> pl.DataFrame:
    return rows(out / "accepted") if stage == "filter" else rows(out)


# --- a full disk ---------------------------------------------------------------------------------------


class SmallDisk:
    """A tmpfs of `kb` kilobytes at `path`; `resize` frees space (or takes it) without touching the files."""

    def __init__(self, path: Path, kb: int):
        self.path = path
        path.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k,mode=0755", "tmpfs", str(path)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}); the RLIMIT_FSIZE cases cover a full disk")

    def resize(self, kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kb}k", str(self.path)], check=True)

    def used_kb(self) -> int:
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize // 1024

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], SmallDisk]]:
    disks: list[SmallDisk] = []

    def make(kb: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path / f"disk{len(disks)}", kb))
        return disks[-1]

    yield make
    for disk in disks:
        disk.unmount()


def _size_kb(folder: Path) -> int:
    """What a folder takes on a tmpfs: whole 4 KiB pages per file."""
    return sum(-(-p.stat().st_size // 4096) * 4 for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sample", "filter", "mix"])
@pytest.mark.parametrize("when", ["mid-run", "at start"])
def test_a_full_disk_names_the_file_and_a_re_run_after_freeing_space_resumes(
    stage: str, when: str, whole: dict[str, Path], small_disk: Callable[[int], SmallDisk], teacher: Teacher
) -> None:
    need = _size_kb(whole[stage])
    disk = small_disk(need // 2 if when == "mid-run" else 4)
    if when == "at start":  # the one page there is taken by another file
        (disk.path / "other").write_bytes(b"x" * 4096)
    out = disk.path / "out"
    failed = cli(*stage_args(stage, whole, out, teacher.url))
    line = one_line(failed)
    assert failed.returncode == 3, failed.stderr
    assert line.startswith(f"error: {out}/") and line.endswith(": cannot write (No space left on device); free space, then re-run the same command to resume")
    written = output_rows(stage, out).height if out.exists() else 0
    if when == "mid-run":
        assert 0 < written < output_rows(stage, whole[stage]).height or stage == "mix"  # mix writes its shards last
    else:
        assert written == 0
    assert not out.exists() or no_temp_files(out)

    disk.resize(need * 3 + 64)
    rerun = cli(*stage_args(stage, whole, out, teacher.url))
    assert rerun.returncode == 0, rerun.stderr
    assert output_rows(stage, out).equals(output_rows(stage, whole[stage]))
    assert no_temp_files(out)


def _file_size_limit(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize("stage", ["sample", "filter", "mix"])
def test_a_file_size_limit_is_told_like_a_full_disk(stage: str, whole: dict[str, Path], teacher: Teacher, tmp_path: Path) -> None:
    """No file can grow (ulimit -f 0): the same line as a full disk, nothing half-written, and the
    re-run without the limit gives the uninterrupted output. Runs where no tmpfs can be mounted."""
    out = tmp_path / "out"
    failed = cli(*stage_args(stage, whole, out, teacher.url), preexec=_file_size_limit(0))
    assert failed.returncode == 3, failed.stderr
    line = one_line(failed)
    assert line.startswith(f"error: {out}/") and line.endswith(": cannot write (File too large); free space, then re-run the same command to resume")
    assert output_rows(stage, out).height == 0 and no_temp_files(out)
    rerun = cli(*stage_args(stage, whole, out, teacher.url))
    assert rerun.returncode == 0, rerun.stderr
    assert output_rows(stage, out).equals(output_rows(stage, whole[stage]))


def test_a_file_that_cannot_be_put_in_place_off_the_thread_stops_what_follows_and_is_named(tmp_path: Path) -> None:
    """The mix fsyncs and renames its files on a background thread (datakit.dataset.Settler), in the
    order written, a unit's marker last: once one fails, nothing after it may land (a marker of a unit
    whose rows are missing would make a re-run skip them), no temp file is left, and the error names
    the file, at the next hand-over or at the end."""
    from datakit.dataset import Settler, write_text_atomic

    blocker = tmp_path / "rows.txt"
    (blocker / "inside").mkdir(parents=True)  # a non-empty folder where the file should go: the rename fails
    with pytest.raises(OSError) as raised, Settler() as settle:
        write_text_atomic(tmp_path / "first.txt", "1", settle)
        write_text_atomic(blocker, "2", settle)
        write_text_atomic(tmp_path / "marker.txt", "3", settle)
    assert raised.value.filename == str(blocker)
    assert (tmp_path / "first.txt").read_text() == "1" and not (tmp_path / "marker.txt").exists()
    assert no_temp_files(tmp_path)


def test_a_scratch_folder_is_kept_within_its_boot_and_emptied_after_a_reboot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scratch files skip fsync (`scratch_needs_sync` says so), which is safe only while the machine that
    wrote them has not crashed since: a folder from another boot, or one that never recorded its boot,
    is emptied; where the machine names no boot, its files are synced and kept."""
    from datakit.dataset import BOOT_ID, claim_scratch, scratch_needs_sync

    work = tmp_path / "_work"
    assert scratch_needs_sync(work) is False and not work.exists()  # this Linux names its boot; nothing written yet
    claim_scratch(work)
    (work / "index").mkdir()
    (work / "index" / "rows-00000.parquet").write_text("indexed")
    assert scratch_needs_sync(work) is False and (work / "index" / "rows-00000.parquet").exists()  # a re-run in the same boot keeps it
    (work / ".boot").write_text("another-boot")
    assert scratch_needs_sync(work) is False and not work.exists()
    claim_scratch(work)
    assert (work / ".boot").read_text() == BOOT_ID.read_text().strip()
    (work / "index").mkdir()
    (work / ".boot").unlink()  # left by a run that recorded no boot
    scratch_needs_sync(work)
    assert not work.exists()
    monkeypatch.setattr("datakit.dataset.BOOT_ID", tmp_path / "no-such-file")  # a machine without boot ids
    (work / "index").mkdir(parents=True)
    assert scratch_needs_sync(work) is True and (work / "index").exists()


# --- permissions and unreadable files ------------------------------------------------------------------


def _obey_permissions() -> Callable[[], None] | None:
    """As root, run the CLI without the capabilities that bypass file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH): a mode-000 file is then unreadable to it, as to any user."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                os._exit(99)

    probe = subprocess.run(["cat", "/proc/self/status"], preexec_fn=drop, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE here: permissions would not bite")
    return drop


@pytest.mark.parametrize("stage", ["sample", "filter", "mix"])
def test_an_unreadable_input_is_named(stage: str, whole: dict[str, Path], tmp_path: Path, teacher: Teacher) -> None:
    preexec = _obey_permissions()
    if stage == "sample":
        unreadable = Path(shutil.copy(whole["prompts"], tmp_path / "prompts.jsonl"))
        args = sample_args(unreadable, tmp_path / "out", teacher.url)
    else:
        source = Path(shutil.copytree(whole["sample"] if stage == "filter" else whole["filter"] / "accepted", tmp_path / "in"))
        unreadable = sorted((source / "shards").glob("*.parquet"))[1]
        args = filter_args(source, tmp_path / "out", whole["chain"]) if stage == "filter" else mix_args(source, tmp_path / "out", whole["recipe"])
    unreadable.chmod(0)
    failed = cli(*args, preexec=preexec)
    assert failed.returncode == 3, failed.stderr
    line = one_line(failed)  # the reader's own words, naming the file and the cause
    assert line.startswith(f"error: {unreadable}: ") and "Permission denied" in line
    assert output_rows(stage, tmp_path / "out").height == 0


@pytest.mark.parametrize("stage", ["sample", "filter", "mix"])
def test_an_output_folder_without_write_permission_is_named(stage: str, whole: dict[str, Path], tmp_path: Path, teacher: Teacher) -> None:
    preexec = _obey_permissions()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    failed = cli(*stage_args(stage, whole, locked / "out", teacher.url), preexec=preexec)
    assert failed.returncode == 3, failed.stderr
    assert one_line(failed) == f"error: {locked / 'out'}: Permission denied; fix the permissions or choose another path, then re-run the same command"
    assert list(locked.iterdir()) == []


# --- Ctrl-C --------------------------------------------------------------------------------------------


def _interrupt(args: list[str], ready: Callable[[], bool]) -> subprocess.CompletedProcess:
    """Start the CLI in its own process group, wait until `ready`, then Ctrl-C it as a terminal does
    (SIGINT to the whole group, worker processes included)."""
    proc = subprocess.Popen([sys.executable, "-m", "datakit.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


INTERRUPTED = "interrupted; re-run the same command to resume"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sample", "filter"])
def test_ctrl_c_mid_run_is_one_line_and_a_re_run_resumes(stage: str, whole: dict[str, Path], teacher: Teacher, tmp_path: Path) -> None:
    """The teacher (sample) or judge (filter) answers six requests, then holds the seventh until the
    test ends: the Ctrl-C lands mid-run for certain, with three work units done."""
    out = tmp_path / "out"
    if stage == "sample":
        args = sample_args(whole["prompts"], out, teacher.url)
    else:
        chain = tmp_path / "judged.yaml"
        chain.write_text(CHAIN + f"  - judge: {{model: org/judge, backend: {{name: openai, openai: {{base_url: '{teacher.url}', max_concurrency: 1}}}}}}\n")
        args = filter_args(whole["sample"], out, chain)
    whole_run = cli(*args[:2], str(tmp_path / "whole"), *args[3:])
    assert whole_run.returncode == 0, whole_run.stderr
    teacher.requests.clear()
    teacher.hold_after = 6
    interrupted = _interrupt(args, teacher.held.is_set)
    assert interrupted.returncode == 130
    assert interrupted.stderr.strip() == INTERRUPTED
    done = out / "accepted" if stage == "filter" else out
    assert shard_count(done) == 3 and no_temp_files(out)

    teacher.hold_after = None
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert output_rows(stage, out).equals(output_rows(stage, tmp_path / "whole"))
    assert len(teacher.requests) == 7 + (ROWS - 6)  # the held one, then only the three units left


CTRL_C_AT_SHARD = """
import os, signal, sys, threading
import datakit.mix as mix
from datakit.cli import main
write_shard, wanted = mix.write_shard, int(os.environ["CTRL_C_AT_SHARD"])
sent = threading.Event()

def write_then_ctrl_c(folder, index, table, settle=None):  # a terminal's Ctrl-C: SIGINT to the whole process group
    if folder.name != "removed" and index > wanted:
        sent.wait(60)  # a later shard ends only after the Ctrl-C, so how many start does not hang on thread timing
    path = write_shard(folder, index, table, settle)
    if index == wanted and folder.name != "removed":
        os.killpg(0, signal.SIGINT)
        sent.set()
    return path

mix.write_shard = write_then_ctrl_c
sys.argv[0] = "datakit"
main()
"""


def test_ctrl_c_while_mix_gathers_its_shards_is_one_line_and_a_re_run_resumes(whole: dict[str, Path], tmp_path: Path) -> None:
    """mix has no server to hold, so the SIGINT comes from inside, right after its second output shard.
    Shards are gathered on parallel threads: the ones another thread had started are finished, the rest
    are not begun."""
    out = tmp_path / "out"
    args = mix_args(whole["filter"] / "accepted", out, whole["recipe"])
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AT_SHARD, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CTRL_C_AT_SHARD": "1"}, start_new_session=True)
    assert proc.returncode == 130 and proc.stderr.strip() == INTERRUPTED, proc.stderr
    assert 2 <= shard_count(out) < shard_count(whole["mix"]) and no_temp_files(out)
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert rows(out).equals(rows(whole["mix"]))


# --- a misbehaving teacher server ----------------------------------------------------------------------


SERVER_FAULTS = {
    # fault: (script, exit code, last line, shards written)
    "malformed JSON, always": ([200] * 4 + ["malformed"] * 3, 4, "last error: HTTP 200 but not JSON (Unterminated string", 2),
    "empty choices, always": ([200] * 4 + ["no_choices"] * 3, 4, "last error: HTTP 200 but no chat completion in it (no choices): '{\"id\"", 2),
    "a body that never ends": ([200] * 4 + ["endless"] * 3, 4, "last error: TimeoutError: no complete reply within 1 s", 2),
    "dropped connections, always": ([200] * 4 + ["drop"] * 3, 4, "last error: RemoteProtocolError: Server disconnected without sending a response.", 2),
    "503, always": ([200] * 4 + [503] * 3, 4, 'last error: HTTP 503: {"error": "busy"}', 2),
    "a bad API key (401)": ([200] * 4 + [401], 2, 'refused the request (HTTP 401: {"error": "busy"})', 2),
    "500s then success": ([500, 500], 0, "", 6),
    "malformed JSON then success": (["malformed", "malformed"], 0, "", 6),
    "a dropped connection then success": (["drop"], 0, "", 6),
    "empty choices then success": (["no_choices"], 0, "", 6),
}


@pytest.mark.parametrize("fault", list(SERVER_FAULTS))
def test_a_misbehaving_server(fault: str, whole: dict[str, Path], teacher: Teacher, tmp_path: Path) -> None:
    """Transient faults are retried (two retries here) and the run completes; a server that keeps failing
    stops the run with exit 4 naming it and what came back, the finished shards kept for the re-run."""
    script, code, message, shards = SERVER_FAULTS[fault]
    teacher.script = list(script)
    out = tmp_path / "out"
    result = cli(*sample_args(whole["prompts"], out, teacher.url))
    assert result.returncode == code, result.stderr
    assert shard_count(out) == shards and no_temp_files(out)
    if code:
        line = one_line(result)
        assert line.startswith(f"error: {teacher.url}/chat/completions") and message in line
        assert result.stdout == ""
        rerun = cli(*sample_args(whole["prompts"], out, teacher.url))
        assert rerun.returncode == 0, rerun.stderr
    assert rows(out).equals(rows(whole["sample"]))


# --- --debug -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--debug", "DATAKIT_DEBUG=1"])
def test_debug_shows_the_traceback_and_keeps_the_exit_code(how: str, whole: dict[str, Path], teacher: Teacher, tmp_path: Path) -> None:
    teacher.script = ["malformed"] * 3
    args = sample_args(whole["prompts"], tmp_path / "out", teacher.url)
    result = cli("--debug", *args) if how == "--debug" else cli(*args, env={"DATAKIT_DEBUG": "1"})
    assert result.returncode == 4
    assert "Traceback (most recent call last)" in result.stderr and "BackendError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_exit_codes_are_the_documented_ones() -> None:
    """README's table and the codes the CLI uses are the same numbers."""
    from datakit.errors import EXIT_BACKEND, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_SYSTEM

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code, meaning in [(EXIT_BAD_INPUT, "bad input"), (EXIT_SYSTEM, "disk full"), (EXIT_BACKEND, "server"), (EXIT_INTERRUPTED, "Ctrl-C")]:
        assert any(line.startswith(f"| {code} ") and meaning in line for line in readme.splitlines()), (code, meaning)

