"""``resnet-classify config``: the settings kept in the user's config file (a default model),
as ``gh config`` keeps its own."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ..config import KEYS, check_key, config_path, read_config, resolve_model, write_config
from ..errors import UsageError
from ..text import say
from ._console import create_app
from ._errors import Command, Group

config_app = create_app(cls=Group)

KEY = Annotated[str, typer.Argument(metavar="KEY", help=f"One of: {', '.join(KEYS)}.")]


@config_app.callback(
    invoke_without_command=True, epilog="    resnet-classify config set model ./efficientnet-lite0"
)
def config_command(ctx: typer.Context) -> None:
    """Settings kept in your config file, so that no command needs the option: `model`, the
    model a run uses without --model (--model wins, then $RESNET_CLI_MODEL, then this file's,
    then microsoft/resnet-50). Alone: the settings, as `list`."""
    if ctx.invoked_subcommand is None:
        list_command()


@config_app.command("list", cls=Command)
def list_command() -> None:
    """Each setting's value and where it comes from, and the config file's path."""
    model, source = resolve_model(None)
    print(f"model = {model}  (from {source})")
    print(f"config file: {config_path()}")


@config_app.command("get", cls=Command)
def get_command(key: KEY) -> None:
    """Print a setting's value in the config file (nothing where it is not set)."""
    check_key(key)
    value = read_config().get(key)
    if value is not None:
        print(value)


@config_app.command(
    "set", cls=Command, epilog="    resnet-classify config set model ./efficientnet-lite0"
)
def set_command(
    key: KEY,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="A hub id or a model folder.")],
) -> None:
    """Set a setting in the config file; a model folder is kept as its absolute path."""
    check_key(key)
    value = _model_value(value)
    path = write_config(key, value)
    say(f"{key} = {value} (in {path})")


@config_app.command("unset", cls=Command)
def unset_command(key: KEY) -> None:
    """Remove a setting from the config file."""
    path = write_config(key, None)
    say(f"{key} unset (in {path})")


def _model_value(value: str) -> str:
    """A model folder as its absolute path (a run may start anywhere); a hub id as it is; a
    folder that does not exist is refused, with the closest there is."""
    from ..models.transformers import missing_model_folder

    expanded = os.path.expanduser(value)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    missing = missing_model_folder(value)
    if missing is not None:
        raise UsageError(missing)
    return value
