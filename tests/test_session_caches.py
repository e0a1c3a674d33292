"""The tests keep out of the user's caches: every cache they write is in the session's own
temporary folder (conftest's SESSION_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SESSION_DIR, scene
from resnet_cli.cli.classify import app

datasets = pytest.importorskip("datasets")


def inside_the_session(path: str | os.PathLike[str]) -> bool:
    return Path(path).resolve().is_relative_to(Path(SESSION_DIR).resolve())


def test_every_cache_of_the_session_is_in_its_temporary_folder() -> None:
    import huggingface_hub.constants

    from resnet_cli.runtimes.cache import cache_dir

    assert not inside_the_session(Path.home())
    # As the libraries read them, at import.
    for path in (
        datasets.config.HF_DATASETS_CACHE,
        huggingface_hub.constants.HF_HUB_CACHE,
        huggingface_hub.constants.HF_HOME,
        cache_dir(),
        os.environ["XDG_CACHE_HOME"],
    ):
        assert inside_the_session(path), path
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"


def test_a_dataset_run_caches_in_the_session_not_in_the_home(
    tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pets-of-this-test"
    for i, label in enumerate(["cat", "dog"]):
        (folder / label).mkdir(parents=True)
        scene(80, 60, seed=i).save(folder / label / f"{i}.jpg")
    ours = Path(datasets.config.HF_DATASETS_CACHE)
    before = set(ours.rglob("*"))
    result = CliRunner().invoke(
        app, ["-m", str(tiny_model), "--offline", "-q", "-f", "jsonl", "--dataset", str(folder)]
    )
    assert result.exit_code == 0, result.output
    # datasets prepared the imagefolder in the session's cache: a folder named after it.
    made = {path.relative_to(ours) for path in set(ours.rglob("*")) - before}
    prepared = {path for path in made if path.parts[0] == folder.name}
    assert prepared, made
    # and none of it in the home's cache (other runs may write there; not this one).
    home = Path.home() / ".cache" / "huggingface" / "datasets"
    assert not any((home / path).exists() for path in prepared)
