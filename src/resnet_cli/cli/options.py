"""The main command's options, declared once as ``Annotated`` types that every command
taking the same option shares (``env`` takes the model's and the speed ones). Each parameter
is named as its ``pipeline.options.RunOptions`` field, which the command fills from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..output import organize, xmp
from ..pipeline.options import OPTION_HELP
from ._console import Format, _show_version, format_option

# --help's panels, in the order they are shown (after Arguments and Options).
INPUTS, DATASETS, MODEL, OUTPUT, SPEED, SORTING, RAY = (
    "Inputs",
    "Datasets",
    "Model",
    "Output",
    "Speed",
    "Sorting",
    "Ray",
)


PrecisionName = Literal["auto", "fp32", "bf16", "fp16", "int8"]
EngineName = Literal["local", "ray"]


def option(*names: str, panel: str | None = None, **settings: Any) -> Any:
    """A ``typer.Option`` shown in --help's ``panel``, with its help from ``OPTION_HELP``."""
    help_text = OPTION_HELP[names[0].split("/")[0].lstrip("-")]
    return typer.Option(*names, rich_help_panel=panel, help=help_text, **settings)


Inputs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Image files, folders (searched recursively), quoted globs ('**' works), "
        "URLs, or '-' to read paths from stdin.",
        metavar="INPUTS",
        show_default=False,
    ),
]
Null = Annotated[bool, option("--null", "-0", panel=INPUTS)]
MaxPixels = Annotated[int, option("--max-pixels", min=1, metavar="N", panel=INPUTS)]
Dataset = Annotated[
    str | None, option("--dataset", metavar="NAME", show_default=False, panel=DATASETS)
]
Split = Annotated[str | None, option("--split", metavar="NAME", show_default=False, panel=DATASETS)]
ImageColumn = Annotated[
    str | None, option("--image-column", metavar="NAME", show_default=False, panel=DATASETS)
]
Streaming = Annotated[bool, option("--streaming", panel=DATASETS)]
Demo = Annotated[bool, option("--demo", panel=DATASETS)]
Model = Annotated[
    str | None, option("--model", "-m", metavar="MODEL", show_default=False, panel=MODEL)
]
Labels = Annotated[str | None, option("--labels", metavar="TEXT", show_default=False, panel=MODEL)]
LabelsFile = Annotated[
    str | None, option("--labels-file", metavar="FILE", show_default=False, panel=MODEL)
]
Template = Annotated[
    str | None, option("--template", metavar="TEXT", show_default=False, panel=MODEL)
]
Revision = Annotated[str | None, option("--revision", metavar="REV", panel=MODEL)]
TopK = Annotated[int, option("--top-k", "-k", min=1, metavar="N", panel=MODEL)]
MinScore = Annotated[float, option("--min-score", metavar="S", show_default=False, panel=MODEL)]
Exact = Annotated[bool, option("--exact", panel=MODEL)]
Category = Annotated[
    bool | None, option("--category/--no-category", show_default=False, panel=MODEL)
]
TrustRemoteCode = Annotated[bool, option("--trust-remote-code", panel=MODEL)]
Offline = Annotated[bool, option("--offline", panel=MODEL)]
OutputFormat = Annotated[Format | None, format_option(OUTPUT)]
JsonOutput = Annotated[bool, option("--json", panel=OUTPUT)]
Output = Annotated[str | None, option("--output", "-o", metavar="FILE", panel=OUTPUT)]
Resume = Annotated[bool, option("--resume", panel=OUTPUT)]
Overwrite = Annotated[bool, option("--overwrite", panel=OUTPUT)]
Report = Annotated[
    Path | None, option("--report", metavar="FILE", show_default=False, panel=OUTPUT)
]
XmpSidecars = Annotated[bool, option("--xmp", panel=OUTPUT)]
XmpName = Annotated[
    xmp.Naming | None, option("--xmp-name", metavar="NAME", show_default=False, panel=OUTPUT)
]
Quiet = Annotated[bool, option("--quiet", "-q", panel=OUTPUT)]
Device = Annotated[str, option("--device", "-d", metavar="DEVICE", panel=SPEED)]
Precision = Annotated[PrecisionName, option("--precision", "-p", metavar="PREC", panel=SPEED)]
BatchSize = Annotated[int | None, option("--batch-size", "-b", min=1, metavar="N", panel=SPEED)]
Workers = Annotated[int | None, option("--workers", "-j", min=1, metavar="N", panel=SPEED)]
CompileModel = Annotated[bool, option("--compile", panel=SPEED)]
Organize = Annotated[
    Path | None, option("--organize", metavar="DIR", show_default=False, panel=SORTING)
]
OrganizeBy = Annotated[
    organize.By | None, option("--organize-by", metavar="BY", show_default=False, panel=SORTING)
]
OrganizeMode = Annotated[
    organize.Mode | None,
    option("--organize-mode", metavar="MODE", show_default=False, panel=SORTING),
]
DryRun = Annotated[bool, option("--dry-run", panel=SORTING)]
Engine = Annotated[EngineName, option("--engine", metavar="ENGINE", panel=RAY)]
RayAddress = Annotated[
    str | None, option("--ray-address", metavar="ADDR", show_default=False, panel=RAY)
]
Version = Annotated[bool, option("--version", "-V", callback=_show_version, is_eager=True)]
