"""``resnet-classify report RESULTS [-o FILE]``: an HTML contact sheet of earlier results; and
the report file helpers the main command's --report uses too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import EXIT_OK
from ..text import say
from ._console import create_app
from ._errors import Command

if TYPE_CHECKING:
    pass


REPORT_EPILOG = """\
**Examples**

    resnet-classify report labels.jsonl        # writes report.html beside it
    resnet-classify report part1.csv part2.csv -o holidays.html --title Holidays

Relative image paths are looked up from the folder the run was in (as its FILE.meta.json
says), then from the current folder, then from the results file's folder. To classify a
file or folder that is literally named `report`, write `./report`.
"""


report_app = create_app()


@report_app.command(cls=Command, epilog=REPORT_EPILOG)
def report_command(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Results files written by resnet-classify: .jsonl, .json, .csv or .parquet "
            "(another extension is read as jsonl).",
            metavar="RESULTS",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The HTML file to write. \\[default: report.html beside the first results file]",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT", help="The page's title. \\[default: from the results file names]"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="The model that made the results, for the summary.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing report file.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line on stderr saying what was written.")
    ] = False,
) -> None:
    """Write an HTML contact sheet of earlier results: a thumbnail card per image, grouped by
    top-1 label, the doubtful ones first, failures with their error.

    One self-contained file: open it in any browser, no network needed.
    """
    from ..output.report import report_of_results

    written = report_of_results(results, output, title, model, overwrite)
    if not quiet:
        say(written)
    raise typer.Exit(EXIT_OK)
