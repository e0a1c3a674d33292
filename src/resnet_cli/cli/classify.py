"""The main command, ``resnet-classify INPUTS...``: parse the options into one
``RunOptions``, hand them to the library's run (``pipeline.run``), and print its summary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ..config import resolve_model
from ..errors import UsageError
from ..inputs.decode import DEFAULT_MAX_PIXELS
from ..models.zero_shot import zero_shot_on_disk, zero_shot_options
from ..pipeline.options import RunOptions
from ..pipeline.run import RunResult, Watcher
from ..text import say
from ._console import _progress_bar, _status, create_app, mistyped_command, summary_line
from ._errors import Command
from .options import (
    BatchSize,
    Category,
    CompileModel,
    Dataset,
    Demo,
    Device,
    DryRun,
    Engine,
    Exact,
    ImageColumn,
    Inputs,
    JsonOutput,
    Labels,
    LabelsFile,
    MaxPixels,
    MinScore,
    Model,
    Null,
    Offline,
    Organize,
    OrganizeBy,
    OrganizeMode,
    Output,
    OutputFormat,
    Overwrite,
    Precision,
    Quiet,
    RayAddress,
    Report,
    Resume,
    Revision,
    Split,
    Streaming,
    Template,
    TopK,
    TrustRemoteCode,
    Version,
    Workers,
    XmpName,
    XmpSidecars,
)

EPILOG = """\
**Examples**

    resnet-classify cat.jpg                    # top 5 labels as a table
    resnet-classify photos/ -o labels.jsonl    # a whole folder, recursively
    resnet-classify 'photos/**/*.png' -k 1 -f csv
    find photos -name '*.jpg' -print0 | resnet-classify - -0 > labels.jsonl
    resnet-classify --model ./my-model --offline img.webp
    resnet-classify photos/ --labels 'person, receipt, screenshot, food'
    resnet-classify --dataset ./saved-dataset --split test -o labels.parquet
    resnet-classify --demo                     # try it on a cat photo
    resnet-classify photos/ --report report.html   # and an HTML contact sheet
    resnet-classify photos/ --xmp --min-score 0.2  # keywords for photo managers
    resnet-classify photos/ --engine ray --ray-address head:6379 -o results/
    resnet-classify report labels.jsonl -o report.html   # from earlier results
    resnet-classify env                        # versions, machine, the plan
    resnet-classify merge results/ -o labels.csv   # one file of Ray's shards
    resnet-classify config set model ./my-model    # the default for -m

**Exit codes**: 0 all classified, 1 some inputs failed (their records say why)
or a file --organize or --xmp could not write,
2 usage error (an output that exists, is in use or is not a results file to resume),
3 model, device, hub dataset or Ray cluster could not be loaded or reached,
4 the records could not be written (disk full), 130 interrupted, 141 output pipe closed.
"""


app = create_app(completion=True)  # the shell completes every command through this one


@app.command(cls=Command, epilog=EPILOG)
def classify_command(
    inputs: Inputs = None,
    null: Null = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    dataset: Dataset = None,
    split: Split = None,
    image_column: ImageColumn = None,
    streaming: Streaming = False,
    demo: Demo = False,
    model: Model = None,
    labels: Labels = None,
    labels_file: LabelsFile = None,
    template: Template = None,
    revision: Revision = None,
    top_k: TopK = 5,
    min_score: MinScore = 0.0,
    exact: Exact = False,
    category: Category = None,
    trust_remote_code: TrustRemoteCode = False,
    offline: Offline = False,
    output_format: OutputFormat = None,
    json_output: JsonOutput = False,
    output: Output = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    report: Report = None,
    xmp: XmpSidecars = False,
    xmp_name: XmpName = None,
    quiet: Quiet = False,
    device: Device = "auto",
    precision: Precision = "auto",
    batch_size: BatchSize = None,
    workers: Workers = None,
    compile_model: CompileModel = False,
    organize: Organize = None,
    organize_by: OrganizeBy = None,
    organize_mode: OrganizeMode = None,
    dry_run: DryRun = False,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    version: Version = False,
) -> None:
    """Classify images with a Hugging Face image-classification model and print the top-k labels.

    Records go to stdout (or -o) in input order; progress, warnings and the summary go to
    stderr. A file that is not a readable image gets an error record; the others still run.

    Other commands, each with its own --help: `resnet-classify report` (an HTML contact sheet
    of earlier results), `resnet-classify env` (what a bug report needs), `resnet-classify
    merge` (one file of an --engine ray run's shards), `resnet-classify config` (a default
    model).
    """
    parsed = dict(locals())  # the parameters, named as RunOptions' fields
    raise typer.Exit(classify(parsed.pop("inputs") or [], parsed))


def classify(inputs: list[str], parsed: dict[str, Any]) -> int:
    """Run with the parsed options and print the summary; the exit code."""
    mistyped = mistyped_command(inputs)
    if mistyped is not None:  # before anything loads, or asks the hub
        raise UsageError(mistyped)
    options = run_options(parsed)
    from ..pipeline.run import run

    result = run(inputs, options, terminal_watcher(options.quiet))
    print_summary(result, options)
    return result.exit_code


def run_options(parsed: dict[str, Any]) -> RunOptions:
    """The RunOptions of the command's parameters."""
    values = dict(parsed)
    del values["version"]
    zero_shot = zero_shot_options(
        values.pop("labels"), values.pop("labels_file"), values.pop("template")
    )
    output = values.pop("output")
    output_format = _format_option(values.pop("output_format"), values.pop("json_output"))
    model, _ = resolve_model(
        values.pop("model"),
        zero_shot is not None,
        lambda name: zero_shot_on_disk(name, values["revision"]),
    )
    return RunOptions(
        **values,
        model=model,
        zero_shot=zero_shot,
        output_format=output_format,
        output=None if output is None or output == "-" else Path(output),
        output_name=None if output == "-" else output,
    )


def _format_option(output_format: str | None, json_output: bool) -> str | None:
    """-f's value, with --json as -f json."""
    if not json_output:
        return output_format
    if output_format is not None and output_format != "json":
        raise UsageError(f"--json means -f json, not -f {output_format}: pass one of the two")
    return "json"


def terminal_watcher(quiet: bool) -> Watcher:
    """What the run shows on a terminal: lines on stderr, a spinner while the model loads,
    a progress bar (none with -q)."""

    @contextlib.contextmanager
    def busy(what: str) -> Iterator[None]:
        status = None if quiet else _status(what)
        try:
            yield
        finally:
            if status is not None:
                status.stop()

    return Watcher(
        say=say, busy=busy, progress=lambda total, size: _progress_bar(total, size, quiet)
    )


def print_summary(result: RunResult, o: RunOptions) -> None:
    """The closing lines on stderr (none with -q, or when there was nothing to do)."""
    if o.quiet or result.nothing_to_do:
        return
    say(
        summary_line(
            result.inputs,
            result.failed,
            result.elapsed,
            result.where,
            review=result.review,
            interrupted=result.interrupted,
            report=o.report,
        )
    )
    for line in (result.organized, result.sidecars):
        if line is not None:
            say(line)
