"""Issue 24, case 3: nothing from a model's files runs unless asked (--trust-remote-code), and
nothing but the input list is read from standard input.

A model folder whose config.json names Python code in its ``auto_map`` (and a model_type
transformers does not know) made transformers ask "Do you wish to run the custom code?
[y/N]" on stdout and read the answer from stdin, which holds the path list: a path line
``y`` consented, and the folder's code ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import make_photos

CODE = """
import os, pathlib
pathlib.Path(os.environ["EVIL_MARKER"]).write_text("the model folder's code ran")
from transformers import ResNetConfig, ResNetForImageClassification


class EvilConfig(ResNetConfig):
    model_type = "evil_resnet"


class EvilModel(ResNetForImageClassification):
    config_class = EvilConfig
"""


@pytest.fixture
def custom_code_model(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model, made to need its own code: an unknown model_type, an auto_map."""
    folder = Path(shutil.copytree(tiny_model, tmp_path / "custom-model"))
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil_resnet"
    config["auto_map"] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModelForImageClassification": "evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(CODE)
    return folder


def run(args: list[str], stdin: bytes, marker: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resnet_cli", *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "EVIL_MARKER": str(marker)},
    )


def run_on_paths(model: Path, marker: Path, folder: Path, *flags: str):
    """Three photos' paths on stdin, with a line ``y`` among them: what transformers' prompt
    would take for consent."""
    make_photos(folder / "photos", 3)
    stdin = b"photos/000.jpg\ny\nphotos/001.jpg\nphotos/002.jpg\n"
    return run(["-m", str(model), *flags, "-", "-f", "jsonl"], stdin, marker, folder)


def test_a_model_folders_code_never_runs_and_stdin_is_never_asked(
    custom_code_model: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    result = run_on_paths(custom_code_model, marker, tmp_path)
    assert not marker.exists()  # the folder's code did not run
    assert result.returncode == 3, result.stderr
    assert result.stdout == b""  # no prompt among the records
    assert result.stderr.decode().splitlines() == [
        f"Error: model folder {str(custom_code_model)!r} needs its own Python code to load (its "
        "config's auto_map): pass --trust-remote-code to run it, only if you trust where it "
        "comes from"
    ]
    # `env` plans a run of the model: it loads its processor, and runs nothing either.
    env = run(["env", "-m", str(custom_code_model)], b"y\n", marker, tmp_path)
    assert env.returncode == 0, env.stderr
    assert not marker.exists() and b"[y/N]" not in env.stdout + env.stderr


def test_trust_remote_code_runs_it_says_so_and_keeps_every_path(
    custom_code_model: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    result = run_on_paths(custom_code_model, marker, tmp_path, "--trust-remote-code")
    assert marker.exists()  # asked for: it ran
    assert result.returncode == 1, result.stderr  # the path `y` names no file
    lines = result.stderr.decode().splitlines()
    assert lines[0] == (
        f"note: --trust-remote-code: Python code in {custom_code_model}'s files may run"
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [
        "photos/000.jpg",
        "y",
        "photos/001.jpg",
        "photos/002.jpg",
    ]  # every path read is a record: none was taken for an answer
    assert records[1]["error"] == "no such file or directory"


def test_every_from_pretrained_says_trust_remote_code(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    from resnet_cli.models.transformers import load_with_transformers
    from resnet_cli.runtimes import environment

    calls: list[dict[str, Any]] = []
    for auto in (transformers.AutoImageProcessor, transformers.AutoModelForImageClassification):
        real = auto.from_pretrained

        def recording(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return _real(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", recording)
    load_with_transformers(str(tiny_model), None, offline=True)
    environment._local_processor(str(tiny_model), None)
    load_with_transformers(str(tiny_model), None, offline=True, trust_remote_code=True)
    assert [c.get("trust_remote_code", "unset") for c in calls] == [False] * 3 + [True] * 2
