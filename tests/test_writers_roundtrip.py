"""Property tests: every machine format reads back exactly what was written, for any names."""

from __future__ import annotations

import io
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_cli.output.writers import create_writer, read_records, round_score
from resnet_cli.results import Prediction, Record

# File names as os.fsdecode gives them: any text, plus bytes that are not UTF-8 (surrogates).
names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
    st.binary(min_size=1).map(os.fsdecode),
)
labels = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30)
scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False).map(round_score)
# An imagefolder's class, or none (most inputs); a CSV cell cannot tell "" from none.
true_labels = st.one_of(st.none(), labels.filter(bool))


@st.composite
def records(draw: st.DrawFn) -> Record:
    name, truth = draw(names), draw(true_labels)
    if draw(st.booleans()):
        error = draw(st.text(min_size=1).filter(str.strip))
        return Record(input=name, error=error, true_label=truth)
    count = draw(st.integers(min_value=1, max_value=4))
    predictions = tuple(
        Prediction(
            rank=r + 1, label=draw(labels), score=draw(scores), class_id=draw(st.integers(0, 10**6))
        )
        for r in range(count)
    )
    return Record(input=name, predictions=predictions, true_label=truth)


def write(fmt: str, batch: list[Record]) -> str:
    stream = io.StringIO(newline="")
    writer = create_writer(fmt, stream, true_label=any(r.true_label for r in batch))
    writer.write(batch)
    writer.close()
    return stream.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(records(), max_size=6), st.sampled_from(["jsonl", "json", "csv"]))
def test_round_trip(batch: list[Record], fmt: str) -> None:
    text = write(fmt, batch)
    if fmt == "csv":
        # A CSV record's rows share the input; two adjacent records for the same input with
        # predictions would merge, so compare grouped by input run (as the format defines it).
        assert read_records(text, fmt) == _merge_adjacent(batch)
    else:
        assert read_records(text, fmt) == batch
    # Output must be encodable as UTF-8 except for the original non-UTF-8 name bytes in CSV.
    if fmt != "csv":
        text.encode("utf-8")


def _merge_adjacent(batch: list[Record]) -> list[Record]:
    merged: list[Record] = []
    for record in batch:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.ok
            and record.ok
            and previous.input == record.input
            and record.predictions[0].rank > 1
        ):
            predictions = previous.predictions + record.predictions
            merged[-1] = Record(previous.input, predictions, true_label=previous.true_label)
        else:
            merged.append(record)
    return merged


any_scores = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.integers(-(10**20), 10**20),
    st.booleans(),
)


@st.composite
def any_records(draw: st.DrawFn) -> Record:
    """Records as the engine makes them, and as library callers might: odd types included."""
    name, truth = draw(names), draw(st.one_of(true_labels, st.integers()))
    if draw(st.integers(0, 5)) == 0:
        return Record(input=name, error=draw(st.text(min_size=1)), true_label=truth)
    ids = st.one_of(st.integers(0, 10**6), st.booleans())
    predictions = tuple(
        Prediction(rank=draw(ids), label=draw(labels), score=draw(any_scores), class_id=draw(ids))
        for _ in range(draw(st.integers(0, 5)))
    )
    return Record(input=name, predictions=predictions, true_label=truth)


@settings(max_examples=400, deadline=None)
@given(any_records(), st.one_of(st.none(), st.integers(0, 10**9), st.booleans()))
def test_a_record_is_written_as_the_json_encoder_writes_its_dict(
    record: Record, index: int | None
) -> None:
    # record_json puts the common record's text together itself (it is the engine's biggest
    # cost per image after top-k); the text must be the encoder's, byte for byte.
    import json

    from resnet_cli.output.writers import escape_text, record_json

    data = record.to_dict() if index is None else {"index": index, **record.to_dict()}
    for prediction in data.get("predictions", ()):
        prediction["score"] = round_score(prediction["score"])
    assert record_json(record, index) == escape_text(json.dumps(data, ensure_ascii=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(records(), max_size=5))
def test_parquet_round_trip(batch: list[Record]) -> None:
    import tempfile

    from resnet_cli.output.writers import read_parquet_records

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "out.parquet")
        with open(path, "w", encoding="utf-8", newline="") as stream:
            writer = create_writer("parquet", stream)
            writer.write(batch)
            writer.close()
        assert read_parquet_records(path) == batch


def test_parquet_names_each_reopen_their_own_file(tmp_path: Path) -> None:
    """Issue 24, case 8: names with U+2028 or U+0085 were stored as the text \\u2028; a name
    with the byte 0xFF and a file literally named x\\udcff.jpg both became x\\udcff.jpg."""
    import pyarrow.parquet as pq

    from resnet_cli.output.writers import read_parquet_records

    folder = os.fsencode(tmp_path)
    names = [b"line\xe2\x80\xa8sep.jpg", b"nel\xc2\x85.jpg", b"x\xff.jpg", b"x\\udcff.jpg"]
    for number, name in enumerate(names):
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(b"photo %d" % number)
    inputs = [os.fsdecode(os.path.join(folder, name)) for name in names]
    out = tmp_path / "out.parquet"
    with open(out, "w", encoding="utf-8", newline="") as stream:
        writer = create_writer("parquet", stream)
        writer.write([Record(input=name, error="not classified") for name in inputs])
        writer.close()
    assert [r.input for r in read_parquet_records(str(out))] == inputs
    # A script reopens each file as docs/contract-additions.md says: input_bytes where it is
    # set (a name that is not UTF-8), else input.
    for number, row in enumerate(pq.read_table(out).to_pylist()):
        path = row["input_bytes"] if row["input_bytes"] is not None else row["input"]
        with open(path, "rb") as handle:
            assert handle.read() == b"photo %d" % number, row
    texts = [row["input"] for row in pq.read_table(out).to_pylist()]
    assert texts[0].endswith("line\u2028sep.jpg") and texts[1].endswith("nel\x85.jpg")
