"""``resnet-classify env``: versions, the machine, and the plan a run of --model would get."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ..config import resolve_model
from ._console import create_app
from ._errors import EXIT_OK, Command

env_app = create_app()


class EnvFormat(str, enum.Enum):
    text = "text"
    json = "json"


@env_app.command(
    cls=Command,
    epilog="    resnet-classify env\n\n    resnet-classify env -m ./my-model -p fp32 -f json\n\n"
    "    resnet-classify env -b 64 -j 3\n\n"
    "    resnet-classify env --labels 'cat, dog'",
)
def env_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="The model to plan a run of: hub id or folder. \\[default: as a run's: "
            "$RESNET_CLI_MODEL, else `resnet-classify config`'s, else microsoft/resnet-50; "
            "with --labels, as a run with --labels picks it]",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Plan a zero-shot run of these labels.", show_default=False),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Hub revision: branch, tag or commit. \\[default: main]")
    ] = None,
    device: Annotated[
        str, typer.Option("--device", "-d", help="As for classifying: auto, cpu, cuda, mps.")
    ] = "auto",
    precision: Annotated[
        str, typer.Option("--precision", "-p", help="As for classifying: auto, fp32, bf16, fp16.")
    ] = "auto",
    exact: Annotated[bool, typer.Option("--exact", help="Plan an --exact run.")] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", "-b", min=1, metavar="N", help="As for classifying: images per batch."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-j", min=1, metavar="N", help="As for classifying: decode workers."
        ),
    ] = None,
    output_format: Annotated[
        EnvFormat, typer.Option("--format", "-f", help="text for people, json for scripts.")
    ] = EnvFormat.text,
) -> None:
    """Print what a bug report needs: versions, the machine as resnet-classify sees it, and
    how a run of --model with these options would compute (every choice of its plan) and
    why. Nothing is downloaded."""

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
    if output_format == EnvFormat.json:
        print(json.dumps(facts, indent=2))
    else:
        print(format_text(facts))
    raise typer.Exit(EXIT_OK)
