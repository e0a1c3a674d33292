"""The library API that the CLI and examples/ use: load_classifier + classify."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from conftest import LABELS, scene
from resnet_cli import Source, UsageError, classify, load_classifier
from resnet_cli.pipeline.local import classify_batches


@pytest.fixture(scope="module")
def classifier(tiny_model: Path):
    return load_classifier(str(tiny_model), device="cpu", batch_size=4)


def test_paths_images_and_bytes_give_the_same_answer(classifier, images: list[Path]) -> None:
    from PIL import Image

    path = images[3]  # a PNG: decoded identically from every kind of input
    as_image = Image.open(path).convert("RGB")
    records = list(classify(classifier, [path, as_image, path.read_bytes()], top_k=3))
    assert [r.input for r in records] == [str(path), "<image 1>", "<bytes 2>"]
    first = records[0].predictions
    assert all(r.predictions == first for r in records)
    assert first[0].label == LABELS[first[0].class_id]


def test_bad_input_is_a_record_not_an_exception(classifier, images: list[Path]) -> None:
    records = list(classify(classifier, [images[0], b"garbage", images[1]]))
    assert [r.ok for r in records] == [True, False, True]
    assert "not a readable image" in (records[1].error or "")


def test_batches_come_in_order_and_bounded(classifier, tmp_path: Path) -> None:
    paths = []
    for i in range(11):
        path = tmp_path / f"{i:02d}.jpg"
        scene(64 + i, 48, seed=i).save(path)
        paths.append(path)
    batches = list(classify_batches(classifier, [Source(str(p), str(p)) for p in paths]))
    assert [len(b) for b in batches] == [4, 4, 3]
    assert [r.input for b in batches for r in b] == [str(p) for p in paths]


def test_out_of_memory_halves_the_batch_and_loses_nothing(
    tiny_model: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = load_classifier(str(tiny_model), device="cpu", batch_size=8)
    expected = list(classify(classifier, images))
    real_predict = type(classifier).predict
    sizes: list[int] = []

    def flaky_predict(self, pixels, top_k):
        sizes.append(len(pixels))
        if len(pixels) > 2:  # pretend the device only fits two images at a time
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_predict(self, pixels, top_k)

    monkeypatch.setattr(type(classifier), "predict", flaky_predict)
    records = list(classify(classifier, images))
    assert sizes[0] == len(images) and max(s for s in sizes if s <= 2) == 2
    assert [r.input for r in records] == [r.input for r in expected]
    for ours, theirs in zip(records, expected, strict=True):
        assert [p.class_id for p in ours.predictions] == [p.class_id for p in theirs.predictions]


def test_other_model_errors_are_not_swallowed(classifier, images, monkeypatch) -> None:
    def broken(self, pixels, top_k):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(type(classifier), "predict", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(classify(classifier, images))


def test_device_decode_path_matches_the_cpu_path(tiny_model: Path, images: list[Path]) -> None:
    # On CUDA, JPEGs are decoded in batches on the GPU (nvJPEG); the same code runs here on the
    # CPU with torchvision's decode_jpeg, so its wiring and fallbacks are tested without a GPU.
    classifier = load_classifier(str(tiny_model), device="cpu", runtime="torch")
    assert classifier.runtime == "torch"
    jpegs = [p for p in images if p.suffix == ".jpg"]
    # A cut-off JPEG: nvJPEG decodes it without a word (seen on an H200) where the CPU path
    # refuses it, so it never goes to the device; both paths fail it.
    truncated = jpegs[0].read_bytes()[:2000]
    inputs = [*jpegs, io.BytesIO(b"x").getvalue(), truncated]
    reference = list(classify(classifier, inputs, device_decode=False))
    on_device = list(classify(classifier, inputs, device_decode=True))
    assert (
        [r.ok for r in on_device]
        == [r.ok for r in reference]
        == [True] * len(jpegs)
        + [
            False,
            False,
        ]
    )
    for ours, theirs in zip(on_device[:-2], reference[:-2], strict=True):
        assert ours.input == theirs.input
        theirs_scores = {p.class_id: p.score for p in theirs.predictions}
        for p in ours.predictions:
            assert p.score == pytest.approx(theirs_scores[p.class_id], abs=0.03)


def onednn_kernels() -> frozenset[str]:
    from resnet_cli.runtimes.hardware import probe

    return probe(cuda=False).with_torch().onednn or frozenset()


@pytest.mark.parametrize("runtime", ["onnxruntime", "torchscript", "bf16"])
def test_every_cpu_runtime_scores_the_whole_run_as_eager_torch_does(
    runtime: str,
    tiny_model: Path,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cache of its own: the model loads in torch, as on a first run.
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RESNET_CLI_ONNX", "1" if runtime == "onnxruntime" else "0")
    # bf16: --precision auto on a CPU with AMX or AVX512-BF16 (emulated where there is none).
    bf16 = runtime == "bf16"
    monkeypatch.setenv("RESNET_CLI_CPU_BF16", "1" if bf16 else "0")
    eager = load_classifier(str(tiny_model), device="cpu", runtime="torch", batch_size=4)
    fast = load_classifier(str(tiny_model), device="cpu", batch_size=4)
    if bf16:  # oneDNN's packed convolutions where it has bf16 kernels, else eager autocast
        runtime = "onednn" if "bf16" in onednn_kernels() else "torch"
    assert (fast.runtime, eager.runtime) == (runtime, "torch")
    assert fast.precision == eager.precision == ("bf16" if bf16 else "fp32")
    inputs = images * 3
    expected = list(classify(eager, inputs))
    records = list(classify(fast, inputs))
    assert fast.runtime == runtime  # for every image: nothing changes runtime mid-run
    # Only an ONNX export is kept for later runs.
    assert len(list((tmp_path / "cache").glob("onnx/*.onnx"))) == (runtime == "onnxruntime")
    # The same arithmetic, but bf16 rounds at 3 significant digits, and a fused kernel
    # rounds at other points than the eager one.
    tolerance = 1e-2 if bf16 else 1e-4
    for ours, theirs in zip(records, expected, strict=True):
        assert [p.class_id for p in ours.predictions] == [p.class_id for p in theirs.predictions]
        for p, q in zip(ours.predictions, theirs.predictions, strict=True):
            assert p.score == pytest.approx(q.score, abs=tolerance)


def test_the_bf16_runtime_keeps_the_autocast_arithmetic(tiny_model: Path) -> None:
    import torch

    from resnet_cli.runtimes.base import logits_of

    # The packed model must compute in bf16 as the eager one does under autocast, not in
    # fp32 (weights or inputs left uncast) and not in some third way.
    if "bf16" not in onednn_kernels():
        pytest.skip("oneDNN has no bf16 kernels for this CPU: bf16 stays in eager autocast")
    classifier = load_classifier(str(tiny_model), device="cpu", precision="bf16", runtime="onednn")
    sample = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fp32 = logits_of(classifier.model(pixel_values=sample))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = logits_of(classifier.model(pixel_values=sample)).float()
        assert classifier.forward is not None
        packed = logits_of(classifier.forward(sample)).float()
    assert not torch.equal(bf16, fp32)  # the two arithmetics differ on this sample
    assert (packed - bf16).abs().max() < (packed - fp32).abs().max()


def test_exact_classifier_is_eager_and_unfolded(tiny_model: Path) -> None:
    import torch

    exact = load_classifier(str(tiny_model), device="cpu", exact=True)
    assert exact.runtime == "torch" and exact.precision == "fp32"
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in exact.model.modules())
    with pytest.raises(UsageError, match="runtime onnxruntime cannot run this"):
        load_classifier(str(tiny_model), device="cpu", exact=True, runtime="onnxruntime")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_device_path_turns_images_upright_like_pil(orientation: int) -> None:
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    from resnet_cli.pipeline.local import apply_orientation

    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    image.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(image))
    turned = apply_orientation(torch.from_numpy(pixels).permute(2, 0, 1), orientation)
    assert np.array_equal(turned.permute(1, 2, 0).numpy(), expected)


def test_a_long_run_of_failures_is_flushed_in_batches(classifier) -> None:
    sources = [Source(f"bad{i}", data=b"not an image") for i in range(40)]
    batches = list(classify_batches(classifier, sources))
    assert len(batches) > 1 and max(len(b) for b in batches) <= 16
    assert [r.input for b in batches for r in b] == [s.name for s in sources]
    assert not any(r.ok for b in batches for r in b)


def test_a_batch_of_host_and_device_pixels_is_stacked_on_the_device(tiny_model: Path) -> None:
    # On CUDA a PNG (or a JPEG nvJPEG refuses) is preprocessed on the host while the batch's
    # other JPEGs are preprocessed on the GPU; both kinds of row meet in one batch. No GPU
    # here: the "meta" device stands in for it, and mixing it with the CPU fails the same way.
    import dataclasses

    import torch

    classifier = load_classifier(str(tiny_model), device="cpu", runtime="torch")
    on_device = dataclasses.replace(classifier, device=torch.device("meta"))
    rows = [torch.zeros(3, 4, 4), torch.zeros(3, 4, 4, device="meta"), torch.ones(3, 4, 4)]
    batch = on_device.stack(rows)
    assert batch.device.type == "meta" and tuple(batch.shape) == (3, 3, 4, 4)
    assert classifier.stack(rows[::2]).device.type == "cpu"  # one device: left where it is


@pytest.mark.parametrize(("device", "exact"), [("cuda", False), ("cuda", True), ("cpu", False)])
def test_cudnn_times_its_algorithms_on_cuda_runs_but_exact_ones(
    device: str, exact: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from resnet_cli.runtimes.build import tune_backends
    from resnet_cli.runtimes.hardware import Hardware
    from resnet_cli.runtimes.select import Checkpoint, Request, choose_plan

    gpu = Hardware(cores=2, cuda=("Fake GPU",), onednn=frozenset())
    plan = choose_plan(Request(device=device, exact=exact), Checkpoint(), gpu)
    assert plan.cudnn_benchmark == (device == "cuda" and not exact)  # the plan decides
    assert plan.reasons["cudnn_benchmark"]
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored afterwards
    tune_backends(plan)  # a flag: no GPU needed to set it
    assert torch.backends.cudnn.benchmark == (device == "cuda" and not exact)


def test_only_a_whole_jpeg_is_sent_to_the_device_decoder(images: list[Path]) -> None:
    from resnet_cli.pipeline.local import _device_decodable

    whole = next(p for p in images if p.suffix == ".jpg").read_bytes()
    assert _device_decodable(whole, None) == 1
    assert _device_decodable(whole[:2000], None) is None  # cut off: the CPU says so
    assert _device_decodable(whole + b"trailer", None) is None  # data after EOI: the CPU's


def pillow_device_decodable(data: bytes) -> int | None:
    """What the GPU path asked Pillow before it read the markers itself: the reference."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as header:
            if header.mode not in ("RGB", "L") or header.format != "JPEG":
                return None
            orientation = header.getexif().get(0x0112, 1)
            return orientation if orientation in range(1, 9) else 1
    except Exception:
        return None


def jpeg_variants() -> list[tuple[str, bytes]]:
    from PIL import Image

    picture = scene(64, 48, seed=3)
    variants = []

    def saved(name: str, image: Any, **options: Any) -> None:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        variants.append((name, buffer.getvalue()))

    saved("plain", picture)
    saved("progressive", picture, progressive=True)
    saved("grey", picture.convert("L"))
    saved("cmyk", picture.convert("CMYK"))
    saved("optimized, no subsampling", picture, optimize=True, subsampling=0)
    for turn in [*range(0, 10), 300]:
        exif = Image.Exif()
        exif[0x0112] = turn
        saved(f"orientation {turn}", picture, exif=exif.tobytes())
    exif = Image.Exif()
    exif[0x010F] = "Maker"  # EXIF without an orientation
    saved("exif, no orientation", picture, exif=exif.tobytes())
    # The same tag as Motorola-order EXIF writes it (cameras of many makes): "MM", one entry.
    motorola = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0\0\0\0\0"
    saved("orientation 8, big-endian", picture, exif=b"Exif\0\0" + motorola)
    return variants


@pytest.mark.parametrize(("name", "data"), jpeg_variants())
def test_the_jpeg_markers_say_what_pillow_says(name: str, data: bytes) -> None:
    # The GPU path's decode threads read each JPEG's markers themselves (Pillow's parser holds
    # the GIL for 200 us an image, which starved the main thread); same answers as Pillow's.
    from resnet_cli.pipeline.local import _device_decodable

    assert _device_decodable(data, None) == pillow_device_decodable(data), name


def test_the_library_run_resumes_and_reports_as_the_command_does(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # examples/resume_and_report.py, run twice: the second run finds the photos of the first
    # in the output, classifies only the one added since, and writes the report anew over all.
    import json
    import runpy
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        scene(96, 80, seed=i).save(photos / f"p{i}.jpg")
    output, report = tmp_path / "labels.jsonl", tmp_path / "report.html"
    example = Path(__file__).parents[1] / "examples" / "resume_and_report.py"
    argv = [str(example), str(photos), str(output), str(report), "--model", str(tiny_model)]
    monkeypatch.setattr(sys, "argv", argv)

    def example_run() -> int:
        with pytest.raises(SystemExit) as ended:
            runpy.run_path(str(example), run_name="__main__")
        return int(ended.value.code or 0)

    assert example_run() == 0
    first = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(first) == 3 and report.exists()
    scene(96, 80, seed=7).save(photos / "p7.jpg")
    report.write_text("stale")
    assert example_run() == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert records[:3] == first  # kept as they were: not classified again
    assert [Path(r["input"]).name for r in records[3:]] == ["p7.jpg"]
    html = report.read_text()
    assert all(f"p{i}.jpg" in html for i in (0, 1, 2, 7))  # the report covers the whole file


def test_the_library_run_returns_what_the_command_prints(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    from resnet_cli import RunOptions, run
    from resnet_cli.pipeline.run import Watcher

    said: list[str] = []
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = run(
        [*images, broken],
        RunOptions.of(model=str(tiny_model), output=tmp_path / "out.csv", top_k=2),
        watcher=Watcher(say=said.append),
    )
    assert (result.inputs, result.failed, result.exit_code) == (6, 1, 1)
    assert result.where.startswith("cpu, ") and not result.interrupted
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert len(lines) == 1 + 5 * 2 + 1 and "broken.jpg" in lines[-1]  # a row per label
    with pytest.raises(UsageError, match="unknown run option 'topk'"):
        run(images, topk=3)
    with pytest.raises(UsageError, match="--resume needs --output"):
        run(images, model=str(tiny_model), resume=True)


def test_a_request_that_cannot_run_fails_before_the_network_loads(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from resnet_cli.errors import DeviceError
    from resnet_cli.models import native

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")

    def no_loading(*args: Any) -> Any:
        raise AssertionError("the network was loaded before the plan said it cannot run")

    monkeypatch.setattr(native, "load_native", no_loading)
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))  # no export to start from
    with pytest.raises(DeviceError, match="no CUDA device"):
        load_classifier(str(tiny_model), device="cuda", runtime="torch")
