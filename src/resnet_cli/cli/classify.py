"""The main command, ``resnet-classify INPUTS...``: parse the options, check them, claim the
output, classify with the local engine or on Ray, write the records and the summary."""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..config import DEFAULT_MODEL, resolve_model
from ..errors import TRY_OFFLINE, DatasetLoadError, OutputWriteError, UsageError
from ..inputs.datasets import DEMO_DATASET
from ..inputs.decode import DEFAULT_MAX_PIXELS
from ..models.zero_shot import DEFAULT_TEMPLATE, ZeroShot, zero_shot_on_disk, zero_shot_options
from ..output import organize, xmp
from ..output.writers import format_for_path
from ..results import Record, needs_review
from . import mistyped_command
from ._console import (
    Format,
    _close_output,
    _open_output,
    _progress_bar,
    _resolve_format,
    _show_version,
    _status,
    create_app,
    format_option,
    say,
    summary_line,
)
from ._errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Command
from .report import check_report_path, write_report_file

if TYPE_CHECKING:
    from ..output.files import ClaimedOutput
    from ..output.organize import Organizer
    from ..output.xmp import SidecarWriter

# Signals that stop a run as Ctrl-C does: finished records written, summary, exit 130.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


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


class Precision(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    int8 = "int8"


# The choices organize.py defines, as the enums Typer wants.
OrganizeBy = enum.Enum("OrganizeBy", {name: name for name in organize.BY}, type=str)  # type: ignore[misc]
OrganizeMode = enum.Enum("OrganizeMode", {name: name for name in organize.MODES}, type=str)  # type: ignore[misc]
XmpName = enum.Enum("XmpName", {name: name for name in xmp.NAMINGS}, type=str)  # type: ignore[misc]


class Engine(str, enum.Enum):
    local = "local"
    ray = "ray"


app = create_app(completion=True)  # the shell completes every command through this one


@app.command(cls=Command, epilog=EPILOG)
def classify_command(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Image files, folders (searched recursively), quoted globs ('**' works), "
            "URLs, or '-' to read paths from stdin.",
            metavar="INPUTS",
            show_default=False,
        ),
    ] = None,
    null: Annotated[
        bool,
        typer.Option(
            "--null",
            "-0",
            help="With '-': stdin paths are NUL-separated (find -print0).",
            rich_help_panel=INPUTS,
        ),
    ] = False,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels",
            min=1,
            metavar="N",
            help="Refuse images that would decode larger than this (large JPEGs are first "
            "decoded downscaled).",
            rich_help_panel=INPUTS,
        ),
    ] = DEFAULT_MAX_PIXELS,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            metavar="NAME",
            help="Classify a Hugging Face dataset: hub id, save_to_disk folder, folder of parquet "
            "files or imagefolder. Records are named `<dataset>:<split>:<row>` (an "
            "imagefolder's by their files, with the class folder as true_label).",
            show_default=False,
            rich_help_panel=DATASETS,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="The split. \\[default: the only one, else test, else the first]",
            show_default=False,
            rich_help_panel=DATASETS,
        ),
    ] = None,
    image_column: Annotated[
        str | None,
        typer.Option(
            "--image-column",
            metavar="NAME",
            help="The column of images (or of image paths, URLs or bytes). "
            "\\[default: the first Image column]",
            show_default=False,
            rich_help_panel=DATASETS,
        ),
    ] = None,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming",
            help="Read rows as they download, keep nothing on disk.",
            rich_help_panel=DATASETS,
        ),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help=f"Try it out: classify {DEMO_DATASET}, Hugging Face's demo dataset of one "
            "cat photo, with the default model, and show a table.",
            rich_help_panel=DATASETS,
        ),
    ] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="MODEL",
            help="Hugging Face image-classification model: hub id or local folder; with "
            "--labels, a zero-shot one (CLIP, SigLIP, SigLIP 2). \\[default: "
            "$RESNET_CLI_MODEL, else `resnet-classify config`'s, else microsoft/resnet-50; "
            "with --labels, OpenAI's CLIP ViT-B/32 instead of microsoft/resnet-50 and of a "
            "set default that is an image classifier]",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            metavar="TEXT",
            help="Your own classes, comma-separated ('person, receipt, cat'), scored "
            "zero-shot by a CLIP or SigLIP model as transformers' zero-shot pipeline does.",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    labels_file: Annotated[
        str | None,
        typer.Option(
            "--labels-file",
            metavar="FILE",
            help="Your own classes from a text file, one a line.",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            metavar="TEXT",
            help="With --labels: the sentence each label is put in ({} is the label). "
            f"\\[default: '{DEFAULT_TEMPLATE}']",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            metavar="REV",
            help="Hub revision: branch, tag or commit. \\[default: main]",
            rich_help_panel=MODEL,
        ),
    ] = None,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k",
            "-k",
            min=1,
            metavar="N",
            help="Labels per image (capped at the model's).",
            rich_help_panel=MODEL,
        ),
    ] = 5,
    min_score: Annotated[
        float,
        typer.Option(
            "--min-score",
            metavar="S",
            help="Leave out labels scoring under S (0 to 1), in every format, --xmp and "
            "--organize. An image left with none keeps its record, as one to review (review: "
            "a top-1 under 0.5 or under 0.1 ahead of the next label kept; so above 0.5 the "
            "floor is the review bar). \\[default: 0]",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = 0.0,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Reference path: the model's own image processor on fully decoded images, fp32; "
            "scores match transformers.pipeline within 1e-4.",
            rich_help_panel=MODEL,
        ),
    ] = False,
    category: Annotated[
        bool | None,
        typer.Option(
            "--category/--no-category",
            help="A coarse category for each label (dog, cat, vehicle, food, ...: 28, from "
            "WordNet) in the records, the table and the report. \\[default: on for models "
            "whose labels are ImageNet-1k's]",
            show_default=False,
            rich_help_panel=MODEL,
        ),
    ] = None,
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            "--trust-remote-code",
            help="Let the model's own Python code run (a model whose config.json names code in "
            "its auto_map needs it). Off: such a model is refused; nothing from a model's "
            "files ever runs.",
            rich_help_panel=MODEL,
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="No network at all: models from the local cache or a folder, no image URLs. "
            "HF_HUB_OFFLINE=1 only keeps the hub offline.",
            rich_help_panel=MODEL,
        ),
    ] = False,
    output_format: Annotated[Format | None, format_option(OUTPUT)] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Same as -f json.", rich_help_panel=OUTPUT)
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the records to FILE ('-': stdout), never overwriting one silently, and "
            "what made them to FILE.meta.json.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="With -o (jsonl or csv): skip the inputs already classified there, retry the "
            "failed ones, append the rest.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="With -o or --report: replace an existing file.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Also write an HTML contact sheet of the results: thumbnails grouped by label, "
            "doubtful ones first.",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    xmp_sidecars: Annotated[
        bool,
        typer.Option(
            "--xmp",
            help="Also put each local image's labels in its XMP sidecar, for photo managers: "
            "dc:subject (labels), lr:hierarchicalSubject (category|label), the model and date. "
            "Updates only the keywords it added before; never changes the image or anything "
            "else in a sidecar, and leaves one it cannot parse alone (the record's xmp_error).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    xmp_name: Annotated[
        XmpName | None,
        typer.Option(
            "--xmp-name",
            metavar="NAME",
            help="The sidecar's name: full, IMG_1.jpg.xmp (darktable, digiKam), or stem, "
            "IMG_1.xmp (Lightroom, exiftool). \\[default: full]",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bar or summary on stderr.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            "-d",
            metavar="DEVICE",
            help="auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps.",
            rich_help_panel=SPEED,
        ),
    ] = "auto",
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            "-p",
            metavar="PREC",
            help="auto, fp32, bf16, fp16 or int8; auto is the fastest accurate one for the "
            "device (never slower than fp32). int8: CPU only, calibrated on the first run's "
            "first 64 images and kept only if it agrees with fp32 on them.",
            rich_help_panel=SPEED,
        ),
    ] = Precision.auto,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            "-b",
            min=1,
            metavar="N",
            help="Images per forward pass. \\[default: auto]",
            rich_help_panel=SPEED,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            metavar="N",
            help="Decode workers. \\[default: auto]",
            rich_help_panel=SPEED,
        ),
    ] = None,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Compile the model with torch.compile (slower start, faster after).",
            rich_help_panel=SPEED,
        ),
    ] = False,
    organize: Annotated[
        Path | None,
        typer.Option(
            "--organize",
            metavar="DIR",
            help="Also sort the images into DIR/CATEGORY/NAME (or DIR/LABEL/NAME), failed ones "
            "into DIR/_failed/, doubtful ones into DIR/_review/. Never overwrites; files in DIR "
            "(however DIR is named) are never inputs.",
            show_default=False,
            rich_help_panel=SORTING,
        ),
    ] = None,
    organize_by: Annotated[
        OrganizeBy | None,
        typer.Option(
            "--organize-by",
            metavar="BY",
            help="category or label. \\[default: category where the model has them, else label]",
            show_default=False,
            rich_help_panel=SORTING,
        ),
    ] = None,
    organize_mode: Annotated[
        OrganizeMode | None,
        typer.Option(
            "--organize-mode",
            metavar="MODE",
            help="link (a hard link, else a symlink), symlink, copy, or move (needs -o): a file "
            "moves once its record is on disk, and its source is removed only once a regular "
            "file at the destination holds its bytes (a symlink never does); only this run's "
            "inputs are moved. \\[default: link]",
            show_default=False,
            rich_help_panel=SORTING,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (SOURCE -> DEST), touch nothing.",
            rich_help_panel=SORTING,
        ),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            metavar="ENGINE",
            help="local: this machine. ray: a Ray cluster, with Ray Data; needs -o DIR, a folder "
            "of parquet (default) or jsonl shards.",
            rich_help_panel=RAY,
        ),
    ] = Engine.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="The cluster's HOST:PORT or ray://HOST:PORT. \\[default: $RAY_ADDRESS, else "
            "a Ray started on this machine]",
            show_default=False,
            rich_help_panel=RAY,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Classify images with a Hugging Face image-classification model and print the top-k labels.

    Records go to stdout (or -o) in input order; progress, warnings and the summary go to
    stderr. A file that is not a readable image gets an error record; the others still run.

    Other commands, each with its own --help: `resnet-classify report` (an HTML contact sheet
    of earlier results), `resnet-classify env` (what a bug report needs), `resnet-classify
    merge` (one file of an --engine ray run's shards), `resnet-classify config` (a default
    model).
    """
    mistyped = mistyped_command(inputs or [])
    if mistyped is not None:  # before anything loads, or asks the hub
        raise UsageError(mistyped)
    zero_shot = zero_shot_options(labels, labels_file, template)
    options = Options(
        top_k=top_k,
        min_score=min_score,
        model=resolve_model(
            model, zero_shot is not None, lambda name: zero_shot_on_disk(name, revision)
        )[0],
        zero_shot=zero_shot,
        revision=revision,
        device=device,
        batch_size=batch_size,
        precision=precision.value,
        exact=exact,
        output_format=_format_option(output_format, json_output),
        output=None if output is None or output == "-" else Path(output),
        output_name=None if output == "-" else output,
        null=null,
        workers=workers,
        resume=resume,
        overwrite=overwrite,
        max_pixels=max_pixels,
        compile_model=compile_model,
        dataset=dataset,
        split=split,
        image_column=image_column,
        streaming=streaming,
        demo=demo,
        offline=offline,
        trust_remote_code=trust_remote_code,
        report=report,
        quiet=quiet,
        engine=engine.value,
        ray_address=ray_address,
        category=category,
        organize=organize,
        organize_by=organize_by.value if organize_by else None,
        organize_mode=organize_mode.value if organize_mode else None,
        dry_run=dry_run,
        xmp=xmp_sidecars,
        xmp_name=xmp_name.value if xmp_name else None,
    )
    raise typer.Exit(run(inputs or [], options))


def _format_option(output_format: Format | None, json_output: bool) -> str | None:
    """-f's value, with --json as -f json."""
    if not json_output:
        return output_format.value if output_format else None
    if output_format is not None and output_format != Format.json:
        raise UsageError(f"--json means -f json, not -f {output_format.value}: pass one of the two")
    return "json"


@dataclass(frozen=True)
class Options:
    """The command's options, as parsed."""

    top_k: int = 5
    min_score: float = 0.0
    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: str = "auto"
    batch_size: int | None = None
    precision: str = "auto"
    exact: bool = False
    output_format: str | None = None
    output: Path | None = None
    output_name: str | None = None  # as typed: "newdir/" keeps its slash
    null: bool = False
    workers: int | None = None
    resume: bool = False
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    compile_model: bool = False
    dataset: str | None = None
    split: str | None = None
    image_column: str | None = None
    streaming: bool = False
    demo: bool = False
    offline: bool = False
    trust_remote_code: bool = False
    report: Path | None = None
    quiet: bool = False
    engine: str = "local"
    ray_address: str | None = None
    category: bool | None = None  # None: on when the model's labels are ImageNet-1k's
    organize: Path | None = None
    organize_by: str | None = None
    organize_mode: str | None = None
    dry_run: bool = False
    xmp: bool = False
    xmp_name: str | None = None
    zero_shot: ZeroShot | None = None  # --labels: the user's classes, not the model's

    def model_options(self) -> dict[str, Any]:
        """The options ``load_classifier`` takes besides the model's name."""
        zero_shot = self.zero_shot
        return {
            "labels": None if zero_shot is None else list(zero_shot.labels),
            "template": None if zero_shot is None else zero_shot.template,
            "revision": self.revision,
            "device": self.device,
            "precision": self.precision,
            "exact": self.exact,
            "offline": self.offline,
            "compile_model": self.compile_model,
            "trust_remote_code": self.trust_remote_code,
        }


def run(inputs: list[str], options: Options) -> int:
    """The command's work, with every user-visible failure raised as a ResnetCliError."""
    from ..runtimes.classifier import check_model_options

    started = time.perf_counter()  # the summary's wall time: the model's load included
    o = options
    if o.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before any Hugging Face library is imported
    dataset = _dataset_name(inputs, o)
    if not inputs and dataset is None:
        raise UsageError(
            "no inputs: name image files, folders or globs, '-' for stdin, or --dataset"
        )
    if o.null and "-" not in inputs:
        raise UsageError("-0/--null only applies to '-' (paths read from stdin)")
    check_model_options(o.device, o.precision, o.exact)
    if not 0.0 <= o.min_score <= 1.0:  # NaN too
        raise UsageError(f"--min-score is a score from 0 to 1, not {o.min_score:g}")
    _check_output_flags(o)
    if o.trust_remote_code:
        say(f"note: --trust-remote-code: Python code in {o.model}'s files may run")
    if o.report is not None:
        if o.output is not None and o.output.resolve() == o.report.resolve():
            raise UsageError("--report and --output name the same file: choose two names")
        # --resume regenerates the report of the run it continues.
        check_report_path(o.report, replace=o.overwrite or o.resume)
    from ..output.organize import create_organizer

    organizer = create_organizer(
        None if o.organize is None else str(o.organize),
        o.organize_by,
        o.organize_mode,
        o.dry_run,
        None if o.output is None else str(o.output),
        o.engine,
    )
    sidecars = xmp.create_sidecar_writer(o.xmp, o.xmp_name, o.model, __version__, o.engine)
    if organizer is not None and sidecars is not None:  # before --resume places done inputs
        organizer.sidecar_naming = sidecars.naming  # a sidecar goes where its image goes
    if o.engine == "ray":
        if o.category is not None:
            raise UsageError("--category/--no-category apply to --engine local only")
        return run_on_ray(inputs, dataset, o, started)
    if o.ray_address is not None:
        raise UsageError("--ray-address only applies to --engine ray")
    output = o.output
    fmt = _resolve_format(o.output_format, output, table_by_default=o.demo)
    claimed = _claim_output(fmt, o)  # before anything slow: the model, a dataset, a listing
    try:
        code = classify_to(claimed, organizer, inputs, dataset, fmt, o, started, sidecars)
    except BaseException:
        if claimed is not None:
            claimed.abandon()
        raise
    return code


def classify_to(
    claimed: ClaimedOutput | None,
    organizer: Organizer | None,
    inputs: list[str],
    dataset: str | None,
    fmt: str,
    o: Options,
    started: float,
    sidecars: SidecarWriter | None = None,
) -> int:
    """``run`` once the output is claimed (None: stdout): classify and write the records;
    ``started``: when the command started (``time.perf_counter``), for the summary;
    ``sidecars``: --xmp's writer."""
    from ..inputs.sources import Source, collect_inputs, require_an_image
    from ..output.files import DoneInputs, check_not_an_input
    from ..output.organize import remaining_inputs

    output = o.output
    done = claimed.done if claimed is not None else DoneInputs()
    stdin = sys.stdin.buffer if "-" in inputs and sys.stdin is not None else None
    rows = None  # the dataset's split, when there is one
    sources: Iterator[Source] = iter(())
    total: int | None = 0
    if inputs:
        sources = collect_inputs(inputs, stdin=stdin, null_separated=o.null)
        if stdin is None:
            listed = list(sources)  # folders and globs are listed before the model loads
            if claimed is not None:
                check_not_an_input(claimed, listed)
            # --resume with --organize: an input done before is placed now, by its record.
            listed = list(remaining_inputs(listed, done, organizer))
            total, sources = len(listed), iter(listed)
        else:
            total = None
            sources = remaining_inputs(sources, done, organizer)
    if dataset is not None:
        rows = _open_dataset(dataset, o)
        if total is not None and rows.rows is not None:
            total += rows.rows - rows.rows_done(done, done.names)
        else:
            total = None
        files = bool(rows.image_files)  # an imagefolder's rows are files, placed as files
        sources = itertools.chain(
            sources, remaining_inputs(rows.sources(), done, organizer, files=files)
        )
    if done:
        peeked = next(sources, None)
        if peeked is None:
            if not o.quiet:
                say(f"nothing to do: every input is already in {output}")
                if organizer is not None:  # what the earlier run had left to place
                    say(organizer.summary())
            assert claimed is not None  # only a resumed file has inputs done
            claimed.finish()
            if o.report is not None:
                from ..output.report import ReportSummary
                from ..output.writers import recover_records

                records = recover_records(claimed.target, fmt)
                summary = ReportSummary(model=o.model)
                write_report_file(records, o.report, summary, o.quiet, dataset=rows)
            return EXIT_FAILED if organizer is not None and organizer.failures else EXIT_OK
        sources = _prepend(peeked, sources)
    sources = require_an_image(sources)
    sources = _prepend(next(sources), sources)  # raises NoInputsError before the model loads

    progress = None if o.quiet else _status(f"Loading {o.model} ...")
    from ..pipeline.local import classify_batches
    from ..runtimes.classifier import load_classifier

    try:
        classifier = load_classifier(
            o.model, images=total, batch_size=o.batch_size, workers=o.workers, **o.model_options()
        )
    finally:
        if progress is not None:
            progress.stop()
    size = classifier.plan.batch_size
    from ..categories import resolve_categories
    from ..output.writers import create_writer

    with_category = resolve_categories(classifier.labels, o.category, o.model)
    if organizer is not None:
        organizer.check_categories(with_category, o.model)
    with_truth = rows is not None and rows.classes is not None  # an imagefolder's classes
    append = claimed is not None and claimed.resumed
    with_xmp = sidecars is not None
    # A run that calibrates INT8 writes its metadata once calibrated: the verdict goes in too.
    meta_pending = claimed is not None and classifier.calibration_images > 0
    if claimed is not None:
        if append and fmt == "csv":  # the columns the file has
            with_category, with_truth, with_xmp = claimed.csv_columns
        if not meta_pending:
            claimed.write_meta(results_meta(o, classifier))
        stream = claimed.stream
    else:
        stream, _ = _open_output(None)
    writer = create_writer(
        fmt,
        stream,
        header=not append,
        category=with_category,
        true_label=with_truth,
        xmp_error=with_xmp,
    )
    counts = {"inputs": 0, "failed": 0, "review": 0}
    # Kept for --report; after --resume the report is read back from the whole file instead.
    keep_records = o.report is not None and not append
    finished: list[Record] = []
    bar = _progress_bar(total, size, o.quiet)
    previous_stop = _handle_stop_signals(_raise_interrupt)
    interrupted = False
    try:
        for batch in classify_batches(
            classifier,
            sources,
            top_k=o.top_k,
            max_pixels=o.max_pixels,
            categories=with_category,
            min_score=o.min_score,
        ):
            with _interrupts_held(), _writing(claimed):  # a written record is counted
                if meta_pending and claimed is not None:
                    claimed.write_meta(results_meta(o, classifier))
                    meta_pending = False
                if sidecars is not None:  # before the records, which say where it failed
                    batch = sidecars.write(batch)
                writer.write(batch)
                if claimed is not None:
                    os.fsync(stream.fileno())
                    claimed.written = True
                if organizer is not None:  # only once the records are on disk
                    organizer.place(batch)
                if keep_records:
                    finished.extend(batch)
                counts["inputs"] += len(batch)
                counts["failed"] += sum(not r.ok for r in batch)
                counts["review"] += sum(map(needs_review, batch))
            if bar is not None:
                bar.advance(len(batch))
    except KeyboardInterrupt:
        interrupted = True
        # A second Ctrl-C while we write out what is finished ends the process at once.
        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
    finally:
        _handle_stop_signals(previous_stop)
        if bar is not None:
            bar.stop()
        with _writing(claimed, failing=sys.exc_info()[0] is not None):
            writer.close()
            if claimed is None:
                _close_output(stream, False)
    if claimed is not None:
        if interrupted and claimed.mode == "overwrite":
            claimed.abandon()  # the new file is not complete: the old one stays
            if not o.quiet:
                say(f"interrupted: {claimed.name} is left as it was (--overwrite)")
        else:
            claimed.finish()
    if classifier.plan.export_after and not interrupted:
        # Once the records are written, and before the summary, which counts it: later runs
        # start from it without torch. A second or a few; a spinner says so on a terminal.
        status = None if o.quiet else _status("Saving the model's ONNX export for later runs ...")
        try:
            classifier.save_quick_start()
        except KeyboardInterrupt:  # the records are all written; the export can wait
            interrupted = True
        finally:
            if status is not None:
                status.stop()
    elapsed = time.perf_counter() - started
    if o.report is not None:
        from ..output.report import ReportSummary

        if append and claimed is not None:  # --resume: the whole file, earlier runs included
            from ..output.writers import recover_records

            finished = recover_records(claimed.target, fmt)
        summary = ReportSummary(
            model=o.model,
            device=str(classifier.device),
            precision=str(classifier.precision),
            elapsed=elapsed,
            interrupted=interrupted,
        )
        write_report_file(finished, o.report, summary, quiet=True, dataset=rows)
    if classifier.plan.note is not None:  # INT8 asked for, fp32 used: why, even with -q
        say(f"warning: {classifier.plan.note}")
    if not o.quiet:
        # The runtime that scored every image of the run.
        where = f"{classifier.device}, {classifier.precision}, {classifier.runtime}"
        line = summary_line(
            counts["inputs"],
            counts["failed"],
            elapsed,
            where,
            review=counts["review"],
            interrupted=interrupted,
            report=o.report,
        )
        say(line)
        if organizer is not None:
            say(organizer.summary())
        if sidecars is not None:
            say(sidecars.summary())
    if interrupted:
        return EXIT_INTERRUPTED
    organize_failed = organizer is not None and organizer.failures > 0
    xmp_failed = sidecars is not None and sidecars.left_alone > 0
    return EXIT_FAILED if counts["failed"] or organize_failed or xmp_failed else EXIT_OK


def _dataset_name(inputs: list[str], o: Options) -> str | None:
    """The dataset to classify (--dataset, or the demo's), after checking the options that
    only make sense with one."""
    if o.demo and (o.dataset or inputs):
        raise UsageError(f"--demo classifies {DEMO_DATASET}: drop the other inputs, or --demo")
    dataset = DEMO_DATASET if o.demo else o.dataset
    if dataset is None:
        for name, value in (
            ("--split", o.split),
            ("--image-column", o.image_column),
            ("--streaming", o.streaming),
        ):
            if value:
                raise UsageError(f"{name} only applies to --dataset")
    return dataset


def _open_dataset(name: str, o: Options) -> Any:
    """Open the dataset's split; for the demo, a failure says what the demo needs."""
    from ..inputs.datasets import open_dataset
    from ..inputs.sources import offline_mode

    try:
        return open_dataset(name, split=o.split, image_column=o.image_column, streaming=o.streaming)
    except DatasetLoadError as exc:
        if not o.demo:
            raise
        reason = (
            "it is not cached here and offline mode is on"
            if offline_mode()
            else "the hub cannot be reached and nothing is cached here"
        )
        raise DatasetLoadError(
            f"--demo needs the {DEMO_DATASET} dataset and the {o.model} model from the Hugging "
            f"Face hub, but {reason}: run it once with network access, or try the example "
            f"photos with a model made offline ({TRY_OFFLINE})"
        ) from exc


def _prepend(first: Any, rest: Any) -> Any:
    yield first
    yield from rest


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _handle_stop_signals(handler: Any) -> Any:
    """Set the handler of SIGTERM and SIGHUP (a closed terminal); return the previous ones.
    ``handler`` may be such a return value, to put them back."""
    if isinstance(handler, dict):
        return {signum: signal.signal(signum, old) for signum, old in handler.items()}
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


@contextlib.contextmanager
def _writing(claimed: ClaimedOutput | None, failing: bool = False) -> Iterator[None]:
    """Turn a failure to write the records (a full disk) into one line naming the file and
    exit code 4; a closed pipe goes on up, to stop quietly. ``failing``: the run is ending
    on another error already, which this one must not hide."""
    try:
        yield
    except BrokenPipeError:
        if not failing:
            raise
    except OSError as exc:
        if failing:
            return
        where = repr(claimed.name) if claimed is not None else "the records to standard output"
        raise OutputWriteError(f"cannot write {where}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while a batch is written and counted, and raise them
    just after: a record written to the output is always counted and in the report."""
    caught: list[int] = []
    held = (signal.SIGINT, *STOP_SIGNALS)
    previous = {signum: signal.signal(signum, lambda n, _: caught.append(n)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if caught:
        raise KeyboardInterrupt


def _check_output_flags(o: Options) -> None:
    what = "DIR" if o.engine == "ray" else "FILE"
    if o.resume and o.output is None:
        raise UsageError(f"--resume needs --output {what}")
    if o.overwrite and o.output is None and o.report is None:
        raise UsageError(f"--overwrite needs --output {what} or --report FILE")
    if o.resume and o.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: pick one")


def run_on_ray(inputs: list[str], dataset: str | None, o: Options, started: float) -> int:
    """``run`` for --engine ray: the same inputs (files, then the dataset's rows), classified
    on a Ray cluster into a folder (``started``: as for ``classify_to``)."""
    from ..inputs.sources import Source, collect_inputs, require_an_image
    from ..pipeline.ray_job import (
        NEEDS_RAY,
        RAY_FORMATS,
        classify_on_ray,
        output_key,
        prepare_output_folder,
        ray_available,
    )

    if not ray_available():
        raise UsageError(NEEDS_RAY)
    folder = o.output
    if folder is None:
        raise UsageError("--engine ray needs --output DIR: the folder Ray writes the records to")
    if o.workers is not None:
        raise UsageError(
            "-j/--workers sets the local engine's decode threads; with --engine ray, decoding "
            "runs in Ray tasks across the cluster"
        )
    fmt = o.output_format or (format_for_path(str(folder)) or "parquet")
    if fmt not in RAY_FORMATS:
        raise UsageError(
            f"--engine ray writes {' or '.join(RAY_FORMATS)} shards, not {fmt}: pick one "
            "(resnet-classify merge DIR -o FILE makes one file of any format)"
        )
    done = prepare_output_folder(folder, resume=o.resume, overwrite=o.overwrite)
    stdin = sys.stdin.buffer if "-" in inputs and sys.stdin is not None else None
    found: Iterator[Source] = iter(())
    if inputs:
        found = collect_inputs(inputs, stdin=stdin, null_separated=o.null)
    rows = None
    if dataset is not None:
        rows = _open_dataset(dataset, o)
        found = itertools.chain(found, rows.sources())
    sources = list(require_an_image(found))
    if all(output_key(s.name) in done for s in sources):
        if not o.quiet:
            say(f"nothing to do: every input is already in {folder}")
        return EXIT_OK
    previous_stop = _handle_stop_signals(_raise_interrupt)
    try:
        result = classify_on_ray(
            sources,
            folder,
            model=o.model,
            model_options=o.model_options(),
            top_k=o.top_k,
            min_score=o.min_score,
            batch_size=o.batch_size,
            max_pixels=o.max_pixels,
            fmt=fmt,
            address=o.ray_address,
            skip=done,
            quiet=o.quiet,
        )
    finally:
        _handle_stop_signals(previous_stop)
    elapsed = time.perf_counter() - started
    if o.report is not None:
        from ..output.report import ReportSummary
        from ..pipeline.ray_job import read_ray_output

        summary = ReportSummary(
            model=o.model, device="ray", elapsed=elapsed, interrupted=result.interrupted
        )
        records = read_ray_output(folder)  # the whole folder, earlier runs included
        write_report_file(records, o.report, summary, quiet=True, dataset=rows)
    if not o.quiet:
        nodes = f", {result.nodes} node{'s' if result.nodes != 1 else ''}" if result.nodes else ""
        line = summary_line(
            result.images,
            result.failed,
            elapsed,
            f"ray{nodes}",
            review=result.review,
            interrupted=result.interrupted,
            report=o.report,
        )
        say(line)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.failed else EXIT_OK


def _claim_output(fmt: str, o: Options) -> ClaimedOutput | None:
    """Check --output against --resume/--overwrite and take it (None: stdout)."""
    if o.output is None:
        return None
    from ..output.files import claim_output

    return claim_output(
        o.output_name or str(o.output),
        fmt,
        resume=o.resume,
        overwrite=o.overwrite,
        model=o.model,
        top_k=o.top_k,
        min_score=o.min_score,
        zero_shot=None if o.zero_shot is None else o.zero_shot.meta(),
    )


def results_meta(o: Options, classifier: Any) -> dict[str, Any]:
    """What made a results file, for the metadata file beside it."""
    from ..output.files import model_key, resolved_revision

    return {
        "version": __version__,
        "model": model_key(o.model),
        "revision": resolved_revision(o.model, o.revision),
        "top_k": o.top_k,
        "min_score": o.min_score,
        "precision": str(classifier.precision),
        "runtime": str(classifier.runtime),
        "device": str(classifier.device),
        "exact": o.exact,
        "max_pixels": o.max_pixels,
        **({"int8": classifier.int8.as_dict()} if classifier.int8 is not None else {}),
        "plan": classifier.plan.as_dict(),
        "cwd": os.getcwd(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({} if o.zero_shot is None else {"zero_shot": o.zero_shot.meta()}),
    }
