"""Shared fixtures: a tiny random ResNet with named labels, and small test images.

Nothing here touches the network: HF_HUB_OFFLINE=1 is set for the whole session. Nothing
writes to the user's caches or config either: Hugging Face's (hub and datasets), resnet-cli's
runtime cache, every other XDG cache and the XDG config folder (resnet-classify config's file)
point into SESSION_DIR, a temporary folder of this session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# --precision auto as on a CPU without native bf16 (fp32, the ONNX Runtime path), whatever
# this machine has; the bf16 path's tests set RESNET_CLI_CPU_BF16=1 themselves.
os.environ["RESNET_CLI_CPU_BF16"] = "0"
# This session's caches, never the user's (children inherit them). Set before anything
# imports datasets or huggingface_hub, which read them once, at import. Every Hugging Face
# cache follows HF_HOME (a test that sets its own HF_HOME gets caches of its own); XDG's
# takes the rest: ONNX Runtime's telemetry files, Chromium's, torch's.
SESSION_DIR = tempfile.mkdtemp(prefix="resnet-cli-tests-")
os.environ["HF_HOME"] = os.path.join(SESSION_DIR, "huggingface")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("HUGGINGFACE_HUB_CACHE", None)
os.environ.pop("HF_DATASETS_CACHE", None)
os.environ.pop("HF_XET_CACHE", None)
os.environ["XDG_CACHE_HOME"] = os.path.join(SESSION_DIR, "cache")
os.environ["RESNET_CLI_CACHE_DIR"] = os.path.join(SESSION_DIR, "resnet-cli")
# The user's default model (resnet-classify config, RESNET_CLI_MODEL) is neither read nor
# written: tests get microsoft/resnet-50 without -m, as on a fresh machine.
os.environ["XDG_CONFIG_HOME"] = os.path.join(SESSION_DIR, "config")
os.environ.pop("RESNET_CLI_MODEL", None)
# ONNX Runtime 1.32+ uploads telemetry from Linux too, unless told not to: tests stay offline.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

# The tiny model lives in examples/ so users can make the same one to try the tool offline.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import make_real_model  # noqa: E402  (after the environment above: SESSION_DIR's assignment)
import make_tiny_model  # noqa: E402

LABELS = make_tiny_model.LABELS


# The test files whose outcome depends on the CPU (bf16 kernels, the probe, the plan): .ci/run
# runs them a second time as a CPU without native bf16 looks (ONEDNN_MAX_CPU_ISA=AVX2),
# whichever kind of machine CI has.
HARDWARE_DEPENDENT = {
    "test_compile.py",
    "test_env_command.py",
    "test_fidelity.py",
    "test_library.py",
    "test_native.py",
    "test_packed.py",
    "test_real_model.py",
    "test_runtime.py",
    "test_runtime_builds.py",
    "test_select.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in HARDWARE_DEPENDENT:
            item.add_marker(pytest.mark.hardware)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


def as_foreground() -> None:
    """Popen's preexec_fn for a child that a test will Ctrl-C: SIGINT back to its default.

    A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored
    across exec, so under `bash .ci/run &` the child would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def build_tiny_model(folder: Path, *, multi_label: bool = False, seed: int = 0) -> Path:
    """A few-channel ResNet with named labels and microsoft/resnet-50's preprocessing."""
    return Path(make_tiny_model.save_tiny_model(str(folder), multi_label=multi_label, seed=seed))


def warm_runtime_cache(folder: Path) -> None:
    """What a first run leaves behind: the model's ONNX export in the runtime cache, so that
    later loads take the torch-free ONNX Runtime path, as every run after a user's first does.
    Tests of the torch path load with runtime="torch"."""
    from resnet_cli import load_classifier

    assert load_classifier(str(folder), device="cpu", images=1).save_quick_start()
    quick = load_classifier(str(folder), device="cpu")
    assert quick.runtime == "onnxruntime" and quick.model is None  # torch-free


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-resnet"))
    warm_runtime_cache(folder)
    return folder


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0 trained on ImageNet-1k, as a transformers timm_wrapper checkpoint
    (examples/make_real_model.py): the model whose answers can be right or wrong."""
    folder = tmp_path_factory.mktemp("real-model")
    return Path(make_real_model.save_real_model(str(folder)))


@pytest.fixture(scope="session")
def multi_label_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-multilabel"), multi_label=True)
    warm_runtime_cache(folder)
    return folder


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with one CUDA device, as the chooser sees it; the model goes to torch's
    "meta" device in its place (no memory, no arithmetic), so a GPU run's plan and loading
    are tested without a GPU."""
    import torch

    from resnet_cli.runtimes import classifier as model_module
    from resnet_cli.runtimes.hardware import Hardware

    gpu = Hardware(cores=2, cuda=("Fake GPU",), cuda_bf16=True)
    monkeypatch.setattr(model_module, "_probe", lambda device: gpu)
    monkeypatch.setattr(model_module, "_torch_device", lambda name: torch.device("meta"))


def run_probing_imports(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter; its last stderr line says which of torch,
    transformers, torchvision (3 s: it imports torch._dynamo), pydantic (a third of a
    second, through typer 0.29+), OpenVINO's model converter and its telemetry client it
    imported (see ``imported``)."""
    probe = (
        "import json, sys\nfrom resnet_cli.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "names = ('torch', 'transformers', 'torchvision', 'pydantic', 'openvino.tools.ovc',"
        " 'openvino_telemetry')\n"
        "print(json.dumps({m: m in sys.modules for m in names}), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=300
    )


def run_cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m resnet_cli ARGS`` in a fresh interpreter, this environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "resnet_cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def imported(result: subprocess.CompletedProcess[str]) -> dict[str, bool]:
    import json

    loaded: dict[str, bool] = json.loads(result.stderr.strip().splitlines()[-1])
    return loaded


def scene(width: int, height: int, seed: int) -> Image.Image:
    """A smooth, photo-like RGB picture (gradients and blobs), different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = [*rng.uniform(1, 6, size=2).tolist(), rng.uniform(0, 6.28)]
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


def make_photos(folder: Path, count: int) -> Path:
    """``folder`` with ``count`` small, different JPEGs in it: 000.jpg, 001.jpg, ..."""
    folder.mkdir()
    for i in range(count):
        scene(96 + i, 80, seed=i).save(folder / f"{i:03d}.jpg")
    return folder


@contextlib.contextmanager
def loopback_server(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that calls ``respond`` with each connection (after reading the
    request) and closes it; yields its http:// address. Nothing leaves the machine."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection, contextlib.suppress(OSError):
                connection.recv(4096)
                respond(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def interrupt_a_stuck_run(
    command: str, model: Path, first: Path, *options: object
) -> tuple[int, bytes]:
    """Run ``command`` on ``first`` and then a URL whose server never answers (a loopback
    socket that never accepts), batch size 1 and ``options`` (which must include ``-o OUT``):
    the decode worker waits on it for the whole HTTP timeout, set to ten minutes. Once OUT
    holds the first record, press Ctrl-C; return the exit code and stderr."""
    out = Path(str(options[list(options).index("-o") + 1]))
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/stuck.jpg"
        args = ["-m", model, "-b", "1", first, url, *options]
        env = {**os.environ, "RESNET_CLI_HTTP_TIMEOUT": "600"}
        process = subprocess.Popen(
            [command, *map(str, args)],
            preexec_fn=as_foreground,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
    return process.returncode, stderr
