"""Shared fixtures: a tiny random ResNet with named labels, and small test images.

Nothing here touches the network: HF_HUB_OFFLINE=1 is set for the whole session.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LABELS = ["tabby cat", "golden retriever", "red fox", "sports car", "teapot, kettle", "banana"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def build_tiny_model(folder: Path, *, multi_label: bool = False, seed: int = 0) -> Path:
    """Save a few-channel ResNet and a ConvNeXt image processor (as microsoft/resnet-50 has)."""
    import torch
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type="multi_label_classification" if multi_label else None,
    )
    model = ResNetForImageClassification(config).eval()
    # Random init leaves the classifier nearly uniform; widen it so scores differ clearly.
    with torch.no_grad():
        model.classifier[-1].weight.mul_(20)
    model.save_pretrained(folder)
    ConvNextImageProcessor(
        size={"shortest_edge": 224},
        crop_pct=0.875,
        resample=3,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-resnet"))


@pytest.fixture(scope="session")
def multi_label_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-multilabel"), multi_label=True)


def scene(width: int, height: int, seed: int) -> Image.Image:
    """A smooth, photo-like RGB picture (gradients and blobs), different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6, size=2).tolist() + [rng.uniform(0, 6.28)]
        wave = np.sin(x / width * fx * 3.14 + phase) * np.cos(y / height * fy * 3.14)
        channels.append(127 + 100 * wave + rng.normal(0, 8, size=wave.shape))
    pixels = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Five different JPEG and PNG images of assorted sizes."""
    paths = []
    for i, (w, h) in enumerate([(320, 240), (300, 400), (500, 375), (256, 256), (640, 480)]):
        path = tmp_path / f"img{i}.{'png' if i == 3 else 'jpg'}"
        scene(w, h, seed=i).save(path)
        paths.append(path)
    return paths
