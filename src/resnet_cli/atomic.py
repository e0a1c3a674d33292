"""Replacing a file in one step: the new content under a temporary name, then a rename."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike[str]) -> Iterator[str]:
    """A temporary name beside ``path`` to write the new file to; when the block ends well it
    replaces ``path`` in one step, and in any case no temporary file is left behind. The
    name is per process, so two processes writing the same file do not write into each
    other's."""
    folder, name = os.path.split(os.fspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
