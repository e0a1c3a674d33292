"""What the user named -> an ordered stream of inputs (files, folders, globs, stdin)."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import NoInputsError, UsageError
from .photo_formats import AVIF_EXTENSIONS, HEIF_EXTENSIONS, RAW_EXTENSIONS

# Extensions a folder or glob contributes. A file named explicitly is always tried, whatever
# its extension, so a mislabelled image still gets classified.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".dib",
        ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2",
        ".j2k", ".jpx",
    }
) | AVIF_EXTENSIONS | HEIF_EXTENSIONS | RAW_EXTENSIONS  # fmt: skip

STDIN = "-"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    """One input: ``name`` is what its record shows; ``error`` is set when it cannot be read.

    The image comes from ``path``, or from ``data`` / ``image`` when the caller already has it.
    """

    name: str
    path: str | None = None
    error: str | None = None
    url: str | None = None  # an http(s) image, downloaded by the decode workers
    data: bytes | None = field(default=None, repr=False)  # encoded image already in memory
    image: Any = field(default=None, repr=False)  # a decoded PIL image (library callers)
    true_label: str | None = None  # an imagefolder's class: its record carries it


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def offline_mode() -> bool:
    """Whether the hub is offline (HF_HUB_OFFLINE=1, which --offline sets): no model or
    dataset is downloaded from it. URL inputs are stopped by --offline alone."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(name: str) -> bool:
    """Whether a --model or --dataset value is written as a local path rather than a hub id
    (``org/name``): it starts with '.', '/' or '~', or has more than one '/'."""
    return name.startswith((".", "/", "~")) or os.sep * 2 in name or name.count("/") > 1


def is_url(text: str) -> bool:
    """Whether an input names an http(s) URL rather than a path."""
    return text.startswith(("http://", "https://"))


def collect_inputs(
    arguments: Iterable[str], stdin: BinaryIO | None = None, null_separated: bool = False
) -> Iterator[Source]:
    """Expand files, folders, quoted globs and ``-`` (stdin) into sources, in the order given."""
    for argument in arguments:
        if argument == STDIN:
            if stdin is None:
                raise NoInputsError("'-' was given but there is no standard input to read")
            for line in read_stdin_names(stdin, null_separated):
                yield from expand_argument(line)
        else:
            yield from expand_argument(argument)


def read_stdin_names(stream: BinaryIO, null_separated: bool) -> Iterator[str]:
    """Names from stdin, one per line or NUL-separated; bytes that are not UTF-8 survive."""
    if null_separated:
        pending = b""
        while chunk := stream.read(65536):
            *complete, pending = (pending + chunk).split(b"\0")
            yield from (os.fsdecode(n) for n in complete if n)
        if pending:
            yield os.fsdecode(pending)
        return
    for raw in stream:
        if b"\0" in raw:
            raise UsageError(
                "'-' reads file names from standard input, one per line, but it holds binary "
                "data: name the image file itself, or pass -0 for NUL-separated names"
            )
        name = raw.rstrip(b"\n").rstrip(b"\r")
        if name.strip():
            yield os.fsdecode(name)


def expand_argument(argument: str) -> Iterator[Source]:
    """One argument -> its sources; an argument that names nothing is one error source."""
    if is_url(argument):
        yield Source(name=argument, url=argument)
        return
    if os.path.isdir(argument):
        found = False
        for path in walk_images(argument):
            found = True
            yield Source(name=path, path=path)
        if not found:
            yield Source(name=argument, error="no image files in this folder")
        return
    if os.path.lexists(argument):
        yield Source(name=argument, path=argument)
        return
    if _GLOB_CHARS & set(argument):
        matches = sorted(glob.iglob(argument, recursive=True))
        found = False
        for match in matches:
            if os.path.isdir(match):
                continue
            if is_image_name(match):
                found = True
                yield Source(name=match, path=match)
        if not found:
            yield Source(name=argument, error="the pattern matched no image files")
        return
    yield Source(name=argument, error="no such file or directory")


def walk_images(folder: str) -> Iterator[str]:
    """Image files below ``folder``, recursively, in sorted path order, hidden entries skipped.

    Symlinked folders are followed, except one that leads back to a folder being walked
    (a loop), which is skipped.
    """
    yield from _walk(folder, ancestors=frozenset())


def _walk(folder: str, ancestors: frozenset[tuple[int, int]]) -> Iterator[str]:
    try:
        info = os.stat(folder)
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError:
        return
    key = (info.st_dev, info.st_ino)
    if key in ancestors:
        return
    inner = ancestors | {key}
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = os.path.join(folder, entry.name)
        kind = _kind(entry)
        if kind == "dir":
            yield from _walk(path, inner)
        elif kind == "file" and is_image_name(entry.name):
            yield path


def _kind(entry: os.DirEntry[str]) -> str:
    """'dir', 'file', or 'other' (a FIFO, socket or device: reading one could block forever).

    A dangling or looping symlink counts as a file: if it has an image name it is listed, and
    reading it gives the user an error record that says what is wrong.
    """
    try:
        mode = os.stat(entry.path).st_mode
    except OSError:
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (from its st_mode)."""
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO, named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


def require_an_image(sources: Iterable[Source]) -> Iterator[Source]:
    """Pass sources through, but raise NoInputsError if none of them names a readable file.

    Only the failures before the first good source are held back, so stdin still streams.
    """
    held: list[Source] = []
    iterator = iter(sources)
    for source in iterator:
        held.append(source)
        if source.error is None:
            break
    else:
        if not held:
            raise NoInputsError("no inputs: name image files, folders or globs, or '-' for stdin")
        first = held[0]
        raise NoInputsError(f"no image found: {first.name}: {first.error}")
    yield from held
    yield from iterator
