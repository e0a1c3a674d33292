"""ONNX Runtime on the CPU: a faster home for the same fp32 arithmetic, and a start without
torch.

On a 2-core AVX2 machine ONNX Runtime runs ResNet-50 about 1.5x faster than torch (its MLAS
kernels against oneDNN), and importing it takes 0.2 s where importing torch takes 3-4 s. So:

- Where the plan (``select.choose_plan``) says so, the torch model is exported to ONNX before
  the first image and runs in an ONNX Runtime session for the whole run, on the plan's
  ``intra_op_threads``, kept only if its logits match the eager model's (``base.checked``).
- For a checkpoint on disk whose processor ``checkpoint.array_processor`` reproduces, the
  graph that session optimized is kept in the runtime cache (``cache``), and later runs of
  the same checkpoint load it with ONNX Runtime alone (``quick_start``): no torch, no
  transformers, and the processor in NumPy.

``RESNET_CLI_ONNX=0`` turns all of it off. --exact, GPUs, bf16/fp16 and --compile never use it.
This module is the runtime only: the session, the export, and NumPy's top-k.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from typing import Any

INPUT, OUTPUT = "pixel_values", "logits"


def enabled() -> bool:
    return os.environ.get("RESNET_CLI_ONNX", "1") != "0" and all(
        importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx")
    )


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


def new_session(model: bytes | str, threads: int, optimized_to: str | None = None) -> Any:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (the plan's
    ``intra_op_threads``); ``optimized_to``: also write the graph it optimized there, as ONNX
    (where that fails, the session is built without it)."""
    onnxruntime = import_onnxruntime()

    def options(saving_to: str | None) -> Any:
        chosen = onnxruntime.SessionOptions()
        chosen.intra_op_num_threads = threads
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


class OnnxForward:
    """An ONNX Runtime session called like the torch model: pixels in, logits out (torch
    tensors in a torch run, NumPy arrays in the torch-free start)."""

    def __init__(self, model: bytes | str, threads: int, optimized_to: str | None = None):
        self.session = new_session(model, threads, optimized_to)

    def __call__(self, pixel_values: Any) -> Any:
        import numpy as np

        if isinstance(pixel_values, np.ndarray):
            return self.session.run(None, {INPUT: pixel_values})[0]
        import torch

        array = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {INPUT: array})[0])


def build_export(
    model: Any, example: Any, threads: int, optimized_to: str | None = None
) -> tuple[Any, str]:
    """The torch model exported and loaded in an ONNX Runtime session on ``threads`` threads
    (``optimized_to``: where the session writes the graph it optimized, for the cache)."""
    return OnnxForward(export(model, example), threads, optimized_to), "onnxruntime"
