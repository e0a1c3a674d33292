"""--xmp: each classified local image's labels as keywords in its XMP sidecar, where photo
managers (digiKam, darktable, Lightroom, Immich) read them.

What a sidecar gets, through Exiv2 (the ``exiv2`` package, python-exiv2: its wheels carry
libexiv2, the XMP library digiKam and darktable use, so nothing is compiled or hand-written
as XML):

- ``dc:subject``: the labels (a label that lists names, ``tabby, tabby cat``, by its first:
  photo managers split keywords at commas), and ``lr:hierarchicalSubject``: ``category|label``
  where the model has categories, else the label;
- in this tool's own namespace (``NAMESPACE``, prefix ``resnetcli``): ``ClassifierModel``,
  ``ClassifiedDate``, ``ClassifierVersion``, ``ClassifiedImage`` (the file the labels are
  for), and ``AddedSubjects`` and ``AddedHierarchicalSubjects``, the keywords it added, so
  that a rerun replaces those and no others, and a keyword the sidecar had already (a user's
  own ``tabby``) is never counted as added nor removed. The names are unlike any common tag's,
  so that a reader of exiftool's ungrouped names (``Model``, ``Keywords``) never takes one of
  them for a camera's or IPTC's.

What it never touches: the image; any other property of a sidecar (a rating, a description,
darktable's history stay as they were). A sidecar that cannot be read as XMP, a symlink, or
anything but a regular file is left as it is, and the record's ``xmp_error`` says why. A
sidecar is replaced in one step: the new one is written beside it under a temporary name,
synced, then renamed over it (a rename replaces a symlink put there meanwhile rather than
writing through it); a new sidecar is linked into place, so that one made meanwhile is never
overwritten. No torch here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import logging
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import UsageError
from ..results import Record
from ..text import printable

NAMESPACE = "urn:resnet-classify:xmp:1.0/"
PREFIX = "resnetcli"
# full: IMG_1.jpg.xmp (darktable, digiKam); stem: IMG_1.xmp (Lightroom, exiftool).
Naming = Literal["full", "stem"]
NAMINGS: tuple[str, ...] = get_args(Naming)
# A sidecar is a few kilobytes (darktable's history: a few hundred); anything this big is not one.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
SUBJECT, HIERARCHICAL = "Xmp.dc.subject", "Xmp.lr.hierarchicalSubject"
OURS = {
    SUBJECT: f"Xmp.{PREFIX}.AddedSubjects",
    HIERARCHICAL: f"Xmp.{PREFIX}.AddedHierarchicalSubjects",
}
IMAGE = f"Xmp.{PREFIX}.ClassifiedImage"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


class SidecarLeftAlone(Exception):
    """A sidecar this tool must not write; the message says why, for the record."""


def sidecar_path(image: str, naming: str = "full") -> str:
    """The sidecar of ``image`` under a naming convention (``NAMINGS``)."""
    if naming == "stem":
        return os.path.splitext(image)[0] + ".xmp"
    return image + ".xmp"


def keywords(record: Record) -> tuple[list[str], list[str]]:
    """A record's keywords: flat (the labels) and hierarchical (``category|label``), in rank
    order, each once."""
    flat: list[str] = []
    tree: list[str] = []
    for prediction in record.predictions:
        name = keyword(prediction.label)
        if not name:
            continue
        path = f"{keyword(prediction.category)}|{name}" if prediction.category else name
        flat += [name] if name not in flat else []
        tree += [path] if path not in tree else []
    return flat, tree


def keyword(label: str) -> str:
    """A label as a keyword: its first name, no ``|`` (the hierarchy's separator)."""
    return " ".join(label.split(",")[0].replace("|", "/").split())


@dataclass
class SidecarWriter:
    """Writes the sidecars of a run's records (see ``write``)."""

    model: str  # as the records' metadata names it (a folder by its absolute path)
    version: str
    naming: str = "full"
    written: int = 0
    left_alone: int = 0

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise ValueError(f"unknown sidecar naming {self.naming!r}")

    def write(self, records: Iterable[Record]) -> list[Record]:
        """Write or update the sidecar of each classified local file; return the records,
        with ``xmp_error`` set on those whose sidecar was left as it was (and a warning line
        on stderr for each). Failed records, URLs and dataset rows are passed through."""
        out = []
        for record in records:
            if record.ok and os.path.isfile(record.input):
                try:
                    self.written += self.write_one(record)
                except SidecarLeftAlone as exc:
                    self.left_alone += 1
                    record = dataclasses.replace(record, xmp_error=str(exc))
                    print(
                        f"warning: {printable(record.input)}: XMP sidecar not written: "
                        f"{printable(str(exc))}",
                        file=sys.stderr,
                        flush=True,
                    )
            out.append(record)
        return out

    def write_one(self, record: Record) -> bool:
        """Write ``record``'s keywords to its image's sidecar: whether a file was written
        (not when there is neither a keyword nor a sidecar); SidecarLeftAlone if it must
        not be."""
        path = sidecar_path(record.input, self.naming)
        shown = os.path.basename(path)
        old, info = read_sidecar(path)
        flat, tree = keywords(record)
        if old is None and not flat:
            return False
        when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        image_name = os.path.basename(record.input)
        fields = {
            "ClassifierModel": self.model,
            "ClassifiedDate": when,
            "ClassifierVersion": self.version,
            "ClassifiedImage": image_name,
        }
        new = merged_sidecar(old, flat, tree, fields, shown, os.path.dirname(path))
        try:
            _put(path, new, info)
        except OSError as exc:
            raise SidecarLeftAlone(f"cannot write {shown}: {exc.strerror or exc}") from None
        return True

    def summary(self) -> str:
        """The closing line on stderr."""
        plural = "s" if self.written != 1 else ""
        left = f", {self.left_alone} left as they were" if self.left_alone else ""
        return f"wrote {self.written} XMP sidecar{plural}{left}"


def read_sidecar(path: str) -> tuple[bytes | None, os.stat_result | None]:
    """A sidecar's bytes and its status (None, None: there is none), without following a
    symlink; SidecarLeftAlone for anything that is not a regular file of a sane size."""
    shown = os.path.basename(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise SidecarLeftAlone(f"{shown} is a symbolic link; left as it is") from None
        raise SidecarLeftAlone(f"cannot read {shown}: {exc.strerror or exc}") from None
    with open(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SidecarLeftAlone(f"{shown} is not a regular file; left as it is")
        if info.st_size > MAX_SIDECAR_BYTES:
            raise SidecarLeftAlone(f"{shown} is too large to be an XMP sidecar; left as it is")
        return handle.read(MAX_SIDECAR_BYTES + 1), info


def merged_sidecar(
    old: bytes | None,
    flat: list[str],
    tree: list[str],
    fields: dict[str, str],
    shown: str = "the sidecar",
    folder: str = ".",
) -> bytes:
    """The sidecar ``old`` (None or empty: a new one) with this tool's keywords replaced by
    ``flat`` and ``tree`` and its own ``fields`` set, every other property kept as it was.
    SidecarLeftAlone when ``old`` cannot be read as XMP, or holds the labels of another image
    that is in ``folder`` (two images sharing a sidecar under the ``stem`` naming)."""
    exiv2 = _exiv2()
    data = _parse(old, shown) if old and old.strip() else exiv2.XmpData()
    owner = _items(data, IMAGE)
    if (
        owner
        and owner[0] != fields.get("ClassifiedImage")
        and os.path.isfile(os.path.join(folder, owner[0]))
    ):
        raise SidecarLeftAlone(
            f"{shown} holds the labels of {owner[0]}; left as it is (--xmp-name full gives "
            "each image its own sidecar)"
        )
    try:
        for key, new in ((SUBJECT, flat), (HIERARCHICAL, tree)):
            theirs = _items(data, key)
            for added in _items(data, OURS[key]):  # one occurrence each: a user's twin stays
                if added in theirs:
                    theirs.remove(added)
            ours = [k for k in new if k not in theirs]
            _set_bag(data, key, theirs + ours)
            _set_bag(data, OURS[key], ours)
        for name, value in fields.items():
            data[f"Xmp.{PREFIX}.{name}"] = value
        flags = exiv2.XmpParser.XmpFormatFlags.useCompactFormat
        code, packet = exiv2.XmpParser.encode(data, flags, 1)  # 0 would be the 2 KB default
    except exiv2.Exiv2Error as exc:
        raise SidecarLeftAlone(f"{shown}: the XMP library could not update it ({exc})") from None
    if code != 0:
        raise SidecarLeftAlone(f"{shown}: the XMP library could not write it (code {code})")
    return (XML_DECLARATION + packet).encode("utf-8")


def _exiv2() -> Any:
    """The exiv2 module, with this tool's namespace registered."""
    import exiv2

    exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
    return exiv2


def _parse(blob: bytes, shown: str) -> Any:
    """The XMP properties of a sidecar's bytes; SidecarLeftAlone unless Exiv2 reads all of
    it (it logs a failed parse and carries on with none, which must not pass for empty)."""
    exiv2 = _exiv2()
    with _exiv2_complaints() as complaints:
        try:
            image = exiv2.ImageFactory.open(blob)
            image.readMetadata()
        except exiv2.Exiv2Error as exc:
            complaints.append(str(exc.args[-1] if exc.args else exc))
        is_xmp = not complaints and image.imageType() == exiv2.ImageType.xmp
    if complaints:
        reason = printable(complaints[0])
        raise SidecarLeftAlone(f"{shown} cannot be parsed as XMP ({reason}); left as it is")
    if not is_xmp:
        raise SidecarLeftAlone(f"{shown} is not an XMP sidecar; left as it is")
    return image.xmpData()


@contextlib.contextmanager
def _exiv2_complaints() -> Iterator[list[str]]:
    """Collect what Exiv2 logs as a warning or an error, instead of printing it."""
    complaints: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            complaints.append(record.getMessage())

    logger = logging.getLogger("exiv2")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield complaints
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _items(data: Any, key: str) -> list[str]:
    """The items of an XMP array (a plain value: itself), none when it is not there."""
    import exiv2

    found = data.findKey(exiv2.XmpKey(key))
    if found == data.end():
        return []
    return [found.toString(i) for i in range(found.count())]


def _set_bag(data: Any, key: str, items: list[str]) -> None:
    """Set an unordered XMP array (rdf:Bag); an empty one is removed."""
    import exiv2

    found = data.findKey(exiv2.XmpKey(key))
    if found != data.end():
        data.erase(found)
    if items:
        value = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for item in items:
            value.read(item)
        data.add(exiv2.XmpKey(key), value)


def _put(path: str, content: bytes, previous: os.stat_result | None) -> None:
    """Write ``content`` to ``path`` in one step, through a synced temporary file beside it:
    over the sidecar ``previous`` (keeping its mode and owner) if it is still that file, else
    as a new file that never replaces one made meanwhile."""
    from .files import _NO_HARD_LINKS, _keep_attributes

    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is None:
            try:
                os.link(temporary, path)  # fails if a sidecar appeared meanwhile
                return
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
            if os.path.lexists(path):  # no hard links here (FAT, some shares): look first
                raise FileExistsError(errno.EEXIST, "it appeared while it was being written")
        else:
            _keep_attributes(temporary, previous)
            now = os.lstat(path)
            if (now.st_ino, now.st_mtime_ns, now.st_size) != (
                previous.st_ino,
                previous.st_mtime_ns,
                previous.st_size,
            ):
                raise OSError(errno.EBUSY, "it changed while it was being updated")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def create_sidecar_writer(
    xmp: bool, naming: str | None, model: str, version: str, engine: str = "local"
) -> SidecarWriter | None:
    """The run's sidecar writer (None without --xmp), after checking the options that go
    with it. ``model``: as the user named it."""
    if not xmp:
        if naming is not None:
            raise UsageError("--xmp-name only applies to --xmp")
        return None
    if engine != "local":
        raise UsageError("--xmp works with --engine local only")
    from .files import model_key

    return SidecarWriter(model_key(model), version, naming or "full")
