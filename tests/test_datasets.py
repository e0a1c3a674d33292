"""--dataset and --demo: every kind of local dataset, splits, image columns, streaming, errors.

Datasets are built here (from_dict + Image(), save_to_disk, parquet, imagefolder); nothing
touches the network (HF_HUB_OFFLINE=1 from conftest).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import scene
from resnet_cli import classify, load_classifier, open_dataset
from resnet_cli.cli.classify import app
from resnet_cli.output.writers import read_parquet_records, read_records

datasets = pytest.importorskip("datasets")
runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def encoded(seed: int, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    scene(96 + 8 * seed, 72, seed=seed).save(buffer, fmt)
    return buffer.getvalue()


# Row 2 is not an image and row 4 has none: both must be error records in their place.
CELLS = [encoded(0), encoded(1, "PNG"), b"not an image", encoded(3), None, encoded(5)]


def image_dataset() -> datasets.Dataset:
    cells = [None if c is None else {"bytes": c, "path": None} for c in CELLS]
    table = datasets.Dataset.from_dict({"id": list(range(len(CELLS))), "photo": cells})
    return table.cast_column("photo", datasets.Image())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_to_disk DatasetDict with two splits: 'train' (all rows) and 'test' (two)."""
    folder = tmp_path_factory.mktemp("saved")
    full = image_dataset()
    datasets.DatasetDict({"train": full, "test": full.select([0, 1])}).save_to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parquet")
    image_dataset().to_parquet(str(folder / "train-00000-of-00001.parquet"))
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("imagefolder")
    for i, label in enumerate(["cat", "dog", "cat"]):
        (folder / label).mkdir(exist_ok=True)
        scene(80, 60 + i, seed=10 + i).save(folder / label / f"{i}.jpg")
    return folder


@pytest.fixture(scope="module")
def classifier(tiny_model: Path):
    return load_classifier(str(tiny_model), device="cpu")


def invoke(*args: object, stdin: bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def jsonl(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def expected_records(
    classifier, cells: list[bytes | None], name: str, top_k: int = 3
) -> list[dict]:
    """What classifying each cell's bytes directly gives, named as dataset rows."""
    records = []
    for i, record in enumerate(classify(classifier, [c or b"" for c in cells], top_k=top_k)):
        data = record.to_dict()
        data["input"] = f"{name}:{i}"
        if cells[i] is None:
            data = {"input": data["input"], "error": "no image in this row"}
        records.append(data)
    return records


def same(actual: list[dict], expected: list[dict]) -> None:
    assert [r["input"] for r in actual] == [r["input"] for r in expected]
    for a, e in zip(actual, expected, strict=True):
        assert ("error" in a) == ("error" in e), a
        if "error" in e:
            assert ("not a readable image" in a["error"]) or a["error"] == e["error"]
            continue
        assert [p["class_id"] for p in a["predictions"]] == [
            p["class_id"] for p in e["predictions"]
        ]
        for p, q in zip(a["predictions"], e["predictions"], strict=True):
            assert p["score"] == pytest.approx(q["score"], abs=1e-5)


@pytest.mark.parametrize("kind", ["saved", "parquet", "parquet-streaming"])
def test_rows_in_order_with_errors_in_place(
    kind: str, request: pytest.FixtureRequest, tiny_model: Path, classifier
) -> None:
    folder = request.getfixturevalue("parquet_folder" if "parquet" in kind else "saved")
    extra = ["--streaming"] if "streaming" in kind else []
    split = ["--split", "train"] if kind == "saved" else []
    result = invoke("-m", tiny_model, "--offline", "-q", "-k", "3", "--dataset", folder, *split,
                    *extra, "-b", "2")  # fmt: skip
    assert result.exit_code == 1, result.stderr  # rows 2 and 4 failed
    records = jsonl(result)
    same(records, expected_records(classifier, CELLS, f"{folder}:train"))
    assert records[2]["error"].startswith("not a readable image")
    assert records[4]["error"] == "no image in this row"


def test_default_split_is_test_and_named_split_must_exist(saved: Path, tiny_model: Path) -> None:
    result = invoke("-m", tiny_model, "--offline", "-q", "--dataset", saved)
    assert [r["input"] for r in jsonl(result)] == [f"{saved}:test:0", f"{saved}:test:1"]
    missing = invoke("-m", tiny_model, "--offline", "--dataset", saved, "--split", "valid")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        f"Error: dataset {str(saved)!r} has no split 'valid': pick one of train, test"
    )


def test_imagefolder_rows_are_its_files(image_folder: Path, tiny_model: Path, classifier) -> None:
    result = invoke("-m", tiny_model, "--offline", "-q", "-k", "3", "--dataset", image_folder)
    assert result.exit_code == 0, result.stderr
    files = sorted(image_folder.glob("*/*.jpg"))
    expected = [r.to_dict() for r in classify(classifier, files, top_k=3)]
    same(jsonl(result), expected)  # named by their files, as the files themselves are
    assert [r["true_label"] for r in jsonl(result)] == [f.parent.name for f in files]


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    """An imagefolder: two class folders of two images each."""
    folder = tmp_path / "pets"
    for c, label in enumerate(["tabby_cat", "red fox"]):
        (folder / label).mkdir(parents=True)
        for i in range(2):
            scene(90 + 10 * i, 70, seed=20 + 2 * c + i).save(folder / label / f"{label[0]}{i}.jpg")
    return folder


def test_imagefolder_names_and_true_labels_in_every_format(
    pets: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pets.parent)
    base = ["-m", tiny_model, "--offline", "-q", "-k", "2"]
    as_files = jsonl(invoke(*base, "./pets"))  # the same images, as a folder of files
    result = invoke(*base, "--dataset", "./pets")
    assert result.exit_code == 0, result.stderr
    records = jsonl(result)
    names = [r["input"] for r in as_files]
    assert names == ["./pets/red fox/r0.jpg", "./pets/red fox/r1.jpg",
                     "./pets/tabby_cat/t0.jpg", "./pets/tabby_cat/t1.jpg"]  # fmt: skip
    assert [r["input"] for r in records] == names
    assert [r["true_label"] for r in records] == ["red fox"] * 2 + ["tabby_cat"] * 2
    assert [r["predictions"] for r in records] == [r["predictions"] for r in as_files]
    assert all("true_label" not in r for r in as_files)  # files alone have none
    expected = read_records(result.stdout, "jsonl")
    for fmt in ("csv", "parquet", "json"):
        out = tmp_path / f"pets.{fmt}"
        assert invoke(*base, "--dataset", "./pets", "-o", out).exit_code == 0
        if fmt == "csv":
            header = out.read_text().splitlines()[0]
            assert header == "input,rank,label,score,class_id,error,true_label"
        if fmt == "parquet":
            import pyarrow.parquet as pq

            column = pq.read_table(out).column("true_label").to_pylist()
            assert column == ["red fox"] * 2 + ["tabby_cat"] * 2
            read = read_parquet_records(str(out))
        else:
            read = read_records(out.read_text(), fmt)
        assert read == expected, fmt
    table = invoke(*base, "--dataset", "./pets", "-f", "table")
    assert "true label" in table.stdout and "tabby_cat" in table.stdout


def test_imagefolder_report_shows_right_and_wrong(
    pets: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet_cli.results import top1_right

    monkeypatch.chdir(pets.parent)
    page = tmp_path / "report.html"
    result = invoke("-m", tiny_model, "--offline", "-q", "--dataset", "./pets", "--report", page)
    assert result.exit_code == 0, result.stderr
    records = read_records(result.stdout, "jsonl")
    right = [top1_right(r) for r in records]
    assert None not in right
    html_text = page.read_text()
    assert html_text.count("data:image/jpeg;base64,") == 4  # the files' thumbnails
    for index, record in enumerate(records):
        verdict = "right" if right[index] else "wrong"
        assert re.search(rf'<figure class="card {verdict}" id="c{index}">', html_text)
        said = "right, by label" if right[index] else "wrong"  # the tiny model has no categories
        assert f"true label: {record.true_label} ({said})</div>" in html_text
    by = f": {sum(right)} by label" if sum(right) else ""
    share = f"{100 * sum(right) / 4:.1f}% ({sum(right)} of 4 right{by})"
    assert f'id="sum-top-1-accuracy">{share}</dd>' in html_text


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_imagefolder_resumes_by_file(
    fmt: str, pets: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pets.parent)
    out = tmp_path / f"labels.{fmt}"
    base = ["-m", tiny_model, "--offline", "--dataset", "./pets", "-o", out]
    assert invoke(*base, "-q").exit_code == 0
    whole = out.read_bytes()
    again = invoke(*base, "--resume")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.startswith("nothing to do: every input is already in"), again.stderr
    assert out.read_bytes() == whole
    # Cut to its first two records (as a Ctrl-C would leave it): the rest, nothing twice.
    lines = whole.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2] if fmt == "jsonl" else lines[: 1 + 2 * 5]))
    finished = invoke(*base, "--resume")
    assert finished.exit_code == 0, finished.stderr
    assert "2 inputs: 2 classified" in finished.stderr  # only the two left
    resumed = out.read_bytes()
    assert resumed.splitlines()[0] == whole.splitlines()[0]  # a CSV keeps its header

    def kept(data: bytes) -> list[tuple]:
        records = read_records(data.decode(), fmt)
        return [(r.input, r.true_label, [p.class_id for p in r.predictions]) for r in records]

    assert kept(resumed) == kept(whole)  # every file once, in order, its true label kept


def test_image_column_choice_and_errors(tmp_path: Path, tiny_model: Path, classifier) -> None:
    # Two image columns, and a column of file paths: the first Image column is the default.
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(encoded(20 + i, "PNG"))
    table = datasets.Dataset.from_dict(
        {
            "label": [0, 1],
            "thumb": [{"bytes": encoded(7), "path": None}, {"bytes": encoded(8), "path": None}],
            "full": [{"bytes": encoded(9), "path": None}, {"bytes": encoded(4), "path": None}],
            "file": [str(p) for p in paths],
        }
    )
    table = table.cast_column("thumb", datasets.Image()).cast_column("full", datasets.Image())
    table.save_to_disk(tmp_path / "ds")
    ds = tmp_path / "ds"
    base = ["-m", tiny_model, "--offline", "-q", "-k", "2", "--dataset", ds]

    default = jsonl(invoke(*base))
    same(default, expected_records(classifier, [encoded(7), encoded(8)], f"{ds}:train", 2))
    chosen = jsonl(invoke(*base, "--image-column", "full"))
    same(chosen, expected_records(classifier, [encoded(9), encoded(4)], f"{ds}:train", 2))
    by_path = jsonl(invoke(*base, "--image-column", "file"))
    same(by_path, expected_records(classifier, [p.read_bytes() for p in paths], f"{ds}:train", 2))

    wrong = invoke(*base, "--image-column", "label")
    assert wrong.exit_code == 2
    assert "column 'label'" in wrong.stderr and "not images" in wrong.stderr
    absent = invoke(*base, "--image-column", "nope")
    assert absent.exit_code == 2
    assert absent.stderr.strip() == (
        f"Error: dataset {str(ds)!r} has no column 'nope': its columns are label (int64), "
        "thumb (image), full (image), file (string)"
    )


def test_dataset_without_images_says_which_columns_it_has(tmp_path: Path, tiny_model) -> None:
    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(tmp_path / "text")
    result = invoke("-m", tiny_model, "--offline", "--dataset", tmp_path / "text")
    assert result.exit_code == 2
    assert "has no image column: its columns are text (string)" in result.stderr
    assert "--image-column" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "test", "x.jpg"], "--split only applies to --dataset"),
        (["--streaming", "x.jpg"], "--streaming only applies to --dataset"),
        (["--demo", "x.jpg"], "--demo classifies huggingface/cats-image"),
        (["--dataset", "./no/such/folder"], "dataset folder './no/such/folder' does not exist"),
    ],
)
def test_dataset_usage_errors(args: list[str], message: str, tiny_model: Path) -> None:
    result = invoke("-m", tiny_model, "--offline", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_hub_dataset_offline_and_uncached_is_exit_3(tmp_path: Path, tiny_model: Path) -> None:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "resnet_cli", "-m", str(tiny_model), "--dataset", "a/pets"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "Error: dataset 'a/pets' is not in the local cache and offline mode is on: run "
        "once with network access, or pass --dataset PATH to a local copy"
    )


def test_demo_offline_and_uncached_says_what_it_needs(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "resnet_cli", "--demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "Error: --demo needs the huggingface/cats-image dataset and the microsoft/resnet-50 "
        "model from the Hugging Face hub, but it is not cached here and offline mode is on: run "
        "it once with network access, or try the example photos with a model made offline (the "
        "README's 'Try it offline')"
    ]


def test_demo_classifies_the_demo_dataset_as_a_table(
    saved: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real demo needs the hub; here the demo's dataset is a local stand-in with a 'test'
    # split, which is what huggingface/cats-image has.
    monkeypatch.setattr("resnet_cli.pipeline.options.DEMO_DATASET", str(saved))
    result = invoke("-m", tiny_model, "--offline", "-q", "--demo")
    assert result.exit_code == 0, result.stderr
    assert f"{saved}:test:0" in result.stdout and "┃ label" in result.stdout  # a rich table
    assert not result.stdout.lstrip().startswith("{")


def test_every_format_and_resume(saved: Path, tiny_model: Path, tmp_path: Path) -> None:
    base = ["-m", tiny_model, "--offline", "-q", "--dataset", saved, "--split", "train"]
    reference = jsonl(invoke(*base, "-f", "jsonl"))
    assert len(reference) == len(CELLS)
    for fmt in ("json", "csv", "parquet"):
        path = tmp_path / f"out.{fmt}"
        assert invoke(*base, "-o", path).exit_code == 1
        read = (
            read_parquet_records(str(path))
            if fmt == "parquet"
            else read_records(path.read_text(), fmt)
        )
        assert [r.to_dict()["input"] for r in read] == [r["input"] for r in reference]
        assert [r.ok for r in read] == ["error" not in r for r in reference]

    # An interrupted run (first three rows written) resumed: every row exactly once.
    out = tmp_path / "resumed.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in reference[:3]))
    result = invoke(*base, "-o", out, "--resume")
    assert result.exit_code == 1
    names = [json.loads(line)["input"] for line in out.read_text().splitlines()]
    # Failed rows are retried, so row 2 moves to the end; each row appears exactly once.
    assert sorted(names) == sorted(r["input"] for r in reference)
    assert len(names) == len(set(names))


def test_files_and_a_dataset_together(saved: Path, tiny_model: Path, images: list[Path]) -> None:
    result = invoke("-m", tiny_model, "--offline", "-q", images[0], "--dataset", saved)
    assert [r["input"] for r in jsonl(result)] == [
        str(images[0]),
        f"{saved}:test:0",
        f"{saved}:test:1",
    ]


def test_library_open_dataset(saved: Path, classifier) -> None:
    rows = open_dataset(str(saved), split="train")
    assert (rows.split, rows.column, rows.rows) == ("train", "photo", len(CELLS))
    records = list(classify(classifier, [rows], top_k=1))
    assert [r.input for r in records] == [f"{saved}:train:{i}" for i in range(len(CELLS))]
    assert [r.ok for r in records] == [c is not None and c != b"not an image" for c in CELLS]


def test_demo_example_runs_through_the_library(saved: Path, tiny_model: Path) -> None:
    script = ROOT / "examples" / "demo.py"
    command = [sys.executable, str(script), "--dataset", str(saved), "--model", str(tiny_model)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"{saved}:test:0" in result.stdout and f"{saved}:test:1" in result.stdout


def test_dataset_names_are_not_rich_markup_or_emoji(saved: Path, tiny_model: Path) -> None:
    # ':train:' is a rich emoji code, and '[/]' is markup: the table must show them as they are.
    result = invoke("-m", tiny_model, "--offline", "-q", "-f", "table", "--dataset", saved,
                    "--split", "train")  # fmt: skip
    assert ":train:0" in result.stdout and "🚋" not in result.stdout


def test_table_shows_markup_in_names_and_labels_as_text() -> None:
    from resnet_cli.output.writers import create_writer
    from resnet_cli.results import Prediction, Record

    stream = io.StringIO()
    writer = create_writer("table", stream)
    writer.write([Record("a [/] [red]b", (Prediction(1, "[bold]x :cat:", 0.5, 0),))])
    writer.close()
    assert "a [/] [red]b" in stream.getvalue() and "[bold]x :cat:" in stream.getvalue()


def test_report_of_a_dataset_has_thumbnails_of_its_rows(
    saved: Path, tiny_model: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    result = invoke("-m", tiny_model, "--offline", "-q", "--dataset", saved, "--split", "train",
                    "--report", report)  # fmt: skip
    assert result.exit_code == 1  # rows 2 and 4 have no readable image
    page = report.read_text()
    # One embedded JPEG thumbnail per classified row (the failed rows have none).
    assert page.count("data:image/jpeg;base64,") == sum(
        c is not None and c != b"not an image" for c in CELLS
    )


def test_ray_engine_gets_the_dataset_rows_after_the_files(
    saved: Path, tiny_model: Path, images: list[Path], tmp_path: Path, monkeypatch
) -> None:
    # The driver side of --engine ray with --dataset, without a cluster: the sources handed to
    # the Ray job are the files, then the rows, named as locally.
    pytest.importorskip("ray", reason="Ray is not installed")
    from resnet_cli.pipeline import ray_job as ray_engine

    handed: list = []

    def fake_job(sources, folder, **options):
        handed.extend(sources)
        return ray_engine.RayRun(images=len(handed), failed=0, seconds=1.0)

    monkeypatch.setattr(ray_engine, "classify_on_ray", fake_job)
    result = invoke("-m", tiny_model, "--offline", "-q", "--engine", "ray", "-o", tmp_path / "out",
                    images[0], "--dataset", saved)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [s.name for s in handed] == [str(images[0]), f"{saved}:test:0", f"{saved}:test:1"]
    assert all(s.data for s in handed[1:])  # rows travel as their encoded bytes
