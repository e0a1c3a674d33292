"""Nothing is lost: --resume after a kill, SIGINT/SIGTERM flush and exit 130, torn tails."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import as_foreground, interrupt_a_stuck_run, make_photos, scene
from resnet_cli.cli.classify import app
from resnet_cli.output.writers import read_records, recover_records

COMMAND = shutil.which("resnet-classify")
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = make_photos(tmp_path / "photos", 24)
    (photos / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    return photos


def expected_inputs(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir())


def cli(model: Path, *args: object):
    return runner.invoke(app, ["-m", str(model), "--offline", "-q", *map(str, args)])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_skips_done_retries_failed_and_repairs_a_torn_tail(
    fmt: str, tiny_model: Path, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"labels.{fmt}"
    full = cli(tiny_model, "-b", "4", folder, "-o", out)
    assert full.exit_code == 1  # the broken file
    reference = {r.input: r for r in read_records(out.read_bytes().decode(), fmt)}
    assert sorted(reference) == expected_inputs(folder)

    # Simulate a run killed mid-write: keep the first part, cut the last line in half.
    text = out.read_bytes().decode()
    cut = text.index(str(folder / "010.jpg"))
    out.write_text(text[: cut + 20], newline="")
    (folder / "zz-broken.jpg").write_bytes((folder / "000.jpg").read_bytes())  # now fixed

    resumed = cli(tiny_model, "-b", "4", folder, "-o", out, "--resume")
    assert resumed.exit_code == 0
    records = read_records(out.read_bytes().decode(), fmt)
    assert sorted(r.input for r in records) == expected_inputs(folder)  # each exactly once
    assert all(r.ok for r in records)
    finished = out.read_bytes()
    again = runner.invoke(
        app, ["-m", str(tiny_model), "--offline", str(folder), "-o", str(out), "--resume"]
    )
    assert again.exit_code == 0 and "nothing to do" in again.stderr
    assert out.read_bytes() == finished
    for record in records:
        if record.input in reference and reference[record.input].ok:
            assert record.predictions == reference[record.input].predictions


def test_existing_output_without_resume_is_untouched(
    tiny_model: Path, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    out.write_text("precious\n")
    result = cli(tiny_model, folder, "-o", out)
    assert result.exit_code == 2
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert out.read_text() == "precious\n"
    replaced = cli(tiny_model, folder, "-o", out, "--overwrite")
    assert replaced.exit_code == 1
    assert len(read_records(out.read_text(), "jsonl")) == 25


def test_resume_needs_a_resumable_output(tiny_model: Path, folder: Path, tmp_path: Path) -> None:
    assert "needs --output" in cli(tiny_model, folder, "--resume").stderr
    out = tmp_path / "labels.json"
    out.write_text("[]\n")
    result = cli(tiny_model, folder, "-o", out, "--resume")
    assert result.exit_code == 2 and "jsonl and csv" in result.stderr


def test_recover_drops_a_short_csv_record(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    header = "input,rank,label,score,class_id,error\r\n"
    rows = "".join(f"a.jpg,{r},cat,0.1,0,\r\n" for r in (1, 2, 3))
    rows += "b.jpg,1,cat,0.1,0,\r\nb.jpg,2,dog,0.1,1,\r\n"  # cut between two of b's rows
    path.write_text(header + rows, newline="")
    assert [r.input for r in recover_records(str(path), "csv")] == ["a.jpg"]


def _start(model: Path, folder: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(COMMAND), "-m", str(model), "-b", "2", "-j", "1", str(folder), "-o", str(out)],
        preexec_fn=as_foreground,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def _wait_for_first_batch(process: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= 2:
            return
        if process.poll() is not None:
            pytest.fail(f"finished before it could be interrupted: {process.stderr.read()!r}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no batch was flushed within 90 s")


@pytest.fixture
def big_folder(tmp_path: Path) -> Path:
    photos = tmp_path / "many"
    photos.mkdir()
    pictures = []
    for seed in range(7):
        scene(640, 480, seed=seed).save(photos / "picture.jpg")
        pictures.append((photos / "picture.jpg").read_bytes())
    for i in range(200):
        (photos / f"{i:03d}.jpg").write_bytes(pictures[i % 7])
    (photos / "picture.jpg").unlink()
    return photos


@pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")
def test_sigkill_then_resume_gives_every_input_once(
    tiny_model: Path, big_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    process = _start(tiny_model, big_folder, out)
    _wait_for_first_batch(process, out)
    process.kill()
    process.wait(timeout=30)
    partial = recover_records(str(out), "jsonl")
    assert 2 <= len(partial) < 200
    resumed = subprocess.run(
        [str(COMMAND), "-m", str(tiny_model), "-q", str(big_folder), "-o", str(out), "--resume"],
        capture_output=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = out.read_text().splitlines()
    inputs = [json.loads(line)["input"] for line in lines]
    assert sorted(inputs) == expected_inputs(big_folder)
    # Records kept from the killed run are the ones it wrote, unchanged, and come first.
    assert read_records(out.read_text(), "jsonl")[: len(partial)] == partial


@pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_flushes_finished_records_and_exits_130(
    signum: int, tiny_model: Path, big_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    process = _start(tiny_model, big_folder, out)
    _wait_for_first_batch(process, out)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"interrupted after" in stderr and b"Traceback" not in stderr
    text = out.read_text()
    assert text.endswith("\n")  # no torn line: every finished record was written whole
    records = read_records(text, "jsonl")
    assert 2 <= len(records) < 200
    assert [r.input for r in records] == expected_inputs(big_folder)[: len(records)]


@pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")
def test_interrupt_does_not_wait_for_a_read_that_never_ends(
    tiny_model: Path, folder: Path, tmp_path: Path
) -> None:
    # A URL whose server never answers: the decode worker waits for the whole HTTP timeout.
    # Ctrl-C must still write what is finished and exit 130.
    out = tmp_path / "labels.jsonl"
    first = folder / "000.jpg"
    code, stderr = interrupt_a_stuck_run(str(COMMAND), tiny_model, first, "-o", out)
    assert code == 130, stderr
    assert [r.input for r in read_records(out.read_text(), "jsonl")] == [str(first)]
