"""Every stage folder opens as it is with `datasets.load_dataset(folder)` (what `trl sft --dataset_name`
calls): its README.md names the shards, so manifest.json, report.json and plots stay out of the loader's
way, and each config holds exactly the rows the stage wrote."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq

from datakit.filter import FilterConfig, run_filter
from datakit.mix import run_mix
from test_filter_stage import _chain, _samples_folder
from test_mix import config, folder, math_rows, writing_rows


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
