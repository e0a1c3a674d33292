"""TorchScript with oneDNN fusions: the fp32 CPU runtime where ONNX Runtime is not there."""

from __future__ import annotations

from typing import Any

import torch


def build(model: Any, example: torch.Tensor) -> tuple[Any, str]:
    traced = torch.jit.trace(model, (example,), strict=False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced)), "torchscript"
