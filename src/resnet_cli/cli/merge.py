"""``resnet-classify merge DIR``: one file of the shards an --engine ray run wrote.

(``python -m resnet_cli.ray_engine merge`` is its old name, kept.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_OK
from ._console import Format, create_app, format_option
from ._errors import Command

merge_app = create_app()


@merge_app.command(cls=Command, epilog="    resnet-classify merge results/ -o labels.csv")
def merge_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A folder written by --engine ray.", metavar="FOLDER", show_default=False
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the records to this file (never overwritten).",
        ),
    ] = None,
    output_format: Annotated[Format | None, format_option()] = None,
) -> None:
    """Merge the record shards of a --engine ray run into one file, in input order."""
    raise typer.Exit(merge(folder, output, output_format))


def merge(folder: Path, output: Path | None, output_format: str | None) -> int:
    """``merge_command``'s work: every record of a results folder, in input order, written
    in one format."""
    from ..output.shards import merge_folder
    from ..output.writers import close_records, open_records, resolve_format

    fmt = resolve_format(output_format, output)
    write = merge_folder(folder)
    stream, opened = open_records(output)
    try:
        write(stream, fmt)
    finally:
        close_records(stream, opened)
    return EXIT_OK
