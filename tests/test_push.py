"""`datakit push`: staging layout and card for sample, filter and mix folders, idempotent re-staging,
the CLI's dry run and offline error, and uploads against an in-memory Hub."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import yaml
from huggingface_hub import constants
from huggingface_hub.hf_api import RepoFile
from typer.testing import CliRunner

from datakit import __version__
from datakit.cli import app
from datakit.dataset import write_json_atomic, write_shard
from datakit.errors import DatakitError
from datakit.push import PushConfig, run_push, size_category
from datakit.schema import MESSAGE, SAMPLE_SCHEMA

SAMPLING = {"n": 4, "temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_tokens": 4096, "seed": 7}
TEACHER = "deepseek-ai/DeepSeek-R1"
CHAIN_YAML = "name: r1-mixed\nfilters:\n  - format\n  - correctness: {timeout_s: 10}\n  - judge: {model: deepseek-ai/DeepSeek-V3}\n  - best_of_n: {k: 1}\n"
FILTER_REPORT = {
    "chain": "r1-mixed", "rows_in": 16, "rows_out": 5,
    "funnel": [
        {"filter": "format", "rows_in": 16, "dropped": 3, "rows_out": 13, "reasons": {"truncated": 2, "think_unclosed": 1}},
        {"filter": "correctness", "rows_in": 13, "dropped": 6, "rows_out": 7, "reasons": {"wrong": 5, "no_answer": 1}},
        {"filter": "judge", "rows_in": 7, "dropped": 0, "rows_out": 7, "reasons": {}},
        {"filter": "best_of_n", "rows_in": 7, "dropped": 2, "rows_out": 5, "reasons": {"not_best": 2}},
    ],
    "prompts": {"in": 4, "zero_accepted": 1, "zero_accepted_examples": ["p3"]},
    "rule_judge_agreement": {"rows": 0, "agree": 0, "rate": None, "pairs": {}},
    "by_domain": {"math": {"in": 16, "out": 5, "pass_rate": 0.3125}},
}
MIX_REPORT = {
    "seed": 0, "rows_in": 21, "rows_rejected": 0, "rows_out": 12,
    "sources": [{"name": "math", "path": "out/filtered", "rows": 5, "removed": 1, "chosen": 4}, {"name": "chat", "path": "chat.jsonl", "rows": 16, "removed": 3, "chosen": 8}],
    "removed": {"exact_duplicate": 2, "near_duplicate": 1, "contaminated": 1},
    "dedup": {"exact": True, "near": True, "jaccard_threshold": 0.72},
    "decontamination": {"n": 8, "benchmarks": {
        "humaneval": {"items": 164, "ngrams": 21000, "removed": 1},
        "math500": {"error": "HuggingFaceH4/MATH-500 could not be loaded (offline)"},
    }},
    "targets": {"reasoning": {"target": 10, "taken": 4}, "non_reasoning": {"target": 8, "taken": 8}},
    "quotas": [
        {"kind": "reasoning", "domain": "math", "quota": 10, "available": 4, "taken": 4, "short_by": 6, "upsampled": 0},
        {"kind": "non_reasoning", "domain": "writing", "quota": 8, "available": 12, "taken": 8, "short_by": 0, "upsampled": 0},
    ],
}
MIX_REPORT["shortfalls"] = [MIX_REPORT["quotas"][0]]


def _manifest(stage: str, run_hash: str, **extra: Any) -> dict[str, Any]:
    return {"stage": stage, "schema_version": 1, "datakit_version": "0.1.0", "command": ["datakit", stage], "run_hash": run_hash, **extra, "complete": True}


SAMPLE_MANIFEST = _manifest(
    "sample", "s1a2m3p4", model=TEACHER, generator=TEACHER, seed=7,
    config={"model": TEACHER, "sampling": SAMPLING, "backend": {"name": "vllm"}}, counts={"prompts": 4, "rows": 16},
)
FILTER_MANIFEST = _manifest("filter", "f1l2t3r4", chain={"name": "r1-mixed", "yaml": CHAIN_YAML}, model=TEACHER, input_manifest=SAMPLE_MANIFEST, config={"chain": "filters/r1-mixed.yaml"})


def _sample_row(p: int, i: int, domain: str = "math", language: str = "en") -> dict[str, Any]:
    return {
        "prompt_id": f"p{p}", "messages": [{"role": "user", "content": f"What is {p} + {p}?"}], "domain": domain,
        "kind": "reasoning" if domain == "math" else "non_reasoning", "language": language, "reference": str(2 * p),
        "verifier": "math", "source": "math.jsonl", "metadata": "{}", "sample_index": i,
        "completion": f"<think>\nadd\n</think>\n\n\\boxed{{{2 * p + i % 2}}}", "reasoning": "add", "answer": f"\\boxed{{{2 * p + i % 2}}}", "finish_reason": "stop",
        "prompt_tokens": 12, "completion_tokens": 9, "generator": TEACHER, "sampling": SAMPLING,
    }


def sample_folder(root: Path) -> Path:
    out = root / "samples"
    rows = [_sample_row(p, i) for p in range(4) for i in range(4)]
    write_shard(out, 0, pa.Table.from_pylist(rows[:8], schema=SAMPLE_SCHEMA))
    write_shard(out, 1, pa.Table.from_pylist(rows[8:], schema=SAMPLE_SCHEMA))
    write_json_atomic(out / "manifest.json", SAMPLE_MANIFEST)
    return out


# (correct_verdict, correct_verifier, judge_verdict) of the accepted rows: 3 proven by math-verify, 1 by the judge, 1 unverified
ACCEPTED_VERDICTS = [("correct", "math", "skipped")] * 3 + [("unverified", "judge", "correct"), ("unverified", "none", "skipped")]


def filter_folder(root: Path) -> Path:
    out = root / "filtered"
    verdict_columns = ("correct_verdict", "correct_verifier", "judge_verdict", "rejected_by", "reject_reason")
    verdict = pa.schema([*SAMPLE_SCHEMA, *(pa.field(c, pa.string()) for c in verdict_columns)])
    accepted = [{**_sample_row(p, 0), **dict(zip(verdict_columns, ACCEPTED_VERDICTS[p])), "rejected_by": None, "reject_reason": None} for p in range(5)]
    rejected = [
        {**_sample_row(p, i), "correct_verdict": "wrong", "correct_verifier": "math", "rejected_by": "correctness", "reject_reason": "wrong: math: extracted 3, expected 2"}
        for p in range(4) for i in (1, 2)
    ]
    write_shard(out / "accepted", 0, pa.Table.from_pylist(accepted, schema=verdict))
    write_shard(out / "accepted", 1, verdict.empty_table())  # a shard the chain emptied: `datasets` cannot read it
    write_shard(out / "rejected", 0, pa.Table.from_pylist(rejected, schema=verdict))
    for part in ("accepted", "rejected"):
        write_json_atomic(out / part / "manifest.json", {**FILTER_MANIFEST, "stage": f"filter/{part}"})
    write_json_atomic(out / "manifest.json", FILTER_MANIFEST)
    write_json_atomic(out / "report.json", FILTER_REPORT)
    for plot in ("funnel.png", "lengths.png"):
        (out / plot).write_bytes(b"\x89PNG\r\n\x1a\n" + plot.encode())
    return out


MIX_ROW = pa.schema(
    [("messages", pa.list_(MESSAGE)), ("prompt_id", pa.string()), ("sample_index", pa.int32()), ("domain", pa.string()), ("kind", pa.string()),
     ("language", pa.string()), ("source", pa.string()), ("mix_source", pa.string()), ("generator", pa.string()), ("verified_by", pa.string()), ("copy_index", pa.int32())]
)
REMOVED_ROW = pa.schema([*MIX_ROW, *(pa.field(c, pa.string()) for c in ("removed_by", "removed_reason", "duplicate_of", "decontam_benchmark", "decontam_item", "decontam_ngram"))])


def _mix_row(i: int, domain: str, language: str) -> dict[str, Any]:
    """A mix row; math rows were proven by math-verify, writing rows 0-1 by the judge, the rest not at all."""
    kind, source = ("reasoning", "math") if domain == "math" else ("non_reasoning", "chat")
    verified = "math" if domain == "math" else "judge" if i < 2 else "none"
    messages = [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"<think>\nstep {i}\n</think>\n\nanswer {i}"}]
    return {"messages": messages, "prompt_id": f"{domain}{i}", "sample_index": 0, "domain": domain, "kind": kind, "language": language,
            "source": f"{source}.jsonl", "mix_source": source, "generator": TEACHER, "verified_by": verified, "copy_index": 0}


def mix_folder(root: Path, shards: int = 2) -> Path:
    out = root / "mix"
    rows = [_mix_row(i, "math", "en") for i in range(4)] + [_mix_row(i, "writing", "en" if i < 4 else "zh") for i in range(8)]
    size = -(-len(rows) // shards)
    for shard in range(shards):
        write_shard(out, shard, pa.Table.from_pylist(rows[shard * size : (shard + 1) * size], schema=MIX_ROW))
    removed = [
        {**_mix_row(9, "math", "en"), "removed_by": "contaminated", "removed_reason": "humaneval HumanEval/2: shares an 8-gram", "duplicate_of": None,
         "decontam_benchmark": "humaneval", "decontam_item": "HumanEval/2", "decontam_ngram": "return the sum of the two numbers a and b"},
        *({**_mix_row(20 + i, "writing", "en"), "removed_by": "exact_duplicate", "removed_reason": "prompt exactly duplicates chat:writing0", "duplicate_of": "chat:writing0",
           "decontam_benchmark": None, "decontam_item": None, "decontam_ngram": None} for i in range(3)),
    ]
    write_shard(out / "removed", 0, pa.Table.from_pylist(removed, schema=REMOVED_ROW))
    config = {
        "sources": [{"path": "out/filtered", "name": "math", "split": "train", "config": None}, {"path": "chat.jsonl", "name": "chat", "split": "train", "config": None}],
        "output": "out/mix", "quotas": {"reasoning": {"math": 10}, "non_reasoning": {"writing": 8}}, "replacement": False, "max_per_prompt": 0, "seed": 0,
        "dedup": {"exact": True, "near": True, "shingle": 5, "bands": 14, "rows": 8}, "decontamination": {"n": 8, "benchmarks": [{"name": "humaneval"}, {"name": "math500"}]},
    }
    sources = [{"name": "math", "path": "out/filtered", "rows": 5, "manifest": FILTER_MANIFEST, "report": FILTER_REPORT}, {"name": "chat", "path": "chat.jsonl", "rows": 16, "manifest": None, "report": None}]
    manifest = _manifest("mix", "m1i2x3h4", config=config, sources=sources)
    write_json_atomic(out / "removed" / "manifest.json", {**manifest, "stage": "mix/removed"})
    write_json_atomic(out / "manifest.json", manifest)
    write_json_atomic(out / "report.json", MIX_REPORT)
    (out / "mix.png").write_bytes(b"\x89PNG\r\n\x1a\nmix")
    return out


def card_of(staging: Path) -> tuple[dict[str, Any], str]:
    _, front, body = (staging / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(front), body


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def load(staging: Path, config: str, tmp_path: Path) -> Any:
    import datasets

    return datasets.load_dataset(str(staging), config, split="train", cache_dir=str(tmp_path / "hf-cache"))


def dry_run(folder: Path, **kw: Any) -> Path:
    summary = run_push(PushConfig(folder=str(folder), repo_id="my-org/r1-data", dry_run=True, **kw))
    assert not summary.committed
    return summary.staging


def test_sample_folder_stages_one_default_config(tmp_path: Path) -> None:
    staging = dry_run(sample_folder(tmp_path))
    assert staging == tmp_path / "samples-hub"
    assert sorted(tree(staging)) == ["README.md", "data/default/train-00000-of-00002.parquet", "data/default/train-00001-of-00002.parquet", "datakit/manifest.json"]
    meta, body = card_of(staging)
    assert meta["configs"] == [{"config_name": "default", "default": True, "data_files": [{"split": "train", "path": "data/default/train-*"}]}]
    assert "None of the 16 rows has been checked" in body
    assert meta["license"] == "other" and meta["language"] == ["en"] and meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"] and "rejection-sampling" in meta["tags"] and meta["pretty_name"] == "r1-data"
    assert f"| `{TEACHER}` | vllm | 4 | 0.6 | 0.95 | 0 | 4096 | 7 |" in body and f"| `{TEACHER}` | 16 |" in body
    assert "Unfiltered" in body and "the pusher set no license" in body.lower()
    assert load(staging, "default", tmp_path).num_rows == 16


def test_filter_folder_has_accepted_and_rejected_configs_and_the_funnel(tmp_path: Path) -> None:
    staging = dry_run(filter_folder(tmp_path), license="apache-2.0")
    assert {"data/accepted/train-00000-of-00001.parquet", "data/rejected/train-00000-of-00001.parquet", "datakit/report.json", "datakit/funnel.png", "datakit/lengths.png"} <= set(tree(staging))
    meta, body = card_of(staging)
    assert [(c["config_name"], c.get("default")) for c in meta["configs"]] == [("accepted", True), ("rejected", None)]
    assert "Of the 5 rows of `accepted`, 3 (60.0%) have a final answer proven correct by a rule verifier" in body
    assert "1 (20.0%) were judged correct by an LLM judge, and 1 (20.0%) are unverified" in body
    assert "| rule: `math` | 3 | 60.0% |\n| LLM judge | 1 | 20.0% |\n| not verified | 1 | 20.0% |" in body
    assert meta["license"] == "apache-2.0" and "Released under `apache-2.0`" in body
    assert "### Filter chain `r1-mixed`" in body and "  - judge: {model: deepseek-ai/DeepSeek-V3}" in body
    assert "| `correctness` | 13 | 6 | 7 | wrong (5), no_answer (1) |" in body and "Kept **5** of 16 samples (31.2%); 1 of 4 prompts" in body
    assert "![funnel.png](datakit/funnel.png)" in body and "LLM judge (`deepseek-ai/DeepSeek-V3`)" in body and "rule verifiers" in body
    assert "| vllm | 4 | 0.6 | 0.95 |" in body  # sampling, from the filter's input manifest
    assert 'load_dataset("my-org/r1-data", "accepted", split="train")' in body
    assert load(staging, "accepted", tmp_path).num_rows == 5 and load(staging, "rejected", tmp_path).num_rows == 8


def test_a_folder_written_by_the_filter_stage_pushes_and_loads(tmp_path: Path) -> None:
    from datakit.filter import FilterConfig, run_filter

    chain = tmp_path / "chain.yaml"
    chain.write_text("name: real\nfilters:\n  - format\n  - correctness: {timeout_s: 10, workers: 1}\n  - best_of_n: {k: 1}\n")
    out = tmp_path / "filtered"
    run_filter(FilterConfig(input=str(sample_folder(tmp_path)), output=str(out), chain=str(chain), workers=1, progress=False))
    staging = dry_run(out)
    _, body = card_of(staging)
    assert "| `correctness` | 16 | 8 | 8 | wrong (8) |" in body and "![lengths.png](datakit/lengths.png)" in body
    assert load(staging, "accepted", tmp_path).num_rows == 4 and load(staging, "rejected", tmp_path).num_rows == 12


def test_mix_card_names_provenance_quotas_shortfalls_and_unchecked_benchmarks(tmp_path: Path) -> None:
    staging = dry_run(mix_folder(tmp_path))
    assert sorted(tree(staging)) == [
        "README.md", "data/default/train-00000-of-00002.parquet", "data/default/train-00001-of-00002.parquet",
        "data/removed/train-00000-of-00001.parquet", "datakit/manifest.json", "datakit/mix.png", "datakit/report.json",
    ]
    meta, body = card_of(staging)
    assert [c["config_name"] for c in meta["configs"]] == ["default", "removed"] and meta["language"] == ["en", "zh"]
    assert "12 conversations (4 reasoning, 8 non-reasoning)" in body and "| `default` | train | 12 |" in body
    assert "Rows of mix source(s) `chat` carry no datakit record" in body and "Filter chain `r1-mixed` (mix source `math`):\n  - Correctness" in body
    assert "| `reasoning` | `math` | 4 | 1 |" in body and "| `zh` | 4 | 0 |" in body
    assert "| `math` | `deepseek-ai/DeepSeek-R1` | vllm | 4 | 0.6 |" in body  # sampling via mix source -> filter -> sample
    assert "### Filter chain `r1-mixed` (mix source `math`)" in body and "quotas:\n  reasoning:\n    math: 10" in body
    assert "| reasoning | math | 10 | 4 | 4 | **6 short** |" in body and "**1 quota(s) fell short**: reasoning/math got 4 of 10" in body
    assert "| non_reasoning | writing | 8 | 12 | 8 | 0 |" in body
    assert "2 exact duplicates, 1 near duplicates (MinHash LSH, Jaccard ≈ 0.72), 1 contaminated" in body
    assert "| `humaneval` | 164 | 21,000 | 1 |" in body and "| `math500` | **not checked** |" in body
    assert "Not checked for contamination against `math500`" in body and "misses paraphrased" in body
    assert "SFTConfig(" in body and "reads the `messages` column as-is" in body and "![mix: each quota against the rows taken](datakit/mix.png)" in body
    assert "| — | `mix` | 0.1.0 | 1 | `m1i2x3h4` |" in body and "| `math` | `sample` | 0.1.0 | 1 | `s1a2m3p4` |" in body
    data = load(staging, "default", tmp_path)
    assert data.num_rows == 12 and data[0]["messages"][-1]["role"] == "assistant"
    assert load(staging, "removed", tmp_path).num_rows == 4


def test_restaging_gives_identical_bytes_removes_stale_files_and_never_touches_the_stage(tmp_path: Path) -> None:
    folder = mix_folder(tmp_path)
    before = tree(folder)
    staging = dry_run(folder)
    first = tree(staging)
    (staging / "data" / "default" / "train-00007-of-00009.parquet").write_bytes(b"stale")
    assert tree(dry_run(folder)) == first
    assert tree(folder) == before
    shard = staging / "data" / "default" / "train-00000-of-00002.parquet"
    assert os.path.samefile(shard, folder / "shards" / "part-00000.parquet")  # hard-linked, not copied
    mix_folder(tmp_path / "other", shards=1)
    assert sorted(p for p in tree(dry_run(tmp_path / "other" / "mix", staging=str(staging))) if p.startswith("data/default")) == ["data/default/train-00000-of-00001.parquet"]


def test_refuses_folders_it_cannot_push_and_staging_inside_the_stage(tmp_path: Path) -> None:
    folder = filter_folder(tmp_path)
    with pytest.raises(DatakitError, match="push .*filtered, the stage folder"):
        dry_run(folder / "accepted")
    with pytest.raises(DatakitError, match="outside the stage folder"):
        dry_run(folder, staging=str(folder / "hub"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatakitError, match="not staged by datakit push"):
        dry_run(folder, staging=str(tmp_path / "mine"))
    write_shard(tmp_path / "empty", 0, SAMPLE_SCHEMA.empty_table())
    write_json_atomic(tmp_path / "empty" / "manifest.json", SAMPLE_MANIFEST)
    with pytest.raises(DatakitError, match="`default` config would be empty"):
        dry_run(tmp_path / "empty")
    mix = mix_folder(tmp_path)
    write_shard(mix / "removed", 1, pa.Table.from_pylist([_mix_row(30, "math", "en")], schema=MIX_ROW))
    with pytest.raises(DatakitError, match="different columns .*decontam_benchmark.*`removed` config would not load"):
        dry_run(mix)
    write_json_atomic(folder / "manifest.json", {**FILTER_MANIFEST, "complete": False})
    with pytest.raises(DatakitError, match="has not finished"):
        dry_run(folder)
    with pytest.raises(DatakitError, match="ORG/NAME"):
        run_push(PushConfig(folder=str(folder), repo_id="no-org", dry_run=True))


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 800_000, 10**6)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]


def test_cli_dry_run_with_recipe_writes_the_folder_and_says_where(tmp_path: Path) -> None:
    folder = mix_folder(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"push:\n  folder: {folder}\n  repo_id: my-org/demo\n  license: mit\n")
    result = CliRunner().invoke(app, ["push", "--recipe", str(recipe), "--set", "pretty_name=R1 demo mix", "--dry-run", "--staging", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing uploaded" in result.output and str(tmp_path / "out") in result.output.replace("\n", "")
    meta, _ = card_of(tmp_path / "out")
    assert meta["license"] == "mit" and meta["pretty_name"] == "R1 demo mix"


def test_cli_offline_push_fails_with_a_clear_error(tmp_path: Path) -> None:
    folder = sample_folder(tmp_path)
    cli = Path(sys.executable).with_name("datakit")
    result = subprocess.run([str(cli), "push", str(folder), "my-org/r1-data"], check=False, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert "HF_HUB_OFFLINE is set" in result.stderr and "--dry-run" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "samples-hub" / "README.md").is_file()  # staged all the same, ready to upload


class FakeHub:
    """An in-memory Hub: repos of path -> bytes; records repo creations and commits."""

    def __init__(self, token: str | None = "hf_fake") -> None:
        self.token = token
        self.files: dict[str, bytes] = {".gitattributes": b"*.parquet filter=lfs\n*.png filter=lfs\n"}
        self.created: list[dict[str, Any]] = []
        self.commits: list[str] = []

    def create_repo(self, repo_id: str, **kw: Any) -> None:
        self.created.append({"repo_id": repo_id, **kw})

    def list_repo_tree(self, repo_id: str, *, recursive: bool = False, repo_type: str | None = None, **kw: Any) -> list[RepoFile]:
        assert recursive and repo_type == "dataset"
        return [self._entry(path, data) for path, data in self.files.items()]

    @staticmethod
    def _entry(path: str, data: bytes) -> RepoFile:
        if path.endswith((".parquet", ".png")):  # stored in LFS: the tree gives the sha256
            lfs = {"size": len(data), "oid": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
            return RepoFile(path=path, size=len(data), oid="0" * 40, lfs=lfs)
        return RepoFile(path=path, size=len(data), oid=hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())

    def upload_folder(self, *, repo_id: str, repo_type: str, folder_path: Path, commit_message: str, delete_patterns: list[str]) -> None:
        assert repo_type == "dataset"
        local = tree(Path(folder_path))
        for path in [p for p in self.files if p != ".gitattributes" and any(fnmatch.fnmatchcase(p, pat) for pat in delete_patterns)]:
            del self.files[path]
        self.files.update(local)
        self.commits.append(commit_message)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def push(folder: Path, hub: FakeHub, **kw: Any) -> Any:
    return run_push(PushConfig(folder=str(folder), repo_id="my-org/r1-data", **kw), api=hub)


def test_upload_commits_once_skips_an_unchanged_folder_and_deletes_stale_data(tmp_path: Path, online: None) -> None:
    hub = FakeHub()
    hub.files["LICENSE.txt"] = b"the pusher's own file\n"
    folder = mix_folder(tmp_path)
    first = push(folder, hub, private=True)
    assert first.committed and len(hub.commits) == 1
    assert hub.created == [{"repo_id": "my-org/r1-data", "repo_type": "dataset", "private": True, "exist_ok": True}]
    assert hub.commits[0] == f"datakit {__version__}: push mix folder, run m1i2x3h4"
    assert {p: d for p, d in hub.files.items() if p not in (".gitattributes", "LICENSE.txt")} == tree(first.staging)

    again = push(folder, hub)
    assert not again.committed and len(hub.commits) == 1

    mix_folder(tmp_path / "v2", shards=1)
    third = push(tmp_path / "v2" / "mix", hub, staging=str(first.staging))
    assert third.committed and len(hub.commits) == 2
    assert sorted(p for p in hub.files if p.startswith("data/default/")) == ["data/default/train-00000-of-00001.parquet"]
    assert "LICENSE.txt" in hub.files  # outside data/ and datakit/: not push's to delete


def test_upload_without_a_token_says_how_to_log_in(tmp_path: Path, online: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    hub = FakeHub(token=None)
    with pytest.raises(DatakitError, match="hf auth login.*HF_TOKEN"):
        push(sample_folder(tmp_path), hub)
    assert hub.created == [] and hub.commits == []


def test_upload_that_cannot_reach_the_hub_is_a_user_error(tmp_path: Path, online: None) -> None:
    hub = FakeHub()

    def unreachable(repo_id: str, **kw: Any) -> None:
        raise httpx.ConnectError("Name or service not known")

    hub.create_repo = unreachable  # type: ignore[method-assign]
    with pytest.raises(DatakitError, match="cannot reach the Hugging Face Hub.*re-run to resume"):
        push(sample_folder(tmp_path), hub)


def test_the_card_of_a_real_mix_claims_what_its_rows_show_and_its_code_runs(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """filter + mix with the prompt/completion split, staged; the card read back with huggingface_hub:
    each count and share in it is the rows' own (read with `datasets`), and its usage code runs as
    printed on this CPU (the demo's card once trained only with bf16, i.e. only on a GPU)."""
    from collections import Counter

    from huggingface_hub import DatasetCard
    from test_loadable import verified_mix

    staging = dry_run(verified_mix(tmp_path))
    card = DatasetCard.load(staging / "README.md")
    names = [c["config_name"] for c in card.data.configs]
    assert names == ["default", "prompt_completion", "removed"] and card.data.configs[0]["default"] is True
    rows = {name: load(staging, name, tmp_path) for name in names}
    for name, data in rows.items():
        assert f"| `{name}` | train | {data.num_rows:,} |" in card.text
    default = rows["default"]
    assert rows["prompt_completion"]["prompt_id"] == default["prompt_id"]
    assert card.data.size_categories == [size_category(default.num_rows)] and card.data.language == sorted(set(default["language"]))

    verified = Counter(default["verified_by"])
    total, rule, judge, unverified = default.num_rows, sum(verified[v] for v in ("math", "code", "choice", "exact")), verified["judge"], verified["none"]
    assert (total, rule, judge, unverified) == (10, 6, 0, 4)
    share = lambda n: f"{n / total:.1%}"
    assert (
        f"Of the {total} rows of `default`, {rule} ({share(rule)}) have a final answer proven correct by a rule verifier" in card.text
        and f"{judge} ({share(judge)}) were judged correct by an LLM judge, and {unverified} ({share(unverified)}) are unverified" in card.text
    )
    assert f"| rule: `math` | {verified['math']} | {share(verified['math'])} |\n| not verified | {unverified} | {share(unverified)} |" in card.text
    assert f"Of these rows {share(rule + judge)} were proven correct and {share(unverified)} passed unverified" in card.text
    assert "only correct" not in card.text

    code = card.text.split("## How to use\n\n```python\n", 1)[1].split("\n```", 1)[0].replace("my-org/r1-data", str(staging))
    loading = "\n".join(line for line in code.splitlines() if "load_dataset" in line)
    scope: dict[str, Any] = {}
    exec(loading, scope)  # noqa: S102 (the card's own code, as a reader would paste it)
    assert scope["ds"].num_rows == total and {"prompt", "completion"} <= set(scope["ds"].column_names)
    monkeypatch.chdir(tmp_path)  # the snippet trains into ./student
    exec(code.replace("Qwen/Qwen2.5-1.5B-Instruct", tiny_model), {})  # noqa: S102
    assert (tmp_path / "student" / "model.safetensors").is_file()
