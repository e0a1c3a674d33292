"""What every runtime is, and the check that keeps one only if it is right.

A runtime is a callable from a batch of normalized pixels to logits, built once from the eager
model before the first image. ``checked`` builds it, keeps it only if it gives the eager
model's logits, and makes sure building it changed nothing in the model (``unchanged``).
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class Runtime(Protocol):
    """Pixels (N x 3 x H x W, on the model's device) -> logits (N x labels)."""

    def __call__(self, pixel_values: Any) -> Any: ...


Builder = Callable[[Any, "torch.Tensor"], tuple[Runtime, str]]


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model's output: a ModelOutput or dict (eager), a tuple (traced)."""
    if isinstance(output, dict):
        return output["logits"]
    return output[0] if isinstance(output, tuple | list) else output


def checked(
    build: Builder, model: Any, sample: torch.Tensor, autocast: torch.dtype | None = None
) -> tuple[Runtime, str] | None:
    """``build(model, one image)``, kept only if it gives the eager model's logits on two
    images (so no runtime may have baked in the batch size); None on any failure.
    ``autocast``: the eager model runs under CPU autocast to this dtype. The reference logits
    are computed before the build, and the build never changes the model (``unchanged``)."""
    import torch

    probe = sample[:2] if len(sample) > 1 else sample
    reduced = (
        torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
    )
    # A broken trace gives other logits altogether; bf16's own rounding stays far inside 3%.
    tolerance = 1e-3 if autocast is None else 3e-2
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # exporters' deprecation and tracer notes
            with reduced:
                expected = logits_of(model(pixel_values=probe)).float()
            with unchanged(model):
                built, name = build(model, sample[:1])
            scale = max(1.0, float(expected.abs().max()))
            got = torch.as_tensor(logits_of(built(probe))).float()
            if torch.allclose(got, expected, rtol=0, atol=tolerance * scale):
                return built, name
    except ModelChangedError:
        raise
    except Exception:
        pass
    return None


class ModelChangedError(RuntimeError):
    """A runtime build wrote into the model it was built from (a bug: never caught)."""


@contextlib.contextmanager
def unchanged(model: Any) -> Iterator[None]:
    """Build a runtime from ``model`` without changing it: every module's train/eval mode is
    put back as it was (exporters wrap the model in a new module, in training mode, and
    restore *that* mode recursively), and a parameter or buffer written to in between (as
    BatchNorm does to its statistics in training mode) is a ``ModelChangedError``."""
    modes = [(module, module.training) for module in model.modules()]
    versions = _versions(model)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        if _versions(model) != versions:
            raise ModelChangedError("building a faster runtime changed the model's weights")


def _versions(model: Any) -> list[tuple[str, int, int]]:
    """Each parameter and buffer's identity and in-place write counter."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return [(name, tensor.data_ptr(), _version(tensor)) for name, tensor in tensors]


def _version(tensor: Any) -> int:
    try:
        return int(tensor._version)
    except RuntimeError:  # an inference tensor keeps no counter, and cannot be written to
        return -1
