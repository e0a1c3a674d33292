"""--precision int8 on the real EfficientNet-Lite0: a first run calibrates on its first 64
images, the guard checks INT8 against fp32 on them, and later runs start from the cached INT8
model without torch; a model that INT8 gets wrong stays in fp32 and says why. On this CPU as
it is, and as an AVX2-only one (ONEDNN_MAX_CPU_ISA=AVX2 limits OpenVINO's oneDNN kernels)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import imported, run_cli, run_probing_imports
from resnet_cli.runtimes.int8 import available
from test_real_model import CATS, ESPRESSO, EXAMPLES, assert_right, jsonl

# Found, not imported: importing OpenVINO here would start its telemetry in the test process.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="the int8 extra (OpenVINO, NNCF) is not installed"),
]
CALIBRATION = 64  # runtimes.int8.CALIBRATION_IMAGES
ISAS = {"this CPU": {}, "AVX2-only": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 72 photos, as a user's first run might have: crops of the cat and the
    espresso, varied in size, place, mirroring and brightness, with a broken file among the
    first 64 (its record must come out in its place, and it is not calibrated on)."""
    from PIL import Image, ImageEnhance

    folder = tmp_path_factory.mktemp("int8-photos")
    rng = random.Random(28)
    for name in ("chelsea", "coffee"):
        with Image.open(EXAMPLES / f"{name}.jpg") as opened:
            image = opened.convert("RGB")
        width, height = image.size
        for i in range(36):
            scale = rng.uniform(0.65, 1.0)
            w, h = int(width * scale), int(height * scale)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            crop = image.crop((x, y, x + w, y + h))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.8, 1.2))
            # Interleaved names, so that the first 64 in folder order hold both.
            crop.save(folder / f"{i:02d}-{name}.jpg", quality=90)
    (folder / "10-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    return folder


def compiled_digest(blob: Path) -> str:
    """The digest the INT8 entry's record vouches for its compiled model with."""
    digest: str = json.loads(blob.with_suffix(".json").read_text())["compiled"]
    return digest


def classify_examples(model: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """The example photos' records from a -p int8 run."""
    result = run_cli(
        "-m",
        model,
        "-p",
        "int8",
        "-f",
        "jsonl",
        *sorted(EXAMPLES.glob("*.jpg")),
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "cpu, int8, openvino)" in result.stderr, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def meta_of(output: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(Path(f"{output}.meta.json").read_text())["resnet_classify"]
    return meta


def env_facts(model: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run_cli("env", "-m", model, "-p", "int8", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    facts: dict[str, Any] = json.loads(result.stdout)
    return facts


@pytest.mark.parametrize("isa", list(ISAS))
def test_int8_calibrates_on_the_first_run_and_later_runs_start_from_it_without_torch(
    isa: str, real_model: Path, photos: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**ISAS[isa], "RESNET_CLI_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(home)}
    output = tmp_path / "first.jsonl"
    first = run_cli("-m", real_model, "--offline", "-p", "int8", "-o", output, photos, env=env)
    assert first.returncode == 1, first.stderr  # the broken file; every other one classified
    assert "cpu, int8, openvino)" in first.stderr, first.stderr
    assert "warning" not in first.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    names = sorted(p.name for p in photos.iterdir())
    assert [Path(r["input"]).name for r in records] == names  # in input order
    assert "error" in records[names.index("10-broken.jpg")]
    good = [r for r in records if "error" not in r]
    right = [
        r["predictions"][0]["class_id"] in (CATS if "chelsea" in r["input"] else {ESPRESSO})
        for r in good
    ]
    assert sum(right) >= 0.95 * len(good)
    verdict = meta_of(output)["int8"]
    assert meta_of(output)["precision"] == "int8"
    assert verdict["accepted"] and verdict["images"] == CALIBRATION
    assert verdict["same_top1"] >= verdict["threshold"] == 95.0
    assert 0 <= verdict["max_score_gap"] < 0.5
    # NNCF's telemetry client was kept from starting: nothing under ~/intel.
    assert not (home / "intel").exists(), sorted(home.rglob("*"))

    # The cat first and espresso first, from the cached INT8 model, without torch.
    second = run_probing_imports(
        [
            "-m",
            str(real_model),
            "-p",
            "int8",
            "-f",
            "jsonl",
            *map(str, sorted(EXAMPLES.glob("*.jpg"))),
        ],
        {**os.environ, **env, "HF_HUB_OFFLINE": "1"},
    )
    loaded = imported(second)
    assert not loaded["torch"], second.stderr
    # Nor OpenVINO's model converter (half of its import) and the telemetry it starts.
    assert not loaded["openvino.tools.ovc"], second.stderr
    assert not loaded["openvino_telemetry"], second.stderr
    assert "cpu, int8, openvino)" in second.stderr
    assert_right([json.loads(line) for line in second.stdout.splitlines()], 2)

    # That run compiled the cached model and kept it compiled, its digest in the record.
    cache = tmp_path / "cache" / "int8"
    (blob,) = cache.glob("*.blob")
    assert compiled_digest(blob) == hashlib.sha256(blob.read_bytes()).hexdigest()
    # A compiled model whose bytes changed is not used: compiled anew, and written again.
    data = bytearray(blob.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    blob.write_bytes(bytes(data))
    assert_right(classify_examples(real_model, env), 2)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == compiled_digest(blob)
    assert blob.read_bytes() != bytes(data)
    # And the compiled model is what later runs load: with the saved model's graph gone, they
    # are still right.
    blob.with_suffix(".xml").write_text("<broken/>")
    assert_right(classify_examples(real_model, env), 2)

    facts = env_facts(real_model, env)
    assert facts["plan"]["precision"]["value"] == "int8"
    assert facts["plan"]["network"]["value"] == "int8 cache"
    assert facts["int8"]["same_top1"] == verdict["same_top1"]
    assert facts["int8"]["max_score_gap"] == verdict["max_score_gap"]


def poisoned(model: Path, folder: Path) -> Path:
    """The real model with one channel made huge where INT8 cannot follow it: channel 0 of
    the last block's output gets +10000 and the next convolution ignores that channel, so
    fp32 answers as before but the activation quantizer in front of that convolution spends
    its 256 steps on the outlier and flattens every other channel to nothing."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["timm_model.blocks.6.0.bn3.bias"][0] += 10000.0
    weights["timm_model.conv_head.weight"][:, 0] = 0.0
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_the_guard_keeps_a_model_that_int8_gets_wrong_in_fp32(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    model = poisoned(real_model, tmp_path / "poisoned")
    env = {"RESNET_CLI_CACHE_DIR": str(tmp_path / "cache")}
    output = tmp_path / "first.jsonl"
    first = run_cli("-m", model, "--offline", "-p", "int8", "-q", "-o", output, photos, env=env)
    assert first.returncode == 1, first.stderr  # the broken file
    lines = first.stderr.splitlines()
    refusals = [line for line in lines if line.startswith("warning: int8 refused: same top-1")]
    assert len(refusals) == 1, first.stderr  # one line, even with -q
    assert "computing in fp32" in refusals[0]
    meta = meta_of(output)
    assert meta["precision"] == "fp32" and meta["runtime"] == "openvino"
    verdict = meta["int8"]
    assert not verdict["accepted"] and verdict["images"] == CALIBRATION
    assert verdict["same_top1"] < verdict["threshold"]
    assert f"{verdict['same_top1']:.1f}% of {CALIBRATION} calibration images" in refusals[0]
    # The answers are fp32's: still right.
    records = [json.loads(line) for line in output.read_text().splitlines()]
    good = [r for r in records if "error" not in r]
    right = [
        r["predictions"][0]["class_id"] in (CATS if "chelsea" in r["input"] else {ESPRESSO})
        for r in good
    ]
    assert sum(right) >= 0.95 * len(good)

    # A later run is told by the cache: fp32 at once, saying why, nothing calibrated again.
    later = run_cli(
        "-m",
        model,
        "--offline",
        "-p",
        "int8",
        "-f",
        "jsonl",
        *sorted(EXAMPLES.glob("*.jpg")),
        env=env,
    )
    assert_right(jsonl(later), 2)
    assert "warning: int8 refused: same top-1" in later.stderr
    assert "cpu, fp32, " in later.stderr
    facts = env_facts(model, env)
    assert facts["plan"]["precision"]["value"] == "fp32"
    assert "int8 refused" in facts["plan"]["precision"]["why"]
    assert facts["int8"]["accepted"] is False


def test_a_run_too_short_to_calibrate_on_stays_in_fp32_and_says_so(
    real_model: Path, tmp_path: Path
) -> None:
    env = {"RESNET_CLI_CACHE_DIR": str(tmp_path / "cache")}
    paths = sorted(EXAMPLES.glob("*.jpg"))
    result = run_cli("-m", real_model, "--offline", "-p", "int8", "-f", "jsonl", *paths, env=env)
    assert_right(jsonl(result), 2)
    assert "warning: int8 calibrates on a first run's first 64 images, and this run has 2" in (
        result.stderr
    )
    assert "cpu, fp32, " in result.stderr
    assert not (tmp_path / "cache" / "int8").exists()  # nothing calibrated, nothing cached
    # Paths on stdin: the number is not known before the input ends.
    stdin = run_cli_stdin(real_model, paths, env)
    assert_right(jsonl(stdin), 2)
    assert "the input ended after 2: computing in fp32" in stdin.stderr
    assert "cpu, fp32, openvino)" in stdin.stderr


def run_cli_stdin(model: Path, paths: list[Path], env: dict[str, str]) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "resnet_cli", "-m", str(model), "--offline", "-p", "int8", "-"],
        input="".join(f"{p}\n" for p in paths),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
