"""Save a tiny random ResNet (six named labels) to a folder, for trying the tool offline.

    python examples/make_tiny_model.py /tmp/tiny-resnet
    resnet-classify --model /tmp/tiny-resnet --offline examples/images/

Its answers are random, but every code path (loading, batching, formats) is the real one.
"""

from __future__ import annotations

import sys

import torch
from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

LABELS = ["tabby cat", "golden retriever", "red fox", "sports car", "teapot, kettle", "banana"]


def save_tiny_model(folder: str, *, multi_label: bool = False, seed: int = 0) -> str:
    """Save the tiny model and microsoft/resnet-50's preprocessing settings to ``folder``."""
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
    # The same preprocessing as microsoft/resnet-50: resize to 256, crop 224, ImageNet mean/std.
    ConvNextImageProcessor(
        size={"shortest_edge": 224},
        crop_pct=0.875,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(save_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-resnet"))
