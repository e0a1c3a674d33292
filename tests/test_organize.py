"""--organize: sorted folders that never overwrite, a dry run that touches nothing, a read-only
destination, a move across filesystems, and Ctrl-C mid-move (every file at its source or at
exactly one destination), then --resume."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import as_foreground, run_cli, scene
from resnet_cli.inputs.sources import Source
from resnet_cli.output.organize import FAILED, REVIEW, Organizer, Placement, folder_name
from resnet_cli.results import Prediction, Record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"


def _sure(name: str, label: str = "espresso", category: str | None = "food") -> Record:
    predictions = (Prediction(1, label, 0.95, 967, category), Prediction(2, "cup", 0.01, 968))
    return Record(input=name, predictions=predictions)


def place(organizer: Organizer, *records: Record) -> list[Placement]:
    """Place ``records`` as a run does: each one's file noted as an input of the run first."""
    for record in records:
        organizer.note(Source(name=record.input, path=record.input))
    return organizer.place(records)


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    """A camera dump: three IMG_0001.jpg in three folders, a broken file."""
    folder = tmp_path / "dump"
    for sub, photo in (("a", "chelsea"), ("b", "coffee"), ("c", "coffee")):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "IMG_0001.jpg").write_bytes((EXAMPLES / f"{photo}.jpg").read_bytes())
    (folder / "c" / "broken.jpg").write_bytes(b"not an image")
    return folder


def test_sorted_by_category_with_collisions_and_nothing_overwritten(
    real_model: Path, dump: Path, tmp_path: Path
) -> None:
    sorted_ = tmp_path / "sorted"
    (sorted_ / "food").mkdir(parents=True)
    (sorted_ / "food" / "IMG_0001.jpg").write_bytes(b"someone else's file")
    out = tmp_path / "labels.jsonl"
    result = run_cli(dump, "--model", real_model, "-o", out, "--organize", sorted_)
    assert result.returncode == 1, result.stderr  # the broken file
    assert "organized 4 files into" in result.stderr
    assert (sorted_ / "food" / "IMG_0001.jpg").read_bytes() == b"someone else's file"
    for number, sub in ((1, "b"), (2, "c")):
        placed = sorted_ / "food" / f"IMG_0001-{number}.jpg"
        assert os.path.samefile(placed, dump / sub / "IMG_0001.jpg")  # a hard link
        assert placed.stat().st_nlink == 2 and not placed.is_symlink()
    # The cat scores 0.38 on this model: the report's rule sends it to review.
    assert os.path.samefile(sorted_ / REVIEW / "IMG_0001.jpg", dump / "a" / "IMG_0001.jpg")
    assert os.path.samefile(sorted_ / FAILED / "broken.jpg", dump / "c" / "broken.jpg")
    before = sorted(p.relative_to(sorted_) for p in sorted_.rglob("*"))

    again = run_cli(dump, "--model", real_model, "-o", out, "--resume", "--organize", sorted_)
    assert again.returncode == 1, again.stderr
    assert sorted(p.relative_to(sorted_) for p in sorted_.rglob("*")) == before  # no -3 copies
    assert "organized 0 files" in again.stderr

    by_label = run_cli(
        dump / "b", "--model", real_model, "--organize", tmp_path / "by-label",
        "--organize-by", "label", "--organize-mode", "symlink", "-q",
    )  # fmt: skip
    assert by_label.returncode == 0, by_label.stderr
    link = tmp_path / "by-label" / "espresso" / "IMG_0001.jpg"
    assert link.is_symlink() and os.path.samefile(link, dump / "b" / "IMG_0001.jpg")


def test_dry_run_prints_the_plan_and_touches_nothing(
    real_model: Path, dump: Path, tmp_path: Path
) -> None:
    sorted_ = tmp_path / "sorted"
    before = sorted(str(p) for p in dump.rglob("*"))
    result = run_cli(
        dump,
        "-m",
        real_model,
        "--organize",
        sorted_,
        "--dry-run",
        "--organize-mode",
        "move",
        "-o",
        tmp_path / "x.jsonl",
    )
    assert result.returncode == 1, result.stderr
    plan = [line for line in result.stderr.splitlines() if line.startswith("plan: ")]
    assert f"plan: {dump / 'b' / 'IMG_0001.jpg'} -> {sorted_ / 'food' / 'IMG_0001.jpg'}" in plan
    assert f"plan: {dump / 'c' / 'IMG_0001.jpg'} -> {sorted_ / 'food' / 'IMG_0001-1.jpg'}" in plan
    assert len(plan) == 4
    assert not sorted_.exists()
    assert sorted(str(p) for p in dump.rglob("*")) == before


def test_option_errors_are_one_line_and_exit_2(
    tiny_model: Path, dump: Path, tmp_path: Path
) -> None:
    for args, message in (
        (["--organize", tmp_path / "s", "--organize-mode", "move"], "needs --output FILE"),
        (["--organize-by", "label"], "--organize-by only applies to --organize DIR"),
        (
            ["--organize", tmp_path / "s", "--organize-by", "category"],
            "--organize-by category needs categories",
        ),
        (["--organize", "/sys/not-writable"], "cannot write to --organize folder"),
    ):
        result = run_cli(dump, "-m", tiny_model, *args)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert message in line and "Traceback" not in result.stderr


def test_a_read_only_destination_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "coffee.jpg"
    photo.write_bytes((EXAMPLES / "coffee.jpg").read_bytes())
    organizer = Organizer(str(tmp_path / "sorted"), mode="move")
    organizer.check()

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    for name in ("link", "symlink", "mkdir"):
        monkeypatch.setattr(os, name, read_only)
    assert place(organizer, _sure(str(photo))) == []
    assert organizer.failures == 1 and photo.read_bytes() == (EXAMPLES / "coffee.jpg").read_bytes()
    assert "not organized: Read-only file system" in capsys.readouterr().err


def test_a_move_across_filesystems_copies_syncs_then_removes(tmp_path: Path) -> None:
    other = Path(tempfile.mkdtemp(dir="/dev/shm")) if os.path.isdir("/dev/shm") else None
    if other is None or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem here: /dev/shm is missing or on the same device as tmp")
    try:
        photo = tmp_path / "coffee.jpg"
        photo.write_bytes((EXAMPLES / "coffee.jpg").read_bytes())
        organizer = Organizer(str(other / "sorted"), mode="move")
        (placed,) = place(organizer, _sure(str(photo)))
        assert placed.how == "move" and not photo.exists()
        moved = other / "sorted" / "food" / "coffee.jpg"
        assert moved.read_bytes() == (EXAMPLES / "coffee.jpg").read_bytes()
        assert [p.name for p in moved.parent.iterdir()] == ["coffee.jpg"]  # no partial left
    finally:
        import shutil

        shutil.rmtree(other)


def test_folder_names_are_safe() -> None:
    assert (
        folder_name(_sure("x", label="AC/DC: live?", category=None), "category") == "AC_DC_ live_"
    )
    assert folder_name(_sure("x", label="_failed", category=None), "label") == "label _failed"
    assert folder_name(_sure("x"), "category") == "food"
    assert folder_name(_sure("x"), "label") == "espresso"
    assert folder_name(Record(input="x", error="bad"), "label") == FAILED


def test_ctrl_c_mid_move_loses_and_duplicates_nothing(tiny_model: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(120):
        scene(320, 240, seed=i % 9).save(photos / f"p{i:03d}.jpg", quality=90 - i % 7)
    names = sorted(p.name for p in photos.iterdir())
    sorted_, out = tmp_path / "sorted", tmp_path / "labels.jsonl"
    command = [
        sys.executable, "-m", "resnet_cli", str(photos), "-m", str(tiny_model), "-b", "2",
        "-j", "1", "-o", str(out), "--organize", str(sorted_), "--organize-mode", "move",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, preexec_fn=as_foreground, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") >= 4):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130

    def where() -> dict[str, list[Path]]:
        found: dict[str, list[Path]] = {name: [] for name in names}
        for path in [*photos.iterdir(), *sorted_.rglob("*.jpg")]:
            found[path.name].append(path)
        return found

    recorded = {Path(json.loads(line)["input"]).name for line in out.read_text().splitlines()}
    moved = 0
    for name, places in where().items():
        assert len(places) == 1, (name, places)  # at its source or at one destination
        if places[0].parent != photos:
            moved += 1
            assert name in recorded  # moved only after its record was written
    assert 0 < moved < len(names)

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode in (0, 1), resumed.stderr
    assert all(len(p) == 1 and p[0].parent != photos for p in where().values())
    assert len(out.read_text().splitlines()) == len(names)
