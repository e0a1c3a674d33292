"""The ``resnet-classify`` command line: one module per command, joined here.

``main()`` picks the command from the first argument and ends the process with its code: the
commands only raise, and ``_errors.Command``, the class of every command, is the one place
what ends a command becomes an ``Error:`` line and the contract's code (a table,
``_errors.OUTCOMES``). Nothing in
``cli/`` imports torch: the commands call into ``pipeline/`` and ``runtimes/``, which import it
when work starts. Shell completion (``--show-completion``) goes through ``main`` too, which
picks the command the words typed so far name.
"""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_WRITE
from ._console import COMMANDS, _silence_stdout

# Set by the script --show-completion prints: the shell runs resnet-classify with it (and the
# words typed so far in COMP_WORDS or _TYPER_COMPLETE_ARGS) to ask for completions.
COMPLETE_VAR = "_RESNET_CLASSIFY_COMPLETE"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: ``resnet-classify [report|env|merge|config] ...``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] and args[0] in COMMANDS:
        name: str | None = args[0]
        args = args[1:]
    else:
        name = _completed_command() if not args else None
    _main(_app(name), "resnet-classify" + (f" {name}" if name else ""), args)


def merge_main(argv: list[str] | None = None) -> None:
    """``python -m resnet_cli.ray_engine merge ...``, the old name of ``resnet-classify merge``."""
    args = sys.argv[1:] if argv is None else list(argv)
    _main(
        _app("merge"),
        "python -m resnet_cli.ray_engine merge",
        args[1:] if args[:1] == ["merge"] else args,
    )


def _completed_command() -> str | None:
    """The command whose options a shell asks to complete: the words typed so far start
    with ``report``, ``env`` or ``merge`` and a space (None: the main command, or no
    completion asked for)."""
    instruction = os.environ.get(COMPLETE_VAR, "")
    if not instruction.startswith("complete_"):
        return None
    from typer.completion import completion_init

    completion_init()  # Typer's shell classes; it registers them only for the main command
    # Bash passes the words joined by newlines, the other shells the line as typed.
    typed = os.environ.get(
        "COMP_WORDS" if instruction == "complete_bash" else "_TYPER_COMPLETE_ARGS", ""
    )
    words = typed.split(maxsplit=2)
    finished = len(words) > 2 or typed[-1:].isspace()
    return words[1] if len(words) > 1 and words[1] in COMMANDS and finished else None


def _app(name: str | None) -> typer.Typer:
    """The Typer app of a command (None: classify), imported only when it runs."""
    if name == "report":
        from .report import report_app

        return report_app
    if name == "env":
        from .env import env_app

        return env_app
    if name == "merge":
        from .merge import merge_app

        return merge_app
    if name == "config":
        from .config import config_app

        return config_app
    from .classify import app

    return app


def _main(typer_app: typer.Typer, prog_name: str, argv: list[str] | None) -> None:
    """Run one command's app and end the process with its code (the command's class,
    ``_errors.Command``, already turned what ended it into a line and that code)."""
    command = typer.main.get_command(typer_app)
    code = command.main(
        args=argv, prog_name=prog_name, complete_var=COMPLETE_VAR, standalone_mode=False
    )
    if code in (EXIT_BROKEN_PIPE, EXIT_WRITE):
        _silence_stdout()  # what is left in its buffer could not be written either
    if code in (EXIT_INTERRUPTED, EXIT_BROKEN_PIPE):
        # Every finished record is written and the summary printed; a decode worker stuck in
        # a blocking read must not keep the process alive, so skip the interpreter's join.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
