"""ONNX Runtime 1.29+ uploads usage events and writes a device id under ~/.cache on Linux
and macOS unless told not to before it loads. resnet-classify tells it not to: --offline
means no network, and nothing is written beside the outputs and the runtime cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_run_on_onnx_runtime_writes_nothing_of_onnx_runtime_into_home(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ORT_DISABLE_TELEMETRY", "ORT_TELEMETRY_DISABLED", "XDG_CACHE_HOME")
    }
    env |= {
        "HOME": str(home),
        "RESNET_CLI_CACHE_DIR": str(tmp_path / "runtime-cache"),
        "RESNET_CLI_CPU_BF16": "0",  # fp32: the export after the first run, ORT after that
    }
    command = [sys.executable, "-m", "resnet_cli", "-m", tiny_model, "--offline", "-f", "jsonl"]
    for _ in range(2):
        run = subprocess.run(
            [*map(str, command), *map(str, images)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
    assert "onnxruntime" in run.stderr  # the second run computed in ONNX Runtime
    assert not (home / ".cache" / "Microsoft").exists(), sorted(home.rglob("*"))
