"""Any OpenAI-compatible chat endpoint: vLLM serve, SGLang, hosted APIs.

Requests go out concurrently (bounded by a semaphore), one per sample so servers without `n`
support work too, and are retried with exponential backoff on 429, 5xx, timeouts, dropped
connections and 200s that hold no chat completion (honouring Retry-After); a server still failing
after `max_retries` is a BackendError naming it and its last reply. A server's separate
`reasoning_content` is folded back into the completion as a think block, so every backend yields
the same raw form.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from typing import Any

import httpx

from datakit.backends import Backend, Generation, Messages, OnProgress, OpenAIOptions, PromptResult, SamplingParams, too_long
from datakit.errors import BackendError, DatakitError
from datakit.reasoning import join_reasoning

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
SHOWN = 200  # characters of a bad reply quoted in errors
# How servers say one prompt does not fit the context: vLLM and SGLang ("This model's maximum context length
# is 2048 tokens. However, you requested ..."), OpenAI (code context_length_exceeded), others ("prompt is too long").
TOO_LONG = re.compile(r"maximum context length|context_length_exceeded|context length|(prompt|input) is too long|too many (input )?tokens", re.I)


class _NotACompletion(Exception):
    """A 200 whose body is not a chat completion: transient (a proxy's error page, a reply cut short), so retried."""


class _TooLong(Exception):
    """The server refused one prompt as longer than the model's context: a reject of that row, not a failure."""


class OpenAIBackend(Backend):
    def __init__(self, model: str, options: OpenAIOptions):
        self.model = model
        self.options = options
        self.api_key = os.environ.get(options.api_key_env, "")
        self.url = options.base_url.rstrip("/") + "/chat/completions"

    def generate(
        self, prompts: list[Messages], params: SamplingParams, seeds: list[int], on_progress: OnProgress | None = None
    ) -> list[PromptResult]:
        return asyncio.run(self._generate_all(prompts, params, seeds, on_progress))

    async def _generate_all(
        self, prompts: list[Messages], params: SamplingParams, seeds: list[int], on_progress: OnProgress | None
    ) -> list[PromptResult]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.options.max_concurrency)
        gate = asyncio.Semaphore(self.options.max_concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.options.timeout_s, limits=limits) as client:

            async def one_prompt(i: int) -> PromptResult:
                replies = await asyncio.gather(
                    *(self._sample(client, gate, prompts[i], params, seeds[i] + k) for k in range(params.n)), return_exceptions=True
                )
                refused = next((r for r in replies if isinstance(r, _TooLong)), None)
                failed = next((r for r in replies if isinstance(r, BaseException)), None)
                if refused is not None:
                    result = too_long(None, f"the server refused it: {refused}")
                elif failed is not None:
                    raise failed
                else:
                    result = PromptResult(prompt_tokens=replies[0][0], generations=[generation for _, generation in replies])
                if on_progress:
                    on_progress(1, result.completion_tokens)
                return result

            return list(await asyncio.gather(*(one_prompt(i) for i in range(len(prompts)))))

    async def _sample(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, messages: Messages, params: SamplingParams, seed: int
    ) -> tuple[int, Generation]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "n": 1,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": seed,
        }
        if params.top_k > 0:
            body["top_k"] = params.top_k  # vLLM and SGLang accept it; hosted APIs may not
        if messages[-1]["role"] == "assistant":  # a prefilled reply (the judge's "VERDICT:"): continue it
            body.update(continue_final_message=True, add_generation_prompt=False)  # vLLM and SGLang servers
        async with gate:
            return await self._post_with_retries(client, body)

    async def _post_with_retries(self, client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, Generation]:
        """One completion, retried with backoff on what a healthy server recovers from: 429 and 5xx,
        timeouts (a body that never ends included: timeout_s bounds the whole request), dropped
        connections, and 200s whose body is no chat completion (a proxy's error page, a reply cut short)."""
        last = ""
        for attempt in range(self.options.max_retries + 1):
            wait = None
            try:
                response = await asyncio.wait_for(client.post(self.url, json=body), self.options.timeout_s)
                if response.status_code == 200:
                    return _parse_reply(response.text)
            except (httpx.TimeoutException, TimeoutError) as e:
                last = f"{type(e).__name__}: no complete reply within {self.options.timeout_s:g} s"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            except _NotACompletion as e:
                last = f"HTTP 200 but {e}: {response.text[:SHOWN]!r}"
            else:
                last = f"HTTP {response.status_code}: {response.text[:SHOWN]}"
                if response.status_code == 400 and TOO_LONG.search(response.text):
                    raise _TooLong(f"HTTP 400: {response.text[:300]}")
                if response.status_code not in RETRY_STATUS:
                    raise DatakitError(f"{self.url} refused the request ({last})")
                wait = _retry_after(response)
            if attempt < self.options.max_retries:
                await asyncio.sleep(wait if wait is not None else min(60.0, 0.5 * 2**attempt) * (0.5 + random.random()))
        raise BackendError(f"{self.url}: gave up after {self.options.max_retries + 1} attempts; last error: {last}")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(120.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _parse_reply(body: str) -> tuple[int, Generation]:
    """(prompt tokens, generation) from a chat completion response's body."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise _NotACompletion(f"not JSON ({e})") from e
    try:
        choice = data["choices"][0]
        message = choice["message"]
        # DeepSeek's API and vLLM's reasoning parsers say reasoning_content; some servers say reasoning.
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        text = join_reasoning(reasoning, message.get("content") or "")
        usage = data.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return int(usage.get("prompt_tokens", 0)), Generation(text, finish, int(usage.get("completion_tokens", 0)))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise _NotACompletion("no chat completion in it" + (" (no choices)" if isinstance(e, IndexError) else f" ({e!r})")) from e
