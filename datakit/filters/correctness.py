"""Correctness, chosen by each row's `verifier`: math (math-verify), code (programs run in a sandbox
against function tests or stdin/stdout cases, see `datakit.code_verify`), choice (letter match) and
exact (normalised string match).

Answers are taken from the answer section only, never from the chain of thought. Math, choice and
exact checks run in a process pool with a hard per-item CPU-time limit (sympy can hang); code runs in the
sandbox from a thread pool. A timeout, a crash of the checker and a wrong answer stay distinct
verdicts. Rows whose verifier is `judge` or `none` are `unverified` here: a later `judge` filter
decides them, or they are rejected (`unverified: reject`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import polars as pl

from datakit.answer_extract import Statement, find_answer
from datakit.code_verify import CodeOptions, check_code
from datakit.errors import DatakitError
from datakit.filters import Filter
from datakit.math_check import check_math, grade_statement, quick_verdict
from datakit.pool import Outcome, map_with_timeout
from datakit.sandbox import SandboxLimits, describe_isolation
from datakit.verify import Check, check_choice, check_exact

RULES = {"math": check_math, "choice": check_choice, "exact": check_exact}
# verdicts a later judge may overturn: the rules could not decide
UNDECIDED = ("unverified", "no_answer", "bad_reference")


@dataclass
class Correctness(Filter):
    """Keep samples whose final answer is proven correct against the prompt's reference."""

    name = "correctness"
    score_params = (
        "timeout_s", "code_case_cpu_s", "code_cpu_s", "code_memory_mb", "code_all_cases", "code_rel_tol", "code_abs_tol",
    )
    reads = ("verifier", "answer", "reference")  # and `language` where the input has it (how math numbers are written; default en)
    scores = {
        # correct | wrong | no_answer | bad_reference | timeout | checker_error | unverified, and for code also
        # runtime_error | compile_error | memory | unserializable_result | unsupported_language
        "correct_verdict": pl.String,
        "correct_verifier": pl.String,  # which check decided
        "correct_extracted": pl.String,  # the answer (or code) taken from the sample
        "correct_extracted_from": pl.String,  # math: boxed | phrase | span | number (how the answer was found)
        "correct_detail": pl.String,
    }

    timeout_s: float = 10.0  # CPU seconds per math/choice/exact item (not wall time: a busy machine changes no verdict)
    code_case_cpu_s: float = 5.0  # CPU seconds per stdin/stdout case or function call (a problem's own time limit wins)
    code_cpu_s: float = 60.0  # CPU seconds for all of one sample's cases or calls (CodeContests has 100+ cases)
    code_memory_mb: int = 1024  # all of one sample's processes together
    code_all_cases: bool = False  # run every case and record how many passed, instead of stopping at the first failure
    code_rel_tol: float = 1e-6  # float tokens of stdin/stdout outputs
    code_abs_tol: float = 1e-6
    require_boxed: bool = False  # R1's format: a math answer counts only when boxed (re-decided from stored scores)
    unverified: str = "reject"  # reject | keep | judge (leave undecided rows to a later `judge` filter)
    workers: int = 0  # checker processes / sandbox threads; 0 = one per core

    def __post_init__(self) -> None:
        if self.unverified not in ("reject", "keep", "judge"):
            raise DatakitError(f"correctness: unverified must be reject, keep or judge, got {self.unverified!r}")

    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        checks: list[Check | None] = [None] * rows.height
        verifiers = rows["verifier"].to_list()
        answers, references = rows["answer"].to_list(), rows["reference"].to_list()
        languages = rows["language"].to_list() if "language" in rows.columns else ["en"] * rows.height
        rule_rows = [i for i, v in enumerate(verifiers) if v in RULES]
        code_rows = [i for i, v in enumerate(verifiers) if v == "code"]
        for i, check in zip(rule_rows, self._rule_checks([(verifiers[i], answers[i], references[i], languages[i] or "en") for i in rule_rows])):
            checks[i] = check
        for i, check in zip(code_rows, self._code_checks([(answers[i], references[i]) for i in code_rows])):
            checks[i] = check
        records = []
        for verifier, check in zip(verifiers, checks):
            if check is None:
                check = Check("unverified", None, f"verifier {verifier!r} is not a rule check")
            records.append((check.verdict, verifier, check.extracted, check.found_by, check.reason))
        return pl.DataFrame(records, schema=self.scores, orient="row")

    def keep(self, frame: pl.DataFrame) -> pl.Series:
        verdict = pl.col("correct_verdict")
        passes = verdict == "correct"
        unboxed = (pl.col("correct_verifier") == "math") & (pl.col("correct_extracted_from") != "boxed")
        if self.require_boxed:
            passes = passes & ~unboxed
        if self.unverified == "keep":
            passes = passes | (verdict == "unverified")
        elif self.unverified == "judge":
            passes = passes | verdict.is_in(UNDECIDED)
        detail = pl.concat_str([pl.col("correct_verifier"), pl.lit(": "), pl.col("correct_detail").fill_null("")])
        not_boxed = pl.concat_str([pl.lit("not_boxed: "), detail, pl.lit(" (require_boxed)")])
        reasons = pl.when(passes).then(None)
        if self.require_boxed:
            reasons = reasons.when((verdict == "correct") & unboxed).then(not_boxed)
        return frame.select(reasons.otherwise(reason_by_verdict(detail))).to_series()

    def _rule_checks(self, items: list[tuple[str, str, str | None, str]]) -> list[Check]:
        """One check per distinct (verifier, answer, reference, language): samples of one prompt often
        end in the same words ("The answer is \\boxed{5}."), and every check is a function of these."""
        distinct = list(dict.fromkeys(items))
        checks = dict(zip(distinct, self._distinct_rule_checks(distinct)))
        return [checks[item] for item in items]

    def _distinct_rule_checks(self, items: list[tuple[str, str, str | None, str]]) -> list[Check]:
        """Cheap cases in-process (no answer, equal numbers); each distinct (verifier, stated answer,
        reference) once in the pool, under a CPU-time limit: N samples of a prompt often agree. A math
        answer's statement is found once, here, and the pool only grades it."""
        statements = [find_answer(answer) if verifier == "math" else None for verifier, answer, _, _ in items]
        results: list[Check | None] = [_fast_check(*item, statement) for item, statement in zip(items, statements)]
        keys = {i: _dedupe_key(*items[i], statements[i]) for i, r in enumerate(results) if r is None}
        representative: dict[tuple, int] = {}  # the first row stating each
        for i, key in keys.items():
            representative.setdefault(key, i)
        unique = list(representative)
        work = [(*items[representative[k]], statements[representative[k]]) for k in unique]
        outcomes = map_with_timeout(_run_rule, work, self.timeout_s, self.workers or os.cpu_count())
        decided = {key: _outcome_check(outcome) for key, outcome in zip(unique, outcomes)}
        for i, key in keys.items():
            results[i] = decided[key]
        return results  # type: ignore[return-value]

    def code_sandbox(self) -> dict[str, str]:
        """The isolation code verdicts are made under (namespaces, cgroup or fallback), for the report."""
        return describe_isolation(self._code_options().limits)

    def _code_options(self) -> CodeOptions:
        limits = SandboxLimits(case_cpu_s=self.code_case_cpu_s, cpu_s=self.code_cpu_s, memory_mb=self.code_memory_mb)
        return CodeOptions(limits, not self.code_all_cases, self.code_rel_tol, self.code_abs_tol)

    def _code_checks(self, items: list[tuple[str, str | None]]) -> list[Check]:
        """One sandbox per sample, several at once from threads (each is its own set of processes)."""
        options = self._code_options()
        with ThreadPoolExecutor(self.workers or os.cpu_count()) as pool:
            return list(pool.map(lambda item: _code_check(*item, options), items))


def reason_by_verdict(detail: pl.Expr) -> pl.Expr:
    """The verdict is the reason code: wrong, no_answer, timeout, checker_error, ... never one "incorrect"."""
    return pl.concat_str([pl.col("correct_verdict"), pl.lit(": "), detail])


def _dedupe_key(verifier: str, answer: str, reference: str | None, language: str, statement: Statement | None) -> tuple:
    """Math answers are compared by their stated result only, so samples that state the same answer the
    same way share a check."""
    if statement is not None:
        return verifier, replace(statement, start=0, end=0), reference, language  # where it stood does not change the verdict
    return verifier, answer, reference, language


def _outcome_check(outcome: Outcome) -> Check:
    if outcome.status == "ok":
        return outcome.value
    verdict = "timeout" if outcome.status == "timeout" else "checker_error"
    return Check(verdict, None, outcome.reason)


def _fast_check(verifier: str, answer: str, reference: str | None, language: str, statement: Statement | None) -> Check | None:
    if reference is None:
        return Check("bad_reference", None, "the prompt has no reference")
    return quick_verdict(answer, statement, reference, language) if verifier == "math" else None


def _run_rule(item: tuple[str, str, str, str, Statement | None]) -> Check:
    """One pool item: the verifier's check of (answer, reference); for math, the grading of the statement
    found in the answer (in the answer's language)."""
    verifier, answer, reference, language, statement = item
    if verifier == "math":
        return grade_statement(statement, reference, language)  # type: ignore[arg-type]
    return RULES[verifier](answer, reference)


def _code_check(answer: str, tests: str | None, options: CodeOptions) -> Check:
    if tests is None:
        return Check("bad_reference", None, "the prompt has no tests")
    return check_code(answer, tests, options)
