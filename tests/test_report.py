"""Reviewing results: the terminal table's care for people, and the HTML contact sheet."""

from __future__ import annotations

import io

from resnet_cli.results import Prediction, Record, needs_review, top_margin
from resnet_cli.writers import create_writer


def classified(name: str, *scores: float, labels: tuple[str, ...] = ()) -> Record:
    """A record with the given scores, ranked in order (labels default to label0, label1...)."""
    names = labels or tuple(f"label{i}" for i in range(len(scores)))
    predictions = tuple(
        Prediction(rank=i + 1, label=names[i], score=score, class_id=i)
        for i, score in enumerate(scores)
    )
    return Record(input=name, predictions=predictions)


def table(records: list[Record], color: bool = False) -> str:
    stream = io.StringIO()
    writer = create_writer("table", stream, color=color)
    writer.write(records)
    writer.close()
    return stream.getvalue()


# --- the review rule --------------------------------------------------------------------------


def test_review_rule_low_score_or_narrow_lead() -> None:
    assert not needs_review(classified("a", 0.9, 0.05))
    assert needs_review(classified("a", 0.45, 0.05))  # low top-1
    assert needs_review(classified("a", 0.55, 0.50))  # narrow lead
    assert top_margin(classified("a", 0.55, 0.50)) == 0.55 - 0.50
    assert top_margin(classified("a", 0.9)) is None  # -k 1: only the score rule applies
    assert not needs_review(classified("a", 0.9))
    assert not needs_review(Record("a", error="boom"))
    assert needs_review(classified("a", 0.7, 0.1), min_score=0.8)
    assert not needs_review(classified("a", 0.55, 0.50), min_margin=0.01)


# --- the terminal table -------------------------------------------------------------------------


def test_table_one_image_has_bars_bold_top_1_and_a_review_note() -> None:
    text = table([classified("cat.jpg", 0.42, 0.40, 0.1)], color=True)
    assert "\x1b[1;32m" in text  # the top-1 row in bold green
    assert "████████▍" in text  # 0.42 of a 20-character bar
    assert "needs review: best score 0.42 < 0.50" in table([classified("cat.jpg", 0.42, 0.40)])
    assert (
        text.rstrip()
        .splitlines()[-1]
        .endswith(
            "1 image, 0 failed, 1 to review (best score < 0.50 or < 0.10 ahead of the next)\x1b[0m"
        )
    )


def test_table_many_images_marks_doubtful_and_failed_rows_and_closes_with_counts() -> None:
    records = [
        classified(f"photos/{i}.jpg", s, 0.05) for i, s in enumerate([0.9, 0.8, 0.7, 0.6, 0.45])
    ]
    records += [classified("photos/close.jpg", 0.55, 0.5), Record("photos/bad.jpg", error="boom")]
    plain = table(records)
    rows = {line.split()[1]: line for line in plain.splitlines() if ".jpg" in line}
    assert "? 0.4500" in rows["4.jpg"] and "? 0.5500" in rows["close.jpg"]
    assert "?" not in rows["0.jpg"] and "0.9000" in rows["0.jpg"]
    assert "error" in rows["bad.jpg"] and "boom" in rows["bad.jpg"]
    assert plain.rstrip().splitlines()[-1].startswith("7 images, 1 failed, 2 to review")
    colored = table(records, color=True)
    bad_row = next(line for line in colored.splitlines() if "bad.jpg" in line)
    assert "\x1b[31m" in bad_row  # failures in red


def test_table_prints_markup_and_control_characters_in_names_as_they_are() -> None:
    # Rich would read "[/bold]" as a closing tag and raise; a label is data, not markup.
    text = table([classified("[/bold]\x1b[2J.jpg", 0.9, 0.05, labels=("[red]x", "y"))])
    assert "[/bold]\\x1b[2J.jpg" in text and "[red]x" in text
