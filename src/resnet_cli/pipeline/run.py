"""A whole run, as the main command does it, for the command line and Python callers alike:
gather the inputs, skip what a resumed output already holds, load the model through the one
plan, classify (on this machine or on Ray), stream the records in input order to the output,
place the files (--organize), write XMP sidecars, the report and the quick-start export.

``run(inputs, options, watcher)`` returns a ``RunResult``: the counts, the time, what computed
them, and the exit code the command gives. Everything a person watching should see goes
through the ``Watcher`` (the command line's draws a spinner and a progress bar on a terminal
and prints lines on stderr; the default prints the lines only); the summary is the caller's
to print. A failure raises a ``ResnetCliError`` (``errors.exit_code`` gives its code).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    TRY_OFFLINE,
    DatasetLoadError,
    OutputWriteError,
    UsageError,
)
from ..results import Record, needs_review
from ..text import say
from .options import RunOptions

if TYPE_CHECKING:
    from ..inputs.datasets import DatasetInput
    from ..inputs.sources import Source
    from ..output.files import ClaimedOutput
    from ..output.organize import Organizer
    from ..output.xmp import SidecarWriter
    from ..runtimes.select import Plan
    from .local import Decoding

# Signals that stop a run as Ctrl-C does: finished records written, summary, exit 130.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Bar(Protocol):
    """A progress display: ``advance`` by the images done, ``stop`` at the end."""

    def advance(self, n: int) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Watcher:
    """What a run shows while it works. ``say``: a line for the person (warnings, "nothing
    to do"); ``busy(what)``: a context manager around a slow step (the model's load, saving
    the export); ``progress(total, batch_size)``: a ``Bar`` (or None) for the images."""

    say: Callable[[str], None] = say
    busy: Callable[[str], contextlib.AbstractContextManager[Any]] = lambda what: (
        contextlib.nullcontext()
    )
    progress: Callable[[int | None, int], Bar | None] = lambda total, size: None


@dataclass
class RunResult:
    """What a run did. ``where``: what computed the records (``cpu, fp32, onnxruntime``, or
    ``ray, 2 nodes``); ``organized``/``sidecars``: those steps' closing lines; ``plan``: how
    the run computed, as ``resnet-classify env`` shows it (None on Ray)."""

    inputs: int = 0
    failed: int = 0
    review: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    nothing_to_do: bool = False
    where: str = ""
    organized: str | None = None
    sidecars: str | None = None
    failures_beside: int = 0  # files --organize or --xmp could not write
    plan: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # warnings the run said

    @property
    def exit_code(self) -> int:
        """The contract's code: 130 interrupted, 1 if an input or a file beside failed."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed or self.failures_beside else EXIT_OK


def run(
    inputs: list[str], options: RunOptions | None = None, watcher: Watcher | None = None
) -> RunResult:
    """Classify ``inputs`` (files, folders, globs, URLs, ``-`` for paths on stdin) as the
    command does with ``options``; raises a ``ResnetCliError`` for what stops the run."""
    started = time.perf_counter()  # the summary's wall time: the model's load included
    o = options or RunOptions()
    watcher = watcher or Watcher()
    if o.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before any Hugging Face library is imported
    dataset = o.dataset_name(inputs)
    o.check(inputs, dataset)
    if o.trust_remote_code:
        watcher.say(f"note: --trust-remote-code: Python code in {o.model}'s files may run")
    from .. import __version__
    from ..output import xmp
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
        return _run_on_ray(inputs, dataset, o, started, watcher)
    if o.ray_address is not None:
        raise UsageError("--ray-address only applies to --engine ray")
    from ..output.writers import resolve_format

    fmt = resolve_format(o.output_format, o.output, table_by_default=o.demo)
    claimed = _claim_output(fmt, o)  # before anything slow: the model, a dataset, a listing
    try:
        return _run_here(
            _Run(o, fmt, claimed, organizer, sidecars, watcher, started), inputs, dataset
        )
    except BaseException:
        if claimed is not None:
            claimed.abandon()
        raise


@dataclass
class _Run:
    """A local run's parts, once its output is claimed (None: stdout)."""

    o: RunOptions
    fmt: str
    claimed: ClaimedOutput | None
    organizer: Organizer | None
    sidecars: SidecarWriter | None
    watcher: Watcher
    started: float
    rows: DatasetInput | None = None  # the dataset's split, when there is one


def _run_here(r: _Run, inputs: list[str], dataset: str | None) -> RunResult:
    """Classify on this machine into the claimed output, then the steps after."""
    from ..output.files import DoneInputs

    o = r.o
    done = r.claimed.done if r.claimed is not None else DoneInputs()
    sources, total = _local_sources(r, inputs, dataset, done)
    if sources is None:  # every input is in the resumed output
        return _nothing_to_do(r)
    from ..runtimes.classifier import load_classifier
    from .local import decode_ahead

    ahead: Decoding | None = None

    def planned(plan: Plan, files: dict[str, str] | None) -> None:
        # The inputs are decoded while the model loads: files and folders, not a dataset's
        # rows (its reader's own imports would meet the loading's), nor a list read from
        # stdin with --organize (reading it places a resumed run's files: the main thread's).
        nonlocal ahead
        lazy_placing = r.organizer is not None and total is None
        if not o.exact and dataset is None and not lazy_placing:
            ahead = decode_ahead(plan, files, sources, max_pixels=o.max_pixels, offline=o.offline)

    try:
        with r.watcher.busy(f"Loading {o.model} ..."):
            classifier = load_classifier(
                o.model,
                images=total,
                batch_size=o.batch_size,
                workers=o.workers,
                planned=planned,
                **o.model_options(),
            )
        result = RunResult(plan=classifier.plan.as_dict())
        counted = _classify_into(r, classifier, sources, total, result, ahead)
    finally:
        if ahead is not None:  # a run that ends before its first batch leaves no threads
            ahead.close(wait=False)
    if classifier.plan.export_after and not result.interrupted:
        # Once the records are written, and before the summary, which counts it: later runs
        # start from it without torch. A second or a few.
        try:
            with r.watcher.busy("Saving the model's ONNX export for later runs ..."):
                classifier.save_quick_start()
        except KeyboardInterrupt:  # the records are all written; the export can wait
            result.interrupted = True
    result.elapsed = time.perf_counter() - r.started
    if o.report is not None:
        _write_report(
            r,
            counted if counted is not None else _records_of(r),
            device=str(classifier.device),
            precision=str(classifier.precision),
            elapsed=result.elapsed,
            interrupted=result.interrupted,
        )
    if classifier.plan.note is not None:  # INT8 asked for, fp32 used: why, even with -q
        result.notes.append(f"warning: {classifier.plan.note}")
        r.watcher.say(result.notes[-1])
    # The runtime that scored every image of the run.
    result.where = f"{classifier.device}, {classifier.precision}, {classifier.runtime}"
    _beside(r, result)
    return result


def _local_sources(
    r: _Run, inputs: list[str], dataset: str | None, done: Any
) -> tuple[Iterator[Source] | None, int | None]:
    """The inputs left to classify (None: none left of a resumed run) and how many (None:
    unknown, from stdin or a streamed dataset). Folders and globs are listed before the model
    loads; with --organize, an input done before is placed now, by its record."""
    from ..inputs.sources import collect_inputs, require_an_image
    from ..output.files import check_not_an_input
    from ..output.organize import remaining_inputs

    o, organizer = r.o, r.organizer
    stdin = _stdin(inputs)
    sources: Iterator[Source] = iter(())
    total: int | None = 0
    if inputs:
        sources = collect_inputs(inputs, stdin=stdin, null_separated=o.null)
        if stdin is None:
            listed = list(sources)
            if r.claimed is not None:
                check_not_an_input(r.claimed, listed)
            listed = list(remaining_inputs(listed, done, organizer))
            total, sources = len(listed), iter(listed)
        else:
            total = None
            sources = remaining_inputs(sources, done, organizer)
    if dataset is not None:
        r.rows = rows = open_dataset(dataset, o)
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
            return None, 0
        sources = _prepend(peeked, sources)
    sources = require_an_image(sources)
    return _prepend(next(sources), sources), total  # NoInputsError before the model loads


def _nothing_to_do(r: _Run) -> RunResult:
    """A resumed run whose inputs are all in its output: what the earlier run had left to
    place is placed, the report written anew."""
    result = RunResult(nothing_to_do=True)
    if not r.o.quiet:
        r.watcher.say(f"nothing to do: every input is already in {r.o.output}")
        if r.organizer is not None:
            r.watcher.say(r.organizer.summary())
    assert r.claimed is not None  # only a resumed file has inputs done
    r.claimed.finish()
    if r.o.report is not None:
        _write_report(r, _records_of(r))
    result.failures_beside = r.organizer.failures if r.organizer is not None else 0
    return result


def _classify_into(
    r: _Run,
    classifier: Any,
    sources: Iterator[Source],
    total: int | None,
    result: RunResult,
    ahead: Decoding | None = None,
) -> list[Record] | None:
    """Classify ``sources`` and write each batch (records, sidecars, placed files), counting
    into ``result``; return the records for the report when they are kept (not on resume).
    ``ahead``: the decoding of ``sources`` started while the model loaded."""
    from ..categories import resolve_categories
    from ..output.writers import close_records, create_writer, open_records
    from .local import classify_batches

    o, claimed = r.o, r.claimed
    with_category = resolve_categories(classifier.labels, o.category, o.model)
    if r.organizer is not None:
        r.organizer.check_categories(with_category, o.model)
    with_truth = r.rows is not None and r.rows.classes is not None  # an imagefolder's classes
    append = claimed is not None and claimed.resumed
    with_xmp = r.sidecars is not None
    # A run that calibrates INT8 writes its metadata once calibrated: the verdict goes in too.
    meta_pending = claimed is not None and classifier.calibration_images > 0
    stream: IO[str]
    if claimed is not None:
        if append and r.fmt == "csv":  # the columns the file has
            with_category, with_truth, with_xmp = claimed.csv_columns
        if not meta_pending:
            claimed.write_meta(_results_meta(o, classifier))
        stream = claimed.stream
    else:
        stream, _ = open_records(None)
    writer = create_writer(
        r.fmt,
        stream,
        header=not append,
        category=with_category,
        true_label=with_truth,
        xmp_error=with_xmp,
    )
    # Kept for --report; after --resume the report is read back from the whole file instead.
    kept: list[Record] | None = [] if o.report is not None and not append else None
    bar = r.watcher.progress(total, classifier.plan.batch_size) if not o.quiet else None
    previous_stop = _handle_stop_signals(_raise_interrupt)
    try:
        for batch in classify_batches(
            classifier,
            sources,
            top_k=o.top_k,
            max_pixels=o.max_pixels,
            categories=with_category,
            min_score=o.min_score,
            ahead=ahead,
        ):
            with _interrupts_held(), _writing(claimed):  # a written record is counted
                if meta_pending and claimed is not None:
                    claimed.write_meta(_results_meta(o, classifier))
                    meta_pending = False
                if r.sidecars is not None:  # before the records, which say where it failed
                    batch = r.sidecars.write(batch)
                writer.write(batch)
                if claimed is not None:
                    os.fsync(stream.fileno())
                    claimed.written = True
                if r.organizer is not None:  # only once the records are on disk
                    r.organizer.place(batch)
                if kept is not None:
                    kept.extend(batch)
                result.inputs += len(batch)
                result.failed += sum(not rec.ok for rec in batch)
                result.review += sum(map(needs_review, batch))
            if bar is not None:
                bar.advance(len(batch))
    except KeyboardInterrupt:
        result.interrupted = True
        # A second Ctrl-C while we write out what is finished ends the process at once.
        signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
    finally:
        _handle_stop_signals(previous_stop)
        if bar is not None:
            bar.stop()
        with _writing(claimed, failing=sys.exc_info()[0] is not None):
            writer.close()
            if claimed is None:
                close_records(stream, False)
    if claimed is not None:
        if result.interrupted and claimed.mode == "overwrite":
            claimed.abandon()  # the new file is not complete: the old one stays
            if not o.quiet:
                r.watcher.say(f"interrupted: {claimed.name} is left as it was (--overwrite)")
        else:
            claimed.finish()
    return kept


def _beside(r: _Run, result: RunResult) -> None:
    """The closing lines and failures of --organize and --xmp."""
    if r.organizer is not None:
        result.organized = r.organizer.summary()
        result.failures_beside += r.organizer.failures
    if r.sidecars is not None:
        result.sidecars = r.sidecars.summary()
        result.failures_beside += r.sidecars.left_alone


def _records_of(r: _Run) -> list[Record]:
    """A resumed file's records, earlier runs included (for the report)."""
    from ..output.writers import recover_records

    assert r.claimed is not None
    return recover_records(r.claimed.target, r.fmt)


def _write_report(r: _Run, records: list[Record], **summary: Any) -> None:
    """--report, over ``records``; ``summary``: ReportSummary's fields besides the model."""
    from ..output.report import ReportSummary, write_report_file

    assert r.o.report is not None
    write_report_file(
        records, r.o.report, ReportSummary(model=r.o.model, **summary), dataset=r.rows
    )


def _run_on_ray(
    inputs: list[str], dataset: str | None, o: RunOptions, started: float, watcher: Watcher
) -> RunResult:
    """``run`` with --engine ray: the same inputs (files, then the dataset's rows),
    classified on a Ray cluster into a folder of shards."""
    from ..inputs.sources import collect_inputs, require_an_image
    from ..output.shards import RAY_FORMATS, output_key, prepare_output_folder, read_ray_output
    from ..output.writers import format_for_path
    from .ray_job import NEEDS_RAY, classify_on_ray, ray_available

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
    found: Iterator[Source] = iter(())
    if inputs:
        found = collect_inputs(inputs, stdin=_stdin(inputs), null_separated=o.null)
    rows = None
    if dataset is not None:
        rows = open_dataset(dataset, o)
        found = itertools.chain(found, rows.sources())
    sources = list(require_an_image(found))
    if all(output_key(s.name) in done for s in sources):
        if not o.quiet:
            watcher.say(f"nothing to do: every input is already in {folder}")
        return RunResult(nothing_to_do=True)
    previous_stop = _handle_stop_signals(_raise_interrupt)
    try:
        ran = classify_on_ray(
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
    nodes = f", {ran.nodes} node{'s' if ran.nodes != 1 else ''}" if ran.nodes else ""
    result = RunResult(
        inputs=ran.images,
        failed=ran.failed,
        review=ran.review,
        interrupted=ran.interrupted,
        where=f"ray{nodes}",
        elapsed=time.perf_counter() - started,
    )
    if o.report is not None:
        from ..output.report import ReportSummary, write_report_file

        summary = ReportSummary(
            model=o.model, device="ray", elapsed=result.elapsed, interrupted=result.interrupted
        )
        records = read_ray_output(folder)  # the whole folder, earlier runs included
        write_report_file(records, o.report, summary, dataset=rows)
    return result


def open_dataset(name: str, o: RunOptions) -> DatasetInput:
    """Open the dataset's split; for the demo, a failure says what the demo needs."""
    from ..inputs.datasets import DEMO_DATASET
    from ..inputs.datasets import open_dataset as open_split
    from ..inputs.sources import offline_mode

    try:
        return open_split(name, split=o.split, image_column=o.image_column, streaming=o.streaming)
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


def _stdin(inputs: list[str]) -> Any:
    """Standard input's bytes when ``-`` is an input: the only thing a run reads from it."""
    return sys.stdin.buffer if "-" in inputs and sys.stdin is not None else None


def _claim_output(fmt: str, o: RunOptions) -> ClaimedOutput | None:
    """Check --output against --resume/--overwrite and take it (None: stdout)."""
    if o.output is None:
        return None
    from ..output.files import claim_output

    return claim_output(
        o.output_name or str(o.output),
        fmt,
        resume=o.resume,
        overwrite=o.overwrite,
        **o.records_settings(),
    )


def _results_meta(o: RunOptions, classifier: Any) -> dict[str, Any]:
    """What made a results file, for the metadata file beside it."""
    from .. import __version__
    from ..output.files import results_meta

    return results_meta(
        version=__version__,
        revision=o.revision,
        exact=o.exact,
        max_pixels=o.max_pixels,
        classifier=classifier,
        **o.records_settings(),
        plan=classifier.plan.as_dict(),
    )


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
