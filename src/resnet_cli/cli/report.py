"""``resnet-classify report RESULTS [-o FILE]``: an HTML contact sheet of earlier results; and
the report file helpers the main command's --report uses too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import EXIT_OK, UsageError
from ..results import Record
from ._console import create_app, say
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
    raise typer.Exit(make_report(results, output, title, model, overwrite, quiet))


def make_report(
    results: list[Path],
    output: Path | None,
    title: str | None,
    model: str | None,
    overwrite: bool,
    quiet: bool,
) -> int:
    """The ``report`` subcommand's work: read the results files, write the report."""
    from ..output.report import ReportSummary, check_report_path
    from ..output.writers import read_results_file

    for path in results:  # before the report's folder, which may be theirs
        if not path.exists():
            raise UsageError(f"results file {str(path)!r} does not exist")
    if output is None:
        output = results[0].parent / "report.html"
    check_report_path(output, replace=overwrite, another="name another file with -o")
    records: list[Record] = []
    for path in results:
        if output.resolve() == path.resolve():
            raise UsageError(f"{str(path)!r} is both a results file and the report: pick -o")
        try:
            records.extend(read_results_file(str(path)))
        except OSError as exc:
            raise UsageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{str(path)!r} is not a resnet-classify results file ({exc})"
            ) from None
    names = ", ".join(path.name for path in results)
    summary = ReportSummary(
        title=title or f"resnet-classify report: {names}",
        model=model,
        sources=tuple(str(path) for path in results),
    )
    # Relative image paths are relative to where the run was (its metadata says); else try
    # here, then beside the results.
    from ..output.files import read_results_meta

    metas = [read_results_meta(str(path)) for path in results]
    ran_in = [meta["cwd"] for meta in metas if meta and isinstance(meta.get("cwd"), str)]
    folders = tuple(dict.fromkeys([*ran_in, "", *(str(path.parent) for path in results)]))
    from ..output.report import write_report_file

    written = write_report_file(records, output, summary, folders)
    if not quiet:
        say(written)
    return EXIT_OK
