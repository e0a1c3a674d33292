"""A default model: --model, else $RESNET_CLI_MODEL, else the config file's (resnet-classify
config set model NAME), else microsoft/resnet-50."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import LABELS, run_cli
from resnet_cli.cli.classify import app
from resnet_cli.cli.config import config_app
from resnet_cli.config import config_path, resolve_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of this test's own (conftest's keeps every test off the user's)."""
    folder = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    monkeypatch.delenv("RESNET_CLI_MODEL", raising=False)
    return folder


def config(*args: object):
    return runner.invoke(config_app, [str(a) for a in args])


def classify(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def test_conftest_keeps_tests_off_the_users_config() -> None:
    home_config = os.path.join(os.path.expanduser("~"), ".config")
    assert not str(config_path()).startswith(home_config)
    session = run_cli("config", "list")  # a child, with the session's environment
    assert session.returncode == 0, session.stderr
    assert os.path.expanduser("~") not in session.stdout.split("config file: ")[1]


def test_precedence_option_then_variable_then_file_then_default(
    own_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resolve_model(None) == ("microsoft/resnet-50", "default")
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert config("set", "model", folder).exit_code == 0
    path = own_config / "resnet-cli" / "config.json"
    assert json.loads(path.read_text()) == {"model": str(folder)}
    assert resolve_model(None) == (str(folder), f"config file {path}")
    monkeypatch.setenv("RESNET_CLI_MODEL", "org/from-the-variable")
    assert resolve_model(None) == ("org/from-the-variable", "RESNET_CLI_MODEL")
    assert resolve_model("org/typed") == ("org/typed", "--model")
    monkeypatch.delenv("RESNET_CLI_MODEL")
    assert config("unset", "model").exit_code == 0
    assert resolve_model(None) == ("microsoft/resnet-50", "default")
    assert json.loads(path.read_text()) == {}


def test_a_run_uses_the_default_and_each_level_overrides_it(
    tiny_model: Path,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Set from the folder the model is in, by its relative name; used from anywhere.
    monkeypatch.chdir(tiny_model.parent)
    result = config("set", "model", f"./{tiny_model.name}")
    assert result.exit_code == 0, result.stderr
    assert config("get", "model").stdout == f"{tiny_model}\n"  # kept as its absolute path
    monkeypatch.chdir(tmp_path)
    run = classify("--offline", "-q", "-k", "1", images[0])
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["predictions"][0]["label"] in LABELS  # the tiny model's
    # The variable beats the file: a folder that is not there is what the run stops on.
    monkeypatch.setenv("RESNET_CLI_MODEL", str(tmp_path / "not-here"))
    missing = classify("--offline", "-q", images[0])
    assert missing.exit_code == 3
    assert f"no such model folder: '{tmp_path / 'not-here'}'" in missing.stderr
    # --model beats both.
    typed = classify("--offline", "-q", "-m", tiny_model, images[0])
    assert typed.exit_code == 0, typed.stderr


def test_env_shows_the_model_and_where_it_came_from(tiny_model: Path, own_config: Path) -> None:
    environment = {"XDG_CONFIG_HOME": str(own_config)}
    assert config("set", "model", tiny_model).exit_code == 0
    facts = json.loads(run_cli("env", "-d", "cpu", "-f", "json", env=environment).stdout)
    path = own_config / "resnet-cli" / "config.json"
    assert facts["model"]["name"] == str(tiny_model) and facts["model"]["on_disk"]
    assert facts["model"]["from"] == f"config file {path}"
    assert facts["config_file"] == str(path)
    text = run_cli("env", "-d", "cpu", env={**environment, "RESNET_CLI_MODEL": "org/name"})
    assert "model: org/name (from RESNET_CLI_MODEL)" in text.stdout.splitlines()
    listed = run_cli("config", env=environment)  # alone: the list
    assert listed.stdout.splitlines() == [
        f"model = {tiny_model}  (from config file {path})",
        f"config file: {path}",
    ]


def test_bad_settings_are_one_line_and_exit_2(own_config: Path, tmp_path: Path) -> None:
    missing = config("set", "model", "./no-such-model")
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == "Error: no such model folder: './no-such-model': check the path, or pass a hub id\n"
    )
    unknown = config("set", "colour", "blue")
    assert unknown.exit_code == 2
    assert unknown.stderr == "Error: unknown setting 'colour': the settings are model\n"
    assert not (own_config / "resnet-cli" / "config.json").exists()  # nothing written
    broken = own_config / "resnet-cli" / "config.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{model: x")
    for result in (classify("-q", tmp_path), config("list"), config("set", "model", "a/b")):
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: cannot read the config file '{broken}': not JSON")
        assert result.stderr.endswith(": fix or remove it\n")
    assert broken.read_text() == "{model: x"  # never replaced by a run


def test_a_hub_id_is_kept_as_typed_and_other_settings_stay(own_config: Path) -> None:
    path = own_config / "resnet-cli" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"theirs": 1}')
    assert config("set", "model", "google/efficientnet-b0").exit_code == 0
    assert json.loads(path.read_text()) == {"theirs": 1, "model": "google/efficientnet-b0"}
