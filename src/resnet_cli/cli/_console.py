"""What the commands show on the terminal and where records go: lines on stderr, the
spinner and progress bar, the closing summary, the output stream; the shared Typer settings."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Literal, get_args

import typer

from .. import __version__
from ..output.writers import FORMATS
from ..text import is_terminal


def create_app(completion: bool = False, cls: Any = None) -> typer.Typer:
    """A Typer app with this command's settings (shared by the main command and the others);
    ``completion`` adds --install-completion and --show-completion; ``cls``: a group's class."""
    return typer.Typer(
        cls=cls,
        add_completion=completion,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
    )


Format = Literal["table", "json", "jsonl", "csv", "parquet"]
assert get_args(Format) == FORMATS


def format_option(panel: str | None = None) -> Any:
    """The -f/--format option of the commands that write records (the main command, merge);
    ``output.writers.resolve_format`` gives it its meaning."""
    return typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="table, json, jsonl, csv or parquet (needs -o). \\[default: table on a terminal, "
        "else jsonl; with -o, from its extension]",
        show_default=False,
        rich_help_panel=panel,
    )


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"resnet-classify {__version__}")
        raise typer.Exit()


def _status(message: str) -> Any:
    """A spinner on stderr while the model loads, only when stderr is a terminal."""
    if not is_terminal(sys.stderr):
        return None
    from rich.console import Console
    from rich.text import Text

    from ..text import printable

    status = Console(stderr=True).status(Text(printable(message)))  # no [markup] in names
    status.start()
    return status


class _Bar:
    """Images done (of how many), images/s, time elapsed and left, on stderr."""

    def __init__(self, total: int | None):
        from rich.console import Console

        from ._progress import create_progress

        self.progress = create_progress(Console(stderr=True), transient=True)
        self.task = self.progress.add_task("Classifying", total=total)
        self.progress.start()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def stop(self) -> None:
        self.progress.stop()


def _progress_bar(total: int | None, batch_size: int, quiet: bool) -> _Bar | None:
    """A progress bar on stderr when it is a terminal and there is more than one batch."""
    if quiet or not is_terminal(sys.stderr) or (total is not None and total <= batch_size):
        return None
    return _Bar(total)


def summary_line(
    inputs: int,
    failed: int,
    seconds: float,
    where: str,
    *,
    review: int = 0,
    interrupted: bool = False,
    report: Path | None = None,
) -> str:
    """The closing summary: the run's inputs, how many were classified (and of those, how many
    are doubtful) and how many failed, the wall time from the command's start (the model's
    load included) and the rate over it, and what computed them (``where``)."""
    rate = inputs / seconds if seconds > 0 else 0.0
    shown = f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"  # 0.05, not 0.0
    state = "interrupted after " if interrupted else ""
    doubtful = f" ({review} to review)" if review else ""
    written = f"; report written to {report}" if report is not None else ""
    return (
        f"{state}{inputs} input{'s' if inputs != 1 else ''}: {inputs - failed} classified"
        f"{doubtful}, {failed} failed in {seconds:.1f}s ({shown} images/s; {where}){written}"
    )


def _stdout_was_closed() -> bool:
    """Whether a library has already silenced standard output after a closed pipe."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)


# The first argument that names a command; anything else is the main command's input.
# (The main command takes its inputs as positional arguments, so it cannot have Typer
# subcommands: a file named like a command is classified as ./report.)
COMMANDS = ("report", "env", "merge", "config")


def mistyped_command(inputs: list[str]) -> str | None:
    """The line for an input that names no file and is a command's name, or one edit from
    it (``reprot`` for ``report``), else None: the user meant the command, and classifying a
    missing file would load a model (or ask the hub) only to fail on it."""
    from ..text import within_one_edit

    for name in inputs:
        if "/" in name or name == "-" or set(name) & set("*?[") or os.path.lexists(name):
            continue
        command = next((c for c in COMMANDS if within_one_edit(name.lower(), c)), None)
        if command is not None:
            return f"no such file {name!r} (did you mean the command {command!r}?)"
    return None
