"""The commands' one error boundary (``Command``), the contract's exit codes, and how an
error is shown: one ``Error:`` line."""

from __future__ import annotations

import os
import sys
from typing import Any

from typer.core import TyperCommand, TyperGroup

from ..errors import (
    ClusterError,
    DatasetLoadError,
    DeviceError,
    ModelLoadError,
    OutputWriteError,
    ResnetCliError,
    UsageError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for cat or grep cut off by head


# Exception type -> exit code; the first match wins, so subclasses come first.
EXIT_CODES: tuple[tuple[type[ResnetCliError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (ModelLoadError, EXIT_MODEL),
    (DatasetLoadError, EXIT_MODEL),
    (DeviceError, EXIT_MODEL),
    (ClusterError, EXIT_MODEL),
    (OutputWriteError, EXIT_WRITE),
    (ResnetCliError, EXIT_FAILED),
)


def print_error(message: str) -> None:
    """One ``Error:`` line; names in it cannot move the cursor or ring the terminal."""
    from ..text import printable

    print(f"Error: {printable(message)}", file=sys.stderr, flush=True)


def report_error(exc: ResnetCliError) -> int:
    """Print a known error as one line and return its exit code."""
    if os.environ.get("RESNET_CLI_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc)
    print_error(str(exc))
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


class PipeClosed(Exception):
    """Standard output's reader went away. Not an OSError, which click would turn into
    exit 1."""


class ErrorBoundary:
    """The one place a command's errors become exit codes. A known error
    (``ResnetCliError``) is one ``Error:`` line and its code; an unexpected one a single line
    too (``RESNET_CLI_DEBUG=1`` shows its traceback). Commands only raise."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except ResnetCliError as exc:
            ctx.exit(report_error(exc))
        except BrokenPipeError:
            raise PipeClosed from None  # the reader went away (| head): main stops quietly
        except Exception as exc:
            if os.environ.get("RESNET_CLI_DEBUG") == "1" or _is_click_control(exc):
                raise
            print_error(
                f"unexpected failure: {exc} (rerun with RESNET_CLI_DEBUG=1 for a traceback)"
            )
            ctx.exit(EXIT_FAILED)


class Group(ErrorBoundary, TyperGroup):
    """A command of commands (``config``): the boundary around its callback too."""


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


def _is_click_control(exc: Exception) -> bool:
    """Click's own exceptions (Exit, Abort, usage errors) pass through to ``main``."""
    return type(exc).__module__.startswith(("click", "typer"))
