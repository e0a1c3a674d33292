"""--min-score: predictions under the floor are left out of every format, of --xmp's keywords
and of --organize's decision; an image with none left is kept, as one to review, never
dropped; a resumed file keeps its floor."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from resnet_cli.output.writers import complete_records, read_results_file
from resnet_cli.results import Prediction, Record, needs_review

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """chelsea.jpg (the real model's top-1 scores 0.37: a doubtful cat) and coffee.jpg
    (espresso 0.96, then nothing above 0.02)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def by_name(records: list[Record]) -> dict[str, Record]:
    return {os.path.basename(r.input): r for r in records}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "parquet"])
def test_every_format_leaves_out_what_is_under_the_floor(
    real_model: Path, photos: Path, tmp_path: Path, fmt: str
) -> None:
    everything = tmp_path / f"all.{fmt}"
    floored = tmp_path / f"floored.{fmt}"
    result = run_cli(photos, "--model", real_model, "-o", everything, "-q")
    assert result.returncode == 0, result.stderr
    # 0.5: above every one of the cat's labels, below the espresso
    result = run_cli(photos, "--model", real_model, "-o", floored, "--min-score", "0.5")
    assert result.returncode == 0, result.stderr
    assert "2 classified (1 to review), 0 failed" in result.stderr
    full, kept = (
        by_name(read_results_file(str(everything))),
        by_name(read_results_file(str(floored))),
    )
    assert len(full["coffee.jpg"].predictions) == 5 and len(full["chelsea.jpg"].predictions) == 5
    espresso = full["coffee.jpg"].predictions[0]
    (best,) = kept["coffee.jpg"].predictions  # the rest scored under 0.5
    assert (best.rank, best.label, best.class_id) == (1, "espresso", espresso.class_id)
    assert best.score == pytest.approx(espresso.score, abs=1e-4)  # the runtimes may differ
    assert kept["chelsea.jpg"].ok and kept["chelsea.jpg"].predictions == ()  # kept, empty
    assert needs_review(kept["chelsea.jpg"]) and not needs_review(kept["coffee.jpg"])
    assert list(kept) == ["chelsea.jpg", "coffee.jpg"]  # in input order, none dropped


def test_the_table_shows_an_image_with_no_label_left(real_model: Path, photos: Path) -> None:
    result = run_cli(photos, "--model", real_model, "-f", "table", "--min-score", "0.5")
    assert result.returncode == 0, result.stderr
    assert "chelsea.jpg" in result.stdout and "needs review: no prediction" in result.stdout
    assert "espresso" in result.stdout and "cup" not in result.stdout
    assert "tabby" not in result.stdout and "tiger cat" not in result.stdout


def test_the_floor_in_xmp_keywords_and_in_organize(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    sorted_ = tmp_path / "sorted"
    result = run_cli(photos, "--model", real_model, "--xmp", "--min-score", "0.3", "-q")
    assert result.returncode == 0, result.stderr
    cat = (photos / "chelsea.jpg.xmp").read_text()
    assert "tiger cat" in cat and "Egyptian cat" in cat and "tabby" not in cat  # 0.18 < 0.3
    # espresso scores 0.96: sorted as food without a floor, to review under one above it
    for floor, folder in (("0", "food"), ("0.97", "_review")):
        placed = tmp_path / f"sorted-{floor}"
        result = run_cli(
            photos / "coffee.jpg", "--model", real_model, "--min-score", floor,
            "--organize", placed, "-q",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (placed / folder / "coffee.jpg").is_file(), sorted(placed.rglob("*"))
    assert not sorted_.exists()


def test_a_resumed_file_keeps_its_floor(real_model: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    result = run_cli(photos / "chelsea.jpg", "--model", real_model, "-o", out, "--min-score", "0.3")
    assert result.returncode == 0, result.stderr
    assert json.loads(Path(f"{out}.meta.json").read_text())["resnet_classify"]["min_score"] == 0.3
    other = run_cli(photos, "--model", real_model, "-o", out, "--resume", "--min-score", "0.2")
    assert other.returncode == 2
    assert "made with --min-score 0.3, not 0.2: pass --min-score 0.3" in other.stderr
    again = run_cli(photos, "--model", real_model, "-o", out, "--resume", "--min-score", "0.3")
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith("1 input: 1 classified"), again.stderr  # only coffee
    kept = read_results_file(str(out))
    assert [len(r.predictions) for r in kept] == [2, 1]


def test_a_csv_resumes_records_of_any_length_and_retries_only_a_torn_last_one() -> None:
    def rows(name: str, count: int) -> str:
        if count == 0:
            return f"{name},,,,,\r\n"
        return "".join(f"{name},{r},l{r},0.{9 - r},{r},\r\n" for r in range(1, count + 1))

    header = "input,rank,label,score,class_id,error\r\n"
    text = header + rows("a", 3) + rows("b", 0) + rows("c", 1) + rows("d", 3)
    assert [(r.input, len(r.predictions)) for r in complete_records(text, "csv", True)] == [
        ("a", 3), ("b", 0), ("c", 1), ("d", 3),
    ]  # fmt: skip
    torn = header + rows("a", 3) + rows("b", 0) + rows("d", 2)  # d's third row never written
    assert [r.input for r in complete_records(torn, "csv", True)] == ["a", "b"]


def test_the_floor_is_checked(tiny_model: Path, photos: Path) -> None:
    result = run_cli(photos, "--model", tiny_model, "--min-score", "1.5")
    assert result.returncode == 2 and "--min-score" in result.stderr


def test_needs_review_of_a_record_left_without_labels() -> None:
    assert needs_review(Record("a.jpg", ()))
    assert not needs_review(Record("a.jpg", (Prediction(1, "espresso", 0.96, 967),)))


def test_the_ray_engines_batches_take_the_floor_too(tiny_model: Path) -> None:
    """--engine ray's actors classify with classify_slots: the same floor as locally."""
    from conftest import scene
    from resnet_cli import load_classifier
    from resnet_cli.pipeline.local import Slot, classify_slots

    classifier = load_classifier(str(tiny_model), device="cpu")
    (full,) = classify_slots(classifier, [Slot("a", image=scene(96, 80, 0))], top_k=5)
    floor = full.predictions[1].score
    (kept,) = classify_slots(classifier, [Slot("a", image=scene(96, 80, 0))], 5, min_score=floor)
    assert kept.predictions == tuple(p for p in full.predictions if p.score >= floor)
    assert 2 <= len(kept.predictions) < 5
