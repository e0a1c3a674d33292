"""Eager torch: the model as transformers (or ``native``) built it, in fp32, in half
weights on an accelerator, or under CPU autocast to bf16/fp16."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .base import logits_of

# int8: the torch model stays in fp32; OpenVINO runs the quantized copy (runtimes/int8.py).
DTYPES = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": torch.float32,
}


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a plan's precision (fp32, bf16, fp16)."""
    return DTYPES[precision]


class EagerForward:
    """The model itself: pixels cast to its dtype, or left in fp32 under ``autocast``."""

    def __init__(self, model: Any, dtype: torch.dtype, autocast: bool):
        self.model, self.dtype, self.autocast = model, dtype, autocast

    def context(self, device_type: str) -> Any:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.dtype)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.autocast:
            with self.context(pixel_values.device.type):
                return logits_of(self.model(pixel_values=pixel_values))
        return logits_of(self.model(pixel_values=pixel_values.to(self.dtype)))

    def inputs(self, tensors: dict[str, torch.Tensor], device_type: str) -> torch.Tensor:
        """Logits for a processor's output that is not a plain image batch (``ModelInputs``)."""
        with self.context(device_type):
            return logits_of(self.model(**tensors))
