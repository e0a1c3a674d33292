"""Building, checking or caching a faster runtime never changes the model it is built from:
not its train/eval mode, not a parameter or buffer. (The ONNX export used to leave the eager
model in training mode, so after image 64 BatchNorm ran on batch statistics and dropout fired.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import scene
from resnet_cli import classify, load_classifier
from resnet_cli.runtimes import onednn, onnx_runtime, torchscript
from resnet_cli.runtimes.base import ModelChangedError, checked, unchanged
from resnet_cli.runtimes.hardware import probe


def save_mobilenet(folder: Path) -> Path:
    """A small MobileNetV2: BatchNorm that is not folded, and dropout before its classifier."""
    from transformers import (
        MobileNetV2Config,
        MobileNetV2ForImageClassification,
        MobileNetV2ImageProcessor,
    )

    torch.manual_seed(0)
    config = MobileNetV2Config(
        depth_multiplier=0.35, num_labels=6, classifier_dropout_prob=0.5, image_size=96
    )
    model = MobileNetV2ForImageClassification(config)
    # Statistics of photo-like images, as a trained model has, so batch statistics differ.
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    pixels = torch.stack([pixels_of(scene(96, 96, seed=i)) for i in range(16)])
    with torch.no_grad():
        model(pixel_values=pixels)
    model.eval().save_pretrained(folder)
    MobileNetV2ImageProcessor(size={"shortest_edge": 96}, crop_size=96).save_pretrained(folder)
    return folder


def pixels_of(image: Any) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_mobilenet(tmp_path_factory.mktemp("mobilenet"))


def snapshot(model: Any) -> tuple[list[bool], dict[str, torch.Tensor]]:
    modes = [module.training for module in model.modules()]
    return modes, {name: value.clone() for name, value in model.state_dict().items()}


def assert_same(model: Any, before: tuple[list[bool], dict[str, torch.Tensor]]) -> None:
    modes, state = before
    assert [module.training for module in model.modules()] == modes
    after = model.state_dict()
    assert after.keys() == state.keys()
    for name, value in state.items():
        assert torch.equal(after[name], value), name


BUILDS: dict[str, Callable[[Any, torch.Tensor], tuple[Any, str]]] = {
    "onnxruntime": functools.partial(onnx_runtime.build_export, threads=2),
    "torchscript": torchscript.build,
}


@pytest.mark.parametrize("build", sorted(BUILDS))
@pytest.mark.parametrize("kind", ["native resnet", "transformers resnet", "mobilenet_v2"])
def test_building_a_runtime_leaves_the_model_as_it_was(
    build: str,
    kind: str,
    tiny_model: Path,
    mobilenet: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if kind == "transformers resnet":
        monkeypatch.setenv("RESNET_CLI_NATIVE", "0")
    folder = mobilenet if kind == "mobilenet_v2" else tiny_model
    classifier = load_classifier(str(folder), device="cpu", precision="fp32", runtime="torch")
    before = snapshot(classifier.model)
    sample = torch.stack([pixels_of(scene(96, 96, seed=i)) for i in range(2)])
    built = checked(BUILDS[build], classifier.model, sample)
    assert built is not None and built[1] == build  # the runtime was built and kept
    assert_same(classifier.model, before)


def test_packing_for_bf16_leaves_the_model_as_it_was(tiny_model: Path) -> None:
    # Whether oneDNN has bf16 kernels is the tool's own probe's answer (an AMX or AVX512-BF16
    # CPU: yes; an AVX2-only one, or ONEDNN_MAX_CPU_ISA=AVX2: no). Without them the build is
    # declined, as the run then keeps eager torch; either way the model is as it was.
    kernels = probe(cuda=False).with_torch().onednn or frozenset()
    classifier = load_classifier(str(tiny_model), device="cpu", precision="fp32", runtime="torch")
    before = snapshot(classifier.model)
    sample = torch.stack([pixels_of(scene(224, 224, seed=i)) for i in range(2)])
    built = checked(onednn.build(torch.bfloat16), classifier.model, sample, torch.bfloat16)
    if "bf16" in kernels:
        assert built is not None and built[1] == "onednn"
    else:
        assert built is None
    assert_same(classifier.model, before)


def test_a_long_run_and_its_cached_export_keep_the_model_and_its_answers(
    mobilenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole run as a user has it: every record equals what an eager model gives,
    # whichever images share a batch, and the model is as it was after the export.
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))
    photos = []
    for i in range(90):
        path = tmp_path / f"photo{i}.png"
        scene(120 + i % 7, 100 + i % 5, seed=i % 30).save(path)
        photos.append(path)
    fast = load_classifier(
        str(mobilenet), device="cpu", precision="fp32", images=len(photos), batch_size=8
    )
    assert fast.runtime == "onnxruntime"
    before = snapshot(fast.model)
    records = list(classify(fast, photos, top_k=3))
    assert all(record.ok for record in records)
    assert_same(fast.model, before)

    eager = load_classifier(
        str(mobilenet), device="cpu", precision="fp32", runtime="torch", batch_size=5
    )
    reference = list(classify(eager, photos, top_k=3))
    assert eager.save_quick_start() is False  # files not cacheable: no NumPy MobileNet processor
    assert_same(eager.model, before)
    for ours, theirs in zip(records, reference, strict=True):
        assert [p.class_id for p in ours.predictions] == [p.class_id for p in theirs.predictions]
        for mine, expected in zip(ours.predictions, theirs.predictions, strict=True):
            assert mine.score == pytest.approx(expected.score, abs=1e-4)


def test_a_build_that_writes_into_the_model_is_refused_loudly() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()

    def careless(model: Any, example: torch.Tensor) -> tuple[Any, str]:
        model.train()
        model(example)  # BatchNorm in training mode rewrites its running statistics
        return model, "careless"

    with pytest.raises(ModelChangedError), unchanged(model):
        careless(model, torch.randn(2, 3, 8, 8))
    assert not any(module.training for module in model.modules())  # modes put back
