"""Building what a plan says: the torch network made ready (``prepare``), the runtime it names
(``build_runtime``), and the ONNX export saved for a later run's torch-free start
(``save_export``).

The chooser (``select``) decides and imports no runtime; this module applies its decisions and
is the one place that imports the runtime modules to build them. Where a runtime cannot be
built, or does not give the eager model's logits, the run goes on in eager torch under a new
plan that says why (``Plan.fallen_back``): a slower run, never a failed one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .select import Plan


def prepare(network: Any, plan: Plan, device: torch.device) -> Any:
    """The torch network as ``plan`` computes with it, on ``device``: in eval mode, BatchNorm
    folded, weights in the plan's dtype (fp32 under autocast), channels_last, cuDNN's
    autotuning, and wrapped by torch.compile, each where the plan says so. A DeviceError where
    the network cannot be moved to the device."""
    import torch

    from ..errors import DeviceError
    from ..models.transformers import fold_batchnorm
    from .torch_eager import torch_dtype

    tune_backends(plan)
    network.eval()
    if plan.fold_batchnorm:
        fold_batchnorm(network)
    dtype = torch_dtype(plan.precision)
    if not plan.autocast and dtype != torch.float32:
        network.to(dtype)
    if plan.channels_last:
        network.to(memory_format=torch.channels_last)
    try:
        network.to(device)
    except Exception as exc:
        raise DeviceError(f"could not move the model to {device}: {exc}") from exc
    if plan.runtime == "torch.compile":
        network = torch.compile(network)
    return network


def tune_backends(plan: Plan) -> None:
    """Where the plan says so (CUDA, not --exact), let cuDNN time its convolution algorithms
    once per input shape and keep the fastest, as timm's inference.py does: batches here come
    in one or two shapes. Otherwise torch's defaults stay, which the pipeline runs with."""
    import torch

    if plan.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True


def build_runtime(
    plan: Plan, model: Any, sample: torch.Tensor, files: dict[str, str] | None
) -> tuple[Any, Plan]:
    """The runtime ``plan`` names, built from ``model`` and checked on ``sample`` (pixels in
    the model's input shape), with the plan as it ran: where the runtime cannot be built or
    does not give the eager model's logits, eager torch, and a new plan that says why.
    ``files``: the checkpoint's, to cache an ONNX export under."""
    from .base import checked
    from .torch_eager import EagerForward, torch_dtype

    dtype = torch_dtype(plan.precision)
    eager = EagerForward(model, dtype, plan.autocast)
    if plan.runtime in ("torch", "torch.compile"):
        return eager, plan
    built: tuple[Any, str] | None = None
    if plan.runtime == "cudagraph":
        from . import cuda_graph

        graphed = cuda_graph.build(model, eager, plan.batch_size, tuple(sample.shape[1:]))
        built = (graphed, plan.runtime) if graphed is not None else None
    elif plan.runtime == "onnxruntime":
        from .cache import build_cached

        built = build_cached(files, _checked_export(model, sample, plan.intra_op_threads))
    elif plan.runtime == "torchscript":
        from . import torchscript

        built = checked(torchscript.build, model, sample)
    elif plan.runtime == "onednn":
        from . import onednn

        built = checked(onednn.build(dtype), model, sample, autocast=dtype)
    elif plan.runtime == "openvino":
        from . import int8

        # The export, checked in fp32 against the eager model; INT8 comes with the run's
        # first images (Classifier.calibrate).
        pending = functools.partial(int8.build_pending, threads=plan.intra_op_threads)
        built = checked(pending, model, sample)
    if built is None:
        return eager, plan.fallen_back(f"{plan.runtime} could not be built, or disagreed")
    return built[0], plan


def save_export(model: Any, sample: torch.Tensor, files: dict[str, str], threads: int) -> bool:
    """Export ``model`` into the runtime cache for the next run's torch-free start (the plan's
    ``export_after``, and ``Classifier.save_quick_start`` for library callers); True if the
    cache holds it now. ``threads``: the checking session's (the plan's intra-op threads)."""
    from .cache import build_cached, cached_path
    from .onnx_runtime import enabled

    if not enabled():
        return False
    if cached_path(files) is None:
        build_cached(files, _checked_export(model, sample, threads))
    return cached_path(files) is not None


def _checked_export(model: Any, sample: torch.Tensor, threads: int) -> Any:
    """What ``cache.build_cached`` calls: the checked export, its session on ``threads``
    threads writing the graph it optimized to the path given (the cache entry)."""
    from .base import checked
    from .onnx_runtime import build_export

    def export(optimized_to: str | None) -> Any:
        build = functools.partial(build_export, threads=threads, optimized_to=optimized_to)
        return checked(build, model, sample)

    return export
