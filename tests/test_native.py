"""The quick-start path: ResNet checkpoints built without transformers must give the same
logits and (within the fidelity bound) the same pixels as transformers, and must fall back
to transformers for anything they do not reproduce."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    ConvNextImageProcessor,
    ResNetConfig,
    ResNetForImageClassification,
    ViTImageProcessor,
)

from conftest import imported, run_probing_imports, scene
from resnet_cli import classify, load_classifier
from resnet_cli.models.native import ExactConvNextProcessor, NativeConvNextProcessor, load_native

CONFIGS = {
    "basic": {
        "layer_type": "basic",
        "embedding_size": 8,
        "hidden_sizes": [8, 16],
        "depths": [1, 2],
    },
    "bottleneck-first-stage": {
        "layer_type": "bottleneck",
        "embedding_size": 8,
        "hidden_sizes": [16, 32, 64],
        "depths": [2, 1, 2],
        "downsample_in_first_stage": True,
    },
    "bottleneck-downsample-in-bottleneck": {
        "layer_type": "bottleneck",
        "embedding_size": 8,
        "hidden_sizes": [16, 32],
        "depths": [1, 2],
        "downsample_in_bottleneck": True,
    },
}


def save_resnet(folder: Path, processor=None, **config) -> ResNetForImageClassification:
    torch.manual_seed(0)
    model = ResNetForImageClassification(ResNetConfig(num_labels=5, **config)).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.save_pretrained(folder)
    (processor or ConvNextImageProcessor()).save_pretrained(folder)
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_logits_as_transformers(name: str, tmp_path: Path) -> None:
    reference = save_resnet(tmp_path, **CONFIGS[name])
    loaded = load_native(str(tmp_path))
    assert loaded is not None
    network = loaded[0]
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(pixel_values=pixels).logits
        actual = network(pixel_values=pixels)["logits"]
    assert torch.allclose(actual, expected, rtol=0, atol=1e-5)


def test_full_size_resnet50_architecture(tmp_path: Path) -> None:
    # ResNetConfig() is microsoft/resnet-50's architecture: every key must line up.
    reference = save_resnet(tmp_path)
    loaded = load_native(str(tmp_path))
    assert loaded is not None
    with torch.no_grad():
        pixels = torch.randn(1, 3, 224, 224)
        gap = loaded[0](pixel_values=pixels)["logits"] - reference(pixel_values=pixels).logits
    assert float(gap.abs().max()) <= 1e-4


def test_processor_matches_the_model_processor(tmp_path: Path) -> None:
    config = {"shortest_edge": 224}
    theirs = ConvNextImageProcessor(size=config, crop_pct=0.875, resample=3)
    theirs.save_pretrained(tmp_path)  # the file the quick path reads
    ours = NativeConvNextProcessor.from_config(
        json.loads((tmp_path / "preprocessor_config.json").read_text())
    )
    assert ours is not None
    # Already at the resize target (256 short side): resize is a no-op, so only the crop and
    # the normalization are compared, and they must agree to float rounding.
    for size in [(256, 256), (341, 256), (256, 300), (257, 256)]:
        image = scene(*size, seed=sum(size))
        expected = theirs(images=[image], return_tensors="pt")["pixel_values"]
        actual = ours([image])["pixel_values"]
        assert actual.shape == expected.shape == (1, 3, 224, 224)
        assert float((actual - expected).abs().max()) <= 1e-5, size
    # Other sizes are resized with Pillow instead of torchvision: bounded like the DCT path.
    for size in [(640, 480), (100, 90), (300, 1200)]:
        image = scene(*size, seed=sum(size))
        expected = theirs(images=[image], return_tensors="pt")["pixel_values"]
        actual = ours([image])["pixel_values"]
        assert float((actual - expected).abs().mean()) <= 0.03, size
    # Images decoded on a device arrive as uint8 CHW tensors: resized there, like torchvision.
    for size in [(640, 480), (256, 256)]:
        tensor = torch.from_numpy(np.asarray(scene(*size, seed=7)).copy()).permute(2, 0, 1)
        expected = theirs(images=[tensor], return_tensors="pt")["pixel_values"]
        actual = ours([tensor])["pixel_values"]
        assert float((actual - expected).abs().mean()) <= 0.005, size
    # A grayscale image is converted like the processor converts it.
    gray = scene(256, 256, seed=1).convert("L")
    assert ours([gray])["pixel_values"].shape == (1, 3, 224, 224)


@pytest.mark.parametrize("edge", [224, 384])
def test_exact_processor_computes_what_the_model_processor_computes(
    edge: int, tmp_path: Path
) -> None:
    # --exact's processor for these checkpoints: the same numbers as transformers', to the bit.
    theirs = ConvNextImageProcessor(size={"shortest_edge": edge}, crop_pct=0.875, resample=3)
    theirs.save_pretrained(tmp_path)
    ours = ExactConvNextProcessor.from_config(
        json.loads((tmp_path / "preprocessor_config.json").read_text())
    )
    assert ours is not None
    sizes = [
        (500, 375),  # ImageNet-size: downscaled
        (375, 500),
        (343, 256),  # at the resize target, an odd margin of 119: where crops truncate
        (256, 343),
        (257, 343),
        (256, 256),
        (90, 60),  # upscaled
        (1001, 999),
        (300, 1200),
    ]
    images = [scene(*size, seed=i) for i, size in enumerate(sizes)]
    for image in images:
        expected = theirs(images=[image], return_tensors="pt")["pixel_values"]
        actual = ours([image])["pixel_values"]
        assert actual.dtype == expected.dtype and torch.equal(actual, expected), image.size
    mixed = theirs(images=images, return_tensors="pt")["pixel_values"]
    assert torch.equal(ours(images)["pixel_values"], mixed)


def test_exact_goes_through_transformers_where_its_resize_is_not_reproduced(
    tmp_path: Path,
) -> None:
    bilinear = ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875, resample=2)
    save_resnet(tmp_path, processor=bilinear, **CONFIGS["basic"])
    assert load_native(str(tmp_path), exact=True) is None
    assert load_native(str(tmp_path)) is not None  # the fast path still takes it
    classifier = load_classifier(str(tmp_path), device="cpu", exact=True)
    assert type(classifier.model).__module__.startswith("transformers.")
    assert type(classifier.processor).__module__.startswith("transformers.")


def test_exact_classifier_is_built_without_transformers(tiny_model: Path) -> None:
    classifier = load_classifier(str(tiny_model), device="cpu", exact=True)
    assert type(classifier.model).__module__ == "resnet_cli.models.native"
    assert isinstance(classifier.processor, ExactConvNextProcessor)
    assert classifier.resize is None and classifier.runtime == "torch"  # full decodes, torch


@pytest.mark.parametrize(
    "change",
    ["vit-processor", "other-architecture", "gelu", "missing-weights", "bad-key"],
)
def test_anything_else_falls_back_to_transformers(change: str, tmp_path: Path) -> None:
    processor = ViTImageProcessor() if change == "vit-processor" else None
    save_resnet(tmp_path, processor=processor, **CONFIGS["basic"])
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    if change == "other-architecture":
        config["architectures"] = ["ResNetBackbone"]
    if change == "gelu":
        config["hidden_act"] = "gelu"
    config_path.write_text(json.dumps(config))
    if change == "missing-weights":
        (tmp_path / "model.safetensors").unlink()
        torch.save({}, tmp_path / "pytorch_model.bin")
    if change == "bad-key":
        from safetensors.torch import load_file, save_file

        state = load_file(tmp_path / "model.safetensors")
        state["extra.weight"] = torch.zeros(1)
        save_file(state, tmp_path / "model.safetensors")
    assert load_native(str(tmp_path)) is None


def test_classifier_uses_it_and_agrees_with_transformers(tiny_model: Path, tmp_path: Path) -> None:
    paths = []
    for i, size in enumerate([(256, 256), (341, 256), (512, 384)]):
        paths.append(tmp_path / f"{i}.png")
        scene(*size, seed=i).save(paths[-1])
    quick = load_classifier(str(tiny_model), device="cpu", runtime="torch")
    assert type(quick.model).__module__ == "resnet_cli.models.native"
    os.environ["RESNET_CLI_NATIVE"] = "0"
    try:
        slow = load_classifier(str(tiny_model), device="cpu", runtime="torch")
    finally:
        del os.environ["RESNET_CLI_NATIVE"]
    assert type(slow.model).__module__.startswith("transformers.")
    assert quick.labels == slow.labels and quick.resize == slow.resize
    for a, b in zip(classify(quick, paths, top_k=6), classify(slow, paths, top_k=6), strict=True):
        theirs = {p.class_id: p.score for p in b.predictions}
        # Images already at the resize target give the same pixels; the third is resized by
        # Pillow instead of torchvision, within the fidelity bound.
        tolerance = 1e-4 if a.input != str(paths[2]) else 0.02
        assert max(abs(p.score - theirs[p.class_id]) for p in a.predictions) <= tolerance


def test_default_model_from_the_hub_cache_starts_without_transformers(
    tiny_model: Path, tmp_path: Path
) -> None:
    # The layout huggingface_hub writes for a downloaded model, with the tiny model's files
    # standing in for microsoft/resnet-50's.
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--microsoft--resnet-50"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_model, repo / "snapshots" / revision)
    image = tmp_path / "cat.png"
    scene(256, 256, seed=3).save(image)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = run_probing_imports(["-q", "-f", "jsonl", "-k", "2", str(image)], env)
    assert result.returncode == 0, result.stderr
    assert not imported(result)["transformers"]
    record = json.loads(result.stdout)
    assert record["input"] == str(image) and len(record["predictions"]) == 2

    exact = run_probing_imports(["-q", "-f", "jsonl", "-k", "2", "--exact", str(image)], env)
    assert exact.returncode == 0, exact.stderr
    # --exact reproduces transformers' processor without it, and without torchvision.
    assert not imported(exact)["transformers"] and not imported(exact)["torchvision"]
    theirs = {p["class_id"]: p["score"] for p in json.loads(exact.stdout)["predictions"]}
    for p in record["predictions"]:
        assert p["score"] == pytest.approx(theirs[p["class_id"]], abs=1e-4)
    assert np.isfinite([p["score"] for p in record["predictions"]]).all()


@pytest.mark.parametrize("exact", [False, True])
def test_a_gpu_run_builds_it_without_transformers_too(
    tiny_model: Path, fake_gpu: None, exact: bool
) -> None:
    # On a GPU the start is torch's and torchvision's imports (nvJPEG) and the model; the
    # quick path takes transformers' 4-5 s out of it as on the CPU. No GPU here: the "meta"
    # device stands in for the resolved CUDA device.
    classifier = load_classifier(str(tiny_model), device="cuda", exact=exact)
    assert classifier.device.type == "meta" and classifier.runtime == "torch"
    assert classifier.plan.device == "cuda" and classifier.plan.device_decode != exact
    assert type(classifier.model).__module__ == "resnet_cli.models.native"
    expected = ExactConvNextProcessor if exact else NativeConvNextProcessor
    assert type(classifier.processor) is expected
    assert all(p.device.type == "meta" for p in classifier.model.parameters())
    # The processor takes the device-decoded uint8 CHW tensors nvJPEG gives, of any size.
    frames = [
        torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in [(375, 500), (64, 48)]
    ]
    pixels = classifier.preprocess(frames)
    assert tuple(pixels.shape) == (2, 3, 224, 224) and pixels.dtype == torch.float32


def test_resize_of_the_crop_alone_matches_resize_then_crop(tmp_path: Path) -> None:
    from PIL import Image

    from resnet_cli.models.checkpoint import centre_crop

    ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875).save_pretrained(tmp_path)
    ours = NativeConvNextProcessor.from_config(
        json.loads((tmp_path / "preprocessor_config.json").read_text())
    )
    assert ours is not None
    # Landscape and portrait, odd margins, down- and upscaling, a strip.
    for size in [(500, 375), (375, 500), (500, 333), (641, 479), (200, 150), (257, 1000)]:
        image = scene(*size, seed=sum(size))
        whole = image.resize(ours.rule.target(*size), Image.Resampling.BICUBIC)
        expected = centre_crop(np.asarray(whole).transpose(2, 0, 1), 224).astype(int)
        actual = ours.resized(image).astype(int)
        assert actual.shape == expected.shape == (3, 224, 224)
        difference = np.abs(actual - expected)
        assert difference.max() <= 1 and difference.mean() < 1e-3, size


@pytest.mark.parametrize("kind", ["native", "exact", "transformers", "gpu"])
def test_cpu_runs_preprocess_in_the_decode_threads(
    kind: str, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # The native processor's NumPy half needs no torch: on the CPU it runs per image in the
    # decode threads, beside the model. The others run on whole batches in the main thread.
    if kind == "transformers":
        monkeypatch.setenv("RESNET_CLI_NATIVE", "0")
    if kind == "gpu":
        request.getfixturevalue("fake_gpu")
    device = "cuda" if kind == "gpu" else "cpu"
    classifier = load_classifier(
        str(tiny_model), device=device, exact=kind == "exact", runtime="torch"
    )
    assert classifier.runtime == "torch"
    processor = classifier.threads_processor
    assert (processor is not None) == (kind == "native")
    if processor is None:
        return
    prepare = processor.prepare
    images = [scene(500, 375, seed=1), scene(300, 400, seed=2).convert("L")]
    rows = [prepare(image) for image in images]
    assert isinstance(rows[0], np.ndarray)  # no torch in the decode threads
    batch = classifier.stack(rows)
    assert torch.equal(batch, classifier.preprocess(images))


@pytest.mark.parametrize("resample", [2, 3])  # bilinear, bicubic
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_images_of_one_size_are_resized_as_a_batch_exactly_as_one_by_one(
    resample: int, layout: str, tmp_path: Path
) -> None:
    # A GPU run hands the processor nvJPEG's tensors; those of one size are resized in one
    # call. Each must come out as it would alone (both layouts nvJPEG and torchvision give).
    ConvNextImageProcessor(
        size={"shortest_edge": 224}, crop_pct=0.875, resample=resample
    ).save_pretrained(tmp_path)
    ours = NativeConvNextProcessor.from_config(
        json.loads((tmp_path / "preprocessor_config.json").read_text())
    )
    assert ours is not None

    def frame(seed: int, height: int, width: int) -> torch.Tensor:
        pixels = torch.from_numpy(np.array(scene(width, height, seed=seed))).permute(2, 0, 1)
        return pixels if layout == "channels_last" else pixels.contiguous()

    frames = [frame(i, 375, 500) for i in range(3)] + [frame(9, 333, 500), frame(7, 375, 500)]
    together = ours(frames)["pixel_values"]
    alone = torch.cat([ours([f])["pixel_values"] for f in frames])
    assert together.shape == (5, 3, 224, 224)
    assert torch.equal(together, alone)
