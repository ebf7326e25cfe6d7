"""Generated tokens/s of `datakit sample` against the raw engine on the same prompts, in one run.

    python bench/sample.py                  # vllm (if installed) and hf on the embedded model
    python bench/sample.py --backend vllm --prompts 64 --n 4 --max-tokens 256

For each backend one engine is loaded and shared: the raw path calls it directly (`LLM.generate`,
`model.generate`), the datakit path runs the whole sample stage on it (ingest, chat templates,
per-prompt seeds, think splitting, Parquet shards, manifest). Sharing the engine, both sides compute
with the same CPU threads (printed as `cpu_threads`: on CPU, one per CPU of the affinity, see
datakit/backends/vllm.py). Runs alternate raw/datakit to spread warm-up and noise; the ratio is
datakit's tokens/s over raw's. Target: >= 0.97.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from datakit.backends import (
    Backend,
    BackendConfig,
    HFOptions,
    Messages,
    SamplingParams,
    VLLMOptions,
    make_backend,
    render_prompts,
    resolve_backend_name,
)
from datakit.ingest import IngestConfig, load_prompts
from datakit.models import DEFAULT_MODEL
from datakit.sample import SampleConfig, run_sample

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["vllm", "hf", "all"], default="all")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    backends = available_backends() if args.backend == "all" else [args.backend]
    results = [compare(name, args.prompts, args.n, args.max_tokens, args.repeats) for name in backends]
    print(f"\n{'backend':<8} {'raw tok/s':>10} {'datakit tok/s':>14} {'ratio':>7}  (target >= 0.97)")
    for r in results:
        print(f"{r['backend']:<8} {r['baseline']['rate']:>10.1f} {r['datakit']['rate']:>14.1f} {r['ratio']:>7.3f}")


def available_backends() -> list[str]:
    return ["vllm", "hf"] if resolve_backend_name("auto") == "vllm" else ["hf"]


def compare(name: str, prompts: int = 32, n: int = 4, max_tokens: int = 128, repeats: int = 2) -> dict:
    """Generated tokens/s of the raw engine and of `datakit sample` on it, alternating runs."""
    args = argparse.Namespace(prompts=prompts, n=n, max_tokens=max_tokens, repeats=repeats)
    prompts_file = Path(tempfile.mkdtemp()) / "prompts.jsonl"
    lines = (ROOT / "data" / "demo" / "math.jsonl").read_text().splitlines()
    prompts_file.write_text("\n".join((lines * (args.prompts // len(lines) + 1))[: args.prompts]) + "\n")
    # HF sizes are kept small: transformers generate is ~10x slower than vLLM on CPU.
    n, max_tokens, batch = (args.n, args.max_tokens, 0) if name == "vllm" else (2, min(64, args.max_tokens), 8)
    count = args.prompts if name == "vllm" else min(args.prompts, 16)
    config = SampleConfig(
        input=str(prompts_file),
        model=DEFAULT_MODEL,
        sampling=SamplingParams(n=n, max_tokens=max_tokens),
        backend=BackendConfig(
            name=name,
            vllm=VLLMOptions(max_model_len=1024, dtype="bfloat16", enforce_eager=True),
            hf=HFOptions(batch_prompts=batch or 8),
        ),
        ingest=IngestConfig(limit=count),
        progress=False,
    )
    backend = make_backend(config.backend, config.model)
    messages = [row["messages"] for row in load_prompts(config.input, config.ingest).prompts.to_pylist()]
    raw_run = _raw_runner(name, backend, messages, config.sampling)
    raw_run()  # warm-up
    raw, ours = [], []
    for repeat in range(args.repeats):
        raw.append(raw_run())
        config.output = tempfile.mkdtemp(prefix=f"bench-{name}-{repeat}-")
        config.sampling.seed = repeat
        started = time.perf_counter()
        summary = run_sample(config, backend)
        ours.append(summary.completion_tokens / (time.perf_counter() - started))
    threads = backend.cpu_threads()
    backend.close()
    print(json.dumps({"backend": name, "prompts": count, "n": n, "max_tokens": max_tokens, "cpu_threads": threads, "raw_tok_s": raw, "datakit_tok_s": ours}))
    base, mine = sum(raw) / len(raw), sum(ours) / len(ours)
    return {"stage": f"sample ({name})", "rows": count * n, "unit": "tok/s", "backend": name, "baseline": {"rate": base}, "datakit": {"rate": mine},
            "ratio": mine / base, "ratio_means": "generated tok/s"}


def _raw_runner(name: str, backend: Backend, messages: list[Messages], params: SamplingParams) -> Callable[[], float]:
    """The engine called directly, the way a user without datakit would: returns generated tokens/s."""
    if name == "vllm":
        from vllm import SamplingParams as VSamplingParams

        def run() -> float:
            started = time.perf_counter()
            sp = VSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens)
            outputs = backend.llm.chat(messages, sp, use_tqdm=False)  # type: ignore[attr-defined]
            return sum(len(o.token_ids) for out in outputs for o in out.outputs) / (time.perf_counter() - started)

        return run

    import torch

    hf: Any = backend
    tok, model = hf.tokenizer, hf.model

    def run() -> float:
        started, tokens = time.perf_counter(), 0
        texts = render_prompts(tok, messages, prefill_think=False)
        size = hf.options.batch_prompts
        for start in range(0, len(texts), size):
            enc = tok(texts[start : start + size], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(
                    **enc, do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None,
                    max_new_tokens=params.max_tokens, num_return_sequences=params.n, pad_token_id=tok.pad_token_id,
                )
            is_eos = out[:, enc["input_ids"].shape[1] :] == tok.eos_token_id
            lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, is_eos.shape[1])  # up to the first eos
            tokens += int(lengths.sum())
        return tokens / (time.perf_counter() - started)

    return run


if __name__ == "__main__":
    main()
