"""The exceptions a user can see, and the contract's exit codes. Only ``cli.main`` turns them
into messages and exit codes; a library caller gets the exceptions (and ``exit_code`` says
which code the command would give)."""

from __future__ import annotations

# The optional extras (pyproject.toml's optional-dependencies) and what each adds. resnet-cli
# is not on PyPI, so an extra is installed from the clone the tool came from.
EXTRAS = {"raw": "rawpy", "ray": "ray[data]", "timm": "timm", "int8": "openvino"}


def install_extra(extra: str) -> str:
    """How to install an optional extra, the one wording of the messages that need one."""
    return f"pip install '.[{extra}]' in your resnet-classify clone (it adds {EXTRAS[extra]})"


# Where a user with no network finds a model to try the tool with (README.md's section).
TRY_OFFLINE = "the README's 'Try it offline'"


class ResnetCliError(Exception):
    """Base class: the message is one line that says what went wrong and what to do next."""


class UsageError(ResnetCliError):
    """The command line asks for something that cannot be done (exit code 2)."""


class NoInputsError(UsageError):
    """Nothing to classify: no inputs given, or none of them names an image."""


class OutputExistsError(UsageError):
    """The output file exists and neither --resume nor --overwrite was given."""


class OutputWriteError(ResnetCliError):
    """The records could not be written: a full disk, a failing device (exit code 4)."""


class ModelLoadError(ResnetCliError):
    """The model or its image processor could not be loaded (exit code 3)."""


class DatasetLoadError(ResnetCliError):
    """A hub dataset could not be loaded: not found, or offline without a cached copy (exit
    code 3, like a model)."""


class DeviceError(ResnetCliError):
    """The requested device or precision is not available on this machine (exit code 3)."""


class ClusterError(ResnetCliError):
    """The Ray cluster could not be reached, or could not run the job (exit code 3)."""


class ImageError(ResnetCliError):
    """One input could not be read as an image; it becomes an error record, never a crash."""


# The contract's exit codes.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_WRITE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for cat or grep cut off by head

# Exception type -> exit code; the first match wins, so subclasses come first.
EXIT_CODES: tuple[tuple[type[ResnetCliError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (ModelLoadError, EXIT_MODEL),
    (DatasetLoadError, EXIT_MODEL),
    (DeviceError, EXIT_MODEL),
    (ClusterError, EXIT_MODEL),
    (OutputWriteError, EXIT_WRITE),
    (ResnetCliError, EXIT_FAILED),
)


def exit_code(exc: ResnetCliError) -> int:
    """The exit code the command gives for ``exc``."""
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
