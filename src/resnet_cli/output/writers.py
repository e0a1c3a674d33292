"""Record writers (table, json, jsonl, csv) and readers for files they wrote. No torch here."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from ..errors import UsageError
from ..results import REVIEW_SCORE, Prediction, Record, needs_review, top1_match, top_margin
from ..text import is_terminal, printable

FORMATS = ("table", "json", "jsonl", "csv", "parquet")
FILE_ONLY_FORMATS = ("parquet",)  # binary: needs --output
CSV_HEADER = ("input", "rank", "label", "score", "class_id", "error")
# Columns a run adds only when it has them, last and in this order, so positional readers keep
# working: the predictions' categories (categories.py), an imagefolder's true labels, why an
# image's XMP sidecar was left as it was (--xmp).
CSV_OPTIONAL_COLUMNS = ("category", "true_label", "xmp_error")


def csv_header(
    category: bool = False, true_label: bool = False, xmp_error: bool = False
) -> tuple[str, ...]:
    """The CSV header of a run with or without the optional columns."""
    wanted = (category, true_label, xmp_error)
    return (*CSV_HEADER, *(c for c, w in zip(CSV_OPTIONAL_COLUMNS, wanted, strict=True) if w))


CSV_HEADERS = tuple(csv_header(*wanted) for wanted in itertools.product((False, True), repeat=3))
# Written as \uXXXX escapes: lone surrogates (file names that are not UTF-8) and the
# characters that some line readers treat as line breaks (NEL, LINE/PARAGRAPH SEPARATOR).
_ESCAPED = re.compile("[\ud800-\udfff\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# json.dumps with options builds an encoder per call, which costs more than the encoding.
_JSON = json.JSONEncoder(ensure_ascii=False)
# Up to this many images the table shows each image's full top-k; above it, one row per image.
DETAILED_TABLE_LIMIT = 3


def format_for_path(path: str) -> str | None:
    """The format a file name asks for by its extension (results.csv -> csv), if any."""
    lowered = path.lower()
    for suffix, name in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
        (".csv", "csv"),
        (".parquet", "parquet"),
    ):
        if lowered.endswith(suffix):
            return name
    return None


def round_score(score: float) -> float:
    """Six significant digits: plenty for a probability, and short to read."""
    return float(f"{score:.6g}")


def record_json(record: Record, index: int | None = None) -> str:
    """One record as a JSON object on one line (``index``: its input's position, first).

    File names that are not valid UTF-8 reach us as lone surrogates (os.fsdecode); they are
    written as \\udcXX escapes, which keeps the output valid UTF-8 and reads back unchanged.
    """
    text = _classified_json(record, index)
    if text is None:
        data = record.to_dict() if index is None else {"index": index, **record.to_dict()}
        for prediction in data.get("predictions", ()):
            prediction["score"] = round_score(prediction["score"])
        text = _JSON.encode(data)
    return escape_text(text)


def _classified_json(record: Record, index: int | None) -> str | None:
    """What the encoder writes for a classified record, put together directly: building and
    encoding its dicts was a third of the engine's own time per image (as
    benchmarks/engine_ceiling.py measures it). None for anything unusual (an error, a
    non-finite score, a value of another type)."""
    if record.error is not None or record.xmp_error is not None:
        return None
    if not (index is None or type(index) is int):
        return None
    parts = []
    for p in record.predictions:
        score = round_score(p.score)
        if type(p.rank) is not int or type(p.class_id) is not int or not math.isfinite(score):
            return None
        if type(p.label) is not str:
            return None
        label = _json_string(p.label)
        if p.category is None:
            category = ""
        elif type(p.category) is str:
            category = f', "category": {_json_string(p.category)}'
        else:
            return None
        parts.append(
            f'{{"rank": {p.rank}, "label": {label}, "score": {score!r}, '
            f'"class_id": {p.class_id}{category}}}'
        )
    start = "{" if index is None else f'{{"index": {index}, '
    truth = record.true_label
    if truth is None:
        end = "}"
    elif type(truth) is str:
        end = f', "true_label": {_JSON.encode(truth)}}}'
    else:
        return None
    return f'{start}"input": {_JSON.encode(record.input)}, "predictions": [{", ".join(parts)}]{end}'


@functools.lru_cache(maxsize=65536)
def _json_string(text: str) -> str:
    """A label as a JSON string, encoded once: a model has a fixed set of labels."""
    return _JSON.encode(text)


def escape_text(text: str, pattern: re.Pattern[str] = _ESCAPED) -> str:
    """``text`` with the characters ``pattern`` names (_ESCAPED's: lone surrogates and line
    separators) written as \\uXXXX escapes."""
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def stored_name(name: str) -> tuple[str, bytes | None]:
    """An input's name as parquet keeps it, in two columns: ``input``, the name as text (a
    string column must be UTF-8: undecodable bytes as ``\\udcXX`` escapes, as jsonl writes
    them), and ``input_bytes``, the name's exact bytes where it is not valid UTF-8 (None
    where ``input`` is the name itself). ``name_from_row`` undoes it: every name reopens
    its own file."""
    if _SURROGATE.search(name) is None:
        return name, None
    try:
        data: bytes | None = os.fsencode(name)
    except UnicodeError:  # a surrogate no file name has: the escaped text is all there is
        data = None
    return escape_text(name, _SURROGATE), data


def name_from_row(row: dict[str, Any]) -> str:
    """The input name a parquet row holds (``stored_name``'s two columns; files written
    before ``input_bytes`` have ``input`` only)."""
    data = row.get("input_bytes")
    return os.fsdecode(data) if data is not None else str(row["input"])


def csv_rows(
    record: Record, category: bool = False, true_label: bool = False, xmp_error: bool = False
) -> Iterator[tuple[Any, ...]]:
    """A record's CSV rows: one per prediction, or one with just the input and the error (or,
    for a record left with no prediction by --min-score, just the input); ``category``,
    ``true_label``, ``xmp_error``: with those columns last (``csv_header``)."""
    truth: tuple[Any, ...] = (record.true_label or "",) if true_label else ()
    truth += (record.xmp_error or "",) if xmp_error else ()
    if record.error is not None or not record.predictions:
        error = record.error or ""
        yield (record.input, "", "", "", "", error, *(("",) if category else ()), *truth)
        return
    for p in record.predictions:
        extra = (p.category or "",) if category else ()
        row = (record.input, p.rank, p.label, round_score(p.score), p.class_id, "")
        yield (*row, *extra, *truth)


class Writer(Protocol):
    def write(self, records: Iterable[Record]) -> None: ...
    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, records: Iterable[Record]) -> None:
        self.stream.write("".join(record_json(r) + "\n" for r in records))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonWriter:
    """A JSON array, written as records arrive so a long run holds none of them in memory."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.count = 0

    def write(self, records: Iterable[Record]) -> None:
        for record in records:
            self.stream.write(("[\n  " if self.count == 0 else ",\n  ") + record_json(record))
            self.count += 1
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()


class CsvWriter:
    def __init__(
        self,
        stream: IO[str],
        header: bool = True,
        category: bool = False,
        true_label: bool = False,
        xmp_error: bool = False,
    ):
        self.stream = stream
        self.columns = (category, true_label, xmp_error)
        self.writer = csv.writer(stream, lineterminator="\r\n")
        if header:
            self.writer.writerow(csv_header(*self.columns))

    def write(self, records: Iterable[Record]) -> None:
        for record in records:
            self.writer.writerows(csv_rows(record, *self.columns))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class TableWriter:
    """Rich tables for people: full top-k per image for a few images, one row each for many."""

    def __init__(self, stream: IO[str], color: bool | None = None):
        from rich.console import Console

        # Names and labels are shown as they are: no [markup], no :emoji: codes.
        self.console = Console(
            file=stream,
            force_terminal=color,
            highlight=False,
            soft_wrap=False,
            markup=False,
            emoji=False,
        )
        self.records: list[Record] = []

    def write(self, records: Iterable[Record]) -> None:
        self.records.extend(records)

    def close(self) -> None:
        if len(self.records) <= DETAILED_TABLE_LIMIT:
            for record in self.records:
                self.console.print(detailed_table(record))
        else:
            self.console.print(summary_table(self.records, self.console.width))
        self.console.file.flush()


def review_reason(record: Record) -> str | None:
    """Why a record needs review, in words, or None when it does not."""
    if not needs_review(record):
        return None
    if not record.predictions:
        return "no prediction"
    best, margin = record.predictions[0].score, top_margin(record)
    if best < REVIEW_SCORE:
        return f"best score {best:.2f} < {REVIEW_SCORE:.2f}"
    return f"only {margin:.2f} ahead of the next label"


def score_bar(score: float, width: int = 20) -> str:
    """A bar of block characters, ``width`` long at score 1."""
    eighths = round(max(0.0, min(1.0, score)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")


def detailed_table(record: Record) -> Any:
    """One image's top-k: rank, label, score and a score bar; the top-1 row in bold."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if record.error is not None:
        return Text(f"{printable(record.input)}: {printable(record.error)}", style="red")
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("label")
    with_category = has_categories([record])
    if with_category:
        table.add_column("category")
    table.add_column("score", justify="right")
    table.add_column("")
    for p in record.predictions:
        style = "bold green" if p.rank == 1 else None
        label = printable(p.label)
        category = (printable(p.category or ""),) if with_category else ()
        score = (f"{p.score:.4f}", score_bar(p.score))
        table.add_row(str(p.rank), label, *category, *score, style=style)
    # Under the table, not as its caption: a caption wraps to the table's width.
    notes = [] if record.true_label is None else [truth_text(record, "true label: ")]
    reason = review_reason(record)
    if reason is not None:
        notes.append(Text(f"needs review: {reason}", style="yellow"))
    if record.xmp_error is not None:
        notes.append(
            Text(f"XMP sidecar not written: {printable(record.xmp_error)}", style="yellow")
        )
    # The name above the table, not as its title: a title is cut anywhere to fit.
    name = FileName(printable(record.input))
    if not record.predictions:  # --min-score left none: the name, not an empty table
        return Group(name, *notes)
    return Group(name, table, *notes)


def truth_text(record: Record, before: str = "") -> Any:
    """A record's true label marked right (✓, green, and by which rule: label or category)
    or wrong (✗, red) for its top-1."""
    from rich.text import Text

    truth = printable(record.true_label or "")
    if not record.predictions:  # nothing to judge: a failure
        return Text(f"{before}{truth}")
    rule = top1_match(record)
    if rule is None:
        return Text(f"{before}✗ {truth}", style="red")
    return Text(f"{before}✓ {truth} by {rule}", style="green")


def summary_table(records: list[Record], width: int | None = None) -> Any:
    """Many images: one row each with the top-1 label and score and the runners-up; in
    ``width`` columns, file names whole where the labels can wrap instead."""
    from rich.table import Table
    from rich.text import Text

    folder = common_folder([r.input for r in records])
    table = Table(title=f"in {printable(folder)}/" if folder else None, title_justify="left")
    table.add_column("input")
    table.add_column("top-1", style="bold")
    with_truth = has_true_labels(records)
    if with_truth:
        table.add_column("true label")
    with_category = has_categories(records)
    if with_category:
        table.add_column("category")
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    # With -k 1 there are no runners-up: no empty column for them.
    with_next = any(len(r.predictions) > 1 for r in records)
    if with_next:
        table.add_column("next", overflow="fold")
    for record in records:
        name = FileName(printable(record.input[len(folder) + 1 :] if folder else record.input))
        truth = (truth_text(record),) if with_truth else ()
        blank = ("",) if with_category else ()
        if record.error is not None or not record.predictions:
            failed = record.error is not None
            why = f"error: {printable(record.error or '')}" if failed else "no prediction"
            empty = ("", "", "") if with_next else ("", "")
            table.add_row(name, why, *truth, *blank, *empty, style="red" if failed else "yellow")
            continue
        best, *others = record.predictions
        # Labels often hold commas ("teapot, kettle"), so runners-up are split by semicolons.
        runners_up = "; ".join(f"{printable(p.label)} {p.score:.2f}" for p in others[:2])
        # A doubtful top-1 gets a yellow score and a "?" so the eye finds it in a long table.
        doubtful = needs_review(record)
        score = Text(f"? {best.score:.4f}", style="yellow") if doubtful else f"{best.score:.4f}"
        category = (printable(best.category or ""),) if with_category else ()
        bar = score_bar(best.score, 10)
        after = (runners_up,) if with_next else ()
        table.add_row(name, printable(best.label), *truth, *category, score, bar, *after)
    if width is not None:
        table.columns[0].width = name_column_width(table, width)
    return table


def name_column_width(table: Any, width: int) -> int | None:
    """The width of ``table``'s first column, its file names, in ``width`` columns: the
    names whole where the other columns can make room by wrapping at their spaces (Rich
    would narrow the widest column first, the names); else each part of a path whole, as
    far as the others' longest words leave room. None: the table fits as it is."""
    from rich.cells import cell_len

    def extent(cell: Any) -> tuple[int, int]:  # (narrowest, widest) a cell can be shown in
        if isinstance(cell, FileName):
            return max(map(cell_len, name_parts(cell.name))), cell_len(cell.name)
        lines = str(cell).splitlines() or [""]
        return max(map(cell_len, str(cell).split() or [""])), max(map(cell_len, lines))

    columns = [[extent(c.header), *map(extent, c.cells)] for c in table.columns]
    widest = [max(w for _, w in cells) for cells in columns]
    narrowest = [
        wide if column.no_wrap else max(n for n, _ in cells)
        for column, cells, wide in zip(table.columns, columns, widest, strict=True)
    ]
    room = width - 3 * len(columns) - 1  # a border and two spaces of padding per column
    if sum(widest) <= room:
        return None
    names_whole = room - sum(widest[1:])
    parts_whole = min(narrowest[0], max(room - sum(narrowest[1:]), 8))
    return min(widest[0], max(names_whole, parts_whole))


class FileName:
    """A file name in a table cell: broken after a ``/`` where it does not fit (never in
    the middle of a name), and a part that alone is too wide shortened from the left,
    ``…ee_1024.jpg``, so its end, which tells files apart, stays."""

    def __init__(self, name: str):
        self.name = name

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.cells import cell_len
        from rich.measure import Measurement

        widest = max(cell_len(part) for part in name_parts(self.name))
        return Measurement(widest, cell_len(self.name)).clamp(max_width=options.max_width)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        for line in fit_name(self.name, options.max_width):
            yield Text(line, no_wrap=True, overflow="crop")


def name_parts(name: str) -> list[str]:
    """A path's parts, each with the ``/`` that ends it: ``["sub/", "coffee.jpg"]``."""
    return re.findall(r"[^/]*/|[^/]+$", name) or [name]


def fit_name(name: str, width: int) -> list[str]:
    """``name`` in lines of at most ``width`` cells: whole parts of the path, broken after a
    ``/``; a part wider than ``width`` shortened from the left with an ellipsis."""
    from rich.cells import cell_len

    width = max(width, 2)
    lines: list[str] = []
    for part in name_parts(name):
        if cell_len(part) > width:
            while cell_len(part) > width - 1:
                part = part[1:]
            part = "…" + part
        if lines and cell_len(lines[-1]) + cell_len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return lines


def has_true_labels(records: Iterable[Record]) -> bool:
    """Whether any of ``records`` has a true label (an imagefolder's image)."""
    return any(r.true_label is not None for r in records)


def has_categories(records: Iterable[Record]) -> bool:
    """Whether any prediction of ``records`` has a category (the run's model had them)."""
    return any(p.category is not None for r in records for p in r.predictions)


def common_folder(names: list[str]) -> str:
    """The folder every name lies in, so a long table can show short names ('' if none): a
    prefix of every name as written (``./photos`` stays ``./photos``, never ``photos``)."""
    folders = [name.split(os.sep)[:-1] for name in names]
    common: list[str] = []
    for parts in zip(*folders, strict=False):  # as deep as the shallowest name
        if any(part != parts[0] for part in parts):
            break
        common.append(parts[0])
    folder = os.sep.join(common)
    return "" if folder in ("", ".") else folder


def record_schema(indexed: bool = False, xmp_error: bool = False) -> Any:
    """The Arrow schema of records as parquet rows: ``input``, the top-k as list columns
    ``labels``, ``scores`` and ``class_ids`` (rank order), and ``error``; ``indexed`` puts
    the input's position, ``index``, first; ``xmp_error`` (a run with --xmp) adds that column
    last. One schema, so a batch without a failure (its ``error`` column all null) still
    reads back with the others."""
    import pyarrow as pa

    fields = [
        ("input", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float64())),
        ("class_ids", pa.list_(pa.int64())),
        ("error", pa.string()),
        ("categories", pa.list_(pa.string())),  # null when the model's labels have none
        ("true_label", pa.string()),  # null but for an imagefolder's images
        ("input_bytes", pa.binary()),  # the name's bytes, where it is not UTF-8 (stored_name)
        *([("xmp_error", pa.string())] if xmp_error else []),
    ]
    return pa.schema([("index", pa.int64()), *fields] if indexed else fields)


def records_table(
    records: list[Record], indices: list[int] | None = None, xmp_error: bool = False
) -> Any:
    """Records as an Arrow table in ``record_schema`` (indexed when ``indices`` is given)."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {} if indices is None else {"index": indices}
    names = [stored_name(r.input) for r in records]
    columns.update(
        {
            "input": [text for text, _ in names],
            "labels": [[p.label for p in r.predictions] for r in records],
            "scores": [[round_score(p.score) for p in r.predictions] for r in records],
            "class_ids": [[p.class_id for p in r.predictions] for r in records],
            "error": [r.error for r in records],
            "categories": [
                [p.category for p in r.predictions] if has_categories([r]) else None
                for r in records
            ],
            "true_label": [r.true_label for r in records],
            "input_bytes": [data for _, data in names],
        }
    )
    if xmp_error:
        columns["xmp_error"] = [r.xmp_error for r in records]
    schema = record_schema(indexed=indices is not None, xmp_error=xmp_error)
    return pa.table(columns, schema=schema)


def record_from_row(row: dict[str, Any]) -> Record:
    """The record a ``records_table`` row holds."""
    # Files written before categories or true labels have no such column.
    true_label, xmp_error = row.get("true_label"), row.get("xmp_error")
    name = name_from_row(row)
    if row["error"] is not None:
        return Record(input=name, error=row["error"], true_label=true_label)
    categories = row.get("categories") or [None] * len(row["labels"])
    predictions = tuple(
        Prediction(rank=rank, label=label, score=score, class_id=class_id, category=category)
        for rank, (label, score, class_id, category) in enumerate(
            zip(row["labels"], row["scores"], row["class_ids"], categories, strict=True), start=1
        )
    )
    return Record(name, predictions, true_label=true_label, xmp_error=xmp_error)


class ParquetWriter:
    """One row per input in ``record_schema``; a row group per batch. Loads straight into
    pandas or ``datasets.Dataset.from_parquet``. Written to the binary file under ``stream``."""

    def __init__(self, stream: IO[str], xmp_error: bool = False):
        import pyarrow.parquet as pq

        self.xmp_error = xmp_error
        schema = record_schema(xmp_error=xmp_error)
        self.writer = pq.ParquetWriter(stream.buffer, schema)  # type: ignore[attr-defined]

    def write(self, records: Iterable[Record]) -> None:
        rows = list(records)
        if rows:
            self.writer.write_table(records_table(rows, xmp_error=self.xmp_error))

    def close(self) -> None:
        self.writer.close()


def read_parquet_records(path: str) -> list[Record]:
    """Records from a file ParquetWriter wrote."""
    import pyarrow.parquet as pq

    return [record_from_row(row) for row in pq.read_table(path).to_pylist()]


def create_writer(
    fmt: str,
    stream: IO[str],
    *,
    color: bool | None = None,
    header: bool = True,
    category: bool = False,
    true_label: bool = False,
    xmp_error: bool = False,
) -> Writer:
    """The writer for a format name (``header``: whether a CSV starts with its header row;
    ``category``, ``true_label``, ``xmp_error``: whether a CSV has those columns, and a parquet
    file the last; the other formats show them wherever the records have them)."""
    if fmt == "jsonl":
        return JsonlWriter(stream)
    if fmt == "json":
        return JsonWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream, header, category, true_label, xmp_error)
    if fmt == "table":
        return TableWriter(stream, color=color)
    if fmt == "parquet":
        return ParquetWriter(stream, xmp_error=xmp_error)
    raise ValueError(f"unknown format {fmt!r}")


def read_records(text: str, fmt: str) -> list[Record]:
    """Parse records written in ``jsonl``, ``json`` or ``csv`` back into Records."""
    if fmt == "jsonl":
        # Split on "\n" only: str.splitlines() also breaks on characters allowed in names.
        return [record_from_json(json.loads(line)) for line in text.split("\n") if line.strip()]
    if fmt == "json":
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("not a JSON array of records")
        return [record_from_json(item) for item in items]
    if fmt == "csv":
        return records_from_csv_rows(csv.reader(io.StringIO(text, newline="")))
    raise ValueError(f"cannot read records in format {fmt!r}")


def read_results_file(path: str) -> list[Record]:
    """The records in a results file, in the format its extension names (jsonl if none does).

    A torn last line of jsonl or csv (a run killed mid-write, a full disk) is left out;
    anything else that is not a record raises ValueError, KeyError or TypeError, and a file
    that cannot be read raises OSError.
    """
    fmt = format_for_path(path) or "jsonl"
    if fmt == "parquet":
        return read_parquet_records(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        text = handle.read()
    try:
        return read_records(text, fmt)
    except ValueError:
        if fmt not in RESUMABLE_FORMATS or text.endswith("\n") or "\n" not in text:
            raise
        return read_records(text[: text.rfind("\n") + 1], fmt)


def records_from_csv_rows(rows: Iterable[list[str]]) -> list[Record]:
    """Group CSV rows (header first) back into one record per input, in order."""
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        return []
    if tuple(header) not in CSV_HEADERS:
        raise ValueError(f"not a resnet-classify CSV: header is {header}")
    width = len(header)
    category_at, truth_at, xmp_at = (
        header.index(c) if c in header else None for c in CSV_OPTIONAL_COLUMNS
    )
    # (input, true label, xmp error, predictions) for a record still collecting rows, or a
    # finished Record (a failure, or one left with no prediction).
    entries: list[tuple[str, str | None, str | None, list[Prediction]] | Record] = []
    for row in iterator:
        if not row:  # a blank line (an editor's, a concatenation's): no record
            continue
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} fields, the header {width}")
        name, rank, label, score, class_id, error = row[:6]
        truth = (row[truth_at] or None) if truth_at is not None else None
        xmp_error = (row[xmp_at] or None) if xmp_at is not None else None
        if error:
            entries.append(Record(input=name, error=error, true_label=truth))
            continue
        if not rank:
            entries.append(Record(name, (), true_label=truth, xmp_error=xmp_error))
            continue
        category = (row[category_at] or None) if category_at is not None else None
        prediction = Prediction(int(rank), label, float(score), int(class_id), category)
        last = entries[-1] if entries else None
        if isinstance(last, tuple) and last[0] == name and prediction.rank > 1:
            last[3].append(prediction)
        else:
            entries.append((name, truth, xmp_error, [prediction]))
    return [
        e if isinstance(e, Record) else Record(e[0], tuple(e[3]), true_label=e[1], xmp_error=e[2])
        for e in entries
    ]


RESUMABLE_FORMATS = ("jsonl", "csv")


def record_from_json(data: Any) -> Record:
    """The record a JSON object holds; ValueError for an object that is not one (another
    program's JSON Lines), so that it is never taken for a record."""
    if not isinstance(data, dict) or not isinstance(data.get("input"), str):
        raise ValueError("not a record: no input")
    if not isinstance(data.get("predictions"), list) and not data.get("error"):
        raise ValueError("not a record: neither predictions nor an error")
    return Record.from_dict(data)


def json_line_records(text: str) -> tuple[list[tuple[dict[str, Any], Record]], bool]:
    """The records on the complete lines of jsonl text, each with its JSON object, and whether
    every line held one. A run stopped mid-write leaves a partial or torn line: it is dropped
    here, so its input is classified again."""
    *complete, tail = text.split("\n")  # the piece after the last newline is partial or empty
    found, whole = [], not tail
    for line in complete:
        if line.strip():
            try:
                data = json.loads(line)
                found.append((data, record_from_json(data)))
            except (ValueError, KeyError, TypeError):
                whole = False
    return found, whole


class NotResultsError(ValueError):
    """A file that is not a results file resnet-classify wrote."""


def recover_records(path: str, fmt: str) -> list[Record]:
    """The complete records in an output file from an earlier run, dropping a torn tail.

    A run killed mid-write leaves at most a partial last line (or, in CSV, a record with fewer
    rows than the others); that part is not returned, so its input is classified again.
    """
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return complete_records(handle.read(), fmt)


def complete_records(text: str, fmt: str, strict: bool = False) -> list[Record]:
    """The complete records in the text of a jsonl or csv results file, a torn tail dropped.

    ``strict``: raise NotResultsError unless every other part is a record, as --resume needs
    before it rewrites the file (a notes file or a CSV of other columns must never be taken
    for an empty results file).
    """
    if fmt == "jsonl":
        found, whole = json_line_records(text)
        if strict and not whole:
            complete = text.split("\n")[:-1]  # a torn last line is allowed, and dropped
            bad = next((n for n, line in enumerate(complete, 1) if not _is_record(line)), None)
            if bad is not None:
                raise NotResultsError(f"line {bad} is not a record")
        return [record for _, record in found]
    if fmt == "csv":
        if not text:
            return []
        headers = (",".join(h) + "\r\n" for h in CSV_HEADERS)
        if strict and not any(text.startswith(first) for first in headers):
            raise NotResultsError(f"its first line is not the header {','.join(CSV_HEADER)}")
        cut = text.rfind("\r\n")
        body = text[: cut + 2] if cut >= 0 else ""
        try:
            records = records_from_csv_rows(csv.reader(io.StringIO(body, newline="")))
        except (ValueError, TypeError) as exc:
            if strict:
                raise NotResultsError(str(exc)) from None
            raise
        if body != text and records and records[-1].ok:
            records.pop()  # the last record's rows were being written when the run stopped
        # Rows are appended in order, so only the last record can be cut short: one with
        # fewer labels than the most any has is done again (with --min-score, records have
        # fewer labels by design, and such a last record is done again needlessly, once).
        full = max((len(r.predictions) for r in records if r.ok), default=0)
        if records and records[-1].ok and len(records[-1].predictions) < full:
            records.pop()
        return records
    raise ValueError(f"cannot resume a {fmt} file: use jsonl or csv")


def _is_record(line: str) -> bool:
    return not line.strip() or bool(json_line_records(line + "\n")[1])


def csv_columns(text: str) -> tuple[bool, bool, bool]:
    """Whether the CSV results text has the category, the true_label and the xmp_error column
    (``csv_header``'s arguments): a resumed run keeps the columns its file has."""
    first = next(csv.reader(io.StringIO(text, newline="")), None)
    header = first or []
    has = tuple(column in header for column in CSV_OPTIONAL_COLUMNS)
    return has[0], has[1], has[2]


def resolve_format(
    output_format: str | None, output: Path | None, table_by_default: bool = False
) -> str:
    """--format, else the output file's extension, else table on a terminal (or for the demo)
    and jsonl otherwise. A --format that the file's extension contradicts is a usage error:
    a CSV named x.jsonl is misread by everything that reads it, ``report`` included."""
    named = format_for_path(str(output)) if output else None
    if output is not None and output_format and named and output_format != named:
        suffix = ".txt" if output_format == "table" else f".{output_format}"
        raise UsageError(
            f"-f {output_format} and -o {str(output)!r} disagree ({output.suffix} is {named}): "
            f"drop -f, or write to {str(output.with_suffix(suffix))!r}"
        )
    fmt = output_format or (
        (named or "jsonl")
        if output
        else ("table" if table_by_default or is_terminal(sys.stdout) else "jsonl")
    )
    if fmt in FILE_ONLY_FORMATS and output is None:
        raise UsageError(f"--format {fmt} writes a binary file: add --output FILE.{fmt}")
    return fmt


def open_records(output: Path | None) -> tuple[IO[str], bool]:
    """The text stream records go to: a new output file, or stdout, and whether it was opened
    here. (The main command's output file is claimed by ``output.files`` instead; ``merge``
    writes a plain new file.)"""
    if output is None:
        # Our own wrapper so CSV line endings pass through untouched and file names that are
        # not UTF-8 come out as the bytes they were.
        stream = io.TextIOWrapper(
            sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline=""
        )
        return stream, False
    try:
        return open(output, "x", encoding="utf-8", errors="surrogateescape", newline=""), True
    except FileExistsError:
        raise UsageError(f"output file {str(output)!r} exists: choose another name") from None
    except OSError as exc:
        raise UsageError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None


def close_records(stream: IO[str], opened: bool) -> None:
    """Close what ``open_records`` gave; stdout stays open."""
    if opened:
        stream.close()
    else:
        stream.flush()
        stream.detach()  # type: ignore[attr-defined]
