"""A progress bar for long stages: items done, items/s and generated tokens/s, on stderr."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second and tokens per second since this run started (resumed work excluded)."""

    def __init__(self, unit: str, show_tokens: bool):
        super().__init__()
        self.unit = unit
        self.show_tokens = show_tokens

    def render(self, task: Task) -> Text:
        elapsed = max(time.monotonic() - task.fields["started"], 1e-9)
        text = f"{(task.completed - task.fields['resumed']) / elapsed:,.2f} {self.unit}/s"
        if self.show_tokens:
            text += f" {task.fields['tokens'] / elapsed:,.0f} tok/s"
        return Text(text, style="progress.data.speed")


class StageProgress:
    """`with StageProgress("sampling", total=...) as p: p.advance(1, tokens=...)`; silent when disabled.
    The tokens/s rate is shown when `show_tokens` (generation stages)."""

    def __init__(
        self, description: str, total: int, completed: int = 0, unit: str = "items", enabled: bool = True, show_tokens: bool = False
    ):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn(unit),
            RateColumn(unit, show_tokens),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self.task = self.progress.add_task(
            description, total=total, completed=completed, resumed=completed, tokens=0, started=time.monotonic()
        )

    def __enter__(self) -> StageProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def advance(self, items: int, tokens: int = 0) -> None:
        fields = self.progress.tasks[0].fields
        self.progress.update(self.task, advance=items, tokens=fields["tokens"] + tokens)
