"""An LLM judge: compares a sample's answer with the reference, for data no rule can check.

R1 used DeepSeek-V3 as its judge. The judge runs through the same backends as `datakit sample`
(vllm, openai, hf), all of a shard's questions in one batched call. Its prompt is versioned (a
changed prompt gets a new version, so old and new scores are never mixed up), and its reply is
parsed strictly: exactly one line `VERDICT: CORRECT` or `VERDICT: INCORRECT`, anything else is
`unparseable` and rejected with that reason ("correct" inside "incorrect" can never count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from datakit.backends import Backend, BackendConfig, SamplingParams, make_backend
from datakit.errors import DatakitError
from datakit.filters import Filter, reason
from datakit.filters.correctness import UNDECIDED
from datakit.models import DEFAULT_MODEL

PROMPTS = {
    "v1": (
        "You are grading a candidate answer against a reference answer.\n\n"
        "Question:\n{question}\n\n"
        "Reference answer:\n{reference}\n\n"
        "Candidate answer:\n{answer}\n\n"
        "Does the candidate answer agree with the reference answer on everything that matters? "
        "Ignore style, length and formatting.\n"
        "Reply with exactly one line, either\nVERDICT: CORRECT\nor\nVERDICT: INCORRECT"
    )
}
VERDICT_LINE = re.compile(r"^\W*VERDICT\W*:\W*(CORRECT|INCORRECT)\W*$", re.I | re.M)


@dataclass
class Judge(Filter):
    """Keep samples the judge model calls correct; rows a rule verifier already proved are skipped
    unless `judge_rule_verified` (then the report gives rule/judge agreement)."""

    name = "judge"
    score_params = ("model", "backend", "prompt_version", "max_tokens", "judge_rule_verified")
    reads = ("prompt_id", "messages", "answer", "reference", "verifier")
    scores = {"judge_verdict": pl.String, "judge_score": pl.Float64, "judge_reply": pl.String}
    heavy = True  # loads an engine: the stage runs it in one process

    model: str = DEFAULT_MODEL
    backend: BackendConfig = field(default_factory=BackendConfig)
    prompt_version: str = "v1"
    max_tokens: int = 256
    judge_rule_verified: bool = False

    def __post_init__(self) -> None:
        if self.prompt_version not in PROMPTS:
            raise DatakitError(f"judge: unknown prompt_version {self.prompt_version!r}; known: {', '.join(PROMPTS)}")

    def setup(self, context: dict[str, Any]) -> None:
        self._backend: Backend = make_backend(self.backend, self.model)

    def close(self) -> None:
        self._backend.close()

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        todo = [i for i, row in enumerate(rows.iter_rows(named=True)) if self._needs_judging(row)]
        records: list[tuple[str, float | None, str | None]] = [("skipped", None, None)] * rows.height
        if todo:
            picked = [rows.row(i, named=True) for i in todo]
            prompts = [[{"role": "user", "content": judge_prompt(row, self.prompt_version)}] for row in picked]
            params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens)
            results = self._backend.generate(prompts, params, seeds=[0] * len(prompts))
            for i, result in zip(todo, results):
                reply = result.generations[0].text
                verdict = parse_verdict(reply)
                records[i] = (verdict, {"correct": 1.0, "incorrect": 0.0}.get(verdict), reply)
        return pl.DataFrame(records, schema=self.scores, orient="row")

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        verdict = pl.col("judge_verdict")
        snippet = pl.col("judge_reply").fill_null("").str.slice(0, 120)
        return frame.select(
            pl.when(verdict == "incorrect")
            .then(reason("judge_incorrect", pl.format("{} says incorrect", pl.lit(self.model))))
            .when(verdict == "unparseable")
            .then(reason("judge_unparseable", pl.format("no single VERDICT line in the reply: {}", snippet)))
            .otherwise(None)
        ).to_series()

    def _needs_judging(self, row: dict[str, Any]) -> bool:
        rule_verdict = row.get("correct_verdict")
        if row["verifier"] == "judge" or rule_verdict in UNDECIDED:
            return row["reference"] is not None
        return self.judge_rule_verified and rule_verdict in ("correct", "wrong")


def judge_prompt(row: dict[str, Any], version: str) -> str:
    question = row["messages"][-1]["content"]
    return PROMPTS[version].format(question=question, reference=row["reference"], answer=row["answer"])


def parse_verdict(reply: str) -> str:
    """`correct` or `incorrect` from exactly one verdict line (repeats of the same verdict allowed),
    else `unparseable`."""
    found = {m.upper() for m in VERDICT_LINE.findall(reply)}
    if len(found) != 1:
        return "unparseable"
    return found.pop().lower()
