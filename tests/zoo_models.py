"""Small random image classifiers of every model type transformers can classify images with.

``build(case, folder)`` saves one (config, weights, image processor) the way a hub checkpoint
is saved, so both resnet-classify and ``transformers.pipeline`` load it from the folder. The
models are tiny (a few channels, one or two blocks a stage) but keep their architecture's
default dropout and drop-path rates, and their BatchNorm statistics are calibrated on
photo-like images, so a model left in training mode answers differently from a trained one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import scene

LABELS = [
    "tabby cat",
    "golden retriever",
    "red fox",
    "sports car",
    "teapot",
    "banana",
    "lighthouse",
    "violin",
    "daisy",
    "snail",
]
# Logits of the saved models vary across images by about this much per class (after the head
# is rescaled): top-1 margins well above float rounding, so top-1 is a meaningful comparison.
LOGIT_SPREAD = 4.0

# The generic shrink of ViT-like configs (and of composite models' vision and text towers):
# 32-pixel images in 8-pixel patches, two blocks of width 32.
SMALL_VIT: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
    "pooler_output_size": 32,
}
SMALL_TEXT: dict[str, Any] = {
    "vocab_size": 99,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 16,
    "projection_size": 32,
}
_SWIN = {
    "image_size": 64,
    "patch_size": 4,
    "embed_dim": 16,
    "depths": [1, 1],
    "num_heads": [1, 2],
    "window_size": 4,
}
_FOUR_STAGES = {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}

# Per model type: the config fields that make it small. Types not named get SMALL_VIT, on the
# fields their config has: every ViT-like type, and new ones of a later transformers.
CONFIGS: dict[str, dict[str, Any]] = {
    "bit": {"embedding_size": 8, "hidden_sizes": [16, 32], "depths": [1, 1], "num_groups": 4},
    "clip": {"vision_config": SMALL_VIT, "text_config": SMALL_TEXT, "projection_dim": 32},
    "metaclip_2": {"vision_config": SMALL_VIT, "text_config": SMALL_TEXT, "projection_dim": 32},
    "siglip": {"vision_config": SMALL_VIT, "text_config": SMALL_TEXT},
    "siglip2": {
        "vision_config": {**SMALL_VIT, "num_patches": 16, "image_size": None},
        "text_config": SMALL_TEXT,
    },
    "convnext": {"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "image_size": 64},
    "convnextv2": {"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2, "image_size": 64},
    # Cvt indexes stage i's drop-path rates by i: stage i needs more than i blocks.
    "cvt": {"embed_dim": [8, 16, 32], "num_heads": [1, 2, 2], "depth": [1, 2, 3]},
    "dinat": {
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [1, 2],
        "kernel_size": 3,
        "dilations": [[1], [1]],
    },
    "donut-swin": dict(_SWIN),
    "swin": dict(_SWIN),
    "swinv2": {**_SWIN, "pretrained_window_sizes": [0, 0]},
    "efficientnet": {
        "image_size": 64,
        "width_coefficient": 0.1,
        "depth_coefficient": 0.5,
        "hidden_dim": 128,  # round_filters(1280) at width 0.1: the top conv's channels
    },
    "focalnet": {
        "image_size": 64,
        "embed_dim": 16,
        "hidden_sizes": [16, 32],
        "depths": [1, 1],
        "focal_levels": [2, 2],
        "focal_windows": [3, 3],
    },
    "hgnet_v2": {
        "embedding_size": 8,
        "depths": [1, 1],
        "hidden_sizes": [16, 32],
        "stem_channels": [3, 8, 8],
        "stage_in_channels": [8, 16],
        "stage_mid_channels": [8, 8],
        "stage_out_channels": [16, 32],
        "stage_num_blocks": [1, 1],
        "stage_downsample": [False, True],
        "stage_downsample_strides": [2, 2],
        "stage_light_block": [False, True],
        "stage_kernel_size": [3, 5],
        "stage_numb_of_layers": [2, 2],
    },
    "hiera": {
        "embed_dim": 8,
        "image_size": [64, 64],
        "depths": [1, 1, 1, 1],
        "num_heads": [1, 2, 4, 8],
    },
    "imagegpt": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 576, "vocab_size": 513},
    "levit": {
        "image_size": 64,
        "hidden_sizes": [16, 32, 48],
        "num_attention_heads": [1, 2, 3],
        "depths": [1, 1, 1],
        "key_dim": [8, 8, 8],
        "down_ops": [["Subsample", 8, 2, 4, 2, 2], ["Subsample", 8, 4, 4, 2, 2]],
    },
    "mobilenet_v1": {"image_size": 64, "depth_multiplier": 0.25},
    "mobilenet_v2": {"image_size": 64, "depth_multiplier": 0.25},
    "mobilevit": {
        "image_size": 64,
        "hidden_sizes": [16, 24, 32],
        "neck_hidden_sizes": [8, 8, 16, 16, 24, 24, 64],
        "num_attention_heads": 2,
    },
    "mobilevitv2": {"image_size": 64, "width_multiplier": 0.25, "n_attn_blocks": [1, 1, 1]},
    "perceiver": {
        "image_size": 32,
        "num_latents": 16,
        "d_latents": 32,
        "num_self_attends_per_block": 1,
        "num_self_attention_heads": 2,
        "num_cross_attention_heads": 1,
    },
    "poolformer": {**_FOUR_STAGES, "image_size": 64},
    "pp_lcnet": {
        "scale": 0.25,
        "block_configs": [
            [[3, 16, 32, 1, False]],
            [[3, 32, 64, 2, False]],
            [[3, 64, 128, 2, False]],
            [[3, 128, 256, 2, False], [5, 256, 256, 1, False]],
            [[5, 256, 512, 2, True]],
        ],
        "depths": [1, 1, 1, 2, 1],
        "class_expand": 64,
    },
    "pvt": {**_FOUR_STAGES, "image_size": 64, "num_attention_heads": [1, 1, 2, 2]},
    "pvt_v2": {**_FOUR_STAGES, "image_size": [64, 64], "num_attention_heads": [1, 1, 2, 2]},
    "segformer": {
        **_FOUR_STAGES,
        "num_attention_heads": [1, 1, 2, 2],
        "decoder_hidden_size": 32,
    },
    "regnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "groups_width": 8},
    "resnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]},
    "shieldgemma2": {
        "vision_config": {**SMALL_VIT, "image_size": 32},
        "text_config": {
            **SMALL_TEXT,
            "vocab_size": 300,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "layer_types": ["full_attention"],
            "sliding_window": 16,
        },
        "mm_tokens_per_image": 4,
        "boi_token_index": 290,
        "eoi_token_index": 291,
        "image_token_index": 292,
    },
    "swiftformer": {"image_size": 64, "depths": [1, 1, 1, 1], "embed_dims": [8, 16, 24, 32]},
    "textnet": {
        "stem_out_channels": 8,
        "hidden_sizes": [8, 8, 16, 16, 32],
        "depths": [1, 1, 1, 1],
        "conv_layer_kernel_sizes": [[[3, 3]], [[3, 3]], [[3, 1]], [[1, 3]]],
        "conv_layer_strides": [[1], [2], [2], [2]],
        "image_size": [64, 64],
    },
}

# Image processors for types the auto mapping names none for: their hub checkpoints' ones.
PROCESSOR_CLASSES = {
    "dinov2_with_registers": "BitImageProcessor",
    "hgnet_v2": "ConvNextImageProcessor",
}
# The edge of the square images a small model takes, where its config has no image_size (or
# its processor keeps the aspect ratio: siglip2, in at most 16 patches of 8). ImageGPT's
# sequence is its pixels: 576.
EDGES = {
    "siglip2": 32,
    "imagegpt": 24,
    **dict.fromkeys(("bit", "dinat", "hgnet_v2", "pp_lcnet", "regnet", "resnet"), 64),
    "timm_wrapper": 64,
}
# timm architectures wrapped by TimmWrapperForImageClassification: a BatchNorm ResNet, and a
# depthwise-separable net with squeeze-excitation and hard-swish.
TIMM_ARCHITECTURES = ("resnet18", "mobilenetv3_small_050")


@dataclass(frozen=True)
class Case:
    """One model type as one of its classification classes (timm_wrapper: one timm net)."""

    model_type: str
    architecture: str  # several for DeiT and LeViT (a distillation head) and the Perceivers
    timm: str | None = None

    @property
    def id(self) -> str:
        if self.timm:
            return f"{self.model_type}-{self.timm}"
        first = _architectures(self.model_type)[0]
        if self.architecture == first:
            return self.model_type
        # The variant's name: what its class name adds to the first one's ("WithTeacher").
        extra = self.architecture.removeprefix(first.removesuffix("Learned"))
        return f"{self.model_type}-{extra.removeprefix('ImageClassification')}"


def _architectures(model_type: str) -> tuple[str, ...]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    names = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES[model_type]
    return (names,) if isinstance(names, str) else tuple(names)


def all_cases() -> list[Case]:
    """Every class of every type in transformers' image-classification auto mapping."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    # Read from the installed transformers, so the types a new release adds are covered.
    cases = [
        Case(model_type, architecture)
        for model_type in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
        if model_type != "timm_wrapper"
        for architecture in _architectures(model_type)
    ]
    wrapper = _architectures("timm_wrapper")[0]
    return cases + [Case("timm_wrapper", wrapper, name) for name in TIMM_ARCHITECTURES]


@dataclass
class Built:
    """A saved model: its folder, and what building it found."""

    folder: Path
    batchnorm: int  # BatchNorm layers calibrated
    dropout: bool  # whether some dropout or drop-path would fire in training mode


class CannotBuild(Exception):
    """This model type cannot be built here (a missing optional library, say)."""


def image_edge(case: Case) -> int:
    """The edge of the square images the small model of ``case`` takes."""
    if case.model_type in EDGES:
        return EDGES[case.model_type]
    fields = CONFIGS.get(case.model_type, SMALL_VIT)
    size = fields.get("vision_config", fields).get("image_size") or SMALL_VIT["image_size"]
    return int(size[0] if isinstance(size, list) else size)


def small_config(case: Case) -> Any:
    """The model type's config, shrunk, with LABELS as named labels."""
    from transformers import AutoConfig

    labels = {
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {name: i for i, name in enumerate(LABELS)},
    }
    if case.model_type == "timm_wrapper":
        return timm_config(case, labels)
    default = AutoConfig.for_model(case.model_type).to_dict()
    fields = CONFIGS.get(case.model_type)
    if fields is None:
        fields = {k: v for k, v in SMALL_VIT.items() if k in default}
    fields = copy.deepcopy(fields)
    for tower in ("vision_config", "text_config"):
        if tower in fields:
            # A tower takes the generic fields its own config has (siglip's vision tower has
            # no pooler_output_size, say); None: the field is left out.
            known = {*(default.get(tower) or {}), "num_patches"}
            fields[tower] = {k: v for k, v in fields[tower].items() if k in known and v is not None}
    if case.architecture.startswith("Perceiver"):
        # d_model is what the preprocessor of each Perceiver variant hands the encoder: 256
        # channels + 256 learned positions; 3 pixels or 64 conv channels + 258 Fourier features.
        width = {"Learned": 512, "Fourier": 261, "ConvProcessing": 322}
        fields["d_model"] = width[case.architecture.removeprefix("PerceiverForImageClassification")]
    # As in a hub checkpoint: the class to load, where the type has several.
    return AutoConfig.for_model(
        case.model_type, architectures=[case.architecture], **fields, **labels
    )


def timm_config(case: Case, labels: dict[str, Any]) -> Any:
    """A TimmWrapperConfig for ``case.timm`` at 64 pixels, with a timm ``pretrained_cfg``."""
    import timm
    from transformers import TimmWrapperConfig

    assert case.timm is not None
    # The image processor reads pretrained_cfg from config.json, as in hub timm checkpoints:
    # the architecture's own, less where its weights are, at 64 pixels.
    reference = timm.create_model(case.timm, pretrained=False, num_classes=len(LABELS))
    pretrained = {
        k: v
        for k, v in reference.pretrained_cfg.items()
        if k not in ("url", "hf_hub_id", "file", "tag", "custom_load", "license")
    }
    pretrained.update(input_size=[3, 64, 64], pool_size=[2, 2], num_classes=len(LABELS))
    return TimmWrapperConfig(
        architecture=case.timm,
        pretrained_cfg=pretrained,
        architectures=[case.architecture],
        **labels,
    )


def small_processor(case: Case, edge: int) -> Any:
    """The model type's image processor, default-constructed but for ``edge`` pixel output."""
    import numpy as np
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(case.model_type) or {}
    name = PROCESSOR_CLASSES.get(case.model_type) or names.get("torchvision") or names.get("pil")
    if name is None:
        raise CannotBuild(f"transformers maps no image processor to {case.model_type}")
    processor_class = getattr(transformers, name)
    if case.model_type == "imagegpt":
        # Its pixels become colour-cluster ids: 512 clusters spread over the RGB cube.
        clusters = np.random.default_rng(0).uniform(-1, 1, size=(512, 3)).astype(np.float32)
        return processor_class(clusters=clusters, size=square(edge))
    if case.model_type == "siglip2":
        return processor_class(patch_size=8, max_num_patches=16)
    if case.model_type == "donut-swin":
        return processor_class(size=square(edge))  # thumbnail and pad to this
    if case.model_type == "mobilevit":
        # Its default crops 256 out of a 224 resize; its checkpoints resize to 288.
        return processor_class(size={"shortest_edge": edge * 9 // 8}, crop_size=square(edge))
    if case.model_type == "textnet":
        return processor_class(size={"shortest_edge": edge})  # no crop: shapes vary
    return processor_class(**scaled_sizes(processor_class().to_dict(), edge))


def square(edge: int) -> dict[str, int]:
    return {"height": edge, "width": edge}


def scaled_sizes(default: dict[str, Any], edge: int) -> dict[str, Any]:
    """``size`` and ``crop_size`` scaled together so that the processor outputs ``edge``."""
    # The default's proportions of resize to crop (DeiT: 256 then 224), at a smaller scale.
    size, crop = default.get("size") or {}, default.get("crop_size") or {}
    crops = bool(default.get("do_center_crop")) and bool(crop)
    out = min([*size.values(), *(crop.values() if crops else [])])

    def scale(sizes: dict[str, int]) -> dict[str, int]:
        return {k: max(1, round(v * edge / out)) for k, v in sizes.items()}

    scaled: dict[str, Any] = {"size": scale(size)}
    if crop:
        scaled["crop_size"] = scale(crop)
    return scaled


def calibration_inputs(processor: Any, count: int = 32) -> dict[str, Any]:
    """The processor's output for ``count`` photo-like images, none of the test's."""
    # All of one size: processors that keep the aspect ratio give shapes that would not stack.
    images = [scene(96, 80, seed=10_000 + i) for i in range(count)]
    return dict(processor(images=images, return_tensors="pt"))


def calibrate(model: Any, inputs: dict[str, Any]) -> int:
    """Give BatchNorm layers the statistics of ``inputs``; return how many there are."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    model.eval()  # dropout and drop-path off: the statistics are those of the eval model
    for norm in norms:
        # Statistics reset, and scale 1, shift 0 as torch initializes them: some inits
        # (EfficientNet's, std 0.02) shrink every BatchNorm's output 50-fold, and 30 of them
        # in a row leave denormals.
        norm.reset_parameters()
        norm.momentum = None  # a cumulative average: every batch counts the same
        norm.train()
    count = len(next(iter(inputs.values())))
    with torch.no_grad():
        for start in range(0, count, 8):
            model(**{k: v[start : start + 8] for k, v in inputs.items()})
    model.eval()
    return len(norms)


def heads(model: Any, num_labels: int) -> list[Any]:
    """The layers that write logits: linear (or 1x1 conv) layers with num_labels outputs."""
    import torch

    found = []
    for module in model.modules():
        linear = isinstance(module, torch.nn.Linear) and module.out_features == num_labels
        conv = isinstance(module, torch.nn.Conv2d) and module.out_channels == num_labels
        if linear or conv:
            found.append(module)
    return found


def spread_logits(model: Any, inputs: dict[str, Any]) -> None:
    """Rescale the heads so each label's logit spans about LOGIT_SPREAD across images."""
    import torch

    # A random head gives near-equal scores, mostly to one label whatever the image: scaled
    # and centred on zero, top-1 depends on the image, by margins rounding cannot flip.
    layers = heads(model, len(LABELS))
    if not layers:
        return
    with torch.no_grad():
        output = model(**inputs)
        # PP-LCNet returns its logits as last_hidden_state.
        logits = (output["logits"] if "logits" in output else output[0]).float()
        factor = LOGIT_SPREAD / max(float(logits.std(dim=0).mean()), 1e-6)
        centre = logits.mean(dim=0)
        for layer in layers:
            layer.weight.mul_(factor)
            if layer.bias is not None:
                # Where there are several heads (distillation), logits are their average: each
                # head's bias moves by the same centre.
                layer.bias.mul_(factor).sub_(centre * factor)


def has_dropout(model: Any) -> bool:
    """Whether some dropout or drop-path module of ``model`` has a non-zero rate."""
    import torch

    for module in model.modules():
        rate = getattr(module, "p", None) if isinstance(module, torch.nn.Dropout) else None
        rate = rate or getattr(module, "drop_prob", None) or getattr(module, "drop_rate", None)
        if isinstance(rate, float) and rate > 0:
            return True
    return False


def build(case: Case, folder: Path) -> Built:
    """Save ``case``'s small model and its image processor to ``folder``."""
    import torch
    from transformers import AutoModelForImageClassification

    torch.manual_seed(0)
    config = small_config(case)
    try:
        model = AutoModelForImageClassification.from_config(config)
    except ImportError as exc:  # an architecture that needs an optional library (natten)
        reason = (str(exc).strip().splitlines() or ["(no message)"])[0]
        raise CannotBuild(f"{case.id} needs a library not installed here: {reason}") from exc
    model.eval()
    if case.model_type == "timm_wrapper":
        from transformers import AutoImageProcessor

        model.save_pretrained(folder)  # the processor is read from config.json's pretrained_cfg
        processor = AutoImageProcessor.from_pretrained(folder)
    else:
        processor = small_processor(case, image_edge(case))
    inputs = calibration_inputs(processor)
    norms = 0
    try:
        norms = calibrate(model, inputs)
        spread_logits(model, inputs)
    except Exception:
        # A model that pixels alone cannot drive (ShieldGemma2 wants a prompt too): saved as
        # initialized, for the pipeline to fail on and the test to skip with its reason.
        model.eval()
    model.save_pretrained(folder)
    if case.model_type != "timm_wrapper":
        processor.save_pretrained(folder)
    return Built(folder=folder, batchnorm=norms, dropout=has_dropout(model))
