"""--xmp with --organize: a sidecar goes where its photo goes, under the rules that keep a
photo (issue 24): links never followed, nothing overwritten, a move's source removed only
once a regular file at the destination holds its bytes, and only the sidecar of an input of
this run, and of that input alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from resnet_cli.inputs.sources import Source
from resnet_cli.output.organize import Organizer, Placement
from resnet_cli.results import Prediction, Record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"
SIDECAR = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>\n"


def espresso(name: Path) -> Record:
    return Record(str(name), (Prediction(1, "espresso", 0.95, 967, "food"),))


def place(organizer: Organizer, *records: Record) -> list[Placement]:
    """Place ``records`` as a run does: each one's file noted as an input of the run first."""
    for record in records:
        organizer.note(Source(name=record.input, path=record.input))
    return organizer.place(records)


def mover(root: Path, naming: str = "full", mode: str = "move") -> Organizer:
    organizer = Organizer(str(root), mode=mode)
    organizer.sidecar_naming = naming
    return organizer


@pytest.mark.parametrize("link_to", ["the source sidecar", "nowhere"])
def test_a_move_never_takes_a_sidecar_through_a_link_at_its_destination(
    real_model: Path, tmp_path: Path, link_to: str
) -> None:
    """A symlink where the sidecar would go (left by a symlink run, or anyone): to the source
    sidecar it was taken for that sidecar "already there" and the sidecar was unlinked, its
    keywords lost; dangling, the photo moved and its sidecar stayed behind (exit 1). The
    photo now takes a name whose sidecar name is free, and the link stays as it was."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "coffee.jpg")
    food = tmp_path / "sorted" / "food"
    food.mkdir(parents=True)
    target = photos / "coffee.jpg.xmp" if link_to == "the source sidecar" else tmp_path / "gone"
    (food / "coffee.jpg.xmp").symlink_to(target)
    result = run_cli(
        photos / "coffee.jpg", "--model", real_model, "--xmp", "-o", tmp_path / "labels.jsonl",
        "--organize", tmp_path / "sorted", "--organize-mode", "move",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not list(photos.iterdir())  # the photo and its sidecar both moved
    moved = food / "coffee-1.jpg.xmp"
    assert moved.is_file() and not moved.is_symlink()
    assert "espresso" in moved.read_text()
    assert (food / "coffee-1.jpg").read_bytes() == (EXAMPLES / "coffee.jpg").read_bytes()
    assert os.readlink(food / "coffee.jpg.xmp") == str(target)  # the link, as it was
    assert not (food / "coffee.jpg").exists()


def test_a_symlinked_sidecar_is_not_carried(tmp_path: Path) -> None:
    """The sidecar of an input that is a symlink is neither moved nor followed: the link
    stays, and the file it points to (not this run's) is neither moved nor changed."""
    photos, theirs = tmp_path / "photos", tmp_path / "elsewhere.xmp"
    photos.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "a.jpg")
    theirs.write_bytes(SIDECAR)
    (photos / "a.jpg.xmp").symlink_to(theirs)
    organizer = mover(tmp_path / "sorted")
    placed = place(organizer, espresso(photos / "a.jpg"))
    assert [p.how for p in placed] == ["move"]
    assert organizer.failures == 0
    assert (photos / "a.jpg.xmp").is_symlink() and theirs.read_bytes() == SIDECAR
    assert not os.path.lexists(tmp_path / "sorted" / "food" / "a.jpg.xmp")


@pytest.mark.parametrize("there", [b"someone else's sidecar", SIDECAR])
def test_a_move_stopped_between_its_steps_finishes_the_sidecar_only_onto_its_bytes(
    tmp_path: Path, there: bytes
) -> None:
    """The photo is at its destination and at its source (a kill between a move's link and
    its unlink), and a file stands where its sidecar goes: with the sidecar's bytes, the
    source sidecar is removed; with other bytes, nothing is overwritten nor removed (a
    warning, exit code 1)."""
    photos, food = tmp_path / "photos", tmp_path / "sorted" / "food"
    photos.mkdir()
    food.mkdir(parents=True)
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "a.jpg")
    os.link(photos / "a.jpg", food / "a.jpg")
    (photos / "a.jpg.xmp").write_bytes(SIDECAR)
    (food / "a.jpg.xmp").write_bytes(there)
    organizer = mover(tmp_path / "sorted")
    placed = place(organizer, espresso(photos / "a.jpg"))
    assert [p.how for p in placed] == ["already there"]
    assert not (photos / "a.jpg").exists()  # the photo's move is finished
    assert (food / "a.jpg.xmp").read_bytes() == there
    if there == SIDECAR:
        assert not (photos / "a.jpg.xmp").exists() and organizer.failures == 0
    else:
        assert (photos / "a.jpg.xmp").read_bytes() == SIDECAR and organizer.failures == 1


@pytest.mark.parametrize("mode", ["move", "copy", "link", "symlink"])
def test_a_sidecar_goes_the_way_its_photo_goes(tmp_path: Path, mode: str) -> None:
    photos, food = tmp_path / "photos", tmp_path / "sorted" / "food"
    photos.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "a.jpg")
    (photos / "a.jpg.xmp").write_bytes(SIDECAR)
    organizer = mover(tmp_path / "sorted", mode=mode)
    placed = place(organizer, espresso(photos / "a.jpg"))
    assert [p.destination for p in placed] == [str(food / "a.jpg"), str(food / "a.jpg.xmp")]
    assert len({p.how for p in placed}) == 1  # the same way
    assert (food / "a.jpg.xmp").read_bytes() == SIDECAR
    assert (photos / "a.jpg.xmp").exists() == (mode != "move")
    assert (food / "a.jpg.xmp").is_symlink() == (mode == "symlink")


def test_a_stem_sidecar_another_file_shares_stays_with_it(tmp_path: Path) -> None:
    """IMG_1.xmp is the sidecar of IMG_1.cr2 (not an input) as much as of IMG_1.jpg: moving
    the JPEG leaves it with the raw file. IMG_2.xmp, IMG_2.jpg's alone, goes with it."""
    photos, food = tmp_path / "photos", tmp_path / "sorted" / "food"
    photos.mkdir()
    for stem in ("IMG_1", "IMG_2"):
        shutil.copy(EXAMPLES / "coffee.jpg", photos / f"{stem}.jpg")
        (photos / f"{stem}.xmp").write_bytes(SIDECAR + stem.encode())
    (photos / "IMG_1.cr2").write_bytes(b"raw")
    organizer = mover(tmp_path / "sorted", naming="stem")
    place(organizer, espresso(photos / "IMG_1.jpg"), espresso(photos / "IMG_2.jpg"))
    assert sorted(p.name for p in photos.iterdir()) == ["IMG_1.cr2", "IMG_1.xmp"]
    assert sorted(p.name for p in food.iterdir()) == ["IMG_1.jpg", "IMG_2.jpg", "IMG_2.xmp"]
    assert (food / "IMG_2.xmp").read_bytes() == SIDECAR + b"IMG_2"
    assert organizer.failures == 0


def test_a_dry_run_plans_the_sidecar_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "a.jpg")
    (photos / "a.jpg.xmp").write_bytes(SIDECAR)
    organizer = mover(tmp_path / "sorted")
    organizer.dry_run = True
    place(organizer, espresso(photos / "a.jpg"))
    plan = capsys.readouterr().err
    assert f"plan: {photos / 'a.jpg.xmp'} -> " in plan and "food/a.jpg.xmp" in plan
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "a.jpg.xmp"]
    assert not (tmp_path / "sorted").exists()


def test_resume_carries_the_sidecar_of_a_photo_placed_by_its_earlier_record(
    real_model: Path, tmp_path: Path
) -> None:
    """A run stopped after writing a record and before placing its file: --resume places the
    file by that record, and its sidecar with it."""
    photos, out = tmp_path / "photos", tmp_path / "labels.jsonl"
    photos.mkdir()
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "coffee.jpg")
    first = run_cli(photos, "--model", real_model, "--xmp", "-o", out)  # not organized
    assert first.returncode == 0, first.stderr
    again = run_cli(
        photos, "--model", real_model, "--xmp", "-o", out, "--resume",
        "--organize", tmp_path / "sorted", "--organize-mode", "move",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    food = tmp_path / "sorted" / "food"
    assert sorted(p.name for p in food.iterdir()) == ["coffee.jpg", "coffee.jpg.xmp"]
    assert not list(photos.iterdir())
