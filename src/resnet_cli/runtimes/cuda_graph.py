"""The forward pass on a CUDA device as one captured CUDA graph per batch.

Eager torch launches each layer's kernels from Python: ResNet-50 is about 160 launches a
batch, and at each one the main thread gives up the GIL and must win it back from the decode
threads. On an H200 that, not the GPU, set the pace (1,135 images/s through the library with
every stage alone above 13,000; benchmarks/results-gpu-h200-20261204.md). A graph captured
once for the plan's batch shape replays the whole forward pass in one call; any other shape
(the last, shorter batch) runs eagerly. The graph is kept only if it gives the eager model's
logits on a batch of that shape (``build``).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import ModelChangedError, unchanged
from .torch_eager import EagerForward


class GraphedForward:
    """``eager`` replayed from a CUDA graph for inputs shaped like ``sample`` (same shape,
    strides, dtype and device), eagerly for any other."""

    def __init__(self, eager: EagerForward, sample: torch.Tensor, warmups: int = 3):
        self.eager = eager
        self.static_in = sample.clone(memory_format=torch.preserve_format)
        side = torch.cuda.Stream(sample.device)
        side.wait_stream(torch.cuda.current_stream(sample.device))
        with torch.cuda.stream(side):  # cudnn's autotuning and lazy inits, outside the graph
            for _ in range(warmups):
                eager(self.static_in)
        torch.cuda.current_stream(sample.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = eager(self.static_in)
        self.key = _key(sample)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if _key(pixel_values) != self.key:
            return self.eager(pixel_values)
        self.static_in.copy_(pixel_values)
        self.graph.replay()
        # A copy: the next replay writes into static_out while this batch's results may still
        # be on their way to the host.
        return self.static_out.clone()


def _key(tensor: torch.Tensor) -> tuple[Any, ...]:
    return (tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor.device)


def build(
    model: Any, eager: EagerForward, batch_size: int, input_shape: tuple[int, ...]
) -> GraphedForward | None:
    """The graphed forward pass for batches of ``batch_size`` on the model's device, checked
    against ``eager`` on random pixels of that shape; None where it cannot be captured or
    disagrees (the run then keeps eager torch)."""
    device = next(model.parameters()).device
    if device.type != "cuda":
        return None
    try:
        with torch.inference_mode(), unchanged(model):
            sample = torch.randn(batch_size, *input_shape, device=device)
            if sample.dim() == 4:
                sample = sample.contiguous(memory_format=torch.channels_last)
            graphed = GraphedForward(eager, sample)
            expected = eager(sample).float()
            got = graphed(sample).float()
            scale = max(1.0, float(expected.abs().max()))
            if torch.allclose(got, expected, rtol=0, atol=1e-3 * scale):
                return graphed
    except ModelChangedError:
        raise
    except Exception:  # capture refused (an op that syncs, too little memory): stay eager
        pass
    return None
