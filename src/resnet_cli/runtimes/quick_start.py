"""The torch-free start: a checkpoint an earlier run exported (ONNX) or quantized (INT8) loads
from the runtime cache with ONNX Runtime or OpenVINO alone, its processor in NumPy: 0.2 s
where importing torch takes 3-4 s.

``load`` is what ``classifier.load_classifier`` calls where the plan's network is ``onnx
cache`` or ``int8 cache``; None where the entry turns out unusable (the run then loads the
model with torch, and a cached export that failed its check is rebuilt, a line saying so).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from ..models.checkpoint import array_processor, label_fields, read_json
from ..models.transformers import resize_rule
from ..text import printable
from .loaded import ArrayClassifier, Cpu
from .select import Plan


def load(model: str, files: dict[str, str], plan: Plan, verdict: Any) -> ArrayClassifier | None:
    """The torch-free classifier from the cache entry ``plan`` names (``verdict``: the INT8
    guard's, which the classifier carries); None where the entry turns out unusable."""
    if plan.network == "onnx cache":
        return _load_export(model, files, plan)
    from .int8 import load_cached_forward

    threads = plan.intra_op_threads
    cached = _array_classifier(model, files, plan, lambda _: load_cached_forward(files, threads))
    return None if cached is None else dataclasses.replace(cached, int8=verdict)


def _load_export(model: str, files: dict[str, str], plan: Plan) -> ArrayClassifier | None:
    """The checkpoint's cached export, once its record vouches for it."""
    from .cache import EXPORTS, cached_path, check_export
    from .onnx_runtime import OnnxForward

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
                runtime = OnnxForward(str(path), plan.intra_op_threads)
                width = runtime.session.get_outputs()[0].shape[-1]
                if isinstance(width, int) and width != labels:
                    problem = f"its graph gives {width} scores, the model has {labels} labels"
            except Exception:  # corrupt though its digest matches (written so by a failing disk)
                problem = "ONNX Runtime cannot load it"
        if problem:
            # Torch loads the model, and this run's export takes the entry's place.
            line = f"note: the runtime cache's export of {model} failed its check ({problem}): "
            print(printable(line + "it is rebuilt"), file=sys.stderr, flush=True)
            EXPORTS.remove(path)
            return None
        EXPORTS.touch(path)  # recently used: the last to be pruned
        return runtime

    return _array_classifier(model, files, plan, forward)


def _array_classifier(
    model: str, files: dict[str, str], plan: Plan, forward: Callable[[int], Any]
) -> ArrayClassifier | None:
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
    stand_ins: dict[str, Any] = {"model": None, "device": Cpu(), "dtype": None}
    return ArrayClassifier(
        name=model,
        processor=processor,
        resize=resize_rule(processor),
        plan=plan,
        forward=runtime,
        files=files,
        **stand_ins,
        **label_fields(config),
    )
