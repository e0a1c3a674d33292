"""Reviewing results: the terminal table's care for people, and the HTML contact sheet."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from conftest import interrupt_a_stuck_run, scene
from resnet_cli.cli import main
from resnet_cli.cli.classify import app
from resnet_cli.cli.report import report_app
from resnet_cli.output.report import ReportSummary, render_report, thumbnail_jpeg, write_report
from resnet_cli.output.writers import create_writer, read_records, record_json
from resnet_cli.results import Prediction, Record, needs_review, top_margin
from resnet_cli.text import printable


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
    # No count line under the table: the closing summary on stderr has the counts.
    assert "failed" not in text and "to review" not in text


def test_table_many_images_marks_doubtful_and_failed_rows() -> None:
    records = [
        classified(f"photos/{i}.jpg", s, 0.05) for i, s in enumerate([0.9, 0.8, 0.7, 0.6, 0.45])
    ]
    records += [classified("photos/close.jpg", 0.55, 0.5), Record("photos/bad.jpg", error="boom")]
    plain = table(records)
    rows = {line.split()[1]: line for line in plain.splitlines() if ".jpg" in line}
    assert "? 0.4500" in rows["4.jpg"] and "? 0.5500" in rows["close.jpg"]
    assert "?" not in rows["0.jpg"] and "0.9000" in rows["0.jpg"]
    assert "error" in rows["bad.jpg"] and "boom" in rows["bad.jpg"]
    assert "to review" not in plain  # the counts are the stderr summary's
    colored = table(records, color=True)
    bad_row = next(line for line in colored.splitlines() if "bad.jpg" in line)
    assert "\x1b[31m" in bad_row  # failures in red


def test_long_table_shortens_names_by_the_folder_they_share_as_written() -> None:
    from resnet_cli.output.writers import common_folder

    names = [f"./pets/{c}/{i}.jpg" for c in ("cat", "dog") for i in range(2)]
    plain = table([classified(n, 0.9, 0.05) for n in names])
    assert "in ./pets/" in plain and "│ cat/0.jpg" in plain and "s/cat" not in plain
    assert common_folder(["/a/b/x.jpg", "/a/c/y.jpg"]) == "/a"
    assert common_folder(["a/x.jpg", "/a/y.jpg"]) == ""  # relative and absolute
    assert common_folder(["photos", "photos/x.jpg"]) == ""  # a folder among its files
    assert common_folder(["photos/x.jpg"]) == "photos"
    assert common_folder(["./x.jpg", "./y.jpg"]) == common_folder(["pets:train:0"]) == ""


def test_table_shows_true_labels_marked_right_or_wrong() -> None:
    right = Record("p/tabby/a.jpg", classified("a", 0.9, 0.05, labels=("Tabby", "x")).predictions,
                   true_label="tabby")  # fmt: skip
    wrong = Record("p/fox/b.jpg", right.predictions, true_label="fox")
    detailed = table([right], color=True)
    assert "true label: ✓ tabby" in detailed and "\x1b[32m" in detailed  # green
    many = table([right, wrong, *(classified(f"p/{i}.jpg", 0.9, 0.05) for i in range(3))])
    assert "true label" in many
    rows = {line.split()[1]: line for line in many.splitlines() if ".jpg" in line}
    assert "✓ tabby" in rows["tabby/a.jpg"] and "✗ fox" in rows["fox/b.jpg"]
    assert "true label" not in table([classified("a.jpg", 0.9, 0.05)])
    assert "true label: ✓ tabby by label" in table([right])  # which rule made it right


def test_table_says_a_class_folder_named_by_category_is_right_by_category() -> None:
    egyptian = Prediction(rank=1, label="Egyptian cat", score=0.9, class_id=285, category="cat")
    espresso = Prediction(rank=1, label="espresso", score=0.9, class_id=967, category="food")
    records = [
        Record("pets/cat/a.jpg", (egyptian,), true_label="cat"),
        Record("pets/coffee/b.jpg", (espresso,), true_label="coffee"),  # a kind on its way up
        Record("pets/dog/c.jpg", (egyptian,), true_label="dog"),
    ]
    assert "true label: ✓ cat by category" in table(records[:1])
    many = table([*records, *(classified(f"pets/x/{i}.jpg", 0.9) for i in range(3))])
    assert "✓ cat by" in many and "✓ coffee by" in many and "✗ dog" in many


def test_table_with_top_1_only_has_no_next_column() -> None:
    ones = [classified(f"photos/{i}.jpg", 0.9) for i in range(6)]
    failed = Record("photos/bad.jpg", error="boom")
    header = next(line for line in table([*ones, failed]).splitlines() if "input" in line)
    assert "next" not in header and "score" in header
    assert "error: boom" in table([*ones, failed])  # a failure says why all the same
    twos = [classified(f"photos/{i}.jpg", 0.9, 0.05) for i in range(6)]
    assert "next" in next(line for line in table(twos).splitlines() if "input" in line)


def test_table_breaks_file_names_after_a_slash_at_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    cat = Prediction(rank=1, label="Egyptian cat", score=0.38, class_id=285, category="cat")
    tiger = Prediction(rank=2, label="tiger cat", score=0.36, class_id=282, category="cat")
    names = [f"./pets/{c}/sub/{c}_{i:04d}.jpg" for c in ("cat", "coffee") for i in range(3)]
    records = [Record(n, (cat, tiger), true_label=n.split("/")[2]) for n in names]
    for k in (1, 2):
        text = table([Record(r.input, r.predictions[:k], true_label=r.true_label) for r in records])
        assert max(map(len, text.splitlines())) <= 80
        cells = [line.split("│")[1].strip() for line in text.splitlines() if "│" in line]
        for name in names:  # each part whole, on a line of its own where they do not fit
            for part in ("sub/", f"{name.split('/')[-1]}"):
                assert part in "".join(cells) and any(c.endswith(part) for c in cells), (k, part)


def test_fit_name_breaks_after_slashes_and_shortens_a_long_part_from_the_left() -> None:
    from resnet_cli.output.writers import fit_name

    assert fit_name("sub/coffee_1024.jpg", 40) == ["sub/coffee_1024.jpg"]
    assert fit_name("sub/coffee_1024.jpg", 16) == ["sub/", "coffee_1024.jpg"]
    assert fit_name("sub/coffee_1024.jpg", 10) == ["sub/", "…_1024.jpg"]
    assert fit_name("a/b/c/d.jpg", 6) == ["a/b/c/", "d.jpg"]


def test_table_prints_markup_and_control_characters_in_names_as_they_are() -> None:
    # Rich would read "[/bold]" as a closing tag and raise; a label is data, not markup.
    text = table([classified("[/bold]\x1b[2J.jpg", 0.9, 0.05, labels=("[red]x", "y"))])
    assert "[/bold]\\x1b[2J.jpg" in text and "[red]x" in text


# --- the HTML page -----------------------------------------------------------------------------

HOSTILE_NAME = "<script>alert(1)</script>.jpg"
QUOTED_NAME = "say \"hi\" 'there' & <b>.jpg"
NOT_UTF8_NAME = os.fsdecode(b"bad\xff.jpg")
# Every element the page is built from; a name that slipped through unescaped would add one.
ALLOWED_TAGS = {
    *("html", "head", "meta", "link", "title", "style", "body", "header", "h1", "dl", "div"),
    *("dt", "dd", "label", "select", "option", "input", "fieldset", "legend", "output", "main"),
    *("section", "h2", "span", "figure", "figcaption", "p", "ol", "li", "script", "wbr"),
}
HOSTILE_LABEL = '</script><img src=x onerror="document.title=1">'


class PageParser(HTMLParser):
    """The page's structure: which card ids each section holds, and every attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.hidden: set[str] = set()
        self.current: str | None = None
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section":
            self.current = attributes["id"]
            self.sections[self.current or ""] = []
            if "hidden" in attributes:
                self.hidden.add(self.current or "")
        elif tag == "figure" and self.current is not None:
            self.sections[self.current].append(attributes["id"] or "")
        elif tag == "script":
            self.in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.scripts[-1] += data


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


def render(records: list[Record], **summary: object) -> str:
    return render_report(records, ReportSummary(**summary), [None] * len(records))  # type: ignore[arg-type]


def hostile_records() -> list[Record]:
    return [
        classified(HOSTILE_NAME, 0.9, 0.05, labels=(HOSTILE_LABEL, "x")),
        classified(QUOTED_NAME, 0.3, 0.2, labels=('"quoted" label', "y")),
        classified(NOT_UTF8_NAME, 0.8, 0.1, labels=("plain", "z")),
        Record("evil\u2028</script>.jpg", error="<b>not a readable image</b> & more"),
    ]


def test_names_labels_and_errors_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(hostile_records(), path, thumbnail=None)
    page = path.read_bytes().decode("utf-8")  # valid UTF-8, although one name is not
    assert "<script>alert(1)" not in page and "<b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert "say &quot;hi&quot; &#x27;there&#x27; &amp; &lt;b&gt;.jpg" in page
    assert "bad\\xff.jpg" in page  # the undecodable byte, shown as an escape
    assert "&lt;b&gt;not a readable image&lt;/b&gt; &amp; more" in page
    # Exactly two script elements: the data block and the page's own script.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    parser = parse(page)
    data = json.loads(parser.scripts[0])
    assert [item["n"] for item in data["items"]] == [
        HOSTILE_NAME,
        QUOTED_NAME,
        "bad\\xff.jpg",
        "evil\\u2028</script>.jpg",
    ]
    assert HOSTILE_LABEL in data["labels"]
    # Every attribute value the parser saw is what we wrote, and none is an event handler.
    assert not any(name.startswith("on") for _, attrs in parser.tags for name in attrs)


# Any text, including lone surrogates (names that are not UTF-8) and markup-looking strings.
any_text = st.one_of(
    st.text(min_size=1),
    st.binary(min_size=1).map(os.fsdecode),
    st.sampled_from(["</script>", "<!--", "]]>", "\u2028", "&amp;", "\"'><img src=x>"]),
)


@given(
    st.lists(
        st.tuples(any_text, any_text, st.floats(0, 1), st.one_of(st.none(), any_text)),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=150, deadline=None)
def test_any_names_labels_and_errors_stay_text(rows: list) -> None:
    records = [
        Record(name, error=error)
        if error
        else classified(name, score, (1 - score) / 2, labels=(label, label + "2"))
        for name, label, score, error in rows
    ]
    page = render(records)
    page.encode("utf-8")  # nothing left that UTF-8 cannot hold
    assert page.count("<script") == 2 and page.count("</script") == 2
    parser = parse(page)
    assert sum(len(ids) for ids in parser.sections.values()) == len(records)
    assert {tag for tag, _ in parser.tags} <= ALLOWED_TAGS
    items = json.loads(parser.scripts[0])["items"]
    assert [item["n"] for item in items] == [printable(r.input) for r in records]


def test_one_card_per_record_grouped_by_top_1_label_doubtful_first() -> None:
    records = [
        classified("p/cat1.jpg", 0.9, 0.05, labels=("cat", "dog")),
        classified("p/cat2.jpg", 0.8, 0.1, labels=("cat", "dog")),
        classified("p/dog1.jpg", 0.7, 0.2, labels=("dog", "cat")),
        classified("p/low.jpg", 0.4, 0.3, labels=("cat", "dog")),  # low top-1
        classified("p/close.jpg", 0.52, 0.47, labels=("dog", "cat")),  # narrow lead
        Record("p/broken.jpg", error="not a readable image: the file is empty"),
    ]
    page = render(records, model="tiny-model", device="cpu", precision="fp32", elapsed=2.0)
    parser = parse(page)
    assert list(parser.sections) == ["g-review", "g0", "g1", "g-failed"]  # review first
    assert parser.sections == {
        "g-review": ["c3", "c4"],  # lowest score first
        "g0": ["c1", "c0"],  # cat: 3 images, 1 of them under review
        "g1": ["c2"],
        "g-failed": ["c5"],
    }
    assert '<h2>cat <span class="count">2</span></h2>' in page
    assert '<option value="0">cat (3)</option><option value="1">dog (2)</option>' in page
    for field, value in {
        "images": "6",
        "failed": "1",
        "labels-found": "2",
        "needs-review": "2",
        "folder": "p",
        "model": "tiny-model",
        "device": "cpu",
        "precision": "fp32",
        "time-taken": "2.0 s (3.0 images/s)",
    }.items():
        assert f'id="sum-{field}">{value}</dd>' in page
    assert "not a readable image: the file is empty" in page
    assert 'class="top"><span class="lbl">cat</span><span class="sc">0.9000</span>' in page


def test_true_labels_mark_each_card_right_or_wrong_and_give_the_accuracy() -> None:
    def labelled(name: str, truth: str, *labels: str) -> Record:
        record = classified(name, 0.9, 0.05, labels=labels)
        return Record(record.input, record.predictions, true_label=truth)

    egyptian = Prediction(rank=1, label="Egyptian cat", score=0.9, class_id=285, category="cat")
    records = [
        labelled("pets/tabby/a.jpg", "tabby", "tabby, tabby cat", "tiger cat"),  # one of its names
        labelled("pets/Golden_Retriever/b.jpg", "Golden_Retriever", "golden retriever", "x"),
        labelled("pets/red_fox/c.jpg", "red_fox", "teapot", "red fox"),  # only top-1 counts
        Record("pets/red_fox/d.jpg", error="boom", true_label="red_fox"),  # not judged
        Record("pets/cats/e.jpg", (egyptian,), true_label="cats"),  # its category, in plural
    ]
    page = render(records)
    assert 'id="sum-top-1-accuracy">75.0% (3 of 4 right: 2 by label, 1 by category)</dd>' in page
    verdicts = re.findall(r'<figure class="card([^"]*)" id="c(\d)">', page)
    assert sorted(verdicts, key=lambda v: v[1]) == [
        (" right", "0"), (" right", "1"), (" wrong", "2"), (" failed", "3"), (" right", "4")
    ]  # fmt: skip
    assert '<div class="truth right">✓ true label: tabby (right, by label)</div>' in page
    assert '<div class="truth right">✓ true label: cats (right, by category)</div>' in page
    assert '<div class="truth wrong">✗ true label: red_fox (wrong)</div>' in page
    assert '<div class="truth">true label: red_fox</div>' in page  # the failed one
    assert "accuracy" not in render([classified("a.jpg", 0.9, 0.05)])  # no true labels


def test_unknown_summary_fields_are_left_out() -> None:
    page = render([classified("a.jpg", 0.9, 0.05)], sources=("labels.jsonl",))
    assert 'id="sum-from">labels.jsonl<' in page
    for field in ("model", "device", "precision", "time-taken"):
        assert f'id="sum-{field}"' not in page


def test_page_loads_nothing_from_outside_and_runs_only_its_own_script() -> None:
    page = render(hostile_records())
    parser = parse(page)
    for _, attrs in parser.tags:
        for name in ("src", "href"):
            assert (attrs.get(name) or "data:").startswith("data:")
    policy = next(a["content"] for t, a in parser.tags if a.get("http-equiv"))
    script = parser.scripts[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy is not None and "default-src 'none'" in policy
    assert f"script-src 'sha256-{digest}'" in policy


def test_thumbnails_of_local_files_and_placeholders_for_the_rest(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    scene(1200, 800, seed=1).save(photo, quality=90)
    png = tmp_path / "picture.png"
    scene(100, 300, seed=2).save(png)
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    records = [
        classified(str(photo), 0.9, 0.1),
        classified(str(png), 0.9, 0.1),
        classified("https://example.com/cat.jpg", 0.9, 0.1),
        classified("beans:train:3", 0.9, 0.1),
        classified(str(text), 0.9, 0.1),
        classified(str(tmp_path / "gone.jpg"), 0.9, 0.1),
    ]
    path = tmp_path / "report.html"
    write_report(records, path)
    page = path.read_text()
    uris = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(uris) == 2
    sizes = [Image.open(io.BytesIO(base64.b64decode(uri))).size for uri in uris]
    assert sizes == [(160, 107), (53, 160)]  # longest side 160, aspect ratio kept
    assert all(len(uri) < 12_000 for uri in uris)
    assert page.count('<div class="noimg">no preview</div>') == 4


def test_a_thumbnail_hook_that_fails_or_returns_nothing_costs_only_the_preview(
    tmp_path: Path,
) -> None:
    png = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(png, "PNG")

    def thumbnail(record: Record) -> bytes | None:
        if record.input == "boom":
            raise RuntimeError("no preview for you")
        return {"row:1": png.getvalue(), "row:2": b"not an image"}.get(record.input)

    records = [classified(name, 0.9, 0.1) for name in ("boom", "row:1", "row:2", "row:3")]
    path = tmp_path / "report.html"
    write_report(records, path, thumbnail=thumbnail)
    page = path.read_text()
    assert page.count('<img src="data:image/png;base64,') == 1
    assert page.count("no preview</div>") == 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_thumbnail_is_upright() -> None:
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    scene(300, 100, seed=3).save(rotated, "JPEG", exif=exif)
    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        handle.write(rotated.getvalue())
        handle.flush()
        thumbnail = thumbnail_jpeg(handle.name)
    assert thumbnail is not None
    assert Image.open(io.BytesIO(thumbnail)).size == (53, 160)


# --- the command: --report and the report subcommand -------------------------------------------

runner = CliRunner()
COMMAND = shutil.which("resnet-classify")


def classify(model: Path, *args: object, quiet: bool = True):
    return runner.invoke(
        app, ["-m", str(model), "--offline", *(["-q"] if quiet else []), *map(str, args)]
    )


def report(*args: object):
    return runner.invoke(report_app, [str(a) for a in args])


def cards(path: Path) -> dict[str, list[str]]:
    """Card ids per section of a written report."""
    return parse(path.read_text(encoding="utf-8")).sections


def card_count(path: Path) -> int:
    return sum(len(ids) for ids in cards(path).values())


def page_items(path: Path) -> list[dict]:
    return json.loads(parse(path.read_text(encoding="utf-8")).scripts[0])["items"]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


def test_report_option_beside_jsonl_output(
    tiny_model: Path, images: list[Path], broken: Path, tmp_path: Path
) -> None:
    out, page = tmp_path / "labels.jsonl", tmp_path / "report.html"
    result = classify(tiny_model, "-f", "jsonl", "-o", out, "--report", page, *images, broken)
    assert result.exit_code == 1, result.output
    records = read_records(out.read_text(), "jsonl")
    assert card_count(page) == len(records) == 6
    assert cards(page)["g-failed"] == ["c5"]
    assert [item["n"] for item in page_items(page)] == [r.input for r in records]
    html_text = page.read_text()
    assert html_text.count("data:image/jpeg;base64,") == 5  # the broken file has no preview
    assert 'id="sum-device">cpu<' in html_text and 'id="sum-model">' in html_text
    assert 'id="sum-time-taken">' in html_text


def test_summary_line_says_how_many_failed_and_where_the_report_is(
    tiny_model: Path, images: list[Path], broken: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = classify(tiny_model, "-f", "jsonl", "--report", page, images[0], broken, quiet=False)
    assert re.fullmatch(
        rf"2 inputs: 1 classified( \(1 to review\))?, 1 failed in [0-9.]+s "
        rf"\([0-9.]+ images/s; cpu, \w+, \w+\); "
        rf"report written to {re.escape(str(page))}\n",
        result.stderr,
    ), result.stderr
    plain = classify(tiny_model, "-f", "jsonl", images[0], quiet=False)
    assert re.match(r"1 input: 1 classified( \(1 to review\))?, 0 failed in ", plain.stderr)


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_report_option_with_records_on_stdout(
    fmt: str, tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = classify(tiny_model, "-f", fmt, "--report", page, *images)
    assert result.exit_code == 0, result.output
    assert card_count(page) == len(images)
    assert ("top-1" if fmt == "table" else "input,rank,label") in result.stdout


def test_report_option_errors_come_before_the_model_loads(
    images: list[Path], tmp_path: Path
) -> None:
    existing = tmp_path / "old.html"
    existing.write_text("keep me")
    cases = {
        (str(existing),): f"report file {str(existing)!r} exists: pass --overwrite",
        (str(tmp_path),): f"report {str(tmp_path)!r} is a folder",
        (str(tmp_path / "no" / "r.html"),): "cannot write report",
        (str(tmp_path / "same.jsonl"), "-o", str(tmp_path / "same.jsonl")): "name the same file",
    }
    for args, message in cases.items():
        # A model that does not exist: exit 2, not 3, shows the check came first.
        result = classify(tmp_path / "no-model", "--report", *args, images[0])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("Error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert existing.read_text() == "keep me"


def test_report_option_overwrite_replaces_and_resume_covers_the_whole_file(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    out, page = tmp_path / "labels.jsonl", tmp_path / "report.html"
    page.write_text("old")
    assert classify(tiny_model, "--report", page, images[0], "--overwrite").exit_code == 0
    assert card_count(page) == 1
    assert classify(tiny_model, "-o", out, *images[:2]).exit_code == 0
    resumed = classify(tiny_model, "-o", out, "--resume", "--report", page, *images)
    assert resumed.exit_code == 0, resumed.output
    assert [item["n"] for item in page_items(page)] == [str(p) for p in images]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_report_subcommand_reads_every_results_format(
    fmt: str, tiny_model: Path, images: list[Path], broken: Path, tmp_path: Path
) -> None:
    out, page = tmp_path / f"labels.{fmt}", tmp_path / "report.html"
    assert classify(tiny_model, "-k", "3", "-o", out, *images, broken).exit_code == 1
    result = report(out, "-o", page, "--model", "tiny", "--title", "My <photos>")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"wrote {page}: 6 images, 1 failed (")
    items = page_items(page)
    assert [item["n"] for item in items] == [*map(str, images), str(broken)]
    assert all(len(item["s"]) == 3 for item in items[:5])
    text = page.read_text()
    assert "<title>My &lt;photos&gt;</title>" in text and 'id="sum-model">tiny<' in text
    assert text.count("data:image/jpeg;base64,") == 5
    assert 'id="sum-device"' not in text  # not known from a results file


def test_report_subcommand_joins_files_and_finds_images_beside_them(
    images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = images[0].parent
    # Relative names, as a run in that folder writes them; we run from elsewhere.
    (folder / "a.jsonl").write_text(
        "".join(record_json(classified(p.name, 0.9, 0.1)) + "\n" for p in images[:3])
    )
    (folder / "b.jsonl").write_text(
        record_json(classified(images[3].name, 0.9, 0.1))
        + "\n"
        + '{"input": "torn.jpg", "predictions": [{"ra'  # a run killed mid-write
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = report(folder / "a.jsonl", folder / "b.jsonl", "-o", "r.html", "-q")
    assert result.exit_code == 0 and result.stderr == ""
    page = elsewhere / "r.html"
    assert card_count(page) == 4
    assert page.read_text().count("data:image/jpeg;base64,") == 4


def test_report_subcommand_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(record_json(classified("a.jpg", 0.9, 0.1)) + "\n")
    not_results = tmp_path / "notes.csv"
    not_results.write_text("name,age\nbob,3\n")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\nworld\n")
    existing = tmp_path / "old.html"
    existing.write_text("keep me")
    cases = {
        ("missing.jsonl", "-o", "r.html"): "Error: results file 'missing.jsonl' does not exist",
        (str(not_results), "-o", "r.html"): f"Error: {str(not_results)!r} is not a resnet-",
        (str(garbage), "-o", "r.html"): f"Error: {str(garbage)!r} is not a resnet-classify",
        (str(tmp_path), "-o", "r.html"): "Error: cannot read",
        (str(good), "-o", str(existing)): f"Error: report file {str(existing)!r} exists",
        (str(tmp_path / "gone" / "x.jsonl"),): "Error: results file ",  # not 'folder gone'
        (): "Error: Missing argument",
    }
    for args, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            main(["report", *args])  # through the entry point: "report" picks the subcommand
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2, (args, stderr)
        assert stderr.startswith(message) and len(stderr.strip().splitlines()) == 1, stderr
        assert "Traceback" not in stderr
    assert existing.read_text() == "keep me"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(good), "-o", str(existing), "--overwrite"])
    assert exit_info.value.code == 0 and card_count(existing) == 1


def test_report_without_output_writes_report_html_beside_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "run" / "labels.jsonl"
    results.parent.mkdir()
    results.write_text(record_json(classified("a.jpg", 0.9, 0.1)) + "\n")
    page = results.parent / "report.html"

    def report(*args: str) -> tuple[object, str]:
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(results), *args])
        return exit_info.value.code, capsys.readouterr().err

    code, stderr = report()
    assert code == 0 and card_count(page) == 1
    assert stderr.startswith(f"wrote {page}: 1 image, 0 failed")
    page.write_text("keep me")
    code, stderr = report()  # never over an existing file
    assert code == 2 and page.read_text() == "keep me"
    assert stderr == (
        f"Error: report file {str(page)!r} exists: pass --overwrite to replace it, or name "
        "another file with -o\n"
    )
    assert report("--overwrite")[0] == 0 and card_count(page) == 1


def test_help_names_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "--report" in text and "resnet-classify report labels.jsonl -o report.html" in text
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "Usage: resnet-classify report" in text and "./report" in text


@pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")
def test_interrupted_run_still_writes_the_report(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    # A URL that never answers blocks its decode worker: the run is stuck after the first
    # image until Ctrl-C, which must write the finished record and its report.
    out, page = tmp_path / "labels.jsonl", tmp_path / "report.html"
    code, stderr = interrupt_a_stuck_run(
        str(COMMAND), tiny_model, images[0], "-o", out, "--report", page
    )
    assert code == 130, stderr
    assert re.search(rb"interrupted after 1 input: 1 classified\b.*, 0 failed", stderr)
    assert b"report written to" in stderr
    assert [item["n"] for item in page_items(page)] == [str(images[0])]
    assert 'id="sum-images">1 (interrupted)<' in page.read_text()


def test_ctrl_c_while_a_batch_is_written_keeps_it_counted_and_reported(
    tiny_model: Path,
    images: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C lands just after the first batch's record reaches the file, before it is
    # counted: the summary and the report must still have it.
    import signal

    import resnet_cli.output.writers as writers

    create = writers.create_writer
    sent: list[bool] = []

    def interrupting(*args: Any, **kwargs: Any) -> Any:
        writer = create(*args, **kwargs)
        write = writer.write

        def write_then_interrupt(batch: Any) -> None:
            write(batch)
            if batch and not sent:  # once: a second Ctrl-C would end the process at once
                sent.append(True)
                os.kill(os.getpid(), signal.SIGINT)

        writer.write = write_then_interrupt  # type: ignore[method-assign]
        return writer

    monkeypatch.setattr(writers, "create_writer", interrupting)
    out, page = tmp_path / "labels.jsonl", tmp_path / "report.html"
    args = ["-m", tiny_model, "-b", "1", images[0], images[1], "-o", out, "--report", page]
    previous = signal.getsignal(signal.SIGINT)
    try:  # the command itself: main() would end this process (os._exit) after a Ctrl-C
        result = runner.invoke(app, [str(a) for a in args])
    finally:
        signal.signal(signal.SIGINT, previous)  # the run leaves its second-Ctrl-C handler
    assert result.exit_code == 130, result.stderr
    assert re.search(r"interrupted after 1 input: 1 classified\b.*, 0 failed", result.stderr)
    assert len(out.read_text().splitlines()) == 1
    assert [item["n"] for item in page_items(page)] == [str(images[0])]


# --- the page in a real browser -----------------------------------------------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Without these, headless Chromium tries to reach Google's services and can hang offline.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium driven by selenium (Debian's chromium and chromium-driver)."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'"
    )
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("chromium or chromedriver missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, path: Path) -> None:
    """Load the report and fail on any console error it logs."""
    driver.get(path.as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def visible(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return [e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]


def shown_names(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.find_element(By.CSS_SELECTOR, ".name").text for e in visible(driver, ".card")]


def set_value(driver: Any, element_id: str, value: str) -> None:
    """Type a new value into an input, as a person would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    element = driver.find_element(By.ID, element_id)
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE, value)


@pytest.fixture(scope="module")
def real_report(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A report written by a real run: assorted photos, a broken file and hostile names."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(14):
        scene(200 + 20 * i, 150 + 10 * i, seed=100 + i).save(folder / f"photo{i:02d}.jpg")
    for name in (HOSTILE_NAME.replace("/", ""), QUOTED_NAME):
        scene(120, 90, seed=7).save(folder / name, "JPEG")
    with open(os.fsencode(folder) + b"/bad\xff.jpg", "wb") as handle:
        scene(90, 120, seed=8).save(handle, "JPEG")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out, page = folder.parent / "labels.jsonl", folder.parent / "report.html"
    result = classify(tiny_model, "-f", "jsonl", "-o", out, "--report", page, folder)
    assert result.exit_code == 1, result.output
    return out, page


def test_report_in_a_browser(browser: Any, real_report: tuple[Path, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    out, page = real_report
    records = read_records(out.read_text(encoding="utf-8", errors="surrogateescape"), "jsonl")
    open_page(browser, page)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == len(records) == 18
    assert len(visible(browser, ".card")) == len(records)
    assert browser.find_element(By.ID, "shown").text == "18 of 18 shown"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report.png"))

    # Hostile names show as text; nothing in them ran (the title would have changed).
    names = browser.execute_script(
        "return [...document.querySelectorAll('.card .name')].map(e => e.textContent)"
    )
    assert {HOSTILE_NAME.replace("/", ""), QUOTED_NAME, "bad\\xff.jpg"} <= set(names)
    assert browser.title.startswith("resnet-classify report")

    # The review thresholds move cards between the needs-review group and their label groups.
    classified_count = sum(r.ok for r in records)
    set_value(browser, "review-score", "1")
    assert len(visible(browser, "#g-review .card")) == classified_count
    set_value(browser, "review-score", "0")
    set_value(browser, "review-margin", "0")
    assert visible(browser, "#g-review .card") == []
    assert not browser.find_element(By.ID, "g-review").is_displayed()
    assert browser.find_element(By.ID, "review-score-range").get_attribute("value") == "0"
    # "needs review" only, at a threshold between the lowest and highest top-1 score.
    scores = sorted(r.predictions[0].score for r in records if r.ok)
    middle = (scores[0] + scores[-1]) / 2
    set_value(browser, "review-score", f"{middle:.6f}")
    Select(browser.find_element(By.ID, "show")).select_by_value("review")
    expected = sum(s < middle for s in scores)
    assert 0 < expected < classified_count
    assert len(visible(browser, ".card")) == expected
    Select(browser.find_element(By.ID, "show")).select_by_value("failed")
    assert shown_names(browser) == ["broken.jpg"]
    Select(browser.find_element(By.ID, "show")).select_by_value("all")

    # The text box and the score range filter too.
    set_value(browser, "search", "photo03")
    assert shown_names(browser) == ["photo03.jpg"]
    set_value(browser, "search", "")
    set_value(browser, "min-score", "1.01")
    assert shown_names(browser) == ["broken.jpg"]  # no classified image scores above 1
    set_value(browser, "min-score", "0")
    assert len(visible(browser, ".card")) == len(records)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_hostile_report_in_a_browser(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "report.html"
    write_report(hostile_records(), page, thumbnail=None)
    open_page(browser, page)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == 4
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "li.top .lbl")]
    assert HOSTILE_LABEL in browser.execute_script(
        "return [...document.querySelectorAll('li.top .lbl')].map(e => e.textContent)"
    ), labels
    assert browser.title == "resnet-classify report"  # the label's onerror never ran
    assert browser.find_elements(By.CSS_SELECTOR, ".card img") == []


def test_label_filter_and_sorting_in_a_browser(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    records = [
        classified(f"{name}.jpg", score, 1 - score, labels=(label, "other"))
        for name, label, score in [
            ("b", "cat", 0.9),
            ("a", "cat", 0.7),
            ("d", "dog", 0.95),
            ("c", "cat", 0.3),  # under review, still a cat
            ("e", "fox", 0.8),
        ]
    ]
    page = tmp_path / "report.html"
    write_report([*records, Record("z.jpg", error="boom")], page, thumbnail=None)
    open_page(browser, page)
    label = Select(browser.find_element(By.ID, "label"))
    assert [o.text for o in label.options] == ["all labels", "cat (3)", "dog (1)", "fox (1)"]
    label.select_by_visible_text("cat (3)")
    assert sorted(shown_names(browser)) == ["a.jpg", "b.jpg", "c.jpg"]
    assert browser.find_element(By.ID, "shown").text == "3 of 6 shown"
    assert not browser.find_element(By.ID, "g-failed").is_displayed()
    label.select_by_visible_text("all labels")
    assert len(shown_names(browser)) == 6

    def order(section: str) -> list[str]:
        """The card names of a section in the order they appear on the screen."""
        cards = browser.find_elements(By.CSS_SELECTOR, f"#{section} .card .name")
        return [e.text for e in sorted(cards, key=lambda e: (e.location["y"], e.location["x"]))]

    assert order("g0") == ["a.jpg", "b.jpg"]  # cat, lowest score first by default
    sort = Select(browser.find_element(By.ID, "sort"))
    sort.select_by_value("score-desc")
    assert order("g0") == ["b.jpg", "a.jpg"]
    set_value(browser, "review-score", "0.95")  # now everything but d is doubtful
    sort.select_by_value("name")
    assert order("g-review") == ["a.jpg", "b.jpg", "c.jpg", "e.jpg"]
    assert browser.find_element(By.ID, "sum-needs-review").text == "4"


def test_card_names_wrap_at_separators_not_mid_word() -> None:
    names = ["holiday/IMG_2024-07-14.beach.jpg", "work/scan.png"]
    page = render([classified(name, 0.9, 0.05) for name in names])
    assert (
        '<div class="name" title="holiday/IMG_2024-07-14.beach.jpg">'
        "holiday/<wbr>IMG_<wbr>2024-<wbr>07-<wbr>14.<wbr>beach.<wbr>jpg</div>"
    ) in page
