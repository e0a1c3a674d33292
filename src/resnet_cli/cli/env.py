"""``resnet-classify env``: versions, the machine, and the plan a run of --model would get."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ..config import resolve_model
from ..errors import EXIT_OK
from ._console import create_app
from ._errors import Command
from .options import BatchSize, Device, Exact, Labels, Model, Precision, Revision, Workers

env_app = create_app()


@env_app.command(
    cls=Command,
    epilog="    resnet-classify env\n\n    resnet-classify env -m ./my-model -p fp32 -f json\n\n"
    "    resnet-classify env -b 64 -j 3\n\n"
    "    resnet-classify env --labels 'cat, dog'",
)
def env_command(
    model: Model = None,
    labels: Labels = None,
    revision: Revision = None,
    device: Device = "auto",
    precision: Precision = "auto",
    exact: Exact = False,
    batch_size: BatchSize = None,
    workers: Workers = None,
    output_format: Annotated[
        Literal["text", "json"],
        typer.Option("--format", "-f", help="text for people, json for scripts."),
    ] = "text",
) -> None:
    """Print what a bug report needs: versions, the machine as resnet-classify sees it, and
    how a run of --model with these options (the main command's, as it takes them) would
    compute (every choice of its plan) and why. Nothing is downloaded."""

    import json

    from ..models.zero_shot import zero_shot_on_disk, zero_shot_options
    from ..runtimes.classifier import check_model_options
    from ..runtimes.environment import describe, format_text

    check_model_options(device, precision, exact)
    zero_shot = zero_shot_options(labels, None, None)
    name, source = resolve_model(
        model, zero_shot is not None, lambda chosen: zero_shot_on_disk(chosen, revision)
    )
    facts = describe(
        name,
        revision,
        device,
        precision,
        exact,
        zero_shot,
        model_from=source,
        batch_size=batch_size,
        workers=workers,
    )
    if output_format == "json":
        print(json.dumps(facts, indent=2))
    else:
        print(format_text(facts))
    raise typer.Exit(EXIT_OK)
