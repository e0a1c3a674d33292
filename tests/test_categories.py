"""Coarse categories: the derived table, the ImageNet-1k check by labels, and the category in
every format, the table and the report, on the real model; none for other label sets."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from resnet_cli.categories import (
    category_names,
    imagenet_classes,
    is_imagenet_1k,
    resolve_categories,
)
from resnet_cli.errors import UsageError
from resnet_cli.output.writers import CSV_HEADER, read_parquet_records, read_records
from resnet_cli.results import Prediction, Record

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "images"
WORDNET = Path("/usr/share/wordnet/data.noun")


def _timm_labels() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return [info.index_to_description(i) for i in range(info.num_classes())]


def test_the_table_follows_wordnet_for_well_known_classes() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000
    assert classes[0].synset == "n01440764" and classes[0].category == "fish"
    assert [c.synset for c in classes] == sorted(c.synset for c in classes)  # ImageNet's order
    assert {classes[i].category for i in range(281, 286)} == {"cat"}  # the house cats
    assert {classes[i].category for i in range(151, 269)} == {"dog"}  # the dog breeds
    assert classes[291].category == "mammal"  # a lion is not a house cat
    assert classes[967].category == "food"  # espresso
    assert classes[954].category == "fruit or vegetable"  # banana
    assert classes[779].category == "vehicle" and classes[404].category == "aircraft"
    assert classes[980].category == "landscape"  # volcano
    assert classes[285].path == "Egyptian_cat > domestic_cat"
    names = category_names()
    assert 20 <= len(names) <= 30 and "other" in names
    assert sum(c.category == "other" for c in classes) < 150  # most classes get a real one


@pytest.mark.skipif(
    not WORDNET.exists(), reason="WordNet 3.0 is not installed: apt-get install wordnet-base"
)
def test_the_committed_table_is_what_the_script_derives(tmp_path: Path) -> None:
    out = tmp_path / "table.tsv"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "derive_categories.py"), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "src" / "resnet_cli" / "data" / "imagenet_categories.tsv"
    assert out.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")


def test_imagenet_label_sets_are_told_by_their_labels() -> None:
    labels = _timm_labels()
    assert is_imagenet_1k(labels)  # timm's names, as microsoft/resnet-50 has them
    assert is_imagenet_1k([c.synset for c in imagenet_classes()])  # timm's label_names
    assert is_imagenet_1k([label.upper().replace(" ", "_") for label in labels])
    renamed = [f"custom {i}" if i % 40 == 0 else label for i, label in enumerate(labels)]
    assert is_imagenet_1k(renamed)  # a fine-tune that renamed 25 classes
    assert not is_imagenet_1k(labels[::-1])  # the same names in another order
    assert not is_imagenet_1k(labels[:999])
    assert not is_imagenet_1k(["cat", "dog"])
    assert resolve_categories(labels, None, "m") and not resolve_categories(labels, False, "m")
    assert not resolve_categories(["cat", "dog"], None, "m")
    with pytest.raises(UsageError, match="--category needs a model whose labels"):
        resolve_categories(["cat", "dog"], True, "tiny")


@pytest.fixture(scope="module")
def parquet_run(real_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("categories") / "labels.parquet"
    result = run_cli(EXAMPLES, "--model", real_model, "-k", "3", "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    return out


def test_every_format_carries_the_category(real_model: Path, parquet_run: Path) -> None:
    lines = run_cli(EXAMPLES, "--model", real_model, "-k", "3", "-f", "jsonl", "-q")
    records = [json.loads(line) for line in lines.stdout.splitlines()]
    top = {Path(r["input"]).name: r["predictions"][0] for r in records}
    assert top["chelsea.jpg"]["category"] == "cat" and top["coffee.jpg"]["category"] == "food"
    assert all("category" in p for r in records for p in r["predictions"])

    rows = list(
        csv.reader(io.StringIO(run_cli(EXAMPLES, "-m", real_model, "-k", "3", "-f", "csv").stdout))
    )
    assert tuple(rows[0]) == (*CSV_HEADER, "category")  # last, so positions stay as they were
    assert rows[1][0].endswith("chelsea.jpg") and rows[1][-1] == "cat"

    from_json = read_records(run_cli(EXAMPLES, "-m", real_model, "-f", "json").stdout, "json")
    assert from_json[1].predictions[0].category == "food"

    from_parquet = read_parquet_records(str(parquet_run))
    assert [r.predictions[0].category for r in from_parquet] == ["cat", "food"]

    table = run_cli(EXAMPLES, "-m", real_model, "-k", "2", "-f", "table").stdout
    assert "category" in table.splitlines()[2] and "│ cat " in table and "│ food " in table


def test_no_category_and_other_label_sets_leave_records_as_they_were(
    real_model: Path, tiny_model: Path
) -> None:
    off = run_cli(EXAMPLES / "coffee.jpg", "-m", real_model, "--no-category", "-f", "jsonl")
    assert "category" not in off.stdout and '"class_id": 967' in off.stdout
    tiny = run_cli(EXAMPLES, "-m", tiny_model, "-f", "csv")
    assert tiny.returncode == 0 and tiny.stdout.splitlines()[0] == ",".join(CSV_HEADER)
    insist = run_cli(EXAMPLES, "-m", tiny_model, "--category")
    assert insist.returncode == 2 and insist.stdout == ""
    assert insist.stderr.strip().splitlines()[-1].startswith("Error: --category needs a model")


def test_the_report_groups_by_category_then_label(parquet_run: Path, tmp_path: Path) -> None:
    from resnet_cli.output.report import ReportSummary, render_report

    def rec(name: str, label: str, category: str) -> Record:
        p = Prediction(1, label, 0.9, 0, category)
        return Record(input=name, predictions=(p, Prediction(2, "x", 0.01, 1, category)))

    records = [
        rec("a.jpg", "tabby", "cat"),
        rec("b.jpg", "beagle", "dog"),
        rec("c.jpg", "pug", "dog"),
        rec("d.jpg", "pug", "dog"),
        rec("e.jpg", "espresso", "food"),
        rec("f.jpg", "Persian cat", "cat"),
        rec("g.jpg", "Persian cat", "cat"),
    ]
    page = render_report(records, ReportSummary(title="t"), [None] * len(records))
    headings = [h.split(" <span")[0] for h in page.split("<h2>")[1:]]
    order = [h for h in headings if h not in ("Needs review", "Failed")]
    # dog has 3 images, cat 3 (tie: by name), food 1; within a category, the commoner label first
    assert order == ["cat: Persian cat", "cat: tabby", "dog: pug", "dog: beagle", "food: espresso"]

    out = tmp_path / "report.html"
    made = run_cli("report", parquet_run, "-o", out, "-q")
    assert made.returncode == 0, made.stderr
    assert "cat: Egyptian cat" in out.read_text(encoding="utf-8")


def test_old_records_without_categories_still_read(tmp_path: Path) -> None:
    old = (
        '{"input": "a.jpg", "predictions": '
        '[{"rank": 1, "label": "x", "score": 0.5, "class_id": 3}]}\n'
    )
    (record,) = read_records(old, "jsonl")
    assert record.predictions[0].category is None
    (from_csv,) = read_records(
        "input,rank,label,score,class_id,error\r\na.jpg,1,x,0.5,3,\r\n", "csv"
    )
    assert from_csv.predictions == (Prediction(1, "x", 0.5, 3),)
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "old.parquet"
    pq.write_table(
        pa.table(
            {
                "input": ["a.jpg"],
                "labels": [["x"]],
                "scores": [[0.5]],
                "class_ids": [[3]],
                "error": [None],
            }
        ),
        path,
    )
    assert read_parquet_records(str(path))[0].predictions == (Prediction(1, "x", 0.5, 3),)


def test_resuming_an_old_csv_keeps_its_columns(real_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    out.write_text(
        f"input,rank,label,score,class_id,error\r\n{EXAMPLES / 'chelsea.jpg'},1,tabby,0.5,281,\r\n",
        newline="",
    )
    result = run_cli(EXAMPLES, "-m", real_model, "-k", "1", "-o", out, "--resume", "-q")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert tuple(rows[0]) == CSV_HEADER and all(len(row) == 6 for row in rows)
    assert [Path(row[0]).name for row in rows[1:]] == ["chelsea.jpg", "coffee.jpg"]
    assert os.path.getsize(out) > 0


def test_resuming_a_csv_with_categories_keeps_them(real_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    first = run_cli(EXAMPLES / "chelsea.jpg", "-m", real_model, "-k", "1", "-o", out, "-q")
    assert first.returncode == 0, first.stderr
    again = run_cli(EXAMPLES, "-m", real_model, "-k", "1", "-o", out, "--resume", "-q")
    assert again.returncode == 0, again.stderr  # the category header is a results file's too
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode(), newline="")))
    assert tuple(rows[0]) == (*CSV_HEADER, "category") and all(len(row) == 7 for row in rows)
    assert [(Path(row[0]).name, row[6]) for row in rows[1:]] == [
        ("chelsea.jpg", "cat"),
        ("coffee.jpg", "food"),
    ]


def test_a_true_label_is_right_by_its_label_or_by_the_top_1s_category() -> None:
    from resnet_cli.results import top1_match, top1_right

    def judged(truth: str, label: str, class_id: int, category: str | None) -> str | None:
        best = Prediction(rank=1, label=label, score=0.9, class_id=class_id, category=category)
        return top1_match(Record("x.jpg", (best,), true_label=truth))

    assert judged("tabby", "tabby, tabby cat", 281, "cat") == "label"
    assert judged("Egyptian_cat", "Egyptian cat", 285, "cat") == "label"
    assert judged("cat", "Egyptian cat", 285, "cat") == "category"
    assert judged("Cats", "Egyptian cat", 285, "cat") == "category"  # a plural folder
    assert judged("domestic cat", "Egyptian cat", 285, "cat") == "category"  # a kind between
    assert judged("coffee", "espresso", 967, "food") == "category"  # espresso > coffee > ...
    assert judged("dog", "Egyptian cat", 285, "cat") is None
    assert judged("cat", "Egyptian cat", 285, None) is None  # no categories: the label alone
    assert judged("coffee", "espresso", 5, "food") is None  # another class at that id: no path
    assert top1_right(Record("x.jpg", error="boom", true_label="cat")) is None


def test_an_imagefolder_named_by_category_is_counted_right(
    real_model: Path, tmp_path: Path
) -> None:
    pets = tmp_path / "pets"
    for folder, image in (("cat", "chelsea.jpg"), ("coffee", "coffee.jpg")):
        (pets / folder).mkdir(parents=True)
        (pets / folder / image).write_bytes((EXAMPLES / image).read_bytes())
    page = tmp_path / "report.html"
    args = ["--dataset", pets, "-m", real_model, "-k", "1", "--report", page]
    result = run_cli(*args, "-f", "table", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # a table each, the name above it, whole (or wrapped
    assert "true label: ✓ cat by category" in lines  # after a "/")
    assert "true label: ✓ coffee by category" in lines
    assert "pets/cat/chelsea.jpg" in "".join(lines) and "chelsea.jpg" in lines
    html_text = page.read_text()
    assert "true label: cat (right, by category)" in html_text
    assert 'id="sum-top-1-accuracy">100.0% (2 of 2 right: 2 by category)</dd>' in html_text
