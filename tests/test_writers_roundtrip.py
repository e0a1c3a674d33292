"""Property tests: every machine format reads back exactly what was written, for any names."""

from __future__ import annotations

import io
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_cli.results import Prediction, Record
from resnet_cli.writers import create_writer, read_records, round_score

# File names as os.fsdecode gives them: any text, plus bytes that are not UTF-8 (surrogates).
names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1),
    st.binary(min_size=1).map(os.fsdecode),
)
labels = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30)
scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False).map(round_score)


@st.composite
def records(draw: st.DrawFn) -> Record:
    name = draw(names)
    if draw(st.booleans()):
        return Record(input=name, error=draw(st.text(min_size=1).filter(str.strip)))
    count = draw(st.integers(min_value=1, max_value=4))
    predictions = tuple(
        Prediction(
            rank=r + 1, label=draw(labels), score=draw(scores), class_id=draw(st.integers(0, 10**6))
        )
        for r in range(count)
    )
    return Record(input=name, predictions=predictions)


def write(fmt: str, batch: list[Record]) -> str:
    stream = io.StringIO(newline="")
    writer = create_writer(fmt, stream)
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
            merged[-1] = Record(previous.input, previous.predictions + record.predictions)
        else:
            merged.append(record)
    return merged
