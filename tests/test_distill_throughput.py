"""What `datakit distill` records about its batches: tokens trained on (padding not counted), tokens/s, and
the share of padding, padded and packed, over one epoch of the tiny model on rows of two lengths."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_distill import distill_config, mix_folder

from datakit.distill import run_distill


@pytest.mark.parametrize("packing", [False, True])
def test_one_epoch_counts_every_row_token_once_and_the_padding_of_its_batches(tiny_model: str, tmp_path: Path, packing: bool) -> None:
    data = mix_folder(tmp_path)  # a quarter of the rows are longer: padded batches carry padding
    manifest = run_distill(distill_config(tiny_model, data, tmp_path / "student", max_steps=-1, num_train_epochs=1, packing=packing)).manifest
    assert manifest["tokens_seen"] == manifest["train_tokens"]  # every token of every row, padding left out
    assert manifest["tokens_per_second"] > 0 and manifest["train_seconds"] > 0
    if packing:
        assert manifest["padding_share"] == 0  # packed rows are one flat sequence per batch
    else:
        assert 0.05 < manifest["padding_share"] < 0.9
