"""ONNX Runtime on the CPU: a faster home for the same fp32 arithmetic, and a start without
torch.

On a 2-core AVX2 machine ONNX Runtime runs ResNet-50 about 1.5x faster than torch (its MLAS
kernels against oneDNN), and importing it takes 0.2 s where importing torch takes 3-4 s. So:

- Where the plan (``select.choose_plan``) says so, the torch model is exported to ONNX before
  the first image and runs in an ONNX Runtime session for the whole run, kept only if its
  logits match the eager model's (``base.checked``).
- For a checkpoint on disk whose processor ``checkpoint.array_processor`` reproduces (a
  ResNet with microsoft/resnet-50's processor, timm's ImageNet models), that export is saved in
  a cache keyed by the checkpoint's files. Later runs of the same checkpoint load it with ONNX
  Runtime alone (``load_cached``): no torch, no transformers, and the processor in NumPy.
- What is saved is the graph as ONNX Runtime has optimized it for this CPU (BatchNorm folded,
  weights laid out for its blocked convolutions): loading it takes 0.05-0.1 s instead of the
  0.5 s that optimizing the plain export takes. Being specific to the CPU and the ONNX
  Runtime version, both are part of the cache key.

``RESNET_CLI_ONNX=0`` turns all of it off; ``RESNET_CLI_CACHE_DIR`` moves the cache (default:
``$XDG_CACHE_HOME/resnet-cli``, else ``~/.cache/resnet-cli``), which keeps the 8 most
recently used exports. --exact, GPUs, bf16/fp16 and --compile never use it. Only
``select`` imports this module.

An export is a program ONNX Runtime runs and whose answers are taken for the model's, so the
cache is not trusted blindly: its folders are made private to the user (0700), and beside
each export ``KEY.onnx`` is its record ``KEY.json`` (the key, the SHA-256 of the file and the
model's label count). An export is used only where its record vouches for its bytes and its
label count is the model's; one that fails is removed and rebuilt, and a line says so.
Pruning removes only exports with such a record: files the cache did not write stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import replaced_atomically
from ..models.checkpoint import array_processor, label_fields, read_json
from ..models.transformers import resize_rule
from ..text import printable
from .classifier import Classifier
from .hardware import cpu_identity, usable_cores

FORMAT = 2  # bump when what the cache holds changes meaning
KEEP_EXPORTS = 8  # the most recently used exports kept in the cache
INPUT, OUTPUT = "pixel_values", "logits"


def enabled() -> bool:
    return os.environ.get("RESNET_CLI_ONNX", "1") != "0" and all(
        importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx")
    )


def cache_dir() -> Path:
    configured = os.environ.get("RESNET_CLI_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "resnet-cli"


def cache_path(files: dict[str, str]) -> Path:
    """Where the export of the checkpoint made of ``files`` is kept. The key is each file's
    real path (a hub cache's blobs are named by their hash), size and modification time, so
    an edited or re-downloaded checkpoint never meets a stale export; and the CPU and ONNX
    Runtime it was optimized for (a cache in a home shared by different machines)."""
    identity: list[Any] = [FORMAT, hardware(), *checkpoint_identity(files)]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
    return cache_dir() / "onnx" / f"{key}.onnx"


def checkpoint_identity(files: dict[str, str]) -> list[list[Any]]:
    """Each checkpoint file's name, real path, size and modification time: what a cache
    entry made from them is keyed by."""
    identity = []
    for name in sorted(files):
        real = os.path.realpath(files[name])
        info = os.stat(real)
        identity.append([name, real, info.st_size, info.st_mtime_ns])
    return identity


def hardware() -> list[str]:
    """What an optimized graph is specific to: the ONNX Runtime version, and the CPU (its
    architecture, model and instruction-set flags, which pick MLAS's kernels and block size).
    The version is read from the package's metadata: importing ONNX Runtime (0.2 s) only to
    look up a cache entry would slow the start of every run that then computes in torch."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("onnxruntime")
    except PackageNotFoundError:  # another build of it (onnxruntime-gpu, ...): ask it
        release = import_onnxruntime().__version__
    return [release, *cpu_identity()]


def import_onnxruntime() -> Any:
    """ONNX Runtime, imported with its telemetry off. From 1.29 its Linux and macOS builds
    upload usage events and write a device id under ~/.cache unless told not to before it
    loads; a tool that promises --offline and no files beside its outputs tells it not to
    (a user's own setting of either variable wins)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ORT_TELEMETRY_DISABLED", "1")
    import onnxruntime

    with contextlib.suppress(Exception):  # the events API, where this build has it
        onnxruntime.disable_telemetry_events()
    return onnxruntime


class _NotKept(Exception):
    """The session was not built, or built without writing its graph: keep no file."""


def record_path(export: Path) -> Path:
    """Where the record of the cached export ``export`` is kept (``KEY.json``)."""
    return export.with_suffix(".json")


def label_count(files: dict[str, str]) -> int:
    """How many labels the checkpoint made of ``files`` has (its config's)."""
    return len(label_fields(read_json(files["config.json"]))["labels"])


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each private to the user (0700, whatever
    the umask): what is in the cache is code that runs."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):
            each.mkdir(mode=0o700)


def check_export(export: Path, labels: int) -> str:
    """Why the cached export ``export`` may not be used for a model of ``labels`` labels
    ('' where its record vouches for its bytes and that label count)."""
    try:
        record = json.loads(record_path(export).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "it has no record of its digest"
    except (OSError, ValueError):
        return "its record cannot be read"
    if not _is_record_of(record, export):
        return "its record is another export's"
    if record.get("labels") != labels:
        return f"it was made for {record.get('labels')} labels, the model has {labels}"
    if file_sha256(export) != record.get("sha256"):
        return "its bytes do not match their digest"
    return ""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in blocks (0.12 s for ResNet-50's 100 MB export)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _is_record_of(record: Any, export: Path) -> bool:
    return (
        isinstance(record, dict)
        and record.get("format") == FORMAT
        and record.get("key") == export.stem
        and isinstance(record.get("sha256"), str)
    )


def _write_record(export: Path, written: str, labels: int) -> None:
    """Write the record of the export that ``written`` holds (before it takes its name)."""
    digest = file_sha256(written)
    record = {"format": FORMAT, "key": export.stem, "sha256": digest, "labels": labels}
    with (
        replaced_atomically(record_path(export)) as temporary,
        open(temporary, "w", encoding="utf-8") as handle,
    ):
        json.dump(record, handle)


def build_cached(files: dict[str, str] | None, build: Callable[[str | None], Any]) -> Any:
    """``build(optimized_to)``, which builds an ONNX Runtime session that writes the graph it
    optimized to ``optimized_to`` (or None); what it returns. For a checkpoint on disk that
    graph is written beside the checkpoint's cache entry and becomes the entry when ``build``
    succeeds: the session this run uses is the one that fills the cache, with no second
    optimization. Where the cache cannot take it (no checkpoint files, a read-only home, a
    full disk), the next run only starts the slow way."""
    if files is None:  # nothing to key an export by
        return build(None)
    try:
        path = cache_path(files)
        labels = label_count(files)
        make_private_folders(path.parent)
    except Exception:
        return build(None)
    built = None
    with contextlib.suppress(_NotKept, OSError), replaced_atomically(path) as temporary:
        built = build(temporary)
        if built is None or not os.path.isfile(temporary):
            raise _NotKept
        _write_record(path, temporary, labels)
    if built is not None and path.is_file():
        prune(path.parent, keep=path)
    return built


def prune(folder: Path, keep: Path, most: int = KEEP_EXPORTS) -> None:
    """Delete the least recently used exports beyond ``most`` (each run touches the one it
    loads), so edited and abandoned checkpoints do not pile up 100 MB at a time. Only the
    cache's own exports count and go: those with their record (``KEY.json``); any other
    file in the folder stays."""
    exports = []
    for export in folder.glob("*.onnx"):
        try:
            record = json.loads(record_path(export).read_text(encoding="utf-8"))
            if _is_record_of(record, export):
                exports.append((export.stat().st_mtime, export))
        except (OSError, ValueError):
            continue
    exports.sort(reverse=True)
    for _, stale in [e for e in exports if e[1] != keep][max(0, most - 1) :]:
        _remove_export(stale)


def _remove_export(export: Path) -> None:
    """Remove a cached export and its record."""
    for path in (export, record_path(export)):
        with contextlib.suppress(OSError):
            path.unlink()


def session_threads() -> int:
    """Threads for a session: every core this process may use, or fewer where
    OMP_NUM_THREADS says so, as torch does (Ray sets it to an actor's CPUs)."""
    cores = usable_cores()
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        limit = 0
    return min(cores, limit) if limit > 0 else cores


def new_session(model: bytes | str, optimized_to: str | None = None) -> Any:
    """An ONNX Runtime CPU session on ``session_threads()`` threads; ``optimized_to``: also
    write the graph it optimized there, as ONNX (where that fails, the session is built
    without it)."""
    onnxruntime = import_onnxruntime()

    def options(saving_to: str | None) -> Any:
        chosen = onnxruntime.SessionOptions()
        chosen.intra_op_num_threads = session_threads()
        chosen.log_severity_level = 3  # not its warning that an optimized graph is CPU-specific
        if saving_to is not None:
            chosen.optimized_model_filepath = saving_to
            chosen.add_session_config_entry("session.save_model_format", "ONNX")
        return chosen

    providers = ["CPUExecutionProvider"]
    if optimized_to is not None:
        try:
            return onnxruntime.InferenceSession(model, options(optimized_to), providers=providers)
        except Exception:
            with contextlib.suppress(OSError):
                os.unlink(optimized_to)  # a partly written graph (a full disk)
    return onnxruntime.InferenceSession(model, options(None), providers=providers)


def export(model: Any, example: Any) -> bytes:
    """The torch model (pixels -> logits) as ONNX bytes, with a free batch size."""
    import io

    import torch

    from .base import logits_of

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return logits_of(self.inner(pixel_values=pixel_values))

    buffer = io.BytesIO()
    # In eval mode: the exporter restores the wrapper's own mode when it is done, recursively,
    # and a new module is in training mode (BatchNorm on batch statistics, dropout on).
    wrapper = Logits().eval()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries records, never exporter notes
        torch.onnx.export(
            wrapper,
            (example.contiguous(),),
            buffer,  # type: ignore[arg-type]  # a file object is accepted too
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()


def top_k(logits: Any, k: int, multi_label: bool) -> tuple[Any, Any]:
    """(scores, class ids) of the k best labels per row, best first, in NumPy: softmax (or
    sigmoid for multi-label models) in float32, as the torch path computes it."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float32)
    probabilities = scores_of(logits, multi_label)
    k = min(k, logits.shape[-1])
    # Each row's k best labels, found without sorting all of them: a full sort of 1000 labels
    # per image costs more than the rest of the engine's bookkeeping together.
    kth = -np.partition(-probabilities, k - 1, axis=-1)[:, k - 1 : k]
    keep = probabilities >= kth
    if (keep.sum(axis=-1) == k).all():
        candidates = np.nonzero(keep)[1].reshape(-1, k)  # in label order
    else:  # a tie at the k-th score (or NaN): which labels win is the full sort's business
        candidates = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    best = np.take_along_axis(probabilities, candidates, axis=-1)
    # Best first, equal scores in label order: what a stable sort of the whole row gives.
    ids = np.take_along_axis(candidates, np.argsort(-best, axis=-1, kind="stable"), axis=-1)
    return np.take_along_axis(probabilities, ids, axis=-1), ids


def scores_of(logits: Any, multi_label: bool) -> Any:
    """Softmax (sigmoid for multi-label models) of each row, in float32, in NumPy."""
    import numpy as np

    logits = np.asarray(logits, dtype=np.float32)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class _Cpu:
    """What the engine and the summary read of a device: its type and its name."""

    type = "cpu"
    index = None

    def __str__(self) -> str:
        return "cpu"


class OnnxForward:
    """An ONNX Runtime session called like the torch model: pixels in, logits out (torch
    tensors in a torch run, NumPy arrays in the torch-free start)."""

    def __init__(self, model: bytes | str, optimized_to: str | None = None):
        self.session = new_session(model, optimized_to)

    def __call__(self, pixel_values: Any) -> Any:
        import numpy as np

        if isinstance(pixel_values, np.ndarray):
            return self.session.run(None, {INPUT: pixel_values})[0]
        import torch

        array = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {INPUT: array})[0])


def build_export(model: Any, example: Any, optimized_to: str | None = None) -> tuple[Any, str]:
    """The torch model exported and loaded in an ONNX Runtime session (``optimized_to``:
    where the session writes the graph it optimized, for the cache)."""
    return OnnxForward(export(model, example), optimized_to), "onnxruntime"


@dataclass
class OnnxClassifier(Classifier):
    """A cached export run by ONNX Runtime (or a cached INT8 model run by OpenVINO), with
    NumPy preprocessing: no torch anywhere."""

    def preprocess(self, images: Sequence[Any]) -> Any:
        return self.processor(images)["pixel_values"]

    @property
    def preprocess_one(self) -> Callable[[Any], Any] | None:
        return self.processor.prepare

    def stack(self, pixels: list[Any]) -> Any:
        import numpy as np

        return np.stack(pixels)

    def predict(self, pixel_values: Any, top_k_: int) -> tuple[Any, Any]:
        assert self.forward is not None
        return top_k(self.forward(pixel_values), top_k_, self.multi_label)

    def save_quick_start(self) -> bool:
        return True  # it is one


def cached_path(files: dict[str, str] | None) -> Path | None:
    """The cache entry of the checkpoint made of ``files``, where there is one (and ONNX
    Runtime to run it); else None."""
    if files is None or not enabled():
        return None
    try:
        path = cache_path(files)
    except Exception:  # an unreadable checkpoint file, an onnxruntime that fails to import
        return None
    return path if path.is_file() else None


def load_cached(model: str, files: dict[str, str], plan: Any) -> OnnxClassifier | None:
    """The checkpoint's cached export as a torch-free classifier, as the plan says; None
    where the entry turns out unusable (the caller then loads with torch)."""
    path = cached_path(files)
    if path is None:
        return None

    def forward(labels: int) -> OnnxForward | None:
        try:
            problem = check_export(path, labels)
        except Exception:
            return None
        runtime = None
        if not problem:
            try:
                runtime = OnnxForward(str(path))
                width = runtime.session.get_outputs()[0].shape[-1]
                if isinstance(width, int) and width != labels:
                    problem = f"its graph gives {width} scores, the model has {labels} labels"
            except Exception:  # corrupt though its digest matches (written so by a failing disk)
                problem = "ONNX Runtime cannot load it"
        if problem:
            # Torch loads the model, and this run's export takes the entry's place.
            line = f"note: the runtime cache's export of {model} failed its check ({problem}): "
            print(printable(line + "it is rebuilt"), file=sys.stderr, flush=True)
            _remove_export(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the last to be pruned
        return runtime

    return array_classifier(model, files, plan, forward)


def array_classifier(
    model: str, files: dict[str, str], plan: Any, forward: Callable[[int], Any]
) -> OnnxClassifier | None:
    """A torch-free classifier of the checkpoint made of ``files``: ``forward(labels)`` builds
    its runtime from a cache entry (None: unusable), the processor is the one in NumPy."""
    try:
        config = read_json(files["config.json"])
        # The entry was checked against the torch model when it was made; what is needed
        # here is the processor's arithmetic without torch.
        processor = array_processor(files, config)
        if processor is None:
            return None
        labels = label_fields(config)["labels"]
    except Exception:
        return None
    runtime = forward(len(labels))
    if runtime is None:
        return None
    # No torch model, device or dtype: stand-ins where a torch classifier holds them.
    stand_ins: dict[str, Any] = {"model": None, "device": _Cpu(), "dtype": None}
    return OnnxClassifier(
        name=model,
        processor=processor,
        resize=resize_rule(processor),
        plan=plan,
        forward=runtime,
        files=files,
        **stand_ins,
        **label_fields(config),
    )
