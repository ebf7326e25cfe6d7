"""One interface for generation: N completions for each chat prompt, whatever serves the model.

`make_backend` picks the implementation with a short match; each branch imports its heavy package
(torch, vllm, httpx) only when chosen, so `import datakit` stays light. The LLM judge of the filter
stage uses the same backends.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from datakit.config import NOT_HASHED
from datakit.errors import DatakitError

Messages = list[dict[str, str]]
BACKENDS = ("auto", "vllm", "hf", "openai")


@dataclass
class SamplingParams:
    """Decoding settings; the defaults are DeepSeek-R1's (temperature 0.6, top-p 0.95)."""

    n: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    max_tokens: int = 32768  # R1's generation budget; clipped to what fits the model's context
    seed: int = 0


@dataclass
class VLLMOptions:
    """Settings of vLLM's offline engine."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None  # None: the model's own
    dtype: str = "auto"
    gpu_memory_utilization: float = field(default=0.9, metadata=NOT_HASHED)
    enforce_eager: bool = field(default=False, metadata=NOT_HASHED)
    batch_prompts: int = field(default=512, metadata=NOT_HASHED)  # prompts per engine call


@dataclass
class OpenAIOptions:
    """Settings for an OpenAI-compatible server (vLLM serve, SGLang, hosted APIs)."""

    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=NOT_HASHED)
    max_concurrency: int = field(default=64, metadata=NOT_HASHED)
    max_retries: int = field(default=8, metadata=NOT_HASHED)
    timeout_s: float = field(default=600.0, metadata=NOT_HASHED)


@dataclass
class HFOptions:
    """Settings of the transformers `generate` fallback."""

    batch_prompts: int = 8  # changes padding, hence the sampled tokens: part of the output's identity
    dtype: str = "bfloat16"
    device: str = field(default="auto", metadata=NOT_HASHED)


@dataclass
class BackendConfig:
    name: str = "auto"
    vllm: VLLMOptions = field(default_factory=VLLMOptions)
    openai: OpenAIOptions = field(default_factory=OpenAIOptions)
    hf: HFOptions = field(default_factory=HFOptions)


@dataclass
class Generation:
    text: str  # the raw completion, think block included
    finish_reason: str  # "stop" (end of sequence or stop string) or "length" (hit max_tokens)
    completion_tokens: int


@dataclass
class PromptResult:
    prompt_tokens: int
    generations: list[Generation]
    prefilled_think: bool = False  # the rendered prompt already opened the think block
    # Why the prompt was not sampled ("prompt_too_long: ..."), with no generations; None when it was.
    # A per-prompt refusal, so one oversized prompt costs its own row, never the run.
    rejected: str | None = None

    @property
    def completion_tokens(self) -> int:
        """Tokens generated for this prompt, over all its samples."""
        return sum(g.completion_tokens for g in self.generations)


# Progress as a request goes: `on_progress(prompts, tokens)` says that many more prompts finished and
# that many more completion tokens were generated; over one `generate` call the prompts add up to its
# prompt count. Prompts may be counted as the engine finishes them and their tokens a little later.
OnProgress = Callable[[int, int], None]


class Backend(ABC):
    """Generates `params.n` completions for each chat prompt."""

    @abstractmethod
    def generate(
        self, prompts: list[Messages], params: SamplingParams, seeds: list[int], on_progress: OnProgress | None = None
    ) -> list[PromptResult]:
        """One result per prompt, in order; `seeds[i]` makes prompt i's samples reproducible."""

    def close(self) -> None:
        """Release engines, sockets and memory."""

    def cpu_threads(self) -> dict[str, Any] | None:
        """The threads this engine computes with on this machine's CPUs, for the sample manifest; None
        where it computes elsewhere (a server, a GPU)."""
        return None


class LocalBackend(Backend):
    """A backend that runs an engine in this process, a chunk of prompts per engine call.

    Prompts are rendered with the chat template and tokenised here, once; a prompt that leaves no room
    in the model's context (`max_len` tokens) is refused on its own before it reaches the engine, where
    it would fail the whole call (vLLM) or pad the batch to its length (transformers)."""

    chunk_prompts: int
    tokenizer: Any
    prefill_think: bool
    max_len: int | None  # the engine's context in tokens, prompt and completion together

    def generate(
        self, prompts: list[Messages], params: SamplingParams, seeds: list[int], on_progress: OnProgress | None = None
    ) -> list[PromptResult]:
        report = on_progress or (lambda prompts, tokens: None)
        texts = render_prompts(self.tokenizer, prompts, self.prefill_think)
        ids = [self.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        results: list[PromptResult | None] = [None] * len(prompts)
        for i, tokens in enumerate(ids):
            if self.max_len is not None and len(tokens) >= self.max_len:
                results[i] = too_long(len(tokens), f"the model's context is {self.max_len} tokens, leaving no room to generate")
                report(1, 0)
        fits = [i for i, result in enumerate(results) if result is None]
        for start in range(0, len(fits), self.chunk_prompts):
            chunk = fits[start : start + self.chunk_prompts]
            announced = [0, 0]  # prompts and tokens the engine reported during the call

            def one_finished(tokens: int) -> None:
                announced[0] += 1
                announced[1] += tokens
                report(1, tokens)

            done = self._generate_chunk([texts[i] for i in chunk], [ids[i] for i in chunk], params, [seeds[i] for i in chunk], one_finished)
            for i, result in zip(chunk, done, strict=True):
                results[i] = result
            tokens = sum(result.completion_tokens for result in done)
            report(max(len(chunk) - announced[0], 0), max(tokens - announced[1], 0))
        return results  # type: ignore[return-value]

    @abstractmethod
    def _generate_chunk(
        self, texts: list[str], token_ids: list[list[int]], params: SamplingParams, seeds: list[int], one_finished: Callable[[int], None]
    ) -> list[PromptResult]:
        """Results for one engine call's worth of prompts, rendered (`texts`) and tokenised (`token_ids`).
        An engine that finishes prompts one by one calls `one_finished(completion_tokens)` for each, so
        progress moves during a long call; what it does not announce is counted when the call returns."""

    def cpu_threads(self) -> dict[str, Any] | None:
        """torch's threads (it sizes them from the CPU affinity, or OMP_NUM_THREADS) and the CPUs they may use."""
        import torch

        if torch.cuda.is_available():
            return None
        set_by = "user" if "OMP_NUM_THREADS" in os.environ else "torch"
        return {"engine": "in-process", "threads": torch.get_num_threads(), "cpus": cpu_list(os.sched_getaffinity(0)), "set_by": set_by}


def cpu_list(cpus: Iterable[int]) -> str:
    """CPU ids written the way taskset and cpusets write them: {0, 1, 2, 5} -> "0-2,5"."""
    ids = sorted(cpus)
    runs: list[list[int]] = []
    for cpu in ids:
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


def too_long(tokens: int | None, limit: str) -> PromptResult:
    """The result of a prompt refused for its length: a reject reason naming its size and the limit."""
    size = f"{tokens} tokens after the chat template; " if tokens is not None else ""
    return PromptResult(prompt_tokens=tokens or 0, generations=[], rejected=f"prompt_too_long: {size}{limit}")


def resolve_backend_name(name: str) -> str:
    """`auto` means vLLM where it is installed, else transformers."""
    if name not in BACKENDS:
        raise DatakitError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def make_backend(config: BackendConfig, model: str, prefill_think: bool = False) -> Backend:
    match resolve_backend_name(config.name):
        case "vllm":
            from datakit.backends.vllm import VLLMBackend

            return VLLMBackend(model, config.vllm, prefill_think)
        case "hf":
            from datakit.backends.hf import HFBackend

            return HFBackend(model, config.hf, prefill_think)
        case "openai":
            from datakit.backends.openai import OpenAIBackend

            if prefill_think:
                raise DatakitError("--prefill-think needs a local engine (vllm or hf); a chat API renders its own template")
            return OpenAIBackend(model, config.openai)
    raise AssertionError("unreachable")


def render_prompts(tokenizer: Any, prompts: list[Messages], prefill_think: bool) -> list[str]:
    """Apply the model's chat template, opening the think block when asked (R1 forces `<think>\\n`). A prompt
    ending with an assistant turn is a prefilled reply the model continues (the judge's "VERDICT:")."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise DatakitError("the model's tokenizer has no chat template; datakit samples chat prompts")
    texts = [
        tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=p[-1]["role"] != "assistant", continue_final_message=p[-1]["role"] == "assistant")
        for p in prompts
    ]
    return [t + "<think>\n" for t in texts] if prefill_think else texts
