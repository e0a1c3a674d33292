"""The ``resnet-classify`` command: parse, call the library, render, map errors to exit codes."""

from __future__ import annotations

import contextlib
import enum
import io
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from . import __version__
from .dataset_source import DEMO_DATASET
from .decode import DEFAULT_MAX_PIXELS
from .errors import (
    ClusterError,
    DatasetLoadError,
    DeviceError,
    ModelLoadError,
    OutputWriteError,
    ResnetCliError,
    UsageError,
)
from .results import Record
from .writers import FILE_ONLY_FORMATS, FORMATS, format_for_path

if TYPE_CHECKING:
    from .output_file import ClaimedOutput
    from .report import ReportSummary

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for cat or grep cut off by head
# Signals that stop a run as Ctrl-C does: finished records written, summary, exit 130.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

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

EPILOG = """\
**Examples**

    resnet-classify cat.jpg                      # top 5 labels as a table
    resnet-classify photos/ -o labels.jsonl      # a whole folder, recursively
    resnet-classify 'photos/**/*.png' -k 1 -f csv
    find photos -name '*.jpg' -print0 | resnet-classify - -0 > labels.jsonl
    resnet-classify --model ./my-model --offline img.webp
    resnet-classify --dataset ./saved-dataset --split test -o labels.parquet
    resnet-classify --demo                       # the seed example's cat
    resnet-classify photos/ --report report.html  # also an HTML contact sheet
    resnet-classify report labels.jsonl -o report.html  # from earlier results
    resnet-classify photos/ --engine ray --ray-address head:6379 -o results/
    resnet-classify env                          # versions, hardware, the plan and why

**Exit codes**: 0 all classified, 1 some inputs failed (their records say why),
2 usage error (an output that exists, is in use or is not a results file to resume),
3 model, device, hub dataset or Ray cluster could not be loaded or reached,
4 the records could not be written (disk full), 130 interrupted, 141 output pipe closed.

**--engine ray** writes a folder of shards; `python -m resnet_cli.ray_engine merge DIR -o FILE`
makes one file of them, in input order.
"""


class Precision(str, enum.Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Engine(str, enum.Enum):
    local = "local"
    ray = "ray"


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


assert tuple(f.value for f in Format) == FORMATS


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"resnet-classify {__version__}")
        raise typer.Exit()


def create_app() -> typer.Typer:
    """A Typer app with this command's settings (shared by the main command, ``report`` and
    the Ray engine's ``merge``)."""
    return typer.Typer(
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
    )


app = create_app()


@app.command(epilog=EPILOG)
def classify_command(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Image files, folders (searched recursively), quoted globs ('**' works), "
            "or '-' to read paths from stdin.",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, help="Labels per image (capped at the model's).")
    ] = 5,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Hugging Face image-classification model: hub id or folder."
        ),
    ] = "microsoft/resnet-50",
    revision: Annotated[
        str | None, typer.Option(help="Hub revision: branch, tag or commit. \\[default: main]")
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device", "-d", help="auto (cuda if available, else cpu), cpu, cuda, cuda:N, mps."
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", "-b", min=1, help="Images per forward pass. \\[default: auto]"
        ),
    ] = None,
    precision: Annotated[
        Precision,
        typer.Option(
            "--precision",
            "-p",
            help="auto picks the fastest accurate one for the device (never slower than fp32).",
        ),
    ] = Precision.auto,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Reference path: the model's own image processor on fully decoded images, fp32; "
            "scores match transformers.pipeline within 1e-4.",
        ),
    ] = False,
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format (parquet needs --output). \\[default: table on a terminal, "
            "else jsonl; with -o, from its extension]",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Write records to this file (never overwritten silently; '-': stdout), and "
            "what made them to FILE.meta.json beside it.",
        ),
    ] = None,
    null: Annotated[
        bool,
        typer.Option(
            "--null", "-0", help="With '-': stdin paths are NUL-separated (find -print0)."
        ),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", min=1, help="Decode workers. \\[default: auto]")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="With --output: skip inputs already classified there, retry the failed ones, "
            "append the rest.",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="With --output or --report: replace an existing file."),
    ] = False,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels",
            min=1,
            help="Refuse images that would decode larger than this (large JPEGs are first "
            "decoded downscaled).",
        ),
    ] = DEFAULT_MAX_PIXELS,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile", help="Compile the model with torch.compile (slower start, faster after)."
        ),
    ] = False,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Classify a Hugging Face dataset: hub id, save_to_disk folder, folder of parquet "
            "files or imagefolder. Records are named <dataset>:<split>:<row>.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="With --dataset: the split. \\[default: the only one, else test, else the first]",
            show_default=False,
        ),
    ] = None,
    image_column: Annotated[
        str | None,
        typer.Option(
            "--image-column",
            help="With --dataset: the column of images (or of image paths, URLs or bytes). "
            "\\[default: the first Image column]",
            show_default=False,
        ),
    ] = None,
    streaming: Annotated[
        bool,
        typer.Option(
            "--streaming", help="With --dataset: read rows as they download, keep nothing on disk."
        ),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help=f"Classify the {DEMO_DATASET} dataset (the seed example's cat) and show a table.",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="No network at all: models from the local cache or a folder, no image URLs. "
            "HF_HUB_OFFLINE=1 only keeps the hub offline.",
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write an HTML contact sheet of the results to this file: thumbnails "
            "grouped by label, doubtful ones first.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="local: this machine. ray: a Ray cluster, with Ray Data; needs --output DIR, "
            "a folder of parquet (default) or jsonl shards.",
        ),
    ] = Engine.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --engine ray: the cluster's HOST:PORT or ray://HOST:PORT. "
            "\\[default: $RAY_ADDRESS, else a Ray started on this machine]",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Classify images with a Hugging Face image-classification model and print the top-k labels.

    Records go to stdout (or --output) in input order; progress, warnings and the summary go to
    stderr. A file that is not a readable image gets an error record; the others still run.
    """
    options = Options(
        top_k=top_k,
        model=model,
        revision=revision,
        device=device,
        batch_size=batch_size,
        precision=precision.value,
        exact=exact,
        output_format=output_format.value if output_format else None,
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
        report=report,
        quiet=quiet,
        engine=engine.value,
        ray_address=ray_address,
    )
    raise typer.Exit(run_reporting_errors(lambda: run(inputs or [], options)))


def run_reporting_errors(work: Callable[[], int]) -> int:
    """Run a command's work; a known error becomes one ``Error:`` line and its exit code."""
    try:
        return work()
    except ResnetCliError as exc:
        return report_error(exc)
    except BrokenPipeError:
        raise PipeClosed from None  # the reader went away (| head): main stops quietly
    except Exception as exc:
        if os.environ.get("RESNET_CLI_DEBUG") == "1":
            raise
        print_error(f"unexpected failure: {exc} (rerun with RESNET_CLI_DEBUG=1 for a traceback)")
        return EXIT_FAILED


class PipeClosed(Exception):
    """Standard output's reader went away. Not an OSError, which click would turn into
    exit 1."""


def print_error(message: str) -> None:
    """One ``Error:`` line; names in it cannot move the cursor or ring the terminal."""
    from .writers import printable

    print(f"Error: {printable(message)}", file=sys.stderr, flush=True)


def report_error(exc: ResnetCliError) -> int:
    """Print a known error as one line and return its exit code."""
    if os.environ.get("RESNET_CLI_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc)
    print_error(str(exc))
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


@dataclass(frozen=True)
class Options:
    """The command's options, as parsed."""

    top_k: int = 5
    model: str = "microsoft/resnet-50"
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
    report: Path | None = None
    quiet: bool = False
    engine: str = "local"
    ray_address: str | None = None

    def model_options(self) -> dict[str, Any]:
        """The options ``load_classifier`` takes besides the model's name."""
        return {
            "revision": self.revision,
            "device": self.device,
            "precision": self.precision,
            "exact": self.exact,
            "offline": self.offline,
            "compile_model": self.compile_model,
        }


def run(inputs: list[str], options: Options) -> int:
    """The command's work, with every user-visible failure raised as a ResnetCliError."""
    from .model import check_model_options

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
    _check_output_flags(o)
    if o.report is not None:
        if o.output is not None and o.output.resolve() == o.report.resolve():
            raise UsageError("--report and --output name the same file: choose two names")
        # --resume regenerates the report of the run it continues.
        check_report_path(o.report, replace=o.overwrite or o.resume)
    if o.engine == "ray":
        return run_on_ray(inputs, dataset, o)
    if o.ray_address is not None:
        raise UsageError("--ray-address only applies to --engine ray")
    output = o.output
    fmt = _resolve_format(o.output_format, output, table_by_default=o.demo)
    claimed = _claim_output(fmt, o)  # before anything slow: the model, a dataset, a listing
    try:
        code = classify_to(claimed, inputs, dataset, fmt, o)
    except BaseException:
        if claimed is not None:
            claimed.abandon()
        raise
    return code


def classify_to(
    claimed: ClaimedOutput | None, inputs: list[str], dataset: str | None, fmt: str, o: Options
) -> int:
    """``run`` once the output is claimed (None: stdout): classify and write the records."""
    from .output_file import DoneInputs, check_not_an_input
    from .sources import Source, collect_inputs, require_an_image

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
            listed = [s for s in listed if s not in done]
            total, sources = len(listed), iter(listed)
        else:
            total = None
            sources = (s for s in sources if s not in done)
    if dataset is not None:
        rows = _open_dataset(dataset, o)
        prefix = f"{rows.name}:{rows.split}:"
        if total is not None and rows.rows is not None:
            total += rows.rows - sum(name.startswith(prefix) for name in done.names)
        else:
            total = None
        sources = itertools.chain(sources, (s for s in rows.sources() if s not in done))
    if done:
        peeked = next(sources, None)
        if peeked is None:
            if not o.quiet:
                say(f"nothing to do: every input is already in {output}")
            assert claimed is not None  # only a resumed file has inputs done
            claimed.finish()
            if o.report is not None:
                from .report import ReportSummary
                from .writers import recover_records

                records = recover_records(claimed.target, fmt)
                summary = ReportSummary(model=o.model)
                write_report_file(records, o.report, summary, o.quiet, dataset=rows)
            return EXIT_OK
        sources = _prepend(peeked, sources)
    sources = require_an_image(sources)
    sources = _prepend(next(sources), sources)  # raises NoInputsError before the model loads

    progress = None if o.quiet else _status(f"Loading {o.model} ...")
    from .engine import classify_batches
    from .model import load_classifier

    try:
        classifier = load_classifier(o.model, images=total, **o.model_options())
    finally:
        if progress is not None:
            progress.stop()
    size = o.batch_size or classifier.plan.batch_size

    append = claimed is not None and claimed.resumed
    if claimed is not None:
        claimed.write_meta(results_meta(o, classifier))
        stream = claimed.stream
    else:
        stream, _ = _open_output(None)
    from .writers import create_writer

    writer = create_writer(fmt, stream, header=not append)
    counts = {"images": 0, "failed": 0}
    # Kept for --report; after --resume the report is read back from the whole file instead.
    keep_records = o.report is not None and not append
    finished: list[Record] = []
    started = time.perf_counter()
    bar = _progress_bar(total, size, o.quiet)
    previous_stop = _handle_stop_signals(_raise_interrupt)
    interrupted = False
    try:
        for batch in classify_batches(
            classifier,
            sources,
            top_k=o.top_k,
            batch_size=o.batch_size,
            workers=o.workers,
            max_pixels=o.max_pixels,
        ):
            with _interrupts_held(), _writing(claimed):  # a written record is counted
                writer.write(batch)
                if claimed is not None:
                    os.fsync(stream.fileno())
                    claimed.written = True
                if keep_records:
                    finished.extend(batch)
                counts["images"] += len(batch)
                counts["failed"] += sum(not r.ok for r in batch)
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
    elapsed = time.perf_counter() - started
    if o.report is not None:
        from .report import ReportSummary

        if append and claimed is not None:  # --resume: the whole file, earlier runs included
            from .writers import recover_records

            finished = recover_records(claimed.target, fmt)
        summary = ReportSummary(
            model=o.model,
            device=str(classifier.device),
            precision=str(classifier.precision),
            elapsed=elapsed,
            interrupted=interrupted,
        )
        write_report_file(finished, o.report, summary, quiet=True, dataset=rows)
    if not o.quiet:
        # The runtime that scored every image of the run.
        where = f"{classifier.device}, {classifier.precision}, {classifier.runtime}"
        _summary(counts["images"], counts["failed"], elapsed, where, interrupted, o.report)
    if interrupted:
        return EXIT_INTERRUPTED
    if classifier.plan.export_after:  # after the results: later runs start without torch
        classifier.save_quick_start()
    return EXIT_FAILED if counts["failed"] else EXIT_OK


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
    from .dataset_source import open_dataset
    from .sources import offline_mode

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
            f"Face hub, but {reason}: run it once with network access"
        ) from exc


def check_report_path(path: Path, replace: bool) -> None:
    """Refuse a report path that cannot be written, before any work is done."""
    if path.is_dir():
        raise UsageError(f"report {str(path)!r} is a folder: name a file such as report.html")
    if path.exists() and not replace:
        raise UsageError(
            f"report file {str(path)!r} exists: pass --overwrite to replace it, or choose "
            "another name"
        )
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(
            f"cannot write report {str(path)!r}: folder {str(parent)!r} does not exist"
        )


def write_report_file(
    records: Sequence[Record],
    path: Path,
    summary: ReportSummary,
    quiet: bool,
    folders: Sequence[str] = ("",),
    dataset: Any = None,
) -> None:
    """Write the HTML report; say where on stderr unless ``quiet``. Thumbnails come from local
    files, and from the rows of ``dataset`` (a DatasetInput) when there is one."""
    from .report import local_thumbnail, thumbnail_jpeg, write_report

    def thumbnail(record: Record) -> bytes | None:
        found = local_thumbnail(record, folders)
        if found is None and dataset is not None:
            data = dataset.row_image(record.input)
            found = thumbnail_jpeg(data) if data else None
        return found

    try:
        size = write_report(records, path, summary=summary, thumbnail=thumbnail)
    except OSError as exc:
        raise UsageError(f"cannot write report {str(path)!r}: {exc.strerror or exc}") from None
    if not quiet:
        failed = sum(not r.ok for r in records)
        say(
            f"wrote {path}: {len(records)} image{'s' if len(records) != 1 else ''}, "
            f"{failed} failed ({size / 1e6:.1f} MB)"
        )


def _resolve_format(
    output_format: str | None, output: Path | None, table_by_default: bool = False
) -> str:
    """--format, else the output file's extension, else table on a terminal (or for the demo)
    and jsonl otherwise."""
    fmt = output_format or (
        (format_for_path(str(output)) or "jsonl")
        if output
        else ("table" if table_by_default or _isatty(sys.stdout) else "jsonl")
    )
    if fmt in FILE_ONLY_FORMATS and output is None:
        raise UsageError(f"--format {fmt} writes a binary file: add --output FILE.{fmt}")
    return fmt


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


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_output_flags(o: Options) -> None:
    what = "DIR" if o.engine == "ray" else "FILE"
    if o.resume and o.output is None:
        raise UsageError(f"--resume needs --output {what}")
    if o.overwrite and o.output is None and o.report is None:
        raise UsageError(f"--overwrite needs --output {what} or --report FILE")
    if o.resume and o.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: pick one")


def run_on_ray(inputs: list[str], dataset: str | None, o: Options) -> int:
    """``run`` for --engine ray: the same inputs (files, then the dataset's rows), classified
    on a Ray cluster into a folder."""
    from .ray_engine import (
        NEEDS_RAY,
        RAY_FORMATS,
        classify_on_ray,
        output_key,
        prepare_output_folder,
        ray_available,
    )
    from .sources import Source, collect_inputs, require_an_image

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
            "(python -m resnet_cli.ray_engine merge DIR -o FILE makes one file of any format)"
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
            batch_size=o.batch_size,
            max_pixels=o.max_pixels,
            fmt=fmt,
            address=o.ray_address,
            skip=done,
            quiet=o.quiet,
        )
    finally:
        _handle_stop_signals(previous_stop)
    if o.report is not None:
        from .ray_engine import read_ray_output
        from .report import ReportSummary

        summary = ReportSummary(
            model=o.model, device="ray", elapsed=result.seconds, interrupted=result.interrupted
        )
        records = read_ray_output(folder)  # the whole folder, earlier runs included
        write_report_file(records, o.report, summary, quiet=True, dataset=rows)
    if not o.quiet:
        nodes = f", {result.nodes} node{'s' if result.nodes != 1 else ''}" if result.nodes else ""
        where = f"ray{nodes}"
        _summary(result.images, result.failed, result.seconds, where, result.interrupted, o.report)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.failed else EXIT_OK


def _claim_output(fmt: str, o: Options) -> ClaimedOutput | None:
    """Check --output against --resume/--overwrite and take it (None: stdout)."""
    if o.output is None:
        return None
    from .output_file import claim_output

    return claim_output(
        o.output_name or str(o.output),
        fmt,
        resume=o.resume,
        overwrite=o.overwrite,
        model=o.model,
        top_k=o.top_k,
    )


def results_meta(o: Options, classifier: Any) -> dict[str, Any]:
    """What made a results file, for the metadata file beside it."""
    from .output_file import model_key, resolved_revision

    return {
        "version": __version__,
        "model": model_key(o.model),
        "revision": resolved_revision(o.model, o.revision),
        "top_k": o.top_k,
        "precision": str(classifier.precision),
        "runtime": str(classifier.runtime),
        "device": str(classifier.device),
        "exact": o.exact,
        "max_pixels": o.max_pixels,
        "cwd": os.getcwd(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def say(message: str) -> None:
    """A line for the user on stderr, names in it made safe for the terminal."""
    from .writers import printable

    print(printable(message), file=sys.stderr, flush=True)


def _open_output(output: Path | None, append: bool = False) -> tuple[IO[str], bool]:
    """The text stream records go to: the output file (new, or appended with --resume) or
    stdout."""
    if output is None:
        # Our own wrapper so CSV line endings pass through untouched and file names that are
        # not UTF-8 come out as the bytes they were.
        stream = io.TextIOWrapper(
            sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline=""
        )
        return stream, False
    try:
        mode = "a" if append else "x"
        return open(output, mode, encoding="utf-8", errors="surrogateescape", newline=""), True
    except FileExistsError:
        raise UsageError(
            f"output file {str(output)!r} exists: pass --resume or --overwrite"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None


def _close_output(stream: IO[str], opened: bool) -> None:
    if opened:
        stream.close()
    else:
        stream.flush()
        stream.detach()  # type: ignore[attr-defined]  # leave sys.stdout open


def _status(message: str) -> Any:
    """A spinner on stderr while the model loads, only when stderr is a terminal."""
    if not _isatty(sys.stderr):
        return None
    from rich.console import Console

    status = Console(stderr=True).status(message)
    status.start()
    return status


class _Bar:
    def __init__(self, total: int | None):
        from rich.console import Console
        from rich.progress import Progress

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task("Classifying", total=total)
        self.progress.start()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def stop(self) -> None:
        self.progress.stop()


def _progress_bar(total: int | None, batch_size: int, quiet: bool) -> _Bar | None:
    """A progress bar on stderr when it is a terminal and there is more than one batch."""
    if quiet or not _isatty(sys.stderr) or (total is not None and total <= batch_size):
        return None
    return _Bar(total)


def _summary(
    images: int,
    failed: int,
    elapsed: float,
    where: str,
    interrupted: bool,
    report: Path | None = None,
) -> None:
    rate = images / elapsed if elapsed > 0 else 0.0
    state = "interrupted after" if interrupted else "classified"
    written = f"; report written to {report}" if report is not None else ""
    say(
        f"{state} {images} image{'s' if images != 1 else ''}, {failed} failed in {elapsed:.1f}s "
        f"({rate:.1f} images/s, {where}){written}"
    )


REPORT_EPILOG = """\
**Examples**

    resnet-classify report labels.jsonl -o report.html
    resnet-classify report part1.csv part2.csv -o report.html --title "Holiday photos"

Relative image paths are looked up from the current folder, then from the results file's
folder. To classify a file or folder that is literally named `report`, write `./report`.
"""

report_app = create_app()


@report_app.command(epilog=REPORT_EPILOG)
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
        Path, typer.Option("--output", "-o", help="The HTML file to write.", show_default=False)
    ],
    title: Annotated[
        str | None,
        typer.Option(help="The page's title. \\[default: from the results file names]"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The model that made the results, for the summary."),
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
    raise typer.Exit(
        run_reporting_errors(lambda: make_report(results, output, title, model, overwrite, quiet))
    )


def make_report(
    results: list[Path],
    output: Path,
    title: str | None,
    model: str | None,
    overwrite: bool,
    quiet: bool,
) -> int:
    """The ``report`` subcommand's work: read the results files, write the report."""
    from .report import ReportSummary
    from .writers import read_results_file

    check_report_path(output, replace=overwrite)
    records: list[Record] = []
    for path in results:
        if output.resolve() == path.resolve():
            raise UsageError(f"{str(path)!r} is both a results file and the report: pick -o")
        try:
            records.extend(read_results_file(str(path)))
        except FileNotFoundError:
            raise UsageError(f"results file {str(path)!r} does not exist") from None
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
    # Relative image paths are relative to where the run was; try here, then beside the results.
    folders = ("", *dict.fromkeys(str(path.parent) for path in results))
    write_report_file(records, output, summary, quiet, folders)
    return EXIT_OK


env_app = create_app()


class EnvFormat(str, enum.Enum):
    text = "text"
    json = "json"


@env_app.command(
    epilog="    resnet-classify env\n\n    resnet-classify env -m ./my-model -p fp32 -f json"
)
def env_command(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="The model to plan a run of: hub id or folder."),
    ] = "microsoft/resnet-50",
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
    output_format: Annotated[
        EnvFormat, typer.Option("--format", "-f", help="text for people, json for scripts.")
    ] = EnvFormat.text,
) -> None:
    """Print what a bug report needs: versions, the machine as resnet-classify sees it, and
    how a run of --model would compute (device, precision, runtime, batch size) and why.
    Nothing is downloaded."""

    def show() -> int:
        import json

        from .environment import describe, format_text
        from .model import check_model_options

        check_model_options(device, precision, exact)
        facts = describe(model, revision, device, precision, exact)
        if output_format == EnvFormat.json:
            print(json.dumps(facts, indent=2))
        else:
            print(format_text(facts))
        return EXIT_OK

    raise typer.Exit(run_reporting_errors(show))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors become one ``Error:`` line and exit code 2.

    ``resnet-classify report ...`` and ``resnet-classify env ...`` run those subcommands (a
    file named ``report`` or ``env`` is classified as ``./report``); everything else classifies (the
    main command takes its inputs as positional arguments, so it cannot have Typer subcommands).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["report"]:
        _main(report_app, "resnet-classify report", args[1:])
    elif args[:1] == ["env"]:
        _main(env_app, "resnet-classify env", args[1:])
    else:
        _main(app, "resnet-classify", args)


merge_app = create_app()


@merge_app.callback()
def merge_group() -> None:
    """Work with the results folder that ``resnet-classify --engine ray -o DIR`` writes."""


@merge_app.command(
    "merge", epilog="    python -m resnet_cli.ray_engine merge results/ -o labels.csv"
)
def merge_command(
    folder: Annotated[
        Path, typer.Argument(help="A folder written by --engine ray.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the records to this file (never overwritten)."),
    ] = None,
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format. \\[default: from the --output extension, else jsonl; table on "
            "a terminal]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Merge the record shards of a --engine ray run into one file, in input order."""
    fmt = output_format.value if output_format else None
    raise typer.Exit(run_reporting_errors(lambda: merge(folder, output, fmt)))


def merge(folder: Path, output: Path | None, output_format: str | None) -> int:
    """``merge_command``'s work: every record of a results folder, in input order, written
    in one format."""
    from .ray_engine import read_ray_output
    from .writers import create_writer

    fmt = _resolve_format(output_format, output)
    records = read_ray_output(folder, empty=False)
    stream, opened = _open_output(output)
    writer = create_writer(fmt, stream)
    try:
        writer.write(records)
    finally:
        writer.close()
        _close_output(stream, opened)
    return EXIT_OK


def _stdout_was_closed() -> bool:
    """Whether a library has already silenced standard output after a closed pipe."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
        os.close(devnull)


def merge_main(argv: list[str] | None = None) -> None:
    """``python -m resnet_cli.ray_engine``: the merge command."""
    _main(merge_app, "python -m resnet_cli.ray_engine", argv)


def _main(typer_app: typer.Typer, prog_name: str, argv: list[str] | None) -> None:
    command = typer.main.get_command(typer_app)
    # Typer vendors click; its ClickException is the base of typer.BadParameter.
    click_exception: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
    )
    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except PipeClosed:
        code = EXIT_BROKEN_PIPE
    except SystemExit as exc:
        # Rich's and click's own answer to a closed pipe (the --help text): stdout pointed at
        # /dev/null, or wrapped to stay quiet, and exit 1. Our commands never raise it.
        if exc.code != 1 or not _stdout_was_closed():
            raise
        code = EXIT_BROKEN_PIPE
    except click_exception as exc:
        print_error(exc.format_message().replace("\n", " "))  # type: ignore[attr-defined]
        code = getattr(exc, "exit_code", EXIT_USAGE)
    except typer.Abort:
        code = EXIT_INTERRUPTED
    if code in (EXIT_BROKEN_PIPE, EXIT_WRITE):
        _silence_stdout()  # what is left in its buffer could not be written either
    if code in (EXIT_INTERRUPTED, EXIT_BROKEN_PIPE):
        # Every finished record is written and the summary printed; a decode worker stuck in
        # a blocking read must not keep the process alive, so skip the interpreter's join.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
