"""The progress bar's columns: what is done (of how many), how fast, how long so far and how
long to go, as tqdm's bars say it. Imported only when a bar is shown (rich is slow to load)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text


class CountColumn(ProgressColumn):
    """``5/10``, or ``5`` when the total is not known (paths read from stdin)."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(str(done), style="progress.download")
        total = int(task.total)
        return Text(f"{done:>{len(str(total))}}/{total}", style="progress.download")


class RateColumn(ProgressColumn):
    """Images per second: rich's recent speed, else the average so far."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        elapsed = task.elapsed
        if speed is None and elapsed and task.completed:
            speed = task.completed / elapsed
        shown = "?" if speed is None else f"{speed:.1f}"
        return Text(f"{shown} images/s", style="progress.data.speed")


class TimesColumn(ProgressColumn):
    """``0:12 elapsed``, and ``, 0:30 left`` when the total is known."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        text = f"{_clock(elapsed)} elapsed"
        if task.total is not None:
            text += f", {_clock(task.time_remaining)} left"
        return Text(text, style="progress.elapsed")


def _clock(seconds: float | None) -> str:
    """M:SS, or H:MM:SS from an hour on."""
    if seconds is None:
        return "-:--"
    minutes, secs = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def create_progress(console: Console, **options: Any) -> Progress:
    """A rich Progress with this tool's columns (the bar pulses while the total is unknown)."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=20),  # the whole line fits in 80 columns
        CountColumn(),
        RateColumn(),
        TimesColumn(),
    )
    return Progress(*columns, console=console, **options)
