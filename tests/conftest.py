"""Shared fixtures: a tiny random Llama for fast plumbing tests, the embedded model for real ones."""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

# Tests never reach a hub: set before anything imports huggingface_hub, which reads it once.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ... and never touch the user's datasets cache: loading stage folders would leave entries there.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="datakit-tests-datasets-cache-")
atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_MATH = ROOT / "data" / "demo" / "math.jsonl"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer and chat template, saved as a folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from datakit.models import EMBEDDED, DEFAULT_MODEL, gguf_path

    gguf = gguf_path(EMBEDDED[DEFAULT_MODEL])
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def embedded_model_folder() -> str:
    """The embedded SmolLM2-135M-Instruct, converted once to bf16 safetensors (cached across runs)."""
    from datakit.models import DEFAULT_MODEL, resolve_model

    return resolve_model(DEFAULT_MODEL)


def has_vllm() -> bool:
    return importlib.util.find_spec("vllm") is not None


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path
