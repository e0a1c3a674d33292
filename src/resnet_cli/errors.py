"""The exceptions a user can see. Only ``cli.py`` turns them into messages and exit codes."""

from __future__ import annotations


class ResnetCliError(Exception):
    """Base class: the message is one line that says what went wrong and what to do next."""


class UsageError(ResnetCliError):
    """The command line asks for something that cannot be done (exit code 2)."""


class NoInputsError(UsageError):
    """Nothing to classify: no inputs given, or none of them names an image."""


class OutputExistsError(UsageError):
    """The output file exists and neither --resume nor --overwrite was given."""


class ModelLoadError(ResnetCliError):
    """The model or its image processor could not be loaded (exit code 3)."""


class DeviceError(ResnetCliError):
    """The requested device or precision is not available on this machine (exit code 3)."""


class ClusterError(ResnetCliError):
    """The Ray cluster could not be reached, or could not run the job (exit code 3)."""


class ImageError(ResnetCliError):
    """One input could not be read as an image; it becomes an error record, never a crash."""
