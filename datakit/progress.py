"""Progress of long stages on stderr: items done, items/s, generated tokens/s and the time left.

On a terminal it is a live bar. Elsewhere (SLURM, CI, nohup: stderr is a file or a pipe) a bar
cannot redraw, so a plain line is printed every DATAKIT_PROGRESS_INTERVAL seconds (default 30;
0: one at every update), even while nothing finishes, so a log shows the run is alive.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from datakit.errors import DatakitError
from datakit.logs import capturing, err_console

INTERVAL_ENV = "DATAKIT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0


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
    The tokens/s rate is shown when `show_tokens` (generation stages). A bar on a terminal, else lines."""

    def __init__(
        self, description: str, total: int, completed: int = 0, unit: str = "items", enabled: bool = True, show_tokens: bool = False
    ):
        self.view: _Bar | _Lines | None = None
        if enabled and err_console.is_terminal:
            self.view = _Bar(description, total, completed, unit, show_tokens)
        elif enabled:
            self.view = _Lines(description, total, completed, unit, show_tokens, progress_interval())

    def __enter__(self) -> StageProgress:
        if self.view:
            self.view.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.view:
            self.view.stop()

    def advance(self, items: int, tokens: int = 0) -> None:
        if self.view:
            self.view.advance(items, tokens)


def progress_interval() -> float:
    """Seconds between plain progress lines, from DATAKIT_PROGRESS_INTERVAL."""
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise DatakitError(f"{INTERVAL_ENV}={raw!r}: expected seconds between progress lines, a number >= 0 (0: a line at every update)")
    return seconds


class _Bar:
    """rich's live bar on the terminal."""

    def __init__(self, description: str, total: int, completed: int, unit: str, show_tokens: bool):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn(unit),
            RateColumn(unit, show_tokens),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            # rich would route sys.stdout/sys.stderr above the bar: the engines' prints too, which belong in the log
            redirect_stdout=not capturing(),
            redirect_stderr=not capturing(),
        )
        self.task = self.progress.add_task(
            description, total=total, completed=completed, resumed=completed, tokens=0, started=time.monotonic()
        )

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def advance(self, items: int, tokens: int) -> None:
        fields = self.progress.tasks[0].fields
        self.progress.update(self.task, advance=items, tokens=fields["tokens"] + tokens)


class _Lines:
    """Plain lines for logs: one every `interval` seconds from a timer thread (one per update when 0),
    one at the start, and one at the end unless the last line already showed the final count."""

    def __init__(self, description: str, total: int, completed: int, unit: str, show_tokens: bool, interval: float):
        self.description, self.total, self.unit, self.show_tokens, self.interval = description, total, unit, show_tokens, interval
        self.completed = self.resumed = completed
        self.tokens = 0
        self.shown: int | None = None  # the count the last line showed
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.timer = threading.Thread(target=self._every_interval, name="datakit-progress", daemon=True)

    def start(self) -> None:
        self._print()
        if self.interval > 0:
            self.timer.start()

    def stop(self) -> None:
        self.stopped.set()
        if self.timer.is_alive():
            self.timer.join()
        if self.shown != self.completed:
            self._print()

    def advance(self, items: int, tokens: int) -> None:
        with self.lock:
            self.completed += items
            self.tokens += tokens
        if self.interval == 0:
            self._print()

    def _every_interval(self) -> None:
        while not self.stopped.wait(self.interval):
            self._print()

    def _print(self) -> None:
        with self.lock:
            self.shown = self.completed
        err_console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def line(self) -> str:
        """"sampling: 48/120 prompts (40%), 1.60 prompts/s, 310 tok/s, 0:00:30 elapsed, ETA 0:00:45"."""
        with self.lock:
            completed, tokens = self.completed, self.tokens
        elapsed = time.monotonic() - self.started
        rate = (completed - self.resumed) / elapsed if elapsed > 0 else 0.0
        share = f" ({completed / self.total:.0%})" if self.total else ""
        parts = [f"{self.description}: {completed:,}/{self.total:,} {self.unit}{share}", f"{rate:,.2f} {self.unit}/s"]
        if self.show_tokens:
            parts.append(f"{tokens / elapsed if elapsed > 0 else 0.0:,.0f} tok/s")
        parts.append(f"{_clock(elapsed)} elapsed")
        if completed >= self.total:
            parts.append("done")
        else:
            parts.append(f"ETA {_clock((self.total - completed) / rate)}" if rate > 0 else "ETA unknown")
        return ", ".join(parts)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def training_progress(enabled: bool) -> Any:
    """A transformers TrainerCallback showing optimiser steps as a StageProgress (bar or lines, like every
    stage) on the main process, in place of the Trainer's own tqdm bar, which goes to the log."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        progress: StageProgress | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                self.progress = StageProgress("training", total=state.max_steps, completed=state.global_step, unit="steps", enabled=enabled)
                self.progress.__enter__()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress:
                self.progress.advance(1)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.progress:
                self.progress.__exit__(None, None, None)
                self.progress = None

    return StepProgress()
