"""Issue 24: a photo tool never loses a photo. --organize and --resume probed as an adversarial
tester would: a destination that already holds a link to the photo, the organize folder
reached by another path, a resume from another folder, names and labels with terminal
control characters; and the neighbours a careful reviewer would try (copy and hard link
modes, a dangling link in the destination, a destination folder that leads back to the
source folder).

After every run the test checks the one promise that matters here: each photo's bytes are
still in a regular file somewhere (``assert_every_photo_kept``).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from conftest import run_cli, scene
from resnet_cli.output.organize import FAILED, Organizer, folder_name, holds_bytes, same_file
from resnet_cli.results import Record
from test_organize import _sure as sure
from test_organize import place


def make_photos(folder: Path, count: int, first: int = 0) -> dict[str, bytes]:
    """``count`` different small JPEGs in ``folder``; their bytes by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        scene(90 + i, 70, seed=100 + i).save(folder / f"p{i}.jpg", quality=85)
    return {f"p{i}.jpg": (folder / f"p{i}.jpg").read_bytes() for i in range(first, first + count)}


def regular_files(*folders: Path) -> list[Path]:
    """Every regular file below ``folders``, links not followed (a symlink holds nothing)."""
    found = []
    for folder in folders:
        for root, _, names in os.walk(folder):
            found += [Path(root, n) for n in names if Path(root, n).is_file()]
    return [p for p in found if not p.is_symlink()]


def assert_every_photo_kept(photos: dict[str, bytes], *folders: Path) -> None:
    kept = {path.read_bytes() for path in regular_files(*folders)}
    lost = [name for name, data in photos.items() if data not in kept]
    assert not lost, f"photos lost: {lost}"


def organize(model: Path, inputs: object, out: Path, sorted_: object, mode: str, *more: object):
    return run_cli(
        inputs, "-m", model, "-o", out, "--organize", sorted_, "--organize-mode", mode, *more
    )


# --------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("first", ["symlink", "link", "copy"])
def test_move_after_another_mode_keeps_every_photo(
    first: str, tiny_model: Path, tmp_path: Path
) -> None:
    """symlink then move deleted every photo: the link was taken for the photo itself."""
    imgs, sorted_ = tmp_path / "imgs", tmp_path / "sorted"
    photos = make_photos(imgs, 4)
    done = organize(tiny_model, imgs, tmp_path / "a.jsonl", sorted_, first)
    assert done.returncode == 0, done.stderr
    moved = organize(tiny_model, imgs, tmp_path / "b.jsonl", sorted_, "move")
    assert moved.returncode == 0, moved.stderr
    assert_every_photo_kept(photos, sorted_)  # all of them in the sorted folder
    assert list(imgs.iterdir()) == []  # and moved there: none is left behind
    copies = [p.read_bytes() for p in regular_files(sorted_)]
    assert sorted(copies) == sorted(photos.values())  # each kept once
    # The earlier run's symlinks stay as they were (dangling now): the tool only ever adds.
    links = [p for p in sorted_.rglob("*") if p.is_symlink()]
    assert len(links) == (4 if first == "symlink" else 0)


def test_a_dangling_link_in_the_destination_is_not_the_photo(tmp_path: Path) -> None:
    photo = tmp_path / "coffee.jpg"
    scene(80, 60, seed=1).save(photo)
    data = photo.read_bytes()
    (tmp_path / "sorted" / "food").mkdir(parents=True)
    dangling = tmp_path / "sorted" / "food" / "coffee.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    organizer = Organizer(str(tmp_path / "sorted"), mode="move")
    (placed,) = place(organizer, sure(str(photo)))
    assert placed.how == "move" and placed.destination.endswith("coffee-1.jpg")
    assert not photo.exists() and Path(placed.destination).read_bytes() == data
    assert dangling.is_symlink() and os.readlink(dangling) == str(tmp_path / "gone.jpg")


@pytest.mark.parametrize("mode", ["link", "symlink", "copy", "move"])
def test_a_destination_folder_that_leads_back_to_the_source(mode: str, tmp_path: Path) -> None:
    """The category folder is a symlink to the photo's own folder: the photo is its own
    destination; nothing is removed, copied or linked over it."""
    imgs = tmp_path / "imgs"
    photos = make_photos(imgs, 1)
    (tmp_path / "sorted").mkdir()
    (tmp_path / "sorted" / "food").symlink_to(imgs)
    organizer = Organizer(str(tmp_path / "sorted"), mode=mode)
    (placed,) = place(organizer, sure(str(imgs / "p0.jpg")))
    assert placed.how == "already there"
    assert sorted(p.name for p in imgs.iterdir()) == ["p0.jpg"]
    assert (imgs / "p0.jpg").read_bytes() == photos["p0.jpg"]


def test_an_organize_folder_that_is_the_input_folder(tiny_model: Path, tmp_path: Path) -> None:
    """--organize ALIAS where ALIAS is a symlink to the input folder: every file is already
    inside the organize folder, so none is an input: nothing to do, nothing touched."""
    imgs = tmp_path / "imgs"
    photos = make_photos(imgs, 3)
    (tmp_path / "alias").symlink_to(imgs)
    result = organize(tiny_model, imgs, tmp_path / "a.jsonl", tmp_path / "alias", "move")
    assert result.returncode == 2, result.stderr
    assert {p.name: p.read_bytes() for p in imgs.iterdir()} == photos


def test_move_removes_a_source_only_for_a_regular_file_with_its_bytes(tmp_path: Path) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    link = tmp_path / "link.jpg"
    link.symlink_to(source)
    hard = tmp_path / "hard.jpg"
    os.link(source, hard)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(b"photo")
    other = tmp_path / "other.jpg"
    other.write_bytes(b"other")
    assert not same_file(str(link), str(source))  # a symlink is never the file it names
    assert same_file(str(hard), str(source))
    assert not holds_bytes(str(link), str(source))
    assert not holds_bytes(str(source), str(source))  # its own name holds nothing more
    assert not holds_bytes(str(other), str(source))
    assert holds_bytes(str(hard), str(source)) and holds_bytes(str(copy), str(source))
    via = tmp_path / "via"
    via.symlink_to(tmp_path)
    assert not holds_bytes(str(via / "a.jpg"), str(source))  # the same name by another path


# --------------------------------------------------------------------------- case 2


@pytest.mark.parametrize("second", ["link", "copy", "move"])
def test_the_organize_folder_reached_by_another_path(
    second: str, tiny_model: Path, tmp_path: Path
) -> None:
    """photos -> real/photos: a move run into photos/sorted, then a run into
    real/photos/sorted. The sorted files are the organize folder's, however it is named:
    never inputs again (a move then deleted them)."""
    real = tmp_path / "real" / "photos"
    photos = make_photos(real, 3)
    (tmp_path / "photos").symlink_to(real)
    alias = tmp_path / "photos"
    first = organize(tiny_model, alias, tmp_path / "a.jsonl", alias / "sorted", "move")
    assert first.returncode == 0, first.stderr
    photos |= make_photos(real, 1, first=3)  # one new photo for the second run
    again = organize(tiny_model, alias, tmp_path / "b.jsonl", real / "sorted", second)
    assert again.returncode == 0, again.stderr
    assert_every_photo_kept(photos, real)
    records = (tmp_path / "b.jsonl").read_text().splitlines()
    assert [Path(json.loads(line)["input"]).name for line in records] == ["p3.jpg"]
    # The first run's sorted files are each there once, untouched.
    sorted_files = [p for p in regular_files(real / "sorted") if p.name != "p3.jpg"]
    assert sorted(p.read_bytes() for p in sorted_files) == sorted(
        photos[f"p{i}.jpg"] for i in range(3)
    )


# --------------------------------------------------------------------------- case 4


def test_resume_places_only_the_inputs_of_this_run(tiny_model: Path, tmp_path: Path) -> None:
    """Records of files that are not inputs of the resumed run are never placed."""
    imgs = tmp_path / "imgs"
    photos = make_photos(imgs, 3)
    out, sorted_ = tmp_path / "out.jsonl", tmp_path / "sorted"
    first = run_cli(imgs, "-m", tiny_model, "-o", out)
    assert first.returncode == 0, first.stderr
    resumed = organize(tiny_model, imgs / "p0.jpg", out, sorted_, "move", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in imgs.iterdir()) == ["p1.jpg", "p2.jpg"]  # not inputs: stay
    assert [p.read_bytes() for p in regular_files(sorted_)] == [photos["p0.jpg"]]


def test_a_resume_from_another_folder_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """Records hold relative names; resumed from another folder, they were resolved against
    it, and that folder's own photos were moved. Now: refused, one line, nothing touched."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ours = make_photos(a / "photos", 3)
    theirs = make_photos(b / "photos", 3, first=10)
    c.mkdir()
    out, sorted_ = tmp_path / "out.jsonl", tmp_path / "sorted"
    env = dict(os.environ)
    first = run_cli_in(a, "photos", "-m", tiny_model, "-o", out, env=env)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    for where, inputs in ((b, "photos"), (c, str(a / "photos"))):  # another folder, a third
        resumed = run_cli_in(
            where, inputs, "-m", tiny_model, "-o", out, "--resume",
            "--organize", sorted_, "--organize-mode", "move", env=env,
        )  # fmt: skip
        assert resumed.returncode == 2, resumed.stderr
        [line] = resumed.stderr.splitlines()
        assert line == (
            f"Error: cannot resume {str(out)!r} from {str(where)!r}: it was started in "
            f"{str(a)!r}, and the file names it records are relative to that folder: run it "
            f"from there (cd {str(a)!r}), or choose another output name"
        )
        assert out.read_bytes() == before
        assert {p.name: p.read_bytes() for p in (b / "photos").iterdir()} == theirs
        assert {p.name: p.read_bytes() for p in (a / "photos").iterdir()} == ours
        assert not sorted_.exists() or not any(sorted_.rglob("*.jpg"))
    # From its own folder it resumes: nothing left to classify, each file placed by its record.
    again = run_cli_in(
        a, "photos", "-m", tiny_model, "-o", out, "--resume",
        "--organize", sorted_, "--organize-mode", "move", env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr and "organized 3 files" in again.stderr
    assert sorted(p.read_bytes() for p in regular_files(sorted_)) == sorted(ours.values())


def run_cli_in(folder: Path, *args: object, env: dict[str, str]):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "resnet_cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=folder,
    )


# --------------------------------------------------------------------------- case 7


def test_plan_and_warning_lines_escape_control_characters(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    hostile = imgs / "red\x1b[31mbell\x07.jpg"
    scene(80, 60, seed=3).save(hostile, format="JPEG")
    result = run_cli(imgs, "-m", tiny_model, "--organize", tmp_path / "sorted", "--dry-run")
    assert result.returncode == 0, result.stderr
    [plan] = [line for line in result.stderr.splitlines() if line.startswith("plan: ")]
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "red\\x1b[31mbell\\x07.jpg -> " in plan

    organizer = Organizer(str(tmp_path / "sorted"), mode="link")

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "makedirs", refused)
    assert place(organizer, sure(str(hostile))) == []
    [line] = capsys.readouterr().err.splitlines()
    name = f"{imgs}/red\\x1b[31mbell\\x07.jpg"
    assert line == f"warning: {name}: not organized: Read-only file system"


def test_folder_names_from_labels_are_safe() -> None:
    def named(label: str) -> str:
        return folder_name(sure("x", label=label, category=None), "label")

    assert named("red\x1b[31m\x07alert") == "red_[31m_alert"
    assert named("../../etc") == "label _.._etc"
    assert named("..") == "label" and named(".") == "label" and named("a/b") == "a_b"
    assert named("line\nbreak\ttab") == "line break tab"
    wide = "\U0001d49c" * 100  # 100 characters of 4 bytes: 400 bytes
    assert len(named(wide).encode()) <= 255 and named(wide) == "\U0001d49c" * 63
    assert len(named("é" * 300).encode()) == 254  # never half a character
    assert folder_name(Record(input="x", error="bad"), "label") == FAILED


def test_a_label_of_long_characters_still_places_the_file(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    scene(80, 60, seed=4).save(photo)
    organizer = Organizer(str(tmp_path / "sorted"), by="label", mode="copy")
    (placed,) = place(organizer, sure(str(photo), label="\U0001d49c" * 100, category=None))
    assert placed.how == "copy" and organizer.failures == 0
    assert Path(placed.destination).read_bytes() == photo.read_bytes()


def test_a_move_whose_copy_does_not_match_keeps_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Across file systems a move copies, then compares before it removes the source."""
    from resnet_cli.output import organize as module

    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"the photo")

    def other_file_system(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def bad_copy(source: str, destination: str) -> None:
        Path(destination).write_bytes(b"the phot0")  # a copy gone wrong

    monkeypatch.setattr(os, "link", other_file_system)
    monkeypatch.setattr(module, "_copy_without_overwriting", bad_copy)
    organizer = Organizer(str(tmp_path / "sorted"), mode="move")
    assert place(organizer, sure(str(photo))) == []
    assert photo.read_bytes() == b"the photo" and organizer.failures == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"warning: {photo}: not organized: ") and "does not hold" in line
