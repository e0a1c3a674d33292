"""--organize DIR: each classified image into DIR/<category or label>/, failed ones into
DIR/_failed/, doubtful ones (the report's needs-review rule) into DIR/_review/.

Nothing is ever overwritten: a name already taken gets a numbered suffix (``cat-1.jpg``),
unless what is there already is this file: in link and symlink modes a link to it, in copy
and move modes a regular file (never a symlink) with its bytes, so that a resumed run copies
nothing twice and byte-identical duplicates are kept once.

What may be touched: only the local files that were inputs of this run (``remaining_inputs``
notes them); files inside the organize folder, by real path, are never inputs. A move removes
its source only through ``_remove_source``: once the destination is a regular file of its own
(not a symlink, not the source's own name) holding the source's bytes. Whenever a move is
stopped, every file is at its source, at a destination, or both.

With --xmp, an input's XMP sidecar (a regular file, never a symlink) goes where its image
goes, placed by the same code under the same rules; a sidecar another file beside the image
shares (``IMG_1.xmp`` of ``IMG_1.cr2`` and ``IMG_1.jpg``) is never moved away. No torch here.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import shutil
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from ..errors import UsageError
from ..inputs.sources import Source
from ..results import Record, needs_review
from ..text import printable

if TYPE_CHECKING:
    from .files import DoneInputs

Mode = Literal["link", "symlink", "copy", "move"]
By = Literal["category", "label"]
MODES: tuple[str, ...] = get_args(Mode)
BY: tuple[str, ...] = get_args(By)
FAILED, REVIEW = "_failed", "_review"
# Characters a folder name cannot hold everywhere (Windows shares, macOS, Linux).
_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|\0'})
NAME_MAX = 255  # bytes: the longest name a folder entry may have (ext4, XFS, APFS, NTFS)
# A placed file's name leaves room for a copy's hidden ".NAME.PID.partial" beside it.
_FILE_NAME_MAX = NAME_MAX - 32


@dataclass(frozen=True)
class Placement:
    """Where one input went: ``how`` is hard link, symlink, copy, move, or already there."""

    source: str
    destination: str
    how: str


def folder_name(record: Record, by: str) -> str:
    """The folder a record's image goes to (relative to the organize folder): one safe name,
    whatever the label holds (no control character, separator or ``..``; at most 255 bytes)."""
    if not record.ok:
        return FAILED
    if needs_review(record):
        return REVIEW
    best = record.predictions[0]
    name = best.category if by == "category" and best.category else best.label
    name = " ".join(name.translate(_UNSAFE).split())
    name = "".join(c if c.isprintable() else "_" for c in name).strip(". ")
    name = name if name and not name.startswith("_") else f"label {name}".strip()
    return _cut(name, NAME_MAX).rstrip(". ")


def _cut(name: str, most: int) -> str:
    """``name`` cut to at most ``most`` bytes as the file system stores it (UTF-8, an
    undecodable byte as itself), never inside a character."""
    size = 0
    for at, character in enumerate(name):
        size += len(character.encode("utf-8", "surrogateescape"))
        if size > most:
            return name[:at]
    return name


def real_entry(path: str) -> str:
    """Where the folder entry ``path`` is, by real path: its folder resolved, its own name
    kept (a symlink stays the link, never what it points to)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(folder), name)


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one file (one inode), links not followed: a symlink is
    never the file it points to. False where either is missing."""
    try:
        first, second = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def same_entry(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one name in one folder (reached by two paths, through a
    symlinked folder), so that removing one removes the other."""
    if real_entry(a) == real_entry(b):
        return True
    try:
        return same_file(a, b) and os.lstat(a).st_nlink == 1
    except OSError:
        return False


def holds_bytes(destination: str, source: str) -> bool:
    """Whether ``destination`` is a regular file of its own (not a symlink, not ``source``'s
    own name) with ``source``'s bytes: a hard link of its file, or an equal copy. The test a
    move passes before it removes a source."""
    try:
        if not stat.S_ISREG(os.lstat(destination).st_mode) or same_entry(source, destination):
            return False
        if same_file(destination, os.path.realpath(source)):
            return True
        return filecmp.cmp(source, destination, shallow=False)
    except OSError:
        return False


@dataclass
class Organizer:
    """Places classified files under ``root``; ``dry_run`` only plans (see ``place``)."""

    root: str
    by: str = "category"
    mode: str = "link"
    dry_run: bool = False
    planned: set[str] = field(default_factory=set)  # destinations a dry run has given out
    failures: int = 0
    count: int = 0
    explicit_by: bool = False  # --organize-by given: category then needs categories
    # This run's local input files not placed yet, by record name: the only files ``place``
    # may touch (``note``).
    inputs: dict[str, list[str]] = field(default_factory=dict)
    # --xmp's naming (xmp.NAMINGS): an image's sidecar goes where the image goes, the same way
    sidecar_naming: str | None = None

    real_root: str = ""  # the folder by real path: what "inside it" is decided by
    # stem naming: the names in each source folder, by stem (``_shared_sidecar``)
    _stems: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown organize mode {self.mode!r}")
        self.root = os.path.abspath(self.root)
        self.real_root = os.path.realpath(self.root)

    def check_categories(self, with_category: bool, model: str) -> None:
        """--organize-by category asks for categories: refuse a model that has none."""
        if self.explicit_by and self.by == "category" and not with_category:
            raise UsageError(
                f"--organize-by category needs categories, and {model}'s labels have none "
                "(or --no-category was given): use --organize-by label"
            )

    def summary(self) -> str:
        """The closing line on stderr."""
        verb = "would organize" if self.dry_run else "organized"
        failed = f", {self.failures} could not be" if self.failures else ""
        return f"{verb} {self.count} file{'s' if self.count != 1 else ''} into {self.root}{failed}"

    def check(self) -> None:
        """Refuse a destination that cannot be written, before any work is done."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise UsageError(f"--organize {self.root!r} is a file: name a folder")
        if self.dry_run:
            return
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f".resnet-cli-probe-{os.getpid()}")
            with open(probe, "x"):
                pass
            os.unlink(probe)
        except OSError as exc:
            raise UsageError(
                f"cannot write to --organize folder {self.root!r}: {exc.strerror or exc}"
            ) from None

    def contains(self, path: str | None) -> bool:
        """Whether the folder entry ``path`` lies in the organize folder, by real path (its
        files are never inputs, however either is reached)."""
        if path is None:
            return False
        return real_entry(path).startswith(self.real_root.rstrip(os.sep) + os.sep)

    def note(self, source: Source) -> None:
        """``source`` is an input of this run: its file may be placed once it is classified."""
        if source.path is not None:
            self.inputs.setdefault(source.name, []).append(source.path)

    def place(self, records: Iterable[Record]) -> list[Placement]:
        """Place each record's file, where it is a local file this run noted (``note``); URLs,
        dataset rows and sources already moved away are left out. A dry run prints its plan,
        one line per file on stderr."""
        placed = []
        for record in records:
            paths = self.inputs.get(record.input)
            if not paths:
                continue
            source = paths.pop(0)
            if not paths:
                del self.inputs[record.input]
            placed += self.place_file(source, record)
        return placed

    def place_file(self, source: str, record: Record) -> list[Placement]:
        """Place the file ``source`` as ``record`` (its classification) says, and its XMP
        sidecar with it (``_place_sidecar``); none where it is not a file (any more), or
        could not be placed (a warning line says why)."""
        if not os.path.isfile(source) or self.contains(source):
            return []
        sidecar = self._sidecar_to_carry(source)
        try:
            placement = self._place_one(source, folder_name(record, self.by), sidecar)
        except OSError as exc:
            self.failures += 1
            reason = exc.strerror or str(exc)
            _say(f"warning: {source}: not organized: {reason}")
            return []
        self.count += placement.how != "already there"
        if self.dry_run:
            _say(f"plan: {describe(placement)}")
        if sidecar is None:
            return [placement]
        return [placement, *self._place_sidecar(placement, sidecar)]

    def _sidecar_to_carry(self, image: str) -> str | None:
        """With --xmp, the sidecar of the input ``image`` that goes where the image goes: a
        regular file (never a symlink, never anything in the organize folder), and in move
        mode one that is the image's alone (``_shared_sidecar``); else None."""
        if self.sidecar_naming is None:
            return None
        from .xmp import sidecar_path

        sidecar = sidecar_path(image, self.sidecar_naming)
        try:
            if not stat.S_ISREG(os.lstat(sidecar).st_mode):
                return None
        except OSError:
            return None
        if self.contains(sidecar) or (self.mode == "move" and self._shared_sidecar(image)):
            return None
        return sidecar

    def _shared_sidecar(self, image: str) -> bool:
        """Whether, under the stem naming, another file beside ``image`` has its stem
        (``IMG_1.cr2`` beside ``IMG_1.jpg``): their ``IMG_1.xmp`` is that file's too, and a
        move must not take it away from it. Each folder is listed once a run."""
        if self.sidecar_naming != "stem":
            return False
        folder, name = os.path.split(image)
        stem = os.path.splitext(name)[0]
        if folder not in self._stems:
            found: dict[str, list[str]] = {}
            with contextlib.suppress(OSError), os.scandir(folder or ".") as entries:
                for entry in entries:
                    found.setdefault(os.path.splitext(entry.name)[0], []).append(entry.name)
            self._stems[folder] = found
        others = (n for n in self._stems[folder].get(stem, []) if n not in (name, stem + ".xmp"))
        return any(os.path.lexists(os.path.join(folder, n)) for n in others)

    def _place_sidecar(self, image: Placement, source: str) -> list[Placement]:
        """Put the sidecar ``source`` of the placed ``image`` beside the image's new name, the
        way the image was put there and under the same rules: never over anything, links
        never followed, and a move's source removed only by ``_remove_source``. An image an
        earlier run placed in link, symlink or copy mode keeps the sidecar it got then; after
        a move stopped between its steps, the sidecar's move is finished too."""
        if image.how == "already there" and self.mode != "move":
            return []
        from .xmp import sidecar_path

        destination = sidecar_path(image.destination, self.sidecar_naming or "full")
        try:
            if os.path.lexists(destination):
                if same_entry(source, destination):  # the destination folder leads back here
                    return []
                if not self._already_there(source, destination):
                    raise OSError(errno.EEXIST, f"its name {destination} is taken")
                if self.mode == "move" and not self.dry_run:
                    _remove_source(source, destination)
                return []
            if self.dry_run:
                placement = Placement(source, destination, self.mode)
                _say(f"plan: {describe(placement)}")
                return [placement]
            return [Placement(source, destination, self._put(source, destination))]
        except OSError as exc:
            self.failures += 1
            reason = exc.strerror or str(exc)
            _say(f"warning: {source}: XMP sidecar not placed with its image: {reason}")
            return []

    def _place_one(self, source: str, folder: str, sidecar: str | None = None) -> Placement:
        """Place ``source`` under ``folder``; with a ``sidecar`` to carry, a new name is one
        whose sidecar name is free too."""
        directory = os.path.join(self.root, folder)
        if not self.dry_run:
            os.makedirs(directory, exist_ok=True)
        stem, extension = os.path.splitext(os.path.basename(source))
        for number in range(100_000):
            suffix = f"{'' if number == 0 else f'-{number}'}{extension}"
            room = _FILE_NAME_MAX - len(suffix.encode("utf-8", "surrogateescape"))
            name = _cut(stem, room) + suffix
            destination = os.path.join(directory, name)
            if destination in self.planned:
                continue
            if os.path.lexists(destination):
                if same_entry(source, destination):  # the destination folder leads back here
                    return Placement(source, destination, "already there")
                if self._already_there(source, destination):
                    if self.mode == "move" and not self.dry_run:
                        _remove_source(source, destination)  # a move stopped between its steps
                    return Placement(source, destination, "already there")
                continue
            if sidecar is not None and self._sidecar_name_taken(destination):
                continue
            if self.dry_run:
                self.planned.add(destination)
                return Placement(source, destination, self.mode)
            try:
                return Placement(source, destination, self._put(source, destination))
            except FileExistsError:  # taken since we looked: try the next number
                continue
        raise OSError(errno.EEXIST, "no free name left in the folder")

    def _sidecar_name_taken(self, destination: str) -> bool:
        """Whether the sidecar name of an image placed at ``destination`` is taken."""
        from .xmp import sidecar_path

        return os.path.lexists(sidecar_path(destination, self.sidecar_naming or "full"))

    def _already_there(self, source: str, destination: str) -> bool:
        """Whether ``destination`` already is what this mode would put there: in copy and
        move modes a regular file with the source's bytes (a symlink never is: it would
        dangle once the source goes); in link and symlink modes a link to the source's file,
        hard or symbolic (nothing is removed in those modes)."""
        if self.mode in ("copy", "move"):
            return holds_bytes(destination, source)
        return same_file(os.path.realpath(destination), os.path.realpath(source))

    def _put(self, source: str, destination: str) -> str:
        """Put ``source`` at ``destination``, which must not exist (never overwritten)."""
        if self.mode in ("link", "move"):
            try:
                os.link(source, destination)
                if self.mode == "move":
                    _remove_source(source, destination)
                return "hard link" if self.mode == "link" else "move"
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        if self.mode in ("link", "symlink"):
            os.symlink(os.path.abspath(source), destination)
            return "symlink"
        _copy_without_overwriting(source, destination)
        if self.mode == "move":  # another filesystem: copied, synced, compared, then removed
            _remove_source(source, destination)
            return "move"
        return "copy"


def _remove_source(source: str, destination: str) -> None:
    """The only place a move removes a file: ``source``, once ``destination`` holds its
    bytes in a regular file of its own (``holds_bytes``); else the source stays, and the
    file is reported as not organized."""
    if not holds_bytes(destination, source):
        # EIO, not EEXIST: that one would read as "name taken, try the next".
        raise OSError(errno.EIO, f"{destination} does not hold its bytes, so it stays")
    os.unlink(source)


def _say(line: str) -> None:
    """A line on stderr, names in it made safe for the terminal (as every stderr line is)."""
    print(printable(line), file=sys.stderr, flush=True)


def remaining_inputs(
    sources: Iterable[Source],
    done: DoneInputs,
    organizer: Organizer | None,
    *,
    files: bool = True,
) -> Iterator[Source]:
    """The inputs this run still classifies, in order. With ``organizer``: a file inside the
    organize folder is left out (never an input), and each other one is noted as an input
    of this run (``files``: these inputs are files to place; not a dataset's rows). With
    --resume, an input ``done`` recorded is left out, and placed now by its earlier record
    (a run stopped between writing a record and placing its file): only inputs of this run
    are placed, found by this run's own paths."""
    for source in sources:
        if organizer is not None and organizer.contains(source.path):
            continue
        earlier = done.record_for(source) if done else None  # no --resume: nothing to look up
        if earlier is not None:
            if organizer is not None and files and source.path is not None:
                organizer.place_file(source.path, earlier)
            continue
        if organizer is not None and files:
            organizer.note(source)
        yield source


def _copy_without_overwriting(source: str, destination: str) -> None:
    """Copy to a hidden name beside ``destination``, sync it, then link it into place (which
    fails rather than overwrite): a copy cut short never shows under the real name."""
    folder, name = os.path.split(destination)
    partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    try:
        shutil.copy2(source, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.link(partial, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def describe(placement: Placement) -> str:
    """One line of a plan or a log: source -> destination."""
    return f"{placement.source} -> {placement.destination}"


def create_organizer(
    root: str | None,
    by: str | None,
    mode: str | None,
    dry_run: bool,
    output: str | None,
    engine: str = "local",
) -> Organizer | None:
    """The run's organizer (None without --organize), after checking the options that go with
    it and that the folder can be written."""
    if root is None:
        for name, value in (
            ("--organize-by", by),
            ("--organize-mode", mode),
            ("--dry-run", dry_run),
        ):
            if value:
                raise UsageError(f"{name} only applies to --organize DIR")
        return None
    if engine != "local":
        raise UsageError("--organize works with --engine local only")
    if mode == "move" and output is None:
        raise UsageError(
            "--organize-mode move needs --output FILE: a file moves only once its record is "
            "safely written"
        )
    organizer = Organizer(root, by=by or "category", mode=mode or "link", dry_run=dry_run)
    organizer.explicit_by = by is not None
    organizer.check()
    return organizer
