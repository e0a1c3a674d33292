"""ResNet checkpoints without importing transformers: a quick start for the common case.

Importing transformers and its model-loading machinery costs about 5 s of a one-image run
(it pulls in torch.distributed, torchvision.models and torch._dynamo), more than the rest of
the run together. For a Hugging Face ``ResNetForImageClassification`` checkpoint in
safetensors with a ConvNeXt-style image processor (microsoft/resnet-50 and its fine-tunes),
this module builds the same network from ``config.json`` (same layers, same parameter names,
so the checkpoint loads as it is) and does the processor's resize, crop and normalization
itself. Anything else, or anything unexpected, returns None and the caller loads through
transformers as usual.

``--exact`` uses it too, with ``ExactConvNextProcessor``: transformers' own arithmetic for
these processors, operation for operation, where the fast path's Pillow resize would only be
close. Its output is tested equal to AutoImageProcessor's; importing transformers' image
processors (which import torchvision, and with it torch._dynamo) would cost 5-7 s a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    ArrayConvNextProcessor,
    centre_crop,
    local_files,
    num_labels,
    read_json,
    reproduces_exactly,
    supported,
)


def load_native(
    model: str, revision: str | None = None, exact: bool = False
) -> tuple[nn.Module, NativeConvNextProcessor, dict[str, Any], dict[str, str]] | None:
    """(network, processor, config, files) for a supported ResNet checkpoint that is on disk,
    or None. ``exact``: the processor computes exactly what transformers' does (None where
    that is not reproduced here).

    A hub id is looked up in the local cache only; a cache miss returns None (transformers
    then downloads it, and the next run starts quickly).
    """
    paths = local_files(model, revision)
    if paths is None:
        return None
    kind = ExactConvNextProcessor if exact else NativeConvNextProcessor
    try:
        config = read_json(paths["config.json"])
        processor_config = read_json(paths["preprocessor_config.json"])
        processor = kind.from_config(processor_config)
        if processor is None or not supported(config):
            return None
        network = build_resnet(config, paths["model.safetensors"])
    except Exception:
        return None  # anything unexpected: transformers knows more checkpoints than we do
    return network, processor, config, paths


# The network: the layers of transformers' modeling_resnet, with the same attribute names so
# that state-dict keys match (resnet.encoder.stages.0.layers.0.layer.1.convolution.weight ...).


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.normalization(self.convolution(x)))


class ShortCut(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)
        self.normalization = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalization(self.convolution(x))


class Residual(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) residual layer."""

    def __init__(
        self, cin: int, cout: int, stride: int, bottleneck: bool, downsample_first: bool = False
    ):
        super().__init__()
        needs_projection = cin != cout or stride != 1
        self.shortcut: nn.Module = (
            ShortCut(cin, cout, stride) if needs_projection else nn.Identity()
        )
        if bottleneck:
            mid = cout // 4
            self.layer = nn.Sequential(
                ConvLayer(cin, mid, kernel=1, stride=stride if downsample_first else 1),
                ConvLayer(mid, mid, stride=1 if downsample_first else stride),
                ConvLayer(mid, cout, kernel=1, relu=False),
            )
        else:
            self.layer = nn.Sequential(
                ConvLayer(cin, cout, stride=stride), ConvLayer(cout, cout, relu=False)
            )
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x) + self.shortcut(x))


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, depth: int, config: dict[str, Any]):
        super().__init__()
        bottleneck = config.get("layer_type", "bottleneck") == "bottleneck"
        first = bool(config.get("downsample_in_bottleneck", False)) and bottleneck
        self.layers = nn.Sequential(
            Residual(cin, cout, stride, bottleneck, first),
            *[Residual(cout, cout, 1, bottleneck) for _ in range(depth - 1)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Embeddings(nn.Module):
    def __init__(self, channels: int, size: int):
        super().__init__()
        self.embedder = ConvLayer(channels, size, kernel=7, stride=2)
        self.pooler = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooler(self.embedder(x))


class Encoder(nn.Module):
    def __init__(self, config: dict[str, Any]):
        super().__init__()
        sizes, depths = list(config["hidden_sizes"]), list(config["depths"])
        first_stride = 2 if config.get("downsample_in_first_stage", False) else 1
        inputs = [int(config.get("embedding_size", 64)), *sizes[:-1]]
        self.stages = nn.ModuleList(
            Stage(cin, cout, first_stride if i == 0 else 2, depth, config)
            for i, (cin, cout, depth) in enumerate(zip(inputs, sizes, depths, strict=True))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


class Backbone(nn.Module):
    def __init__(self, config: dict[str, Any]):
        super().__init__()
        channels, size = int(config.get("num_channels", 3)), int(config["embedding_size"])
        self.embedder = Embeddings(channels, size)
        self.encoder = Encoder(config)
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooler(self.encoder(self.embedder(x)))


class ResNetClassifier(nn.Module):
    """transformers' ResNetForImageClassification, inference only; returns {"logits": ...}."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.resnet = Backbone(config)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(int(config["hidden_sizes"][-1]), num_labels(config))
        )

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.classifier(self.resnet(pixel_values))}


def build_resnet(config: dict[str, Any], weights: str) -> ResNetClassifier:
    """The network for ``config`` with the checkpoint's weights; any key that does not match
    (other than BatchNorm's unused batch counters) is an error."""
    from safetensors.torch import load_file

    with torch.device("meta"):  # no time spent on a random init that is overwritten
        network = ResNetClassifier(config)
    state = load_file(weights)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"checkpoint keys differ: missing {missing[:3]}, extra {unexpected[:3]}")
    for key, value in expected.items():
        if key not in state:  # batch counters: not used in eval mode
            state[key] = torch.zeros_like(value, device="cpu")
        elif state[key].shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(state[key].shape)}, expected {value.shape}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    network.load_state_dict(state, assign=True)
    return network.eval()


class NativeConvNextProcessor(ArrayConvNextProcessor):
    """The ConvNeXt-style processor with torch output: PIL images are resized with Pillow,
    uint8 CHW tensors (decoded on a device) with torch, on that device, as torchvision does."""

    def __call__(self, images: Sequence[Any], **_: Any) -> dict[str, torch.Tensor]:
        """PIL images, or uint8 CHW tensors -> {"pixel_values": float tensor N x 3 x H x W}.

        Tensors of one size and layout (a GPU batch of camera JPEGs, mostly) are resized as one
        batch: on a GPU, per-image resizing cost the main thread more than the model did."""
        prepared: list[Any] = [None] * len(images)
        alike: dict[tuple[Any, ...], list[int]] = {}
        for i, image in enumerate(images):
            if isinstance(image, torch.Tensor) and image.dim() == 3:
                alike.setdefault((image.shape, image.stride(), image.device), []).append(i)
            else:
                prepared[i] = self._prepared(image)
        for indices in alike.values():
            if len(indices) == 1:
                prepared[indices[0]] = self._resized_tensor(images[indices[0]])
                continue
            stacked = torch.stack([images[i] for i in indices])
            for i, row in zip(indices, self._resized_tensor(stacked), strict=True):
                prepared[i] = row
        return {"pixel_values": self.normalize(torch.stack(prepared)).contiguous()}

    def _prepared(self, image: Any) -> torch.Tensor:
        """One image resized and cropped to the model's input: uint8 CHW."""
        if isinstance(image, torch.Tensor):
            return self._resized_tensor(image)
        return torch.from_numpy(self.resized(image).copy())

    def _resized_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """A uint8 CHW image, or N x C x H x W images of one size, resized and cropped."""
        rule = self.rule
        height, width = image.shape[-2:]
        target_width, target_height = rule.target(int(width), int(height))
        if (target_height, target_width) != (height, width):
            image = _resized_like_torchvision(
                image, (target_height, target_width), self.resample == BICUBIC
            )
        return centre_crop(image, self.size["shortest_edge"]) if rule.crops else image


class ExactConvNextProcessor(NativeConvNextProcessor):
    """What transformers 5's ConvNextImageProcessor (the torchvision backend, which the
    pipeline uses) computes, step for step: the RGB image as a uint8 CHW tensor, resized as
    torchvision resizes it, transformers' centre crop, then its fused rescale and normalize.
    Only for bicubic resizing with rescale and normalize, the checkpoints this is tested on;
    ``from_config`` returns None for anything else, which then goes through transformers."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        made = super().from_config(config)
        # Other filters resize uint8 in other ways; crop_pct > 1 pads.
        return made if made is not None and reproduces_exactly(made) else None

    def _prepared(self, image: Any) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            return self._resized_tensor(image)
        import numpy as np

        if image.mode != "RGB":
            image = image.convert("RGB")
        # pil_to_tensor's layout: a CHW view of the HWC pixels
        return self._resized_tensor(torch.from_numpy(np.array(image)).permute(2, 0, 1))


def _resized_like_torchvision(
    image: torch.Tensor, size: tuple[int, int], bicubic: bool
) -> torch.Tensor:
    """A uint8 CHW image (or a N x C x H x W batch of them) resized as torchvision's resize
    does it (antialiased): bicubic on the CPU interpolates the uint8 pixels themselves;
    otherwise through float, rounded and clamped."""
    single = image.dim() == 3
    batch = image[None] if single else image
    if (
        single
        and batch.is_contiguous(memory_format=torch.channels_last)
        and batch.numel() != batch.stride(0)
    ):
        # torchvision's restride of a 1 x C x H x W channels-last image, to keep its layout
        strides = list(batch.stride())
        strides[0] = batch.numel()
        batch = batch.as_strided(batch.shape, strides)
    mode = "bicubic" if bicubic else "bilinear"
    if bicubic and image.device.type == "cpu":
        resized = torch.nn.functional.interpolate(
            batch, size=size, mode=mode, align_corners=False, antialias=True
        )
        return resized[0] if single else resized
    resized = torch.nn.functional.interpolate(
        batch.float(), size=size, mode=mode, antialias=True, align_corners=False
    )
    resized = resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized[0] if single else resized


BICUBIC = 3  # PIL.Image.Resampling.BICUBIC, as preprocessor_config.json stores it
