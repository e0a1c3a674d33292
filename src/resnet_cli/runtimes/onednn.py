"""A folded ResNet on the CPU through oneDNN's fused convolutions, weights packed once.

Eager torch, for every convolution of every batch, reorders the weights into oneDNN's blocked
layout, and then runs the bias, the ReLU and the residual sum as passes of their own over the
activations. Here each weight is reordered once, and each convolution with its bias and ReLU,
or with its bias, the residual sum and the ReLU at the end of a residual layer, is one oneDNN
primitive: what torch.compile's inductor makes of a ResNet on the CPU (its mkldnn fusion
passes, which call these same ops), without its 15-20 s compile or a C++ compiler. ResNet-50
in bf16 on 2 AMX cores: about 200 images/s at batch 8, against 70-85 for eager autocast.

The ops (``torch.ops.mkldnn._convolution_pointwise``) are torch's own but not a public API:
the caller checks the logits against the eager model, and keeps the eager model on any
failure (a torch without them, a network of another shape). Whether oneDNN has kernels for
the dtype on this CPU is the plan's question (``hardware.Hardware.onednn``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.native import ConvLayer, Residual, ResNetClassifier, ShortCut

_ops = torch.ops.mkldnn


class _Conv:
    """One convolution with its folded BatchNorm as bias, weights in ``dtype``."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype):
        if conv.bias is None or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("a convolution without folded BatchNorm, or with odd padding")
        self.weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        self.bias = conv.bias.detach().to(dtype)
        self.geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self._packed: torch.Tensor | None = None

    def packed(self, x: torch.Tensor) -> torch.Tensor:
        # Packed at the first call, for its input's shape; other batch sizes run on it as fast.
        if self._packed is None:
            self._packed = _ops._reorder_convolution_weight(
                self.weight, *self.geometry, list(x.shape)
            )
            del self.weight  # the plain copy is not needed any more
        return self._packed

    def __call__(self, x: torch.Tensor, relu: bool) -> torch.Tensor:
        attr = "relu" if relu else "none"
        return _ops._convolution_pointwise(
            x, self.packed(x), self.bias, *self.geometry, attr, [None], ""
        )

    def add_relu(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """relu(conv(x) + residual), written into ``residual``."""
        return _ops._convolution_pointwise_.binary(
            residual, x, self.packed(x), self.bias, *self.geometry, "add", 1.0, "relu", [None], ""
        )


def _conv_layer(layer: Any, dtype: torch.dtype, relu: bool) -> _Conv:
    folded = isinstance(getattr(layer, "normalization", None), nn.Identity)
    if not isinstance(layer, ConvLayer | ShortCut) or not folded:
        raise ValueError("a convolution layer whose BatchNorm is not folded")
    has_relu = isinstance(getattr(layer, "activation", None), nn.ReLU)
    if has_relu != relu:
        raise ValueError("a convolution layer with an unexpected activation")
    return _Conv(layer.convolution, dtype)


class PackedResNet:
    """``network`` (a native ResNet with BatchNorm folded) as a callable: pixels -> logits,
    computed in ``dtype`` as CPU autocast would: convolutions, the classifier and so the
    activations between them in it, accumulating in fp32 inside oneDNN."""

    def __init__(self, network: nn.Module, dtype: torch.dtype):
        if not isinstance(network, ResNetClassifier):
            raise ValueError("not a native ResNet")
        stem = network.resnet.embedder
        self.dtype = dtype
        self.stem = _conv_layer(stem.embedder, dtype, relu=True)
        self.max_pool = stem.pooler
        self.layers: list[tuple[list[_Conv], _Conv | None]] = []
        # Residual layers in the order they run: the order the network registered them in.
        for residual in [m for m in network.modules() if isinstance(m, Residual)]:
            *inner, last = list(residual.layer.children())
            convs = [_conv_layer(layer, dtype, relu=True) for layer in inner]
            convs.append(_conv_layer(last, dtype, relu=False))
            projection = residual.shortcut
            shortcut = None if isinstance(projection, nn.Identity) else projection
            self.layers.append(
                (convs, None if shortcut is None else _conv_layer(shortcut, dtype, False))
            )
        flatten, linear = network.classifier
        if not isinstance(flatten, nn.Flatten) or not isinstance(linear, nn.Linear):
            raise ValueError("an unexpected classifier")
        self.linear_weight = linear.weight.detach().to(dtype)
        self.linear_bias = linear.bias.detach().to(dtype)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = self.max_pool(self.stem(x, relu=True))
        for convs, shortcut in self.layers:
            h = x
            for conv in convs[:-1]:
                h = conv(h, relu=True)
            # x is this network's own activation, never the caller's pixels: safe to overwrite.
            skip = x if shortcut is None else shortcut(x, relu=False)
            x = convs[-1].add_relu(h, skip)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.linear(x, self.linear_weight, self.linear_bias)


def build(dtype: torch.dtype) -> Any:
    """A builder (``base.Builder``) of ``PackedResNet`` in ``dtype``."""

    def packed(model: Any, example: torch.Tensor) -> tuple[Any, str]:
        return PackedResNet(model, dtype), "onednn"

    return packed
