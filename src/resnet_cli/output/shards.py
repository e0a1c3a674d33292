"""A results folder of the Ray engine (``--engine ray -o DIR``): its record shards, read back in
input order, got ready for ``--resume`` or ``--overwrite``, merged into one file, and its
metadata file (what made the records, the plan the model actors ran). No Ray and no torch
here: pyarrow reads the shards.

A shard holds a block of records, each with its input's position in ``index``: parquet with
the record columns (one explicit schema, so ``pandas.read_parquet(DIR)`` reads the folder as
one table), or jsonl with one record a line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import IO, Any

from .. import __version__
from ..atomic import replaced_atomically
from ..errors import UsageError
from ..results import Record, needs_review
from .files import META_KEY, ForeignFileError, load_sidecar, model_key
from .writers import (
    create_writer,
    escape_text,
    has_categories,
    has_true_labels,
    json_line_records,
    record_from_row,
    record_json,
    records_table,
)

RAY_FORMATS = ("parquet", "jsonl")
SHARD_SUFFIXES = (".parquet", ".jsonl")
TORN_SUFFIX = ".torn"
# The folder's metadata file: hidden, so pandas and pyarrow still read the folder as one table.
FOLDER_META = ".resnet-classify.meta.json"


def shard_table(records: list[Record], indices: list[int], fmt: str) -> Any:
    """A batch's records as the rows its shard holds: parquet's record columns, or jsonl
    lines (the local jsonl record with its ``index``)."""
    if fmt == "parquet":
        return records_table(records, indices)
    import pyarrow as pa

    lines = [record_json(record, index) for record, index in zip(records, indices, strict=True)]
    return pa.table({"index": indices, "line": lines})


def output_key(name: str) -> str:
    """An input's name as a results folder keeps it (parquet strings must be UTF-8)."""
    return escape_text(name)


def shard_paths(folder: str | os.PathLike[str]) -> list[str]:
    """The record shards in a results folder, in name order."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        os.path.join(folder, name)
        for name in names
        if name.endswith(SHARD_SUFFIXES) and not name.startswith(".")
    ]


def read_shard(path: str) -> tuple[list[tuple[int, Record]] | None, bool]:
    """A shard's (index, record) rows and whether it is whole; None for a shard that cannot
    be read at all (a parquet file cut short by an interrupted run has no footer)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
            return [(int(row["index"]), record_from_row(row)) for row in rows], True
        except Exception:
            return None, False
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            found, whole = json_line_records(handle.read())
    except OSError:
        return None, False
    indexed = [(data["index"], record) for data, record in found if type(data.get("index")) is int]
    return indexed, whole and len(indexed) == len(found)


def read_ray_output(folder: str | os.PathLike[str], *, empty: bool = True) -> list[Record]:
    """The records of a results folder written by the Ray engine, in input order.
    ``empty=False``: a folder without a shard is a UsageError (``merge``)."""
    if not os.path.isdir(folder):
        raise UsageError(f"no results folder at {os.fspath(folder)!r}")
    paths = shard_paths(folder)
    if not paths and not empty:
        raise UsageError(
            f"no shards in {os.fspath(folder)!r}: name the folder an --engine ray run wrote "
            "(its -o DIR)"
        )
    rows: list[tuple[int, Record]] = []
    for path in paths:
        shard, whole = read_shard(path)
        if shard is None or not whole:
            _refuse_a_stranger(path)
            raise UsageError(
                f"shard {path!r} is torn (its run was interrupted): run the command again "
                "with --resume to finish it"
            )
        rows.extend(shard)
    rows.sort(key=lambda row: row[0])  # stable: equal indices keep their shard order
    return [record for _, record in rows]


def _refuse_a_stranger(path: str) -> None:
    """A UsageError where a file named like a shard is not one (a local run's results, a
    merged file): its records have no ``index``, or it is not records at all. Merging it
    would mix it in, resuming would drop its records and overwriting would delete it."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            stranger = "index" not in pq.read_schema(path).names
        except Exception:  # no footer: a shard cut short, as far as can be told
            stranger = False
    else:
        # Ray writes whole lines; a kill cuts the last one, never the first complete one.
        try:
            with open(path, "rb") as handle:
                first = handle.readline()
        except OSError:
            return
        try:
            data = json.loads(first) if first.endswith(b"\n") else {"index": 0}
        except ValueError:
            data = None
        stranger = not (isinstance(data, dict) and type(data.get("index")) is int)
    if stranger:
        raise UsageError(
            f"{path!r} is not a shard of an --engine ray run (its records have no index): "
            "move it out of the folder"
        )


def prepare_output_folder(
    folder: str | os.PathLike[str], *, resume: bool = False, overwrite: bool = False
) -> set[str]:
    """Check a results folder against --resume/--overwrite; for --resume, the ``output_key``
    of every input already classified there. A folder that holds only its metadata file (a
    run stopped before its first shard) is as good as empty."""
    path = os.fspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"output {path!r} is a file: --engine ray writes a folder of shards")
    if not os.path.isdir(path) or not set(os.listdir(path)) - {FOLDER_META}:
        return set()
    if overwrite:
        for shard in shard_paths(path):
            _refuse_a_stranger(shard)  # before anything is removed
        for name in os.listdir(path):
            if name.endswith((*SHARD_SUFFIXES, TORN_SUFFIX)):
                os.remove(os.path.join(path, name))
        return set()
    if not resume:
        raise UsageError(
            f"output folder {path!r} is not empty: pass --resume to continue the run there, "
            "--overwrite to replace its records, or choose another folder"
        )
    return resume_folder(path)


def resume_folder(folder: str) -> set[str]:
    """Get a results folder ready to continue; return the ``output_key`` of each input
    classified there. A shard that cannot be read (cut short by an interrupted run) is set
    aside as ``.NAME.torn`` (hidden, so pandas and pyarrow still read the folder as one
    table); failed records and torn lines are dropped from their shard, so their inputs are
    classified again and the folder ends with every input exactly once."""
    done: set[str] = set()
    for path in shard_paths(folder):
        rows, whole = read_shard(path)
        if rows is None or not whole:
            _refuse_a_stranger(path)
        if rows is None:
            os.replace(path, os.path.join(folder, f".{os.path.basename(path)}{TORN_SUFFIX}"))
            continue
        kept = [(index, record) for index, record in rows if record.ok]
        if not whole or len(kept) < len(rows):
            _rewrite_shard(path, kept)
        done.update(output_key(record.input) for _, record in kept)
    return done


def _rewrite_shard(path: str, rows: list[tuple[int, Record]]) -> None:
    """Replace a shard by ``rows`` atomically (remove it when there are none)."""
    if not rows:
        os.remove(path)
        return
    indices = [index for index, _ in rows]
    records = [record for _, record in rows]
    with replaced_atomically(path) as temporary:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            pq.write_table(records_table(records, indices), temporary)
        else:
            with open(temporary, "w", encoding="utf-8", newline="") as handle:
                handle.write("".join(f"{record_json(r, i)}\n" for i, r in rows))


def count_records(paths: list[str]) -> tuple[int, int, int]:
    """Records, failed records and records that need review in the given shards (what a torn
    one still holds)."""
    images = failed = review = 0
    for path in paths:
        rows, _ = read_shard(path)
        for _, record in rows or ():
            images += 1
            failed += not record.ok
            review += needs_review(record)
    return images, failed, review


def merge_folder(folder: str | os.PathLike[str]) -> Callable[[IO[str], str], None]:
    """``resnet-classify merge``: read every record of a results folder, in input order (a
    folder without a shard is a UsageError), and give what writes them to a stream in a
    format. Read first, so that nothing is created for a folder that cannot be merged. A CSV
    has the optional columns exactly when the records have them, as a local run's."""
    records = read_ray_output(folder, empty=False)
    optional = {"category": has_categories(records), "true_label": has_true_labels(records)}

    def write(stream: IO[str], fmt: str) -> None:
        writer = create_writer(fmt, stream, **optional)
        try:
            writer.write(records)
        finally:
            writer.close()

    return write


def folder_meta(
    model: str, top_k: int, min_score: float, fmt: str, plan: dict[str, Any]
) -> dict[str, Any]:
    """What made a results folder's records: the tool, the model, the run's options and the
    plan its model actors ran (``plan``: field -> value, with ``reasons``)."""
    return {
        "version": __version__,
        "model": model_key(model),
        "top_k": top_k,
        "min_score": min_score,
        "format": fmt,
        "plan": plan,
        "cwd": os.getcwd(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_folder_meta(folder: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    """Write the folder's metadata file (the last run's: a resumed run replaces it), in one
    step. A file of that name that resnet-classify did not write is refused, never replaced."""
    path = os.path.join(os.fspath(folder), FOLDER_META)
    read_folder_meta(folder)  # a stranger's file there is a UsageError
    with replaced_atomically(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        json.dump({META_KEY: meta}, handle, ensure_ascii=False)
        handle.write("\n")


def read_folder_meta(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What made a results folder's records (its metadata file), or None without one."""
    path = os.path.join(os.fspath(folder), FOLDER_META)
    try:
        return load_sidecar(path)
    except ForeignFileError as exc:
        raise UsageError(
            f"{path!r} is not the metadata file resnet-classify writes ({exc}): move it out "
            "of the folder"
        ) from None
