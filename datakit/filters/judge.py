"""An LLM judge: compares a sample's answer with the reference, for data no rule can check.

R1 used DeepSeek-V3 as its judge. The judge runs through the same backends as `datakit sample`
(vllm, openai, hf), all of a shard's questions in one batched call. Its prompt is versioned (a
changed prompt gets a new version, so old and new scores are never mixed up), and its reply is
parsed strictly, anything else being `unparseable` and rejected with that reason ("correct" inside
"incorrect" can never count). v1 asks for exactly one line `VERDICT: CORRECT` or `VERDICT: INCORRECT`;
v2 writes "VERDICT:" as the start of the judge's reply (a prefilled assistant turn: hf, vllm, and vLLM or
SGLang servers continue it), so the judge's next word is the verdict: even a small model that would
ramble puts it in the one place that is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from datakit.backends import Backend, BackendConfig, SamplingParams, make_backend, resolve_backend_name
from datakit.errors import DatakitError
from datakit.filters import Filter, reason
from datakit.filters.correctness import UNDECIDED
from datakit.models import DEFAULT_MODEL, EMBEDDED

_GRADING = (
    "You are grading a candidate answer against a reference answer.\n\n"
    "Question:\n{question}\n\n"
    "Reference answer:\n{reference}\n\n"
    "Candidate answer:\n{answer}\n\n"
    "Does the candidate answer agree with the reference answer on everything that matters? "
    "Ignore style, length and formatting.\n"
)
# version -> (the user turn, the start of the judge's reply written for it)
PROMPTS = {
    "v1": (_GRADING + "Reply with exactly one line, either\nVERDICT: CORRECT\nor\nVERDICT: INCORRECT", ""),
    "v2": (_GRADING + "Reply with VERDICT: CORRECT or VERDICT: INCORRECT.", "VERDICT:"),
}
VERDICT_LINE = re.compile(r"^\W*VERDICT\W*:\W*(CORRECT|INCORRECT)\W*$", re.I | re.M)
VERDICT_WORD = re.compile(r"[\s*_]*(CORRECT|INCORRECT)\b", re.I)  # v2: the first word after the written "VERDICT:"


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
        self._backend: Backend | None = None  # loaded on the first row to judge: a math-only run never loads it
        self._teacher = context.get("model")  # who wrote the samples (the input folder's manifest)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def gpus(self) -> float:
        name = resolve_backend_name(self.backend.name)
        if name == "vllm":
            return float(self.backend.vllm.tensor_parallel_size * self.backend.vllm.pipeline_parallel_size)
        return 1.0 if name == "hf" and self.backend.hf.device != "cpu" else 0.0

    def model_card(self) -> dict[str, Any]:
        return {"model": self.model, "backend": resolve_backend_name(self.backend.name), "prompt_version": self.prompt_version}

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        todo = [i for i, row in enumerate(rows.iter_rows(named=True)) if self._needs_judging(row)]
        records: list[tuple[str, float | None, str | None]] = [("skipped", None, None)] * rows.height
        for i in todo:
            if rows["reference"][i] is None:
                records[i] = ("no_reference", None, None)
        todo = [i for i in todo if records[i][0] == "skipped"]
        if todo:
            self._refuse_demo_judge()
            picked = [rows.row(i, named=True) for i in todo]
            prefix = PROMPTS[self.prompt_version][1]
            prompts = [judge_messages(row, self.prompt_version) for row in picked]
            params = SamplingParams(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens)
            self._backend = self._backend or make_backend(self.backend, self.model)
            results = self._backend.generate(prompts, params, seeds=[0] * len(prompts))
            for i, result in zip(todo, results):
                if result.rejected:  # the grading request did not fit the judge's context
                    records[i] = ("too_long", None, result.rejected)
                    continue
                reply = prefix + result.generations[0].text
                verdict = parse_verdict(reply, prefix)
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
            .when(verdict == "no_reference")
            .then(reason("judge_no_reference", "the prompt has no reference answer to judge against"))
            .when(verdict == "too_long")
            .then(reason("judge_too_long", pl.format("the grading request does not fit the judge: {}", pl.col("judge_reply"))))
            .otherwise(None)
        ).to_series()

    def _needs_judging(self, row: dict[str, Any]) -> bool:
        """Rows only a judge can decide (verifier judge, or the rules left them undecided), and with
        `judge_rule_verified` the rule-decided ones too; a row without a reference among them is rejected."""
        rule_verdict = row.get("correct_verdict")
        if row["verifier"] == "judge" or rule_verdict in UNDECIDED:
            return True
        return self.judge_rule_verified and rule_verdict in ("correct", "wrong")

    def _refuse_demo_judge(self) -> None:
        """The 135M demo model judging a real teacher's answers would keep noise: stop (each row then carries
        this as its reject reason) and say how to choose a judge."""
        if self.model in EMBEDDED and self._teacher and self._teacher not in EMBEDDED:
            raise DatakitError(
                f"the judge is {self.model!r}, the demo model, and the samples are {self._teacher}'s: set a strong judge "
                "(--judge-model, or `filters: {judge: {model: ...}}` in the recipe's filter section)"
            )


def judge_prompt(row: dict[str, Any], version: str) -> str:
    question = row["messages"][-1]["content"]
    return PROMPTS[version][0].format(question=question, reference=row["reference"], answer=row["answer"])


def judge_messages(row: dict[str, Any], version: str) -> list[dict[str, str]]:
    """The judge's chat: the grading request, and for prompts that write the reply's start, that start."""
    prefix = PROMPTS[version][1]
    return [{"role": "user", "content": judge_prompt(row, version)}] + ([{"role": "assistant", "content": prefix}] if prefix else [])


def parse_verdict(reply: str, prefix: str = "") -> str:
    """`correct` or `incorrect`, else `unparseable`: with a written `prefix`, the first word the judge put
    after it; otherwise exactly one verdict line (repeats of the same verdict allowed)."""
    if prefix:
        word = VERDICT_WORD.match(reply[len(prefix):])
        return word[1].lower() if word else "unparseable"
    found = {m.upper() for m in VERDICT_LINE.findall(reply)}
    if len(found) != 1:
        return "unparseable"
    return found.pop().lower()
