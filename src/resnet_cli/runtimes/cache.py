"""The runtime cache: what a run leaves for later runs of the same checkpoint, keyed by its files.

Two kinds of entry share it, each in its own folder: ONNX exports (``onnx/KEY.onnx``, the graph
ONNX Runtime optimized for this CPU, which later runs start from without torch) and INT8
models (``int8/KEY.xml`` and ``KEY.bin``, and ``KEY.blob`` compiled, runtimes/int8.py). ``KEY``
is a digest of what the entry depends on: the checkpoint's files (``checkpoint_identity``),
the CPU, the versions.

Beside each entry is its record ``KEY.json``, written by the tool with the entry's kind,
format and key (``Kind.write_record``): a record names the entry it belongs to, so a file
copied over another's key is known as such. Only entries with the tool's own record are ever
used or pruned; any other file in the cache's folders stays (issue 24). The folders are made
private to the user (0700): what is in the cache is code that runs.

``RESNET_CLI_CACHE_DIR`` moves the cache (default: ``$XDG_CACHE_HOME/resnet-cli``, else
``~/.cache/resnet-cli``); each kind keeps its 8 most recently used entries.

The ONNX exports' own part (their key, their record's digest and label count, and building a
session that writes its optimized graph into the cache) is the second half of this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import replaced_atomically
from ..models.checkpoint import label_fields, read_json
from .hardware import cpu_identity
from .onnx_runtime import enabled, import_onnxruntime

KEEP = 8  # the most recently used entries kept, of each kind


def cache_dir() -> Path:
    configured = os.environ.get("RESNET_CLI_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "resnet-cli"


def checkpoint_identity(files: dict[str, str]) -> list[list[Any]]:
    """Each checkpoint file's name, real path (a hub cache's blobs are named by their hash),
    size and modification time: what an entry made from them is keyed by, so an edited or
    re-downloaded checkpoint never meets a stale entry."""
    identity = []
    for name in sorted(files):
        real = os.path.realpath(files[name])
        info = os.stat(real)
        identity.append([name, real, info.st_size, info.st_mtime_ns])
    return identity


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each private to the user (0700, whatever
    the umask): what is in the cache is code that runs."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):
            each.mkdir(mode=0o700)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in blocks (0.12 s for ResNet-50's 100 MB export)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class Kind:
    """One kind of cache entry: its folder, its record's format (bumped when what an entry
    holds changes meaning), the suffixes of the files an entry holds beside its record, and
    the one a run touches when it uses the entry (the least recently used go first)."""

    folder: str
    format: int
    suffixes: tuple[str, ...]
    used: str

    def path(self, identity: list[Any], suffix: str = ".json") -> Path:
        """The file ``suffix`` of the entry keyed by ``identity`` (by default its record)."""
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]
        return cache_dir() / self.folder / f"{key}{suffix}"

    def owns(self, record: Any, path: Path) -> bool:
        """Whether ``record`` is the one the tool wrote for the entry ``path`` is a file of."""
        return (
            isinstance(record, dict)
            and record.get("format") == self.format
            and record.get("key") == path.stem
        )

    def record(self, path: Path) -> dict[str, Any] | None:
        """The record of the entry ``path`` is a file of, where it is the tool's own for that
        very entry; else None (no record, an unreadable one, another entry's)."""
        try:
            record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if self.owns(record, path) else None

    def write_record(self, path: Path, fields: dict[str, Any]) -> None:
        """Write the record of the entry ``path`` is a file of, in one step."""
        record = {"format": self.format, "key": path.stem, **fields}
        with (
            replaced_atomically(path.with_suffix(".json")) as temporary,
            open(temporary, "w", encoding="utf-8") as handle,
        ):
            json.dump(record, handle)

    def touch(self, path: Path) -> None:
        """Mark the entry recently used: the last to be pruned."""
        with contextlib.suppress(OSError):
            os.utime(path.with_suffix(self.used))

    def remove(self, path: Path) -> None:
        """Remove the entry ``path`` is a file of: its files and its record."""
        for suffix in (*self.suffixes, ".json"):
            with contextlib.suppress(OSError):
                path.with_suffix(suffix).unlink()

    def prune(self, keep: Path, most: int = KEEP) -> None:
        """Remove the least recently used entries of the folder ``keep`` is in, beyond
        ``most`` (``keep``'s entry, just written, stays), so edited and abandoned checkpoints
        do not pile up 100 MB at a time. Only entries with the tool's own record count and
        go: any other file in the folder stays."""
        entries = []
        for record in keep.parent.glob("*.json"):
            if record.stem == keep.stem or self.record(record) is None:
                continue
            with contextlib.suppress(OSError):
                entries.append((record.with_suffix(self.used).stat().st_mtime, record))
        entries.sort(reverse=True)
        for _, stale in entries[max(0, most - 1) :]:
            self.remove(stale)


# --------------------------------------------------------------------------- ONNX exports

# What the record of an export holds besides its kind, format and key: the SHA-256 of the
# file and the model's label count. An export is used only where its record vouches for its
# bytes and its label count is the model's; one that fails is removed and rebuilt.
EXPORTS = Kind("onnx", format=2, suffixes=(".onnx",), used=".onnx")


def cache_path(files: dict[str, str]) -> Path:
    """Where the export of the checkpoint made of ``files`` is kept: keyed by the checkpoint's
    files, and the CPU and ONNX Runtime it was optimized for (a cache in a home shared by
    different machines)."""
    return EXPORTS.path([EXPORTS.format, optimized_for(), *checkpoint_identity(files)], ".onnx")


def optimized_for() -> list[str]:
    """What an optimized graph is specific to: the ONNX Runtime version, and the CPU (its
    architecture, model and instruction-set flags, which pick MLAS's kernels and block size).
    The version is read from the package's metadata: importing ONNX Runtime (0.2 s) only to
    look up a cache entry would slow the start of every run that then computes in torch."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("onnxruntime")
    except PackageNotFoundError:  # another build of it (onnxruntime-gpu, ...): ask it
        release = import_onnxruntime().__version__
    return [release, *cpu_identity()]


def cached_path(files: dict[str, str] | None) -> Path | None:
    """The cache entry of the checkpoint made of ``files``, where there is one (and ONNX
    Runtime to run it); else None."""
    if files is None or not enabled():
        return None
    try:
        path = cache_path(files)
    except Exception:  # an unreadable checkpoint file, an onnxruntime that fails to import
        return None
    return path if path.is_file() else None


def label_count(files: dict[str, str]) -> int:
    """How many labels the checkpoint made of ``files`` has (its config's)."""
    return len(label_fields(read_json(files["config.json"]))["labels"])


def check_export(export: Path, labels: int) -> str:
    """Why the cached export ``export`` may not be used for a model of ``labels`` labels
    ('' where its record vouches for its bytes and that label count)."""
    try:
        record = json.loads(export.with_suffix(".json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "it has no record of its digest"
    except (OSError, ValueError):
        return "its record cannot be read"
    if not EXPORTS.owns(record, export) or not isinstance(record.get("sha256"), str):
        return "its record is another export's"
    if record.get("labels") != labels:
        return f"it was made for {record.get('labels')} labels, the model has {labels}"
    if file_sha256(export) != record["sha256"]:
        return "its bytes do not match their digest"
    return ""


class _NotKept(Exception):
    """The session was not built, or built without writing its graph: keep no file."""


def build_cached(files: dict[str, str] | None, build: Callable[[str | None], Any]) -> Any:
    """``build(optimized_to)``, which builds an ONNX Runtime session that writes the graph it
    optimized to ``optimized_to`` (or None); what it returns. For a checkpoint on disk that
    graph is written beside the checkpoint's cache entry and becomes the entry when ``build``
    succeeds: the session this run uses is the one that fills the cache, with no second
    optimization. Where the cache cannot take it (no checkpoint files, a read-only home, a
    full disk), the next run only starts the slow way."""
    if files is None:  # nothing to key an export by
        return build(None)
    try:
        path = cache_path(files)
        labels = label_count(files)
        make_private_folders(path.parent)
    except Exception:
        return build(None)
    built = None
    with contextlib.suppress(_NotKept, OSError), replaced_atomically(path) as temporary:
        built = build(temporary)
        if built is None or not os.path.isfile(temporary):
            raise _NotKept
        # The record, of the bytes about to take the entry's name.
        EXPORTS.write_record(path, {"sha256": file_sha256(temporary), "labels": labels})
    if built is not None and path.is_file():
        EXPORTS.prune(keep=path)
    return built
