"""transformers `generate`, batched: the fallback where vLLM is not installed, and the fast tests."""

from __future__ import annotations

from collections.abc import Callable

from datakit.backends import Generation, HFOptions, LocalBackend, PromptResult, SamplingParams
from datakit.models import resolve_model
from datakit.reasoning import ends_with_open_think


class HFBackend(LocalBackend):
    def __init__(self, model: str, options: HFOptions, prefill_think: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model)
        self.options = options
        self.chunk_prompts = options.batch_prompts
        self.prefill_think = prefill_think
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if options.device == "auto" else options.device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, options.dtype)).to(self.device)
        self.model.eval()
        self.max_len = getattr(self.model.config, "max_position_embeddings", None)

    def _generate_chunk(
        self, texts: list[str], token_ids: list[list[int]], params: SamplingParams, seeds: list[int], one_finished: Callable[[int], None]
    ) -> list[PromptResult]:  # one batch: every prompt finishes when the call does
        import torch

        enc = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt", padding=True).to(self.device)
        width = enc["input_ids"].shape[1]
        max_new = params.max_tokens if self.max_len is None else max(1, min(params.max_tokens, self.max_len - width))
        sampling = params.temperature > 0
        torch.manual_seed(seeds[0])  # one seed per batch: a batch re-run after a kill samples the same tokens
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                do_sample=sampling,
                temperature=params.temperature if sampling else None,
                top_p=params.top_p if sampling else None,
                top_k=params.top_k if sampling else None,
                max_new_tokens=max_new,
                num_return_sequences=params.n,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id,
            )
        new_tokens = out[:, width:].tolist()
        prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for i, text in enumerate(texts):
            rows = new_tokens[i * params.n : (i + 1) * params.n]
            results.append(
                PromptResult(
                    prompt_tokens=int(prompt_lengths[i]),
                    generations=[self._decode(row) for row in rows],
                    prefilled_think=ends_with_open_think(text),
                )
            )
        return results

    def _decode(self, tokens: list[int]) -> Generation:
        """Cut at the first end-of-sequence token (the rest is padding) and say why generation stopped."""
        eos = self.model.generation_config.eos_token_id
        stop_ids = set(eos if isinstance(eos, list) else [eos if eos is not None else self.tokenizer.eos_token_id])
        for length, token in enumerate(tokens, start=1):
            if token in stop_ids:
                return Generation(self.tokenizer.decode(tokens[: length - 1], skip_special_tokens=True), "stop", length)
        return Generation(self.tokenizer.decode(tokens, skip_special_tokens=True), "length", len(tokens))
