"""The ``-o`` file: claimed before the model loads, locked for the whole run, replaced only
when complete, and described by a metadata file beside it. No torch here.

- A new file is made under a temporary name, locked, then hard-linked into place: the link
  fails if the name was taken meanwhile, so two runs never share a file.
- ``--overwrite`` writes a temporary file beside the old one and renames it into place when
  the run completes; an interrupted or failed run leaves the old file as it was.
- ``--resume`` locks the file, checks that it is a results file made by the same model and
  top-k, rewrites its classified records (a failed or torn one is retried) and appends.
- Symlinks are followed (the link stays, its target is written); a replaced file keeps its
  mode and owner; anything but a regular file is refused, never unlinked or written.

The metadata file, ``FILE.meta.json``, says what made the records (tool version, model,
revision, top-k, precision, runtime, the folder relative inputs are named from), so the
records file itself stays exactly the format a plain reader expects.

What the tool may remove or replace: only files it wrote, known as such. The records file a
new run created; the metadata file where it is one (``{"resnet_classify": {...}}``), never
a user's own file of that name (the run is refused instead); a temporary file beside the
output named ``.FILE.PID.tmp`` whose run has ended (no process PID, no lock on it: a run
killed with SIGKILL), removed by the next run that claims FILE.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import OutputExistsError, OutputWriteError, UsageError
from ..inputs.sources import Source, file_kind, is_url, looks_like_path
from ..models.zero_shot import DEFAULT_TEMPLATE
from ..results import Record
from .writers import (
    RESUMABLE_FORMATS,
    NotResultsError,
    complete_records,
    create_writer,
    csv_columns,
)

META_SUFFIX = ".meta.json"
META_KEY = "resnet_classify"
# link() errors of file systems without hard links (FAT, some network and FUSE mounts).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


def meta_path(path: str) -> str:
    """Where the metadata of the results file ``path`` is kept."""
    return path + META_SUFFIX


# What --resume reads in a metadata file, each with its type: it checks the model and the
# top-k, and resolves relative names from the folder the first run was in.
REQUIRED_META = {"model": str, "top_k": int, "cwd": str}


class ForeignFileError(ValueError):
    """A file stands where resnet-classify keeps one of its own, and it did not write it."""


def read_results_meta(path: str) -> dict[str, Any] | None:
    """What made the results file ``path`` (its metadata file), or None without one (or
    with one resnet-classify did not write)."""
    try:
        return load_sidecar(meta_path(os.path.realpath(path)))
    except (OSError, ForeignFileError):
        return None


def load_sidecar(path: str) -> dict[str, Any] | None:
    """The metadata a metadata file at ``path`` holds; None where there is no file there;
    ForeignFileError where the file there is not one resnet-classify wrote (not a regular
    file, not JSON, or no ``resnet_classify`` object in it)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ForeignFileError("it is not a regular file")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError as exc:  # UnicodeDecodeError included
        raise ForeignFileError(f"it is not JSON: {exc}") from None
    meta = data.get(META_KEY) if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        raise ForeignFileError(f"it has no {META_KEY!r} object")
    return meta


def recorded_path(name: str, folder: str) -> str:
    """The file a record's input names, resolved as the run that wrote it saw it: relative
    to ``folder``, the folder it ran in (its metadata's ``cwd``). The one place recorded
    names are resolved."""
    return os.path.realpath(os.path.join(folder, name))


def model_key(model: str) -> str:
    """A model as the metadata names it: a local folder by its absolute path, else its id."""
    return os.path.realpath(os.path.expanduser(model)) if _is_folder(model) else model


def _is_folder(model: str) -> bool:
    return looks_like_path(model) or os.path.isdir(os.path.expanduser(model))


def resolved_revision(model: str, revision: str | None) -> str | None:
    """The commit a hub model's revision resolved to, from the local Hugging Face cache
    (no network); the revision as given where the cache does not say; None for a folder."""
    if _is_folder(model):
        return None
    wanted = revision or "main"
    if len(wanted) == 40 and all(c in "0123456789abcdef" for c in wanted):
        return wanted
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"),
        "hub",
    )
    ref = os.path.join(cache, "models--" + model.replace("/", "--"), "refs", wanted)
    try:
        with open(ref, encoding="ascii") as handle:
            return handle.read().strip() or wanted
    except (OSError, ValueError):
        return wanted


def results_meta(
    *,
    version: str,
    model: str,
    revision: str | None,
    top_k: int,
    min_score: float,
    exact: bool,
    max_pixels: int,
    zero_shot: dict[str, Any] | None,
    classifier: Any,
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What made a results file, for the metadata file beside it (``read_results_meta``
    and ``--resume`` read it back): the options that change the records, what computed
    them (``classifier``: the loaded one; ``plan``: how it computed), where and when."""
    return {
        "version": version,
        "model": model_key(model),
        "revision": resolved_revision(model, revision),
        "top_k": top_k,
        "min_score": min_score,
        "precision": str(classifier.precision),
        "runtime": str(classifier.runtime),
        "device": str(classifier.device),
        "exact": exact,
        "max_pixels": max_pixels,
        **({"int8": classifier.int8.as_dict()} if classifier.int8 is not None else {}),
        **({"plan": plan} if plan is not None else {}),
        "cwd": os.getcwd(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({} if zero_shot is None else {"zero_shot": zero_shot}),
    }


@dataclass
class DoneInputs:
    """The inputs an earlier run already classified, each with its record: files by resolved
    absolute path (``recorded_path``), URLs and dataset rows by their full name."""

    names: dict[str, Record] = field(default_factory=dict)
    paths: dict[str, Record] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[Record], folder: str) -> DoneInputs:
        done = cls()
        for record in records:
            done.names[record.input] = record
            if not is_url(record.input):
                done.paths[recorded_path(record.input, folder)] = record
        return done

    def __bool__(self) -> bool:
        return bool(self.names)

    def record_for(self, source: Source) -> Record | None:
        """The earlier record of ``source``, or None where it was not classified yet."""
        if source.path is not None:
            return self.paths.get(os.path.realpath(source.path))
        return self.names.get(source.name)

    def __contains__(self, source: Source) -> bool:
        return self.record_for(source) is not None


@dataclass
class ClaimedOutput:
    """An output file this run holds (locked) until ``finish`` or ``abandon``."""

    name: str  # as the user wrote it, for messages
    target: str  # the file written: symlinks resolved
    mode: str  # "new", "overwrite" or "resume"
    stream: IO[str]
    done: DoneInputs = field(default_factory=DoneInputs)
    meta: dict[str, Any] | None = None  # resume: what made the file, when it says
    temporary: str | None = None  # overwrite: the new file until it is complete
    previous: os.stat_result | None = None  # the file replaced: its mode and owner stay
    held: int | None = None  # overwrite: the lock on the file being replaced
    written: bool = False
    meta_written: bool = False  # this run wrote the metadata file (so abandon may remove it)
    pending_meta: dict[str, Any] | None = None  # overwrite: written once the records land
    # resume of a CSV: whether it has the optional columns (writers.CSV_OPTIONAL_COLUMNS),
    # which it keeps
    csv_columns: tuple[bool, bool, bool] = (False, False, False)

    @property
    def resumed(self) -> bool:
        return self.mode == "resume"

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write the metadata file (for --resume only when the file had none; with
        --overwrite once the new records are in place, by ``finish``)."""
        if self.resumed and self.meta is not None:
            return
        if self.temporary is not None:
            self.pending_meta = meta
            return
        self._put_meta(meta)

    def _put_meta(self, meta: dict[str, Any]) -> None:
        path = meta_path(self.target)
        _check_meta_free(self.name, self.target)  # a file put there since the claim stays
        temporary = _temporary_name(path)
        try:
            with open(temporary, "x", encoding="utf-8") as handle:
                json.dump({META_KEY: meta}, handle, ensure_ascii=False)
                handle.write("\n")
            _keep_attributes(temporary, self.previous)
            os.replace(temporary, path)
            self.meta_written = True
        except OSError as exc:
            _unlink(temporary)
            raise OutputWriteError(_cannot_write(path, exc)) from None

    def finish(self) -> None:
        """The run is complete: make the file durable and, with --overwrite, put it in place."""
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            if self.temporary is not None:
                _keep_attributes(self.temporary, self.previous)
                os.replace(self.temporary, self.target)
                self.temporary = None
                if self.pending_meta is not None:
                    self._put_meta(self.pending_meta)
        except OSError as exc:
            raise OutputWriteError(_cannot_write(self.name, exc)) from None
        finally:
            self._close()

    def abandon(self) -> None:
        """The run stopped early: keep what it wrote, except a replacement not yet complete
        (the old file stays) or a new file with no record in it."""
        with contextlib.suppress(OSError):
            self.stream.close()
        if self.temporary is not None:
            _unlink(self.temporary)
        elif self.mode == "new" and not self.written:
            _unlink(self.target)
            if self.meta_written:
                _unlink(meta_path(self.target))
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        if self.held is not None:
            with contextlib.suppress(OSError):
                os.close(self.held)
            self.held = None


def claim_output(
    path: str,
    fmt: str,
    *,
    resume: bool,
    overwrite: bool,
    model: str,
    top_k: int,
    min_score: float = 0.0,
    zero_shot: dict[str, Any] | None = None,
) -> ClaimedOutput:
    """Check the output and take it, before the model loads; UsageError for any problem.
    ``zero_shot``: the run's labels and template (``ZeroShot.meta()``), None for a model's
    own labels: --resume continues only a file made with the same."""
    name = os.fspath(path)
    if name.endswith(os.sep) or os.path.isdir(name):
        raise UsageError(f"output {name!r} is a folder: name a file")
    target = os.path.realpath(name)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {name!r}: folder {folder!r} does not exist")
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(_cannot_write(name, exc)) from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"output {name!r} is not a regular file ({file_kind(info.st_mode)}): name a file, or "
            "leave out -o to write to standard output"
        )
    remove_abandoned_temporaries(target)
    if info is None:
        _check_meta_free(name, target)
        return _create(name, target, fmt)
    if resume:
        if fmt not in RESUMABLE_FORMATS:
            raise UsageError(f"--resume works with jsonl and csv output, not {fmt}")
        return _resume(name, target, fmt, model_key(model), top_k, min_score, zero_shot)
    if overwrite:
        _check_meta_free(name, target)
        return _replace(name, target)
    raise _exists(name, fmt)


def _check_meta_free(name: str, target: str) -> None:
    """Refuse an output whose metadata file name holds a file resnet-classify did not write:
    a run replaces only its own metadata, never a user's file of that name."""
    path = meta_path(target)
    try:
        load_sidecar(path)
    except ForeignFileError as exc:
        raise UsageError(
            f"cannot write {path!r}, the metadata file of output {name!r}: a file of that name "
            f"is there that resnet-classify did not write ({exc}): move it away, or choose "
            "another output name"
        ) from None
    except OSError as exc:
        raise UsageError(_cannot_write(path, exc)) from None


def remove_abandoned_temporaries(target: str) -> None:
    """Remove the temporary files a run killed outright (SIGKILL, a power cut) left beside
    ``target``: named ``.NAME.PID.tmp`` (or ``.NAME.meta.json.PID.tmp``) by this module,
    whose process PID is gone and on which no run holds a lock. Nothing else is touched."""
    folder, base = os.path.split(target)
    pattern = re.compile(rf"\.{re.escape(base)}(?:{re.escape(META_SUFFIX)})?\.([0-9]+)\.tmp")
    try:
        names = [n for n in os.listdir(folder) if n.startswith(f".{base}.")]
    except OSError:
        return
    for entry in names:
        found = pattern.fullmatch(entry)
        if found is None or _running(int(found.group(1))):
            continue
        path = os.path.join(folder, entry)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live run's file is locked
            held, now = os.fstat(fd), os.lstat(path)
            if stat.S_ISREG(held.st_mode) and (held.st_dev, held.st_ino) == (
                now.st_dev,
                now.st_ino,
            ):
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def check_not_an_input(claimed: ClaimedOutput, sources: Iterable[Source]) -> None:
    """Refuse a run whose output file is also one of its inputs."""
    try:
        ours = os.stat(claimed.target)
    except OSError:
        return
    for source in sources:
        if source.path is None:
            continue
        with contextlib.suppress(OSError):
            theirs = os.stat(source.path)
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                raise UsageError(
                    f"output {claimed.name!r} is also an input: choose another output name"
                )


def _create(name: str, target: str, fmt: str) -> ClaimedOutput:
    """A new file, locked before it appears under its name."""
    temporary = _temporary_name(target)
    fd = _open_locked(name, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.link(temporary, target)
    except FileExistsError:
        os.close(fd)
        raise _exists(name, fmt, taken=True) from None
    except OSError as exc:
        os.close(fd)
        if exc.errno not in _NO_HARD_LINKS:
            raise UsageError(_cannot_write(name, exc)) from None
        # A file system without hard links: create the name itself, locked just after.
        try:
            fd = _open_locked(name, target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            raise _exists(name, fmt, taken=True) from None
    finally:
        _unlink(temporary)
    return ClaimedOutput(name, target, "new", _text(fd))


def _exists(name: str, fmt: str, taken: bool = False) -> OutputExistsError:
    """The output file exists (``taken``: another run created it just now): what to do,
    offering --resume only for a format it continues and --overwrite only for a file no
    run holds."""
    ways = ["--resume to continue it"] if fmt in RESUMABLE_FORMATS else []
    if not taken:
        ways.append("--overwrite to replace it")
    advice = f"pass {', '.join(ways)}, or choose another name" if ways else "choose another name"
    return OutputExistsError(
        f"output file {name!r} exists{' (another run took the name)' if taken else ''}: {advice}"
    )


def _replace(name: str, target: str) -> ClaimedOutput:
    """--overwrite: the new records go to a temporary file until the run completes."""
    held = _lock_existing(name, target, os.O_RDONLY)
    temporary = _temporary_name(target)
    try:
        fd = _open_locked(name, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except BaseException:
        os.close(held)
        raise
    return ClaimedOutput(
        name,
        target,
        "overwrite",
        _text(fd),
        temporary=temporary,
        previous=os.fstat(held),
        held=held,
    )


def _resume(
    name: str,
    target: str,
    fmt: str,
    model: str,
    top_k: int,
    min_score: float,
    zero_shot: dict[str, Any] | None,
) -> ClaimedOutput:
    """--resume: check the file, then rewrite its classified records to continue from."""
    held = _lock_existing(name, target, os.O_RDONLY)
    try:
        with open(held, encoding="utf-8", errors="surrogateescape", newline="", closefd=False) as f:
            text = f.read()
        try:
            records = complete_records(text, fmt, strict=True)
        except (NotResultsError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot resume {name!r}: it is not a resnet-classify results file ({exc}); "
                "choose another output name"
            ) from None
        meta = _resume_meta(name, target)
        _check_same_run(name, meta, records, model, top_k, min_score)
        _check_same_labels(name, meta, records, zero_shot)
        _check_same_folder(name, meta)
        kept = [r for r in records if r.ok]
        previous = os.fstat(held)
        temporary = _temporary_name(target)
        fd = _open_locked(name, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        stream = _text(fd)
        try:
            # A CSV keeps the columns it has (with or without the category, the true label).
            columns = csv_columns(text) if fmt == "csv" else (False, False, False)
            category, true_label, xmp_error = columns
            writer = create_writer(
                fmt, stream, category=category, true_label=true_label, xmp_error=xmp_error
            )
            writer.write(kept)
            stream.flush()
            os.fsync(fd)
            _keep_attributes(temporary, previous)
            os.replace(temporary, target)  # the lock on the new file is ours already
        except OSError as exc:
            stream.close()
            _unlink(temporary)
            raise OutputWriteError(_cannot_write(name, exc)) from None
    finally:
        os.close(held)
    folder = meta["cwd"] if meta else os.getcwd()
    claimed = ClaimedOutput(name, target, "resume", stream, DoneInputs.of(kept, folder), meta)
    claimed.previous = previous
    claimed.written = True
    claimed.csv_columns = columns
    return claimed


def _resume_meta(name: str, target: str) -> dict[str, Any] | None:
    """The metadata --resume checks against, or None for a file written before there was
    any; a metadata file that is damaged or lacks what the checks need is refused (one line),
    never taken for none."""
    path = meta_path(target)
    advice = "move it away to resume checked by the records alone, or choose another output name"
    try:
        meta = load_sidecar(path)
    except ForeignFileError as exc:
        raise UsageError(
            f"cannot resume {name!r}: its metadata file {path!r} is not one resnet-classify "
            f"wrote ({exc}): {advice}"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot resume {name!r}: {_cannot_write(path, exc)}") from None
    if meta is None:
        return None
    for key, kind in REQUIRED_META.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UsageError(
                f"cannot resume {name!r}: its metadata file {path!r} has no valid {key!r}: {advice}"
            )
    floor = meta.get("min_score", 0.0)  # files made before --min-score have none
    valid_floor = isinstance(floor, int | float) and not isinstance(floor, bool)
    for key, valid in (
        ("cwd", os.path.isabs(meta["cwd"])),
        ("min_score", valid_floor and 0.0 <= floor <= 1.0),  # NaN too
        ("zero_shot", _valid_zero_shot(meta.get("zero_shot"))),
    ):
        if not valid:
            raise UsageError(
                f"cannot resume {name!r}: its metadata file {path!r} has no valid {key!r}: {advice}"
            )
    return meta


def _valid_zero_shot(value: Any) -> bool:
    """Whether a metadata file's ``zero_shot`` is none (a model's own labels) or what
    ``ZeroShot.meta()`` writes: a list of labels and a template, all text."""
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    labels, template = value.get("labels"), value.get("template")
    return (
        isinstance(labels, list)
        and bool(labels)
        and all(isinstance(label, str) for label in labels)
        and isinstance(template, str)
    )


def _check_same_folder(name: str, meta: dict[str, Any] | None) -> None:
    """Refuse to resume from another folder than the first run's: the names it recorded are
    relative to that one, and this run's would be relative to this one, so that no later
    resume could resolve both."""
    if meta is None:
        return
    first, here = meta["cwd"], os.getcwd()
    if os.path.realpath(first) != os.path.realpath(here):
        raise UsageError(
            f"cannot resume {name!r} from {here!r}: it was started in {first!r}, and the "
            f"file names it records are relative to that folder: run it from there (cd "
            f"{first!r}), or choose another output name"
        )


def _check_same_run(
    name: str,
    meta: dict[str, Any] | None,
    records: list[Record],
    model: str,
    top_k: int,
    min_score: float = 0.0,
) -> None:
    """Refuse to mix another model's, top-k's or --min-score's records into the file."""
    if meta is None:  # written before files had metadata: the records say what they can
        most = max((len(r.predictions) for r in records), default=0)
        if most > top_k:
            raise UsageError(
                f"cannot resume {name!r}: its records have {most} labels each, more than "
                f"top-k {top_k}: pass -k {most} to continue it, or choose another output name"
            )
        return
    if meta.get("model") != model:
        made_by = meta.get("model")
        raise UsageError(
            f"cannot resume {name!r}: it was made by model {made_by!r}, not {model!r}: pass "
            f"--model {made_by} to continue it, or choose another output name"
        )
    if meta.get("top_k") != top_k:
        made_k = meta.get("top_k")
        raise UsageError(
            f"cannot resume {name!r}: it was made with top-k {made_k}, not {top_k}: pass "
            f"-k {made_k} to continue it, or choose another output name"
        )
    made_floor = meta.get("min_score", 0.0)  # files made before --min-score had none
    if made_floor != min_score:
        raise UsageError(
            f"cannot resume {name!r}: it was made with --min-score {made_floor:g}, not "
            f"{min_score:g}: pass --min-score {made_floor:g} to continue it, or choose another "
            "output name"
        )


def _check_same_labels(
    name: str, meta: dict[str, Any] | None, records: list[Record], zero_shot: dict[str, Any] | None
) -> None:
    """Refuse to mix records of another zero-shot label set (or template) into the file, or
    of a model's own labels into a zero-shot file and back."""
    if meta is None:  # no metadata: a zero-shot run continues only records of its labels
        given = set(zero_shot["labels"]) if zero_shot else None
        if given is not None and any(p.label not in given for r in records for p in r.predictions):
            raise UsageError(
                f"cannot resume {name!r}: its records have labels that are not among yours: "
                "give the labels it was made with, or choose another output name"
            )
        return
    theirs = meta.get("zero_shot")
    if theirs == zero_shot:
        return
    if not isinstance(theirs, dict):
        advice = "the model's own labels, not zero-shot ones: drop --labels/--labels-file"
    else:
        listed = [str(label) for label in theirs.get("labels") or []]
        template = theirs.get("template")
        joined = ", ".join(listed)
        which = "other labels" if zero_shot else "zero-shot labels"
        if any("," in label for label in listed) or len(joined) > 100:  # not a short option
            advice = f"{which} (listed in {meta_path(name)!r}): give the same ones"
        else:
            advice = f"{which}: pass --labels {joined!r}"
        if template != (zero_shot.get("template") if zero_shot else DEFAULT_TEMPLATE):
            advice += f" --template {template!r}"
    raise UsageError(
        f"cannot resume {name!r}: it was made with {advice} to continue it, or choose another "
        "output name"
    )


def _open_locked(name: str, path: str, flags: int) -> int:
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
    except FileExistsError:
        raise
    except OSError as exc:
        raise UsageError(_cannot_write(name, exc)) from None
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file only we know of: never contended
    return fd


def _lock_existing(name: str, target: str, flags: int) -> int:
    """A descriptor of ``target`` with its lock; refused while another run holds it."""
    try:
        fd = os.open(target, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(_cannot_write(name, exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        now, held = os.stat(target), os.fstat(fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise BlockingIOError  # replaced by the run that held it: still in use
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, BlockingIOError) or exc.errno in (errno.EAGAIN, errno.EACCES):
            raise UsageError(
                f"output {name!r} is in use by another resnet-classify run: wait for it to "
                "finish, or choose another output name"
            ) from None
        raise UsageError(_cannot_write(name, exc)) from None
    return fd


def _text(fd: int) -> IO[str]:
    return open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="")


def _temporary_name(path: str) -> str:
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{os.getpid()}.tmp")


def _keep_attributes(path: str, previous: os.stat_result | None) -> None:
    """Give a replacement file the mode and owner of the file it replaces."""
    if previous is None:
        return
    os.chmod(path, stat.S_IMODE(previous.st_mode))
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.chown(path, previous.st_uid, previous.st_gid)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _cannot_write(name: str, exc: OSError) -> str:
    return f"cannot write {name!r}: {exc.strerror or exc}"
