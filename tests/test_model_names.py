"""What --model names: a mistyped folder is said to be one, at once, with the folder meant;
only hub-shaped names go to the hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import imported, run_probing_imports
from resnet_cli.cli.classify import app
from resnet_cli.errors import ModelLoadError
from resnet_cli.models import transformers
from resnet_cli.runtimes import classifier

runner = CliRunner()


@pytest.fixture
def here(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder: tiny-resnet/ (the tiny model) and models/tiny-resnet/ in it."""
    (tmp_path / "tiny-resnet").symlink_to(tiny_model, target_is_directory=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-resnet").symlink_to(tiny_model, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way to the hub or to the model's files fails the test."""
    import huggingface_hub

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a mistyped folder must not reach the hub or load anything")

    for module, name in (
        (classifier, "read_checkpoint"),
        (classifier, "load_with_transformers"),
        (transformers, "check_hub"),
        (transformers, "load_with_transformers"),
    ):
        monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", forbidden)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", forbidden)


def classify(model: str, image: Path, *options: str):
    return runner.invoke(app, ["-m", model, "-q", "-f", "jsonl", *options, str(image)])


def test_mistyped_folders_are_named_with_the_folder_meant(
    here: Path, no_hub: None, images: list[Path]
) -> None:
    cases = {
        # The case: a bare name beside a folder named almost like it.
        "tiny-resnt": "did you mean 'tiny-resnet'? (a model on the hub is named by its "
        "full id, org/name)",
        "./tiny-resnt": "did you mean './tiny-resnet'?",
        "tiny-resnt/": "did you mean 'tiny-resnet'?",
        f"{here}/tiny-resnt": f"did you mean '{here}/tiny-resnet'?",
        "./modls/tiny-resnet": "did you mean './models/tiny-resnet'?",
        # org/name shaped, but org/ is a folder here holding one named almost like it.
        "models/tiny-resnt": "did you mean 'models/tiny-resnet'?",
        "/no/such/model-folder": "check the path, or pass a hub id",
        "./nothing-like-it": "check the path, or pass a hub id",
        "a folder with spaces": "check the path, or pass a hub id",  # no hub id has one
    }
    for model, hint in cases.items():
        result = classify(model, images[0])
        assert result.exit_code == 3, (model, result.output)
        assert result.stderr == f"Error: no such model folder: {model!r}: {hint}\n"
        assert result.stdout == ""


def test_a_missing_absolute_path_loads_nothing(tmp_path: Path, images: list[Path]) -> None:
    # In a fresh interpreter: the error comes before torch or transformers is imported.
    result = run_probing_imports(
        ["-m", str(tmp_path / "no-model"), "-q", str(images[0])], env=dict(os.environ)
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"Error: no such model folder: '{tmp_path / 'no-model'}': check the path, or pass a hub id"
    )
    assert not imported(result)["torch"] and not imported(result)["transformers"]


@pytest.mark.parametrize(
    "model", ["microsoft/resnet-50", "bert-base-uncased", "models/not-like-any", "tiny-resnet/x"]
)
def test_hub_shaped_names_without_a_folder_like_them_go_to_the_hub(
    here: Path, monkeypatch: pytest.MonkeyPatch, images: list[Path], model: str
) -> None:
    asked: list[str] = []

    def hub(name: str, revision: str | None, offline: bool, trust_code: bool = False) -> None:
        asked.append(name)
        raise ModelLoadError(f"the hub was asked for {name}")

    monkeypatch.setattr(classifier, "load_with_transformers", hub)
    result = classify(model, images[0])
    assert result.exit_code == 3, result.output
    assert asked == [model]
    assert result.stderr == f"Error: the hub was asked for {model}\n"


def test_folders_that_exist_load_as_typed(
    here: Path, monkeypatch: pytest.MonkeyPatch, images: list[Path]
) -> None:
    monkeypatch.setenv("HOME", str(here))
    # ~ quoted, so that no shell expanded it: the folder in the home is loaded all the same.
    for model in ("tiny-resnet", "./tiny-resnet/", "models/tiny-resnet", "~/tiny-resnet"):
        result = classify(model, images[0], "--offline")
        assert result.exit_code == 0, (model, result.output)
        assert '"predictions"' in result.stdout
