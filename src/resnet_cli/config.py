"""The user's settings: a default model, set once instead of ``-m`` on every command.

A run's model is ``--model``, else ``$RESNET_CLI_MODEL``, else the config file's ``model``
(``$XDG_CONFIG_HOME/resnet-cli/config.json``, else ``~/.config/resnet-cli/config.json``,
which ``resnet-classify config set model NAME`` writes), else microsoft/resnet-50.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .atomic import replaced_atomically
from .errors import UsageError

DEFAULT_MODEL = "microsoft/resnet-50"
MODEL_ENV = "RESNET_CLI_MODEL"
# What the config file may set, and what each means (for `config list` and its --help).
KEYS = {"model": "the model a run uses without --model: hub id or local folder"}


def config_path() -> Path:
    """The config file: in ``$XDG_CONFIG_HOME``, else ``~/.config``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "resnet-cli" / "config.json"


def read_config() -> dict[str, Any]:
    """The config file's settings ({} where there is none); one line naming the file where
    it cannot be read."""
    path = config_path()
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON ({exc})"
        raise UsageError(
            f"cannot read the config file {str(path)!r}: {reason}: fix or remove it"
        ) from None
    if not isinstance(values, dict):
        raise UsageError(
            f"cannot read the config file {str(path)!r}: not a JSON object: fix or remove it"
        )
    return values


def write_config(key: str, value: str | None) -> Path:
    """Set ``key`` to ``value`` (None: remove it) in the config file, keeping the rest, and
    return the file's path."""
    check_key(key)
    values = read_config()
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    path = config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as temporary:
            Path(temporary).write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the config file {str(path)!r}: {exc.strerror}") from None
    return path


def check_key(key: str) -> None:
    if key not in KEYS:
        raise UsageError(f"unknown setting {key!r}: the settings are {', '.join(KEYS)}")


def resolve_model(option: str | None) -> tuple[str, str]:
    """The model a run uses and where it came from: ``--model`` (``option``), else
    ``$RESNET_CLI_MODEL``, else the config file's (``config file PATH``), else the default."""
    if option:
        return option, "--model"
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV], MODEL_ENV
    configured = read_config().get("model")
    if configured is None:
        return DEFAULT_MODEL, "default"
    if not isinstance(configured, str) or not configured:
        raise UsageError(
            f"the config file {str(config_path())!r} has model {configured!r}, not a model's "
            "name: resnet-classify config set model NAME"
        )
    return configured, f"config file {config_path()}"
