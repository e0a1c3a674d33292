"""Classification on a Ray cluster with Ray Data: the same inputs give the same records.

The driver expands the inputs by the local engine's rules and numbers them; Ray gets one row
per input. CPU tasks read and decode each row with the local engine's ``decode_source`` (a bad
file becomes an error row: nothing fails the job), a pool of actors that each load the model
once classify batches with its ``classify_slots``, and Ray writes the records as parquet or
jsonl shards into one folder, each with its input's position in ``index``. How the actors
compute (device, precision, batch size) and how many there are is the one chooser's plan
(``runtimes.select.choose_plan``), made for the hardware an actor gets.

The results folder itself (its shards, reading them back, resume, merge, its metadata) is
``output.shards``. Ray is imported only when a job starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_MODEL
from ..errors import (
    ClusterError,
    DeviceError,
    ModelLoadError,
    ResnetCliError,
    UsageError,
    install_extra,
)
from ..inputs.decode import DEFAULT_MAX_PIXELS, ResizeRule
from ..inputs.sources import Source
from ..output.shards import (
    RAY_FORMATS,
    count_records,
    folder_meta,
    output_key,
    shard_paths,
    shard_table,
    write_folder_meta,
)
from ..output.writers import record_schema
from ..runtimes.classifier import check_model_options
from ..runtimes.select import Plan
from ..text import is_terminal

NEEDS_RAY = f"--engine ray needs Ray: {install_extra('ray')}"
# A decode task takes this many batches' worth of inputs; each such block becomes one shard.
BLOCK_BATCHES = 4
# How long the job waits for every model actor to start (each loads the model) before work
# is handed out; an actor that cannot start fails the job with its reason.
ACTOR_START_TIMEOUT_S = 600


@dataclass(frozen=True)
class RayPlacement:
    """How a job is spread over the cluster: ``actors`` model actors (default: one per GPU; on
    a cluster without GPUs, one per two CPUs), each asking Ray for ``actor_options`` (default
    ``{"num_gpus": 1}``, or ``{"num_cpus": 1}``), and decode tasks asking for
    ``decode_options`` (default ``{"num_cpus": 1}``). Options as ``ray.remote`` takes them:
    ``num_cpus``, ``num_gpus``, ``resources``, ``memory``."""

    actors: int | None = None
    actor_options: dict[str, Any] | None = None
    decode_options: dict[str, Any] | None = None


@dataclass(frozen=True)
class RayRun:
    """What a Ray job did: the records it wrote, how many of them are failures and how many
    need review, its wall time, how many nodes ran the model (None where Ray's stats do not
    say), and the plan its model actors ran (also in the folder's metadata file)."""

    images: int
    failed: int
    seconds: float
    nodes: int | None = None
    interrupted: bool = False
    review: int = 0
    plan: dict[str, Any] | None = None  # RayPlan.as_dict(): what the model actors ran


def ray_available() -> bool:
    """Whether Ray is installed, without importing it."""
    return importlib.util.find_spec("ray") is not None


def import_ray() -> Any:
    """The ``ray`` module with Ray Data loaded, or a UsageError that says how to install it."""
    try:
        import ray
        import ray.data  # loads the submodule on the package
    except ImportError:
        raise UsageError(NEEDS_RAY) from None
    return ray


def classify_on_ray(
    sources: Iterable[Source],
    folder: str | os.PathLike[str],
    *,
    model: str = DEFAULT_MODEL,
    model_options: Mapping[str, Any] | None = None,
    top_k: int = 5,
    min_score: float = 0.0,
    batch_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fmt: str = "parquet",
    address: str | None = None,
    placement: RayPlacement | None = None,
    skip: Collection[str] = (),
    quiet: bool = True,
) -> RayRun:
    """Classify sources on a Ray cluster, writing the records as ``fmt`` shards into ``folder``.

    ``model_options``: what ``load_classifier`` takes besides the model (``revision``,
    ``device``, ``precision``, ``exact``, ``offline``, ``compile_model``), for every actor.
    ``address``: the cluster (HOST:PORT or ray://HOST:PORT); default ``$RAY_ADDRESS``, else a
    Ray started on this machine; a process already connected keeps its connection. Inputs are
    numbered in order, counting those whose ``output_key`` is in ``skip`` (the ones
    ``prepare_output_folder`` found done), which are left out. Ctrl-C stops the job: the
    shards written so far stay and the result says it was interrupted. ``min_score``: as for
    the local engine's ``classify_batches``.
    """
    if fmt not in RAY_FORMATS:
        raise UsageError(f"the Ray engine writes {' or '.join(RAY_FORMATS)}, not {fmt}")
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    ray = import_ray()
    options = dict(model_options or {})
    device, offline = options.get("device", "auto"), bool(options.get("offline", False))
    check_model_options(device, options.get("precision", "auto"), bool(options.get("exact")))
    if options.get("precision") == "int8":  # each actor would calibrate on its own images
        raise UsageError("--precision int8 runs with --engine local only")
    checked = _check_model(model, options)
    path = os.fspath(folder)
    os.makedirs(path, exist_ok=True)
    connected_here = _connect(ray, address)
    try:
        plan = _plan(ray, model, options, batch_size, placement or RayPlacement(), checked, path)
        size = plan.plan.batch_size
        tables = list(_input_tables(sources, set(skip), BLOCK_BATCHES * size))
        if not tables:
            return RayRun(images=0, failed=0, seconds=0.0)
        # The actors compute as the plan says: its device and precision, asked for by name.
        actor_model = {
            **options,
            "model": model,
            "device": plan.plan.device,
            "precision": plan.plan.precision,
        }
        write_folder_meta(path, folder_meta(model, top_k, min_score, fmt, plan.as_dict()))
        before = set(shard_paths(path))
        started = time.perf_counter()
        interrupted = False
        with _data_context(ray, quiet):
            dataset = ray.data.from_arrow(tables).map_batches(
                _decode_rows,
                fn_kwargs={"resize": checked.resize, "max_pixels": max_pixels, "offline": offline},
                batch_size=None,
                batch_format="pyarrow",
                **plan.decode_options,
            )
            dataset = dataset.map_batches(
                ModelActor,
                fn_constructor_kwargs={
                    "model_options": actor_model,
                    "top_k": top_k,
                    "min_score": min_score,
                    "fmt": fmt,
                },
                batch_size=size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=plan.actors),
                **plan.actor_options,
            )
            try:
                _write(dataset, path, fmt)
            except KeyboardInterrupt:
                interrupted = True
            except Exception as exc:
                raise _job_failure(exc, path) from exc
        seconds = time.perf_counter() - started
        images, failed, review = count_records(sorted(set(shard_paths(path)) - before))
        nodes = None if interrupted else _nodes_used(dataset)
        return RayRun(images, failed, seconds, nodes, interrupted, review, plan.as_dict())
    finally:
        if connected_here:
            ray.shutdown()


class ModelActor:
    """A Ray Data actor: loads the model once, then classifies batches of decoded images with
    the local engine's ``classify_slots``."""

    def __init__(self, model_options: dict[str, Any], top_k: int, fmt: str, min_score: float = 0.0):
        import ray

        from ..runtimes.classifier import load_classifier
        from ..runtimes.hardware import use_threads

        # Ray starts workers with one thread for torch; an actor may use the CPUs it holds.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        use_threads(int(cpus))
        self.classifier = load_classifier(**model_options)
        self.top_k = top_k
        self.min_score = min_score
        self.fmt = fmt

    def __call__(self, batch: Any) -> Any:
        import numpy as np
        from PIL import Image

        from .local import Slot, classify_slots

        slots = []
        for row in batch.to_pylist():
            name, truth = _from_bytes(row["name"]) or "", row["true_label"]
            if row["error"] is not None:
                slots.append(Slot(name, error=row["error"], true_label=truth))
                continue
            shape = (row["height"], row["width"], 3)
            pixels = np.frombuffer(row["pixels"], dtype=np.uint8).reshape(shape)
            slots.append(Slot(name, image=Image.fromarray(pixels), true_label=truth))
        records = classify_slots(self.classifier, slots, self.top_k, min_score=self.min_score)
        return shard_table(records, batch.column("index").to_pylist(), self.fmt)


def _check_model(model: str, options: dict[str, Any]) -> Any:
    """Load the model once in the driver, on its CPU: a model that cannot load is one clear
    error before any job starts, and its processor gives the resize rule the decode tasks
    apply (the same rule the local engine's decoding uses) and the input shape the plan
    needs."""
    from ..runtimes.classifier import load_classifier

    on_cpu = {"device": "cpu", "precision": "fp32", "compile_model": False}
    return load_classifier(model, **{**options, **on_cpu})


@dataclass(frozen=True)
class RayPlan:
    """How a job computes. ``plan``: the one chooser's (``runtimes.select.choose_plan``) for
    a model actor, on the hardware and checkpoint an actor finds (a probe run with an
    actor's resources) and the batch size asked for; ``actors`` model actors, each asking Ray
    for ``actor_options``; decode tasks asking for ``decode_options``; ``reasons``: why, for
    those three."""

    plan: Plan
    actors: int
    actor_options: dict[str, Any]
    decode_options: dict[str, Any]
    reasons: dict[str, str]

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every choice with its reason, as ``Plan.as_dict`` gives the local engine's (the
        results folder's metadata records it). Ray decodes in its tasks, so the local
        engine's decode threads and nvJPEG (``workers``, ``device_decode``) are left out."""
        placed = {
            "actors": self.actors,
            "actor_options": self.actor_options,
            "decode_options": self.decode_options,
        }
        return {
            **{
                k: v
                for k, v in self.plan.as_dict().items()
                if k not in ("workers", "device_decode")
            },
            **{k: {"value": v, "why": self.reasons.get(k, "")} for k, v in placed.items()},
        }


@dataclass(frozen=True)
class Placement:
    """Where the model actors go, before the chooser: on GPUs or not, how many, and what
    each actor and decode task asks Ray for, with reasons."""

    on_gpu: bool
    actors: int
    actor_options: dict[str, Any]
    decode_options: dict[str, Any]
    reasons: dict[str, str]


def place(resources: Mapping[str, float], device: str, asked: RayPlacement) -> Placement:
    """The placement on a cluster with ``resources`` (as ``ray.cluster_resources()`` gives
    them) for ``--device``: one actor per GPU, else one per two CPUs; what ``asked`` sets
    wins."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if device.startswith("cuda") and gpus == 0:
        raise DeviceError(f"--device {device} was asked for, but the Ray cluster has no GPUs")
    on_gpu = gpus > 0 and (device == "auto" or device.startswith("cuda"))
    # One CPU each; on a one-CPU cluster, half of it, or the actor would starve the decoding.
    cpu_share: dict[str, Any] = {"num_cpus": 1 if cpus >= 2 else 0.5}
    cpu_why = "one CPU each" if cpus >= 2 else "half a CPU each: the cluster has one"
    options: dict[str, Any]
    if on_gpu:
        actors, actors_why = gpus, f"one per GPU of the cluster ({gpus})"
        options, options_why = {"num_gpus": 1}, "one GPU each, which the actor sees as cuda:0"
    else:
        actors, actors_why = max(1, cpus // 2), f"one per two CPUs of the cluster ({cpus})"
        options, options_why = cpu_share, f"{cpu_why}, the rest for decoding"
    decode_why = cpu_why
    if asked.actors:
        actors, actors_why = asked.actors, "as asked (RayPlacement)"
    if asked.actor_options:
        options, options_why = dict(asked.actor_options), "as asked (RayPlacement)"
    decode = dict(asked.decode_options or cpu_share)
    if asked.decode_options:
        decode_why = "as asked (RayPlacement)"
    reasons = {"actors": actors_why, "actor_options": options_why, "decode_options": decode_why}
    return Placement(on_gpu, actors, options, decode, reasons)


def _plan(
    ray: Any,
    model: str,
    options: dict[str, Any],
    batch_size: int | None,
    asked: RayPlacement,
    checked: Any,
    folder: str,
) -> RayPlan:
    """The job's plan: the placement from the cluster's resources, then the chooser's plan
    for an actor, from what a probe with an actor's resources finds (its hardware, the
    checkpoint and runtime cache on its node) and the batch size asked for."""
    device = options.get("device", "auto")
    placed = place(ray.cluster_resources(), device, asked)
    # Ray gives each GPU actor one device of its own, which it sees as cuda:0.
    actor_device = "cuda" if placed.on_gpu else ("cpu" if device == "auto" else device)
    probe = ray.remote(max_retries=0, **placed.actor_options)(_plan_inputs)
    try:
        planning = ray.get(
            probe.remote(model, options, actor_device), timeout=ACTOR_START_TIMEOUT_S
        )
    except Exception as exc:
        raise _job_failure(exc, folder) from exc
    planning = dataclasses.replace(
        planning, request=dataclasses.replace(planning.request, batch_size=batch_size)
    )
    # What loading found out of the checkpoint (as load_classifier does): a fixed input.
    changes = {} if planning.checkpoint.native else {"image_batch": checked.input_shape is not None}
    plan = planning.plan(**changes)
    return RayPlan(plan, placed.actors, placed.actor_options, placed.decode_options, placed.reasons)


def _plan_inputs(model: str, options: dict[str, Any], device: str) -> Any:
    """A probe, run with an actor's resources: what the chooser takes, as an actor on that
    node would find it (``runtimes.classifier.plan_inputs``, which ``load_classifier`` and
    ``resnet-classify env`` start from too)."""
    from ..models.zero_shot import ZeroShot
    from ..runtimes.classifier import plan_inputs

    labels = options.get("labels")
    return plan_inputs(
        model,
        revision=options.get("revision"),
        device=device,
        precision=options.get("precision", "auto"),
        exact=bool(options.get("exact")),
        compile_model=bool(options.get("compile_model")),
        zero_shot=None if labels is None else ZeroShot.of(labels, options.get("template")),
    )


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster (default: $RAY_ADDRESS, else a Ray started here); False where this
    process was connected already. The workers get this package's code (``runtime_env``), so
    every node runs the same version as the driver."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    debug = os.environ.get("RESNET_CLI_DEBUG") == "1"
    if not debug:
        # Ray's C++ core logs internal notes to this process's stderr at error level (one
        # for every actor pool Ray Data starts); our stderr is for our summary and errors.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    options: dict[str, Any] = {
        "address": address,
        "runtime_env": runtime_env(),
        # Ray's notes at start-up (auth mode, address reuse) are not for our users.
        "logging_level": logging.INFO if debug else logging.ERROR,
        "log_to_driver": debug,
    }
    if address is None:
        options["include_dashboard"] = False
    try:
        with contextlib.nullcontext() if debug else _without_ray_log_level_note():
            ray.init(**options)
    except Exception as exc:
        where = f"at {address}" if address else "on this machine"
        raise ClusterError(
            f"could not start or join a Ray cluster {where}: {_last_line(exc)}"
        ) from exc
    return True


def runtime_env() -> dict[str, Any]:
    """What Ray sets up for every worker of the job: the whole ``resnet_cli`` package as the
    driver has it (the actors and tasks import its models, runtimes, inputs and output, not
    just this module), first on the workers' path, so a node without it installed, or with
    another version, runs the driver's."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"py_modules": [package]}


# What Ray's C++ core prints to stderr whenever RAY_BACKEND_LOG_LEVEL is set, at any level:
# "logging.cc:303: Set ray log level from environment variable RAY_BACKEND_LOG_LEVEL to 3".
_LOG_LEVEL_NOTE = b"Set ray log level from environment variable"


@contextlib.contextmanager
def _without_ray_log_level_note() -> Iterator[None]:
    """Hold what is written to file descriptor 2 (where Ray's C++ core writes, whatever
    sys.stderr is) while Ray starts, and pass it on without Ray's note on its log level."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held if _LOG_LEVEL_NOTE not in line)
            with contextlib.suppress(OSError), open(2, "wb", closefd=False) as stderr:
                stderr.write(kept)


def _check_reachable(address: str) -> None:
    """Fail in seconds when nothing listens at a HOST:PORT address: ray.init would retry for
    minutes."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise ClusterError(
            f"could not reach a Ray cluster at {address}: {exc.strerror or exc}; check "
            "--ray-address (the head node's HOST:PORT, port 6379 unless it was changed)"
        ) from None


@contextlib.contextmanager
def _data_context(ray: Any, quiet: bool) -> Iterator[None]:
    """Ray Data settings for one job: progress bars only for a person watching, every model
    actor started before work is handed out, and Ray's own logs kept to warnings."""
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.wait_for_min_actors_s)
    context.enable_progress_bars = not quiet and is_terminal(sys.stderr)
    context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    # Ray Data's progress module warns that its bars are off whenever they are.
    levels = {"ray.data": logging.ERROR if quiet else logging.WARNING}
    levels["ray.data._internal.progress"] = logging.ERROR
    loggers = {logging.getLogger(name): level for name, level in levels.items()}
    saved_levels = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        context.enable_progress_bars, context.wait_for_min_actors_s = saved
        for logger, level in saved_levels.items():
            logger.setLevel(level)


def _write(dataset: Any, folder: str, fmt: str) -> None:
    """Have Ray write the records: one shard per block, named by the job (never overwritten)."""
    if fmt == "parquet":
        dataset.write_parquet(folder, schema=record_schema(indexed=True))
        return
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesDatasink(BlockBasedFileDatasink):
        """Each block's ``line`` column, a record per line, as a .jsonl shard."""

        def write_block_to_file(self, block: Any, file: Any) -> None:
            lines = block.to_arrow().column("line").to_pylist()
            file.write("".join(f"{line}\n" for line in lines).encode("utf-8"))

    dataset.write_datasink(JsonLinesDatasink(folder, file_format="jsonl"))


def _job_failure(exc: BaseException, folder: str) -> ResnetCliError:
    """One line for a job Ray could not finish: a model actor's own error where it has one."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    for kind in (ModelLoadError, DeviceError):
        found = re.search(rf"{kind.__name__}: (.+)", text)
        if found:
            return kind(f"on a Ray node: {found.group(1).strip()}")
    if "Timed out while starting actors" in text or type(exc).__name__ == "GetTimeoutError":
        return ClusterError(
            f"the Ray cluster did not start the model actors within {ACTOR_START_TIMEOUT_S} s: "
            "it lacks the CPUs, GPUs or resources they ask for"
        )
    return ClusterError(
        f"the Ray job failed: {_last_line(text)}; the records finished so far are in "
        f"{folder}: run the command again with --resume to finish"
    )


def _last_line(error: BaseException | str) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _nodes_used(dataset: Any) -> int | None:
    """How many nodes ran the model actors, from Ray Data's stats of the finished job."""
    try:
        pending = [dataset.get_stats_summary()]
        while pending:
            summary = pending.pop()
            for operator in summary.operators_stats:
                if ModelActor.__name__ in operator.operator_name and operator.node_count:
                    return int(operator.node_count.count)
            pending.extend(summary.parents)
    except Exception:  # stats are a report, never a reason to fail a finished job
        return None
    return None


# Rows into and between the job's stages. Names and paths travel as bytes: a file name that is
# not UTF-8 must reach the task that opens it exactly as the driver found it.
_INPUT_COLUMNS = ("index", "name", "path", "url", "data", "error", "true_label")
_DECODED_COLUMNS = ("index", "name", "pixels", "height", "width", "error", "true_label")


def _input_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("name", pa.binary()),
            ("path", pa.binary()),
            ("url", pa.binary()),
            ("data", pa.large_binary()),
            ("error", pa.string()),
            ("true_label", pa.string()),
        ]
    )


def _decoded_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("name", pa.binary()),
            ("pixels", pa.large_binary()),  # uint8 RGB, height x width x 3
            ("height", pa.int32()),
            ("width", pa.int32()),
            ("error", pa.string()),
            ("true_label", pa.string()),
        ]
    )


def _to_bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _from_bytes(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "surrogatepass")


def _input_tables(
    sources: Iterable[Source], skip: Collection[str], rows_per_block: int
) -> Iterator[Any]:
    """The job's input rows, numbered in input order, as Arrow tables of ``rows_per_block``."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {name: [] for name in _INPUT_COLUMNS}
    for index, source in enumerate(sources):
        if output_key(source.name) in skip:
            continue
        error = source.error
        if error is None and source.image is not None:
            error = "an in-memory image cannot be sent to Ray: pass its path or encoded bytes"
        row = (
            index,
            _to_bytes(source.name),
            _to_bytes(source.path),
            _to_bytes(source.url),
            source.data,
            error,
            source.true_label,
        )
        for name, value in zip(_INPUT_COLUMNS, row, strict=True):
            columns[name].append(value)
        if len(columns["index"]) == rows_per_block:
            yield pa.table(columns, schema=_input_schema())
            columns = {name: [] for name in _INPUT_COLUMNS}
    if columns["index"]:
        yield pa.table(columns, schema=_input_schema())


def _decode_rows(
    batch: Any, resize: ResizeRule | None, max_pixels: int | None, offline: bool
) -> Any:
    """A decode task: each input row read and decoded by the local engine's ``decode_source``
    into RGB pixels, or its error. Nothing raised here can fail the job."""
    import numpy as np
    import pyarrow as pa

    from .local import decode_source

    columns: dict[str, list[Any]] = {name: [] for name in _DECODED_COLUMNS}
    for row in batch.to_pylist():
        source = Source(
            name=_from_bytes(row["name"]) or "",
            path=_from_bytes(row["path"]),
            url=_from_bytes(row["url"]),
            data=row["data"],
            error=row["error"],
            true_label=row["true_label"],
        )
        # Offline, URL inputs are not downloaded, as locally.
        slot = decode_source(source, resize=resize, max_pixels=max_pixels, offline=offline)
        pixels, height, width, error = None, None, None, slot.error
        if error is None:
            try:
                array = np.ascontiguousarray(np.asarray(slot.image, dtype=np.uint8))
                height, width, _ = array.shape  # decode_image gives RGB: 3 channels
                pixels = array.tobytes()
            except Exception as exc:
                pixels, height, width = None, None, None
                error = f"could not decode the image: {exc}"
        row_out = (row["index"], row["name"], pixels, height, width, error, slot.true_label)
        for name, value in zip(_DECODED_COLUMNS, row_out, strict=True):
            columns[name].append(value)
    return pa.table(columns, schema=_decoded_schema())
