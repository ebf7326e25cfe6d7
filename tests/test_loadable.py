"""Every stage folder opens as it is with `datasets.load_dataset(folder)` (what `trl sft --dataset_name`
calls): its README.md names the shards, so manifest.json, report.json and plots stay out of the loader's
way, and each config holds exactly the rows the stage wrote. `verified_mix` is a real filter + mix run
that other tests (TRL's CLI, the pushed card) train on and count."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from test_filter_stage import _chain, _samples_folder
from test_mix import config, folder, math_rows, sample, writing_rows

from datakit.filter import FilterConfig, run_filter
from datakit.mix import run_mix


def verified_mix(root: Path) -> Path:
    """A mix of a real filter run, with the prompt/completion split: 6 math answers proven correct by
    math-verify (their wrong twins rejected) and 4 writing answers that no rule can check, kept unverified;
    a copy of a writing prompt is removed as a duplicate."""
    math = [
        sample(f"m{p}", f"Problem {p}: a farmer has {p * 7 + 3} sheep and buys {p + 11} more on day {p}. How many sheep?", "math", i,
               answer=f"So the farmer has \\boxed{{{p * 8 + 14 + i}}} sheep.", reference=str(p * 8 + 14), verifier="math")
        for p in range(6) for i in range(2)
    ]
    writing = writing_rows(4)
    copy = {**writing[0], "prompt_id": "w0-copy"}
    samples = folder(root, "samples", math + writing + [copy])
    chain = root / "chain.yaml"
    chain.write_text("name: keep-unverified\nfilters:\n  - correctness: {workers: 1, unverified: keep}\n")
    filtered = run_filter(FilterConfig(input=str(samples), output=str(root / "filtered"), chain=str(chain), workers=1, progress=False)).output
    return run_mix(config(root, [filtered], {"reasoning": {"math": 6}, "non_reasoning": {"writing": 4}}, prompt_completion=True)).output


def _rows(pattern: str, root: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in root.glob(pattern))


def test_a_filter_folder_loads_with_its_accepted_and_rejected_configs(tmp_path: Path) -> None:
    chain = _chain(tmp_path, "filters:\n  - format: {require_think: true}\n  - correctness: {workers: 1}\n")
    out = run_filter(FilterConfig(input=str(_samples_folder(tmp_path)), output=str(tmp_path / "f"), chain=str(chain), workers=1, progress=False)).output
    accepted = datasets.load_dataset(str(out), split="train")
    rejected = datasets.load_dataset(str(out), "rejected", split="train")
    assert len(accepted) == _rows("accepted/shards/*.parquet", out) > 0 and len(rejected) == _rows("rejected/shards/*.parquet", out) > 0
    assert "rejected_by" in accepted.column_names and set(rejected["rejected_by"]) <= {"format", "correctness"}


def test_a_mix_folder_loads_as_conversations(tmp_path: Path) -> None:
    source = folder(tmp_path, "filtered", math_rows(6, 2) + writing_rows(4))
    summary = run_mix(config(tmp_path, [source], {"reasoning": {"math": 8}, "non_reasoning": {"writing": 4}}))
    mix = datasets.load_dataset(str(summary.output), split="train")
    assert len(mix) == summary.report["rows_out"] == 12
    assert mix[0]["messages"][-1]["role"] == "assistant" and mix[0]["messages"][-1]["content"].startswith("<think>")


def test_a_mix_folder_with_the_prompt_completion_split_loads_both_configs(tmp_path: Path) -> None:
    mix = verified_mix(tmp_path)
    whole = datasets.load_dataset(str(mix), split="train")
    split = datasets.load_dataset(str(mix), "prompt_completion", split="train")
    assert len(whole) == len(split) == _rows("shards/*.parquet", mix) == _rows("prompt_completion/shards/*.parquet", mix) == 10
    assert "messages" not in split.column_names and {"prompt", "completion", "prompt_id", "verified_by"} <= set(split.column_names)
    for row, pair in zip(whole, split):
        assert pair["prompt"] + pair["completion"] == row["messages"] and pair["completion"][0]["role"] == "assistant"
        assert (pair["prompt_id"], pair["verified_by"]) == (row["prompt_id"], row["verified_by"])
    assert sorted(whole["verified_by"]) == ["math"] * 6 + ["none"] * 4  # proven by math-verify, or passed unverified
    assert {r["prompt_id"] for r in whole if r["verified_by"] == "math"} == {f"m{p}" for p in range(6)}


def test_a_rerun_into_the_same_folder_loads_the_new_rows_not_the_cached_ones(tmp_path: Path) -> None:
    """`datasets` caches a local folder by its name and its config patterns; the loader card's rows
    fingerprint is what tells a rewritten folder (or another folder of the same name) from the cached one."""
    def mix_of(root: Path, math: int, out: Path) -> int:
        source = folder(root, "filtered", math_rows(math, 1))
        run_mix(config(root, [source], {"reasoning": {"math": math}}, out=str(out)))
        return len(datasets.load_dataset(str(out), split="train"))

    out = tmp_path / "runs" / "mix"
    assert mix_of(tmp_path / "first", 3, out) == 3
    shutil.rmtree(out)
    assert mix_of(tmp_path / "second", 5, out) == 5  # the same path, rewritten
    assert mix_of(tmp_path / "third", 4, tmp_path / "elsewhere" / "mix") == 4  # another folder named mix
