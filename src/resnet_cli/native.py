"""ResNet checkpoints without importing transformers: a quick start for the common case.

Importing transformers and its model-loading machinery costs about 5 s of a one-image run
(it pulls in torch.distributed, torchvision.models and torch._dynamo), more than the rest of
the run together. For a Hugging Face ``ResNetForImageClassification`` checkpoint in
safetensors with a ConvNeXt-style image processor (microsoft/resnet-50 and its fine-tunes),
this module builds the same network from ``config.json`` (same layers, same parameter names,
so the checkpoint loads as it is) and does the processor's resize, crop and normalization
itself. Anything else, or anything unexpected, returns None and the caller loads through
transformers as usual. ``--exact`` always uses transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .decode import ResizeRule

PROCESSORS = ("ConvNextImageProcessor", "ConvNextImageProcessorFast")
FILES = ("config.json", "preprocessor_config.json", "model.safetensors")


def load_native(
    model: str, revision: str | None = None
) -> tuple[nn.Module, NativeConvNextProcessor, dict[str, Any]] | None:
    """(network, processor, config) for a supported ResNet checkpoint that is on disk, or None.

    A hub id is looked up in the local cache only; a cache miss returns None (transformers
    then downloads it, and the next run starts quickly).
    """
    if os.environ.get("RESNET_CLI_NATIVE", "1") == "0":
        return None
    paths = _local_files(model, revision)
    if paths is None:
        return None
    try:
        with open(paths["config.json"], encoding="utf-8") as handle:
            config = json.load(handle)
        with open(paths["preprocessor_config.json"], encoding="utf-8") as handle:
            processor_config = json.load(handle)
        processor = NativeConvNextProcessor.from_config(processor_config)
        if processor is None or not supported(config):
            return None
        network = build_resnet(config, paths["model.safetensors"])
    except Exception:
        return None  # anything unexpected: transformers knows more checkpoints than we do
    return network, processor, config


def supported(config: dict[str, Any]) -> bool:
    """Whether ``config`` describes a ResNet classifier this module builds exactly."""
    return (
        config.get("model_type") == "resnet"
        and config.get("architectures") == ["ResNetForImageClassification"]
        and config.get("hidden_act", "relu") == "relu"
        and config.get("layer_type", "bottleneck") in ("bottleneck", "basic")
        and len(config.get("depths", [])) == len(config.get("hidden_sizes", [])) > 0
        and int(config.get("num_channels", 3)) == 3
        and _num_labels(config) > 0
    )


def labels_of(config: dict[str, Any]) -> list[str]:
    """Label names by class id, from ``id2label`` (LABEL_i where a name is missing)."""
    names = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    return [names.get(i, f"LABEL_{i}") for i in range(_num_labels(config))]


def _num_labels(config: dict[str, Any]) -> int:
    return int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)


def _local_files(model: str, revision: str | None) -> dict[str, str] | None:
    if os.path.isdir(model):
        paths = {name: os.path.join(model, name) for name in FILES}
        return paths if all(os.path.isfile(p) for p in paths.values()) else None
    from huggingface_hub import try_to_load_from_cache

    found: dict[str, str] = {}
    for name in FILES:
        try:
            path = try_to_load_from_cache(model, name, revision=revision)
        except Exception:
            return None
        if not isinstance(path, str):
            return None
        found[name] = path
    return found


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
            nn.Flatten(), nn.Linear(int(config["hidden_sizes"][-1]), _num_labels(config))
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


@dataclass(frozen=True)
class NativeConvNextProcessor:
    """A ConvNeXt-style image processor (microsoft/resnet-50's): resize the shorter side to
    shortest_edge / crop_pct and centre-crop shortest_edge (below 384), or warp to a square;
    then rescale and normalize. Its attributes are the processor's, so ``resize_rule`` reads
    it like the real one."""

    size: dict[str, int]
    crop_pct: float
    resample: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    rescale_factor: float
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NativeConvNextProcessor | None:
        """The processor a preprocessor_config.json describes, or None if it is not one this
        class reproduces."""
        kind = config.get("image_processor_type")
        size = config.get("size")
        if kind not in PROCESSORS or not isinstance(size, dict) or set(size) != {"shortest_edge"}:
            return None
        if not config.get("do_resize", True) or config.get("do_pad"):
            return None
        mean, std = config.get("image_mean"), config.get("image_std")
        if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
            return None
        return cls(
            size={"shortest_edge": int(size["shortest_edge"])},
            crop_pct=float(config.get("crop_pct") or 224 / 256),
            resample=int(config.get("resample", 3)),
            image_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            image_std=(float(std[0]), float(std[1]), float(std[2])),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            do_rescale=bool(config.get("do_rescale", True)),
            do_normalize=bool(config.get("do_normalize", True)),
        )

    def __call__(self, images: Sequence[Any], **_: Any) -> dict[str, torch.Tensor]:
        """PIL images, or uint8 CHW tensors (decoded on a device) -> {"pixel_values": float
        tensor N x 3 x H x W}, like the processor."""
        edge = self.size["shortest_edge"]
        rule = ResizeRule.convnext(edge, self.crop_pct)
        prepared = [self._resized(image, rule) for image in images]
        if rule.crops:
            prepared = [_centre_crop(image, edge) for image in prepared]
        pixels = torch.stack(prepared).float()
        if self.do_rescale:
            pixels = pixels * self.rescale_factor
        if self.do_normalize:
            mean = torch.tensor(self.image_mean, device=pixels.device).view(1, 3, 1, 1)
            std = torch.tensor(self.image_std, device=pixels.device).view(1, 3, 1, 1)
            pixels = (pixels - mean) / std
        return {"pixel_values": pixels.contiguous()}

    def _resized(self, image: Any, rule: ResizeRule) -> torch.Tensor:
        """One image resized to the rule's target, as a uint8 CHW tensor."""
        import numpy as np
        from PIL import Image

        if isinstance(image, torch.Tensor):
            height, width = image.shape[-2:]
            target_width, target_height = rule.target(int(width), int(height))
            if (target_height, target_width) == (height, width):
                return image
            # What torchvision's resize does to uint8 images: antialiased, rounded, clamped.
            resized = torch.nn.functional.interpolate(
                image[None].float(),
                size=(target_height, target_width),
                mode="bicubic" if self.resample == 3 else "bilinear",
                antialias=True,
                align_corners=False,
            )
            return resized[0].round_().clamp_(0, 255).to(torch.uint8)
        if image.mode != "RGB":
            image = image.convert("RGB")
        target = rule.target(*image.size)
        if image.size != target:
            image = image.resize(target, Image.Resampling(self.resample))
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def _centre_crop(image: torch.Tensor, edge: int) -> torch.Tensor:
    # torchvision's anchor, which the processor uses: rounded half to even.
    height, width = image.shape[-2:]
    top, left = round((height - edge) / 2.0), round((width - edge) / 2.0)
    return image[:, top : top + edge, left : left + edge]
