"""Fast paths are measured against the reference: DCT-downscaled decoding vs the model's own
processor on full decodes, and automatic precision vs fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from resnet_cli import classify, load_classifier
from resnet_cli.inputs.decode import decode_image, load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real photographs at camera-like sizes, so JPEG DCT downscaling takes effect."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for source in sorted(EXAMPLES.glob("*.jpg")):
        with Image.open(source) as image:
            for scale in (2, 5, 9):
                big = image.resize((image.width * scale, image.height * scale), Image.BICUBIC)
                path = folder / f"{source.stem}-x{scale}.jpg"
                big.save(path, quality=90)
                paths.append(path)
    return paths


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_dct_downscaled_pixels_stay_close_to_the_reference(
    runtime: str, tiny_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    # The torch path's processor, and the ONNX Runtime path's NumPy one (the torch-free
    # start from conftest's export).
    classifier = load_classifier(str(tiny_model), device="cpu", runtime=runtime)
    assert classifier.runtime == runtime
    # The reference: the model's own AutoImageProcessor on full decodes.
    from transformers import AutoImageProcessor

    reference = AutoImageProcessor.from_pretrained(str(tiny_model))
    assert classifier.resize is not None and classifier.resize.target(640, 480) == (341, 256)
    for path in photos:
        data = path.read_bytes()
        fast = decode_image(data, resize=classifier.resize)
        full = load_image(str(path))
        if min(full.size) >= 2 * classifier.resize.draft_edge:
            assert min(fast.size) == 256  # decoded downscaled, then resized as the model does
        ours = torch.as_tensor(classifier.preprocess([fast]))
        expected = reference(images=[full], return_tensors="pt")["pixel_values"]
        difference = (ours - expected).abs().mean()
        assert float(difference) <= 0.03, (path.name, float(difference))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_probabilities_stay_close_to_fp32(
    precision: str, tiny_model: Path, photos: list[Path]
) -> None:
    # auto picks bf16 on CPUs with native bf16 and fp16 on GPUs; both are checked here on
    # the CPU, against fp32 on the same decoded pixels.
    from resnet_cli.runtimes.hardware import probe

    reference = load_classifier(str(tiny_model), device="cpu", precision="fp32")
    reduced = load_classifier(str(tiny_model), device="cpu", precision=precision)
    expected = {r.input: r for r in classify(reference, photos, top_k=6)}
    for record in classify(reduced, photos, top_k=6):
        theirs = {p.class_id: p.score for p in expected[record.input].predictions}
        gap = max(abs(p.score - theirs[p.class_id]) for p in record.predictions)
        assert gap <= 0.02, (record.input, gap)
    if precision in (probe(cuda=False).with_torch().onednn or ()):
        assert reduced.runtime == "onednn"  # else eager autocast


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(
    native: str, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RESNET_CLI_CPU_BF16 stands for the CPU's flags. Without native bf16, auto is fp32 and
    # takes the cached ONNX Runtime export (conftest); with it, bf16 in torch (oneDNN's
    # packed convolutions where it has bf16 kernels, else eager autocast).
    from resnet_cli.runtimes.hardware import probe

    monkeypatch.setenv("RESNET_CLI_CPU_BF16", native)
    classifier = load_classifier(str(tiny_model), device="cpu")
    assert classifier.precision == ("bf16" if native == "1" else "fp32")
    packed = "onednn" if "bf16" in (probe(cuda=False).with_torch().onednn or ()) else "torch"
    assert classifier.runtime == (packed if native == "1" else "onnxruntime")
    assert (classifier.model is None) == (native == "0")  # the torch-free start
    # bf16 runs on oneDNN's packed convolutions, which do best on bigger batches.
    assert classifier.plan.batch_size == (16 if native == "1" else 8)


def test_elongated_image_is_cropped_before_the_resize(tiny_model: Path, tmp_path: Path) -> None:
    # The model's centre crop only sees the middle of a 10000x3 strip; resizing the whole strip
    # to a 256 short side would make an 853333x256 image first.
    import io

    import numpy as np

    classifier = load_classifier(str(tiny_model), device="cpu")
    pixels = np.random.default_rng(0).integers(0, 255, (3, 10000, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    strip = decode_image(buffer.getvalue(), resize=classifier.resize)
    assert strip.size == (12, 3)
    assert np.array_equal(np.asarray(strip), pixels[:, 4994:5006])
    assert load_image_size(buffer.getvalue()) == (10000, 3)  # --exact keeps the whole strip


def load_image_size(data: bytes) -> tuple[int, int]:
    return decode_image(data).size
