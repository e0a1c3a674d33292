"""--organize DIR: each classified image into DIR/<category or label>/, failed ones into
DIR/_failed/, doubtful ones (the report's needs-review rule) into DIR/_review/.

Nothing is ever overwritten: a name already taken gets a numbered suffix (``cat-1.jpg``),
unless the file there is this very file (a link to it; in copy and move modes, also a file
with the same bytes, so that a resumed run copies nothing twice and byte-identical duplicates
are kept once). A move leaves every file at its source or at exactly one
destination, whenever it is stopped. No torch here.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import UsageError
from ..results import Record, needs_review

MODES = ("link", "symlink", "copy", "move")
BY = ("category", "label")
FAILED, REVIEW = "_failed", "_review"
# Characters a folder name cannot hold everywhere (Windows shares, macOS, Linux).
_UNSAFE = str.maketrans({c: "_" for c in '/\\:*?"<>|\0'})


@dataclass(frozen=True)
class Placement:
    """Where one input went: ``how`` is hard link, symlink, copy, move, or already there."""

    source: str
    destination: str
    how: str


def folder_name(record: Record, by: str) -> str:
    """The folder a record's image goes to (relative to the organize folder)."""
    if not record.ok:
        return FAILED
    if needs_review(record):
        return REVIEW
    best = record.predictions[0]
    name = best.category if by == "category" and best.category else best.label
    name = " ".join(name.translate(_UNSAFE).split())[:100].strip(". ")
    return name if name and not name.startswith("_") else f"label {name}".strip()


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
    # --xmp's naming (xmp.NAMINGS): an image's sidecar goes where the image goes, the same way
    sidecar_naming: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown organize mode {self.mode!r}")
        self.root = os.path.abspath(self.root)

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

    def report(self, placed: list[Placement]) -> None:
        """A dry run's plan, one line per file on stderr."""
        if self.dry_run:
            for placement in placed:
                print(f"plan: {describe(placement)}", file=sys.stderr)
            sys.stderr.flush()

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
        """Whether ``path`` lies in the organize folder (its files are never inputs)."""
        if path is None:
            return False
        return os.path.abspath(path).startswith(self.root + os.sep)

    def place(self, records: Iterable[Record]) -> list[Placement]:
        """Place each record's local file; inputs that are not local files (URLs, dataset
        rows) and sources already moved away are left out."""
        placed = []
        for record in records:
            source = record.input
            if not os.path.isfile(source) or self.contains(source):
                continue
            try:
                placement = self._place_one(source, folder_name(record, self.by))
                placed.append(placement)
                self.count += placement.how != "already there"
                placed += self._place_sidecar(placement)
            except OSError as exc:
                self.failures += 1
                reason = exc.strerror or str(exc)
                print(f"warning: {source}: not organized: {reason}", file=sys.stderr, flush=True)
        return placed

    def _place_sidecar(self, image: Placement) -> list[Placement]:
        """Put an image's XMP sidecar (a regular file, never a symlink) beside the image's
        new name, as the image was put there; nothing is overwritten. An image placed by an
        earlier run keeps the sidecar it got then (a move's is finished)."""
        if self.sidecar_naming is None or (image.how == "already there" and self.mode != "move"):
            return []
        from .xmp import sidecar_path

        source = sidecar_path(image.source, self.sidecar_naming)
        destination = sidecar_path(image.destination, self.sidecar_naming)
        if not os.path.isfile(source) or os.path.islink(source):
            return []
        if os.path.lexists(destination):
            if not _same_file(source, destination, by_content=self.mode in ("copy", "move")):
                raise OSError(errno.EEXIST, f"its sidecar's name {destination!r} is taken")
            if self.mode == "move" and not self.dry_run:
                os.unlink(source)
            return []
        if self.dry_run:
            return [Placement(source, destination, self.mode)]
        return [Placement(source, destination, self._put(source, destination))]

    def _place_one(self, source: str, folder: str) -> Placement:
        directory = os.path.join(self.root, folder)
        if not self.dry_run:
            os.makedirs(directory, exist_ok=True)
        stem, extension = os.path.splitext(os.path.basename(source))
        for number in range(100_000):
            name = f"{stem}{extension}" if number == 0 else f"{stem}-{number}{extension}"
            destination = os.path.join(directory, name)
            if destination in self.planned:
                continue
            if os.path.lexists(destination):
                if _same_file(source, destination, by_content=self.mode in ("copy", "move")):
                    if self.mode == "move" and not self.dry_run:
                        os.unlink(source)  # a move stopped between its two steps
                    return Placement(source, destination, "already there")
                continue
            if self.dry_run:
                self.planned.add(destination)
                return Placement(source, destination, self.mode)
            try:
                return Placement(source, destination, self._put(source, destination))
            except FileExistsError:  # taken since we looked: try the next number
                continue
        raise OSError(errno.EEXIST, "no free name left in the folder")

    def _put(self, source: str, destination: str) -> str:
        """Put ``source`` at ``destination``, which must not exist (never overwritten)."""
        if self.mode in ("link", "move"):
            try:
                os.link(source, destination)
                if self.mode == "move":
                    os.unlink(source)
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
        if self.mode == "move":  # another filesystem: copied, synced, then the source goes
            os.unlink(source)
            return "move"
        return "copy"


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


def _same_file(source: str, destination: str, by_content: bool) -> bool:
    """Whether ``destination`` already is ``source``: the same file (a link to it), or, when
    ``by_content`` (copy and move, where a resumed run finds earlier copies), its bytes."""
    try:
        if os.path.samefile(source, destination):
            return True
        return (
            by_content
            and os.path.isfile(destination)
            and not os.path.islink(destination)
            and (filecmp.cmp(source, destination, shallow=False))
        )
    except OSError:
        return False


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
