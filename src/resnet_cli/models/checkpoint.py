"""A checkpoint on disk, read without torch: its files, its labels, and its image
processor's arithmetic in NumPy.

Both quick paths start here: ``native`` builds a ResNet in torch from these files, and
``runtime`` runs a cached ONNX export of a checkpoint (a ResNet, or any model whose processor
``ArrayConvNextProcessor`` reproduces, such as timm's ImageNet models) without importing torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_ZERO_SHOT_MODEL
from ..errors import UsageError
from ..inputs.decode import ResizeRule

PROCESSORS = ("ConvNextImageProcessor", "ConvNextImageProcessorFast")
FILES = ("config.json", "model.safetensors")
# timm checkpoints keep their preprocessing in config.json ("pretrained_cfg") and have none.
OPTIONAL_FILES = ("preprocessor_config.json",)


def local_files(model: str, revision: str | None) -> dict[str, str] | None:
    """The checkpoint's files (FILES, and OPTIONAL_FILES where present) in a local folder or
    the hub cache, or None if one of FILES is missing. Never downloads."""
    if os.environ.get("RESNET_CLI_NATIVE", "1") == "0":
        return None
    found: dict[str, str] = {}
    for name in (*FILES, *OPTIONAL_FILES):
        path = _local_file(model, revision, name)
        if path is not None:
            found[name] = path
        elif name in FILES:
            return None
    return found


def local_config(model: str, revision: str | None) -> dict[str, Any] | None:
    """The checkpoint's config.json, read from a local folder or the hub cache; None where
    it is not there (or unreadable: loading it will say why). Never downloads."""
    path = _local_file(model, revision, "config.json")
    if path is None:
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _local_file(model: str, revision: str | None, name: str) -> str | None:
    if os.path.isdir(model):
        path = os.path.join(model, name)
        return path if os.path.isfile(path) else None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, name, revision=revision)
    except Exception:
        return None
    return cached if isinstance(cached, str) else None


def read_json(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        loaded = json.load(handle)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a JSON object")
    return loaded


def supported(config: dict[str, Any]) -> bool:
    """Whether ``config`` describes a ResNet classifier that ``native`` builds exactly."""
    return (
        config.get("model_type") == "resnet"
        and config.get("architectures") == ["ResNetForImageClassification"]
        and config.get("hidden_act", "relu") == "relu"
        and config.get("layer_type", "bottleneck") in ("bottleneck", "basic")
        and len(config.get("depths", [])) == len(config.get("hidden_sizes", [])) > 0
        and int(config.get("num_channels", 3)) == 3
        and num_labels(config) > 0
    )


def labels_of(config: dict[str, Any]) -> list[str]:
    """Label names by class id, from ``id2label``, or timm's ``label_names`` list (LABEL_i
    where a name is missing)."""
    names = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    if not names and isinstance(config.get("label_names"), list):
        names = dict(enumerate(str(name) for name in config["label_names"]))
    return [names.get(i, f"LABEL_{i}") for i in range(num_labels(config))]


def num_labels(config: dict[str, Any]) -> int:
    return int(
        config.get("num_labels")
        or config.get("num_classes")  # timm's name for it
        or len(config.get("id2label") or config.get("label_names") or ())
        or 2
    )


def reproduces_exactly(processor: ArrayConvNextProcessor) -> bool:
    """Whether resnet_cli computes this processor's arithmetic to the bit (``native``'s exact
    processor): a bicubic resize, a crop that does not pad, rescale and normalize."""
    return (
        processor.resample == 3
        and processor.crop_pct <= 1
        and processor.do_rescale
        and processor.do_normalize
    )


def array_processor(files: dict[str, str], config: dict[str, Any]) -> ArrayConvNextProcessor | None:
    """The checkpoint's image processor in Pillow and NumPy, where ``ArrayConvNextProcessor``
    reproduces it: a ConvNeXt-style preprocessor_config.json (microsoft/resnet-50's), or a
    timm checkpoint's centre-crop evaluation transform; else None. ``config``: its
    config.json, read."""
    if config.get("model_type") == "timm_wrapper":  # its processor reads config.json
        return ArrayConvNextProcessor.from_timm(config.get("pretrained_cfg") or {})
    if "preprocessor_config.json" in files:
        return ArrayConvNextProcessor.from_config(read_json(files["preprocessor_config.json"]))
    return None


def label_fields(config: dict[str, Any]) -> dict[str, Any]:
    """A classifier's ``labels`` and ``multi_label`` (sigmoid, not softmax) from its config."""
    return {
        "labels": labels_of(config),
        "multi_label": config.get("problem_type") == "multi_label_classification",
    }


@dataclass(frozen=True)
class ArrayConvNextProcessor:
    """A ConvNeXt-style image processor (microsoft/resnet-50's) in Pillow and NumPy: resize
    the shorter side to shortest_edge / crop_pct and centre-crop shortest_edge (below 384), or
    warp to a square; then rescale and normalize. Its attributes are the processor's, so
    ``resize_rule`` reads it like the real one."""

    size: dict[str, int]
    crop_pct: float
    resample: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    rescale_factor: float
    do_resize: bool = True
    do_rescale: bool = True
    do_normalize: bool = True
    # Where an odd margin's extra pixel goes: transformers truncates (right/bottom), timm's
    # CenterCrop (torchvision's) rounds half to even, as Python's round does.
    rounds_crop: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """The processor a preprocessor_config.json describes, or None if it is not one this
        class reproduces."""
        kind = config.get("image_processor_type")
        size = config.get("size")
        if kind not in PROCESSORS or not isinstance(size, dict) or set(size) != {"shortest_edge"}:
            return None
        if (
            not config.get("do_resize", True)
            or config.get("do_pad")
            or config.get("do_center_crop")
        ):
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

    @classmethod
    def from_timm(cls, pretrained_cfg: dict[str, Any]) -> Any:
        """timm's evaluation transform, where it is this class's arithmetic: resize the
        shorter side to floor(size / crop_pct) (bicubic or bilinear), centre-crop a square
        below 384 pixels, rescale and normalize; else None."""
        # What timm.data.resolve_data_config reads of it (TimmWrapperImageProcessor's call).
        size = pretrained_cfg.get("input_size")
        interpolation = {"bicubic": 3, "bilinear": 2}.get(str(pretrained_cfg.get("interpolation")))
        crop_pct = pretrained_cfg.get("crop_pct") or 0.875
        mean, std = pretrained_cfg.get("mean"), pretrained_cfg.get("std")
        if not (isinstance(size, list | tuple) and len(size) == 3 and size[1] == size[2]):
            return None
        if interpolation is None or pretrained_cfg.get("crop_mode", "center") != "center":
            return None
        if not (isinstance(mean, list | tuple) and isinstance(std, list | tuple)):
            return None
        # Where floor(size / crop_pct) is not what ConvNeXt's int(size / crop_pct) gives,
        # or above 384 (where ConvNeXt warps and timm crops), the two differ: not reproduced.
        if int(size[1]) >= 384 or math.floor(size[1] / crop_pct) != int(size[1] / crop_pct):
            return None
        made = cls.from_config(
            {
                "image_processor_type": PROCESSORS[0],
                "size": {"shortest_edge": int(size[1])},
                "crop_pct": float(crop_pct),
                "resample": interpolation,
                "image_mean": list(mean),
                "image_std": list(std),
            }
        )
        return None if made is None else dataclasses.replace(made, rounds_crop=True)

    @property
    def rule(self) -> ResizeRule:
        return ResizeRule.convnext(self.size["shortest_edge"], self.crop_pct)

    def __call__(self, images: Sequence[Any], **_: Any) -> dict[str, Any]:
        """PIL images -> {"pixel_values": float32 array N x 3 x H x W}, like the processor."""
        import numpy as np

        return {"pixel_values": self.normalize(np.stack([self.resized(i) for i in images]))}

    def prepare(self, image: Any) -> Any:
        """One PIL image -> its float32 3 x H x W model input (what ``__call__`` makes of it)."""
        return self.normalize(self.resized(image)[None])[0]

    def same_pixels(self, other: Any) -> bool:
        """Whether ``other.prepare`` makes the same pixels of an image as this one's: the
        same settings, and the same code (a subclass may compute in torch)."""
        steps = ("prepare", "resized", "normalize")
        return (
            isinstance(other, ArrayConvNextProcessor)
            and all(getattr(type(self), m) is getattr(type(other), m) for m in steps)
            and dataclasses.astuple(self) == dataclasses.astuple(other)
        )

    def resized(self, image: Any) -> Any:
        """One PIL image resized (Pillow) and cropped to the model's input: uint8 CHW array."""
        import numpy as np
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        rule = self.rule
        target = rule.target(*image.size)
        edge = self.size["shortest_edge"]
        if image.size != target and rule.crops:
            # Only the centre crop's pixels are resampled, with the filter taps a resize of
            # the whole image would use for them (Pillow reads past the box's edges): 40%
            # less work, and at most 1 of 255 from resize-then-crop, in a few pixels.
            (width, height), (target_width, target_height) = image.size, target
            top, left = crop_origin(target_height, target_width, edge, self.rounds_crop)
            x_scale, y_scale = width / target_width, height / target_height
            box = (left * x_scale, top * y_scale, (left + edge) * x_scale, (top + edge) * y_scale)
            image = image.resize((edge, edge), Image.Resampling(self.resample), box=box)
            return np.asarray(image).transpose(2, 0, 1)
        if image.size != target:
            image = image.resize(target, Image.Resampling(self.resample))
        pixels = np.asarray(image).transpose(2, 0, 1)
        return centre_crop(pixels, edge, self.rounds_crop) if rule.crops else pixels

    def normalize(self, pixels: Any) -> Any:
        """uint8 N x 3 x H x W -> rescaled and normalized float32 (NumPy or torch alike), as
        transformers does it: both at once, subtracting mean / rescale_factor and dividing by
        std / rescale_factor."""
        # C order: ``resized`` gives a CHW view of Pillow's HWC bytes, and a copy in that
        # layout would leave the transpose to the runtime's input copy, in the main thread,
        # serial with the model (8 ms a batch of 16); here it is part of the copy the decode
        # threads make anyway.
        pixels = (
            pixels.astype("float32", order="C") if hasattr(pixels, "astype") else pixels.float()
        )
        if not self.do_normalize:
            return pixels * self.rescale_factor if self.do_rescale else pixels
        scale = 1.0 / self.rescale_factor if self.do_rescale else 1.0
        mean = _column(self.image_mean, pixels) * scale
        std = _column(self.image_std, pixels) * scale
        if hasattr(pixels, "astype"):
            # In place, in the copy astype made: the same arithmetic to the bit, without two
            # fresh 600 KB temporaries an image, whose page faults cost 3 ms of the decode
            # threads' 13 (20x the arithmetic), as much as INT8 ResNet-50's own time per image.
            pixels -= mean
            pixels /= std
            return pixels
        return (pixels - mean) / std


def _column(values: tuple[float, float, float], like: Any) -> Any:
    """``values`` shaped 1 x 3 x 1 x 1, as an array of ``like``'s kind (NumPy or torch)."""
    if hasattr(like, "astype"):
        import numpy as np

        return np.asarray(values, dtype=np.float32).reshape(1, 3, 1, 1)
    import torch

    return torch.tensor(values, device=like.device).view(1, 3, 1, 1)


def centre_crop(image: Any, edge: int, rounds: bool = False) -> Any:
    """The centre ``edge`` x ``edge`` of a CHW array or tensor, at the processor's anchor
    (transformers 5 truncates: for an odd margin the extra pixel is on the right/bottom;
    ``rounds``: as timm's CenterCrop places it)."""
    height, width = image.shape[-2:]
    top, left = crop_origin(height, width, edge, rounds)
    return image[..., top : top + edge, left : left + edge]


def crop_origin(height: int, width: int, edge: int, rounds: bool = False) -> tuple[int, int]:
    """(top, left) of the centre ``edge`` x ``edge`` crop of a ``height`` x ``width`` image."""
    if rounds:
        return round((height - edge) / 2.0), round((width - edge) / 2.0)
    return int((height - edge) / 2.0), int((width - edge) / 2.0)


# transformers' MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES, known without importing
# it (a test keeps the two equal): what tells a zero-shot checkpoint from its config.json.
ZERO_SHOT_MODELS = {
    "align": "AlignModel",
    "altclip": "AltCLIPModel",
    "blip": "BlipModel",
    "blip-2": "Blip2ForImageTextRetrieval",
    "chinese_clip": "ChineseCLIPModel",
    "clip": "CLIPModel",
    "clipseg": "CLIPSegModel",
    "metaclip_2": "MetaClip2Model",
    "siglip": "SiglipModel",
    "siglip2": "Siglip2Model",
    "tipsv2": "Tipsv2Model",
    "videoprism": "VideoPrismClipModel",
}


def is_zero_shot(config: dict[str, Any]) -> bool:
    """Whether a config.json describes a zero-shot checkpoint (a dual encoder such as
    CLIPModel), not an image classifier (CLIPForImageClassification has labels of its own)."""
    architectures = config.get("architectures") or []
    if architectures:
        return any(name in ZERO_SHOT_MODELS.values() for name in architectures)
    return config.get("model_type") in ZERO_SHOT_MODELS


def check_model_kind(model: str, config: dict[str, Any], zero_shot: object | None) -> None:
    """A UsageError where labels are given (``zero_shot``: the labels, as ``zero_shot.ZeroShot``)
    to a classifier, or none to a zero-shot model."""
    if zero_shot is not None and not is_zero_shot(config):
        raise UsageError(
            f"--labels needs a zero-shot model (CLIP, SigLIP), and {model!r} is an image "
            f"classifier with labels of its own: drop --labels/--labels-file, or pass a "
            f"zero-shot model, e.g. -m {DEFAULT_ZERO_SHOT_MODEL}"
        )
    if zero_shot is None and is_zero_shot(config):
        kind = config.get("model_type") or "zero-shot"
        raise UsageError(
            f"{model!r} is a zero-shot model ({kind}) with no labels of its own: give it yours "
            "with --labels 'cat, dog, receipt' or --labels-file FILE"
        )
