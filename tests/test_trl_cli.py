"""TRL's own CLI trains on a mix folder as it is: `trl sft --dataset_name <mix folder>` reads its default
`messages` config, and with `--dataset_config prompt_completion` the prompt/completion split, for one step
of the embedded SmolLM2-135M-Instruct on the CPU (the CLI as a user runs it, in its own process)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_loadable import verified_mix

TRL = Path(sys.executable).with_name("trl")


@pytest.mark.slow
def test_trl_sft_trains_on_both_configs_of_a_mix_folder(embedded_model_folder: str, tmp_path: Path) -> None:
    mix = verified_mix(tmp_path)
    runs = {config: _start_trl_sft(mix, config, embedded_model_folder, tmp_path / config) for config in ("default", "prompt_completion")}
    for config, run in runs.items():  # both at once: each spends most of its time starting up
        out, _ = run.communicate(timeout=600)
        assert run.returncode == 0, f"{config}: {out[-3000:]}"
        losses = [float(x) for x in re.findall(r"'loss': '?([0-9.]+)", out)]
        assert losses and all(math.isfinite(x) and x > 0 for x in losses), f"{config}: {out[-3000:]}"
        assert (tmp_path / config / "student" / "model.safetensors").is_file()


def _start_trl_sft(mix: Path, config: str, model: str, work: Path) -> subprocess.Popen:
    """One step of `trl sft` on the CPU; its own datasets cache, so the two runs share nothing."""
    command = [
        str(TRL), "sft", "--model_name_or_path", model, "--dataset_name", str(mix), "--dataset_config", config,
        "--output_dir", str(work / "student"), "--max_steps", "1", "--per_device_train_batch_size", "1", "--max_length", "96",
        "--logging_steps", "1", "--gradient_checkpointing", "false", "--use_cpu", "true", "--bf16", "false",
        "--save_strategy", "no", "--report_to", "none",
    ]
    env = {**os.environ, "HF_DATASETS_CACHE": str(work / "datasets-cache"), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
