"""Filters: small self-describing units that score samples and keep or drop each with a reason.

A filter names the columns it reads and the score columns it writes. `score` computes the scores
once; `keep` turns scores into a verdict with the filter's thresholds, so a user can change a
threshold and re-decide from stored scores without recomputing them (see `datakit filter`).
Reject reasons read "code: detail" (e.g. "too_long: 20312 reasoning tokens > 16384"); the report
counts them by code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from datakit.config import build
from datakit.errors import DatakitError

REGISTRY: dict[str, type[Filter]] = {}


@dataclass
class Filter(ABC):
    """Base of every filter; subclasses are dataclasses whose fields are the chain YAML's parameters."""

    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    scores: ClassVar[dict[str, pl.DataType]]
    # A group filter sees all surviving samples of a prompt at once (e.g. best-of-N).
    group: ClassVar[bool] = False
    # A heavy filter loads an inference engine: the stage then runs in one process instead of one per core.
    heavy: ClassVar[bool] = False
    # The parameters that change scores (the others are thresholds). Re-filtering a filter's output
    # reuses its stored scores when these are unchanged; None: scores depend on the other rows.
    score_params: ClassVar[tuple[str, ...] | None] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def columns(self) -> tuple[str, ...]:
        """The columns this filter needs in its input (more than `reads` when a parameter names one)."""
        return self.reads

    def score_identity(self) -> dict[str, Any] | None:
        """What decides this filter's scores; equal identities mean stored scores can be reused."""
        if self.score_params is None:
            return None
        return {"name": self.name, **{p: getattr(self, p) for p in self.score_params}}

    def gpus(self) -> float:
        """GPUs the filter's engine uses, for a Ray actor to request (0: CPU only)."""
        return 0.0

    def model_card(self) -> dict[str, Any] | None:
        """The model this filter runs and how (None for rule filters), as the manifest records it."""
        return None

    def setup(self, context: dict[str, Any]) -> None:
        """Load models or tools once per run; `context` holds the input folder's manifest."""

    @abstractmethod
    def score(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One row of score columns per input row, in order."""

    @abstractmethod
    def keep(self, frame: pl.DataFrame) -> pl.Series:
        """Reject reason per row ("code: detail"), null where the row is kept; `frame` holds the
        read columns and this filter's score columns."""

    def close(self) -> None:
        """Release what setup() acquired."""


def reason(code: str, detail: pl.Expr | str) -> pl.Expr:
    """A reject reason "code: detail" as an expression."""
    return pl.concat_str([pl.lit(f"{code}: "), detail if isinstance(detail, pl.Expr) else pl.lit(detail)])


def reason_code(reason_text: str) -> str:
    return reason_text.split(":", 1)[0]


def make_filter(name: str, params: dict[str, Any] | None, where: str) -> Filter:
    """Build a filter from its chain entry, naming the entry on any error."""
    load_builtin_filters()
    if name not in REGISTRY:
        raise DatakitError(f"{where}: unknown filter {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return build(REGISTRY[name], params or {}, where=f"{where} ({name}).")


def load_builtin_filters() -> None:
    from datakit.filters import best_of_n, correctness, judge, language, length, reward, text  # noqa: F401
