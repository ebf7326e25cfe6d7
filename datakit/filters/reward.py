"""An outcome reward model scores each (prompt, answer): R1's best-of-N for data no rule can check.

The model is a sequence-classification reward model (one logit) loaded with transformers, scoring
the chat with the sample's answer as the assistant turn. The score column feeds `best_of_n`
(`by: reward_score`) or an absolute floor (`min_score`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from datakit.filters import Filter, reason
from datakit.models import resolve_model


@dataclass
class RewardModel(Filter):
    """Write `reward_score`; reject below `min_score` when one is set."""

    name = "reward_model"
    score_params = ("model", "max_length", "dtype")
    reads = ("messages", "answer")
    scores = {"reward_score": pl.Float64}
    heavy = True

    model: str = ""
    batch_size: int = 8
    max_length: int = 4096
    min_score: float | None = None
    dtype: str = "bfloat16"
    device: str = "auto"  # auto: the first GPU where there is one, else the CPU

    def gpus(self) -> float:
        return 0.0 if self.device == "cpu" else 1.0

    def model_card(self) -> dict[str, Any]:
        return {"model": self.model, "device": self.device, "dtype": self.dtype}

    def setup(self, context: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model(self.model)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        self._model = AutoModelForSequenceClassification.from_pretrained(path, dtype=getattr(torch, self.dtype)).to(self._device).eval()
        self._model.config.pad_token_id = self._tokenizer.pad_token_id

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        import torch

        chats = [[*m, {"role": "assistant", "content": a}] for m, a in zip(rows["messages"].to_list(), rows["answer"].to_list())]
        texts = [self._tokenizer.apply_chat_template(chat, tokenize=False) for chat in chats]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self._tokenizer(
                texts[start : start + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                max_length=self.max_length, add_special_tokens=False,
            ).to(self._device)
            with torch.inference_mode():
                scores += self._model(**enc).logits[:, 0].float().tolist()
        return pl.DataFrame({"reward_score": scores}, schema=self.scores)

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        if self.min_score is None:
            return pl.Series("reason", [None] * frame.height, dtype=pl.String)
        low = pl.col("reward_score") < self.min_score
        detail = pl.format("reward {} < {}", pl.col("reward_score").round(4), pl.lit(self.min_score))
        return frame.select(pl.when(low).then(reason("low_reward", detail)).otherwise(None)).to_series()
