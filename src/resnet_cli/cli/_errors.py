"""The commands' one error boundary: ``Command.main`` (and ``Group.main``) runs a command and
turns whatever ends it into one ``Error:`` line and the contract's exit code, by the table
``OUTCOMES``. Commands only raise; ``cli.main`` only picks the command and ends the process."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from ..errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ResnetCliError,
    exit_code,
)
from ._console import _stdout_was_closed

# Typer vendors click, and exports its errors' base only as a base of typer.BadParameter.
ClickError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def print_error(message: str) -> None:
    """One ``Error:`` line; names in it cannot move the cursor or ring the terminal."""
    from ..text import printable

    print(f"Error: {printable(message)}", file=sys.stderr, flush=True)


def _known(exc: ResnetCliError) -> tuple[str | None, int]:
    return str(exc), exit_code(exc)


def _click(exc: Any) -> tuple[str | None, int]:
    return exc.format_message().replace("\n", " "), getattr(exc, "exit_code", EXIT_USAGE)


def _exit(exc: SystemExit) -> tuple[str | None, int]:
    # Click's answer to a closed pipe (a BrokenPipeError in a command, or in the --help text):
    # stdout wrapped or pointed at /dev/null, and exit 1. Our commands never raise it.
    if exc.code == 1 and _stdout_was_closed():
        return None, EXIT_BROKEN_PIPE
    return None, exc.code if isinstance(exc.code, int) else EXIT_OK


def _unexpected(exc: BaseException) -> tuple[str | None, int]:
    return f"unexpected failure: {exc} (rerun with RESNET_CLI_DEBUG=1 for a traceback)", 1


# What ends a command -> (the line shown, or None; the exit code). The first match wins.
OUTCOMES: tuple[tuple[type[BaseException], Callable[[Any], tuple[str | None, int]]], ...] = (
    (ResnetCliError, _known),  # the message says what to do (errors.EXIT_CODES: the code)
    (BrokenPipeError, lambda _: (None, EXIT_BROKEN_PIPE)),  # | head: stop quietly
    (typer.Abort, lambda _: (None, EXIT_INTERRUPTED)),  # click's Ctrl-C outside a run
    (KeyboardInterrupt, lambda _: (None, EXIT_INTERRUPTED)),
    (ClickError, _click),  # a bad option: click's message, on one line
    (SystemExit, _exit),
    (Exception, _unexpected),  # a bug: one line (RESNET_CLI_DEBUG=1: the traceback)
)


def outcome(exc: BaseException) -> tuple[str | None, int]:
    """The line (None: none) and exit code for what ended a command."""
    for kind, handle in OUTCOMES:
        if isinstance(exc, kind):
            return handle(exc)
    raise exc  # GeneratorExit and the like: not a command's end


class ErrorBoundary:
    """Every command's ``main``: the command runs, and what ends it becomes a line and a
    code by ``OUTCOMES``. ``standalone_mode`` (a test's CliRunner) ends with SystemExit;
    without it (``cli.main``) the code is returned."""

    def main(self, *args: Any, standalone_mode: bool = True, **options: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **options)  # type: ignore[misc]
        except BaseException as exc:
            debug = os.environ.get("RESNET_CLI_DEBUG") == "1"
            if debug and not isinstance(exc, SystemExit | ClickError):
                import traceback

                traceback.print_exception(exc)
            message, code = outcome(exc)
            if message is not None:
                print_error(message)
        code = code if isinstance(code, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


class Group(ErrorBoundary, TyperGroup):
    """A command of commands (``config``), with the boundary."""


class Command(ErrorBoundary, TyperCommand):
    """Every command's class, with the error boundary."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line as man pages write it, ``[OPTIONS] RESULTS...``: Typer's own puts a
        required argument in braces (``{RESULTS}``) and drops the ``...`` of a named one."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or (param.name or "").upper()
            name = name if param.required else f"[{name}]"
            pieces.append(f"{name}..." if param.nargs != 1 else name)
        return pieces
