"""Nothing lost, nothing mixed: the output file is claimed, checked and replaced safely.

Issue 16's cases 1-9 (data loss or wrong data) and 16-19 (unclear exits), each reproduced
here. A model that does not exist (``-m MISSING``) shows that a check happens before the
model loads: a refusal then exits 2, not 3.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import as_foreground, build_tiny_model, loopback_server, make_photos, scene
from resnet_cli.cli.classify import app
from resnet_cli.output.writers import read_records, read_results_file

_NEXT_TO_PYTHON = Path(sys.executable).with_name("resnet-classify")
COMMAND = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("resnet-classify")
needs_command = pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")
runner = CliRunner()
MISSING = "/nonexistent/model-folder"


def cli(model: Path | str, *args: object, stdin: bytes | None = None):
    return runner.invoke(app, ["-m", str(model), "--offline", "-q", *map(str, args)], input=stdin)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_photos(tmp_path / "photos", 6)


def classify_the_first(model: Path, count: int, folder: Path, out: Path, *args: object) -> None:
    """An earlier run: the first ``count`` files of ``folder`` classified into ``out``."""
    result = cli(model, *sorted(folder.iterdir())[:count], "-o", out, *args)
    assert result.exit_code == 0, result.output


def inputs_of(path: Path) -> list[str]:
    return [r.input for r in read_results_file(str(path))]


# --------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "parquet"])
def test_existing_output_suggests_what_works_for_its_format(
    fmt: str, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet_cli.errors import UsageError
    from resnet_cli.output.files import claim_output

    out = tmp_path / f"labels.{fmt}"
    out.write_bytes(b"earlier results")
    resume = "--resume to continue it, " if fmt in ("jsonl", "csv") else ""
    result = cli(MISSING, images[0], "-o", out)  # refused before the model loads: exit 2
    assert result.exit_code == 2 and out.read_bytes() == b"earlier results"
    assert result.stderr == (
        f"Error: output file {str(out)!r} exists: pass {resume}--overwrite to replace it, or "
        "choose another name\n"
    )
    # Another run created the name between the check and the link: it holds the file, so
    # --overwrite is no answer either.
    new = tmp_path / f"new.{fmt}"

    def taken(source: str, target: str) -> None:
        raise FileExistsError(errno.EEXIST, "exists", target)

    monkeypatch.setattr(os, "link", taken)
    with pytest.raises(UsageError) as refused:
        claim_output(str(new), fmt, resume=False, overwrite=False, model="m", top_k=5)
    advice = "pass --resume to continue it, or choose" if resume else "choose"
    assert str(refused.value) == (
        f"output file {str(new)!r} exists (another run took the name): {advice} another name"
    )


NOT_RESULTS = {
    "a jpeg named .jsonl": ("x.jsonl", None),
    "json lines of other objects": ("x.jsonl", b'{"name": "a.jpg", "label": "cat"}\n{"n": 2}\n'),
    "a notes file without extension": ("notes", b"remember to buy milk\nand eggs\n"),
    "a csv with other columns, LF": ("x.csv", b"filename,label\na.jpg,cat\n"),
    "a csv with other columns, CRLF": ("x.csv", b"filename,label\r\na.jpg,cat\r\n"),
}


@pytest.mark.parametrize("case", sorted(NOT_RESULTS))
def test_resume_refuses_a_file_it_did_not_write(
    case: str, tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    name, content = NOT_RESULTS[case]
    out = tmp_path / name
    if content is None:
        scene(64, 48, seed=9).save(out, "JPEG")
    else:
        out.write_bytes(content)
    before = out.read_bytes()
    result = cli(
        tiny_model, photos, "-o", out, "--resume", "-f", "csv" if ".csv" in name else "jsonl"
    )
    assert result.exit_code == 2, result.output
    assert out.read_bytes() == before
    [line] = error_lines(result.stderr)
    assert "not a resnet-classify results file" in line


# --------------------------------------------------------------------------- case 2


def test_output_is_claimed_before_the_model_loads(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another program creates the output file while the model loads: it must find the name
    # taken (and so keep its notes elsewhere), never have records appended to its file.
    import resnet_cli.runtimes.classifier as model

    out = tmp_path / "labels.jsonl"
    load = model.load_classifier
    outcome = []

    def load_while_someone_writes(*args, **kwargs):
        try:
            with open(out, "x") as notes:
                notes.write("my notes\n")
            outcome.append("notes written")
        except FileExistsError:
            outcome.append("name taken")
        return load(*args, **kwargs)

    monkeypatch.setattr(model, "load_classifier", load_while_someone_writes)
    result = cli(tiny_model, photos, "-o", out)
    assert outcome == ["name taken"], out.read_text()
    assert result.exit_code == 0, result.output
    assert inputs_of(out) == sorted(str(p) for p in photos.iterdir())


@needs_command
def test_two_runs_on_one_new_output_do_not_mix(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "same.jsonl"
    command = [str(COMMAND), "-m", str(tiny_model), "--offline", "-q", str(photos), "-o", str(out)]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in processes]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert len(error_lines(refused)) == 1 and "exists" in refused, refused
    assert inputs_of(out) == sorted(str(p) for p in photos.iterdir())


# --------------------------------------------------------------------------- case 3


@pytest.fixture
def many(tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    picture = folder / "picture.jpg"
    scene(480, 360, seed=1).save(picture)
    for i in range(120):
        shutil.copy(picture, folder / f"{i:03d}.jpg")
    picture.unlink()
    return folder


@needs_command
def test_two_concurrent_resumes_give_every_input_once(
    tiny_model: Path, many: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    classify_the_first(tiny_model, 10, many, out)
    command = [str(COMMAND), "-m", str(tiny_model), "--offline", "-q", "-b", "2", "-j", "1"]
    command += [str(many), "-o", str(out), "--resume"]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read().decode()) for p in processes]  # type: ignore[union-attr]
    assert sorted(inputs_of(out)) == sorted(str(p) for p in many.iterdir()), results
    assert [code for code, _ in results].count(0) >= 1, results
    for code, err in results:
        if code != 0:
            assert code == 2 and "in use" in err and len(error_lines(err)) == 1, err


# --------------------------------------------------------------------------- case 4


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("other-model"), seed=1)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_refuses_another_model_or_top_k(
    fmt: str, tiny_model: Path, other_model: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"labels.{fmt}"
    classify_the_first(tiny_model, 3, photos, out, "-k", "3")
    before = out.read_bytes()
    by_k = cli(tiny_model, photos, "-k", "2", "-o", out, "--resume")
    assert by_k.exit_code == 2 and out.read_bytes() == before
    [line] = error_lines(by_k.stderr)
    assert "top-k" in line and "-k 3" in line
    by_model = cli(other_model, photos, "-k", "3", "-o", out, "--resume")
    assert by_model.exit_code == 2 and out.read_bytes() == before
    [line] = error_lines(by_model.stderr)
    assert "model" in line and str(tiny_model) in line
    same = cli(tiny_model, photos, "-k", "3", "-o", out, "--resume")
    assert same.exit_code == 0, same.output
    assert sorted(inputs_of(out)) == sorted(str(p) for p in photos.iterdir())


def test_results_files_say_what_made_them(tiny_model: Path, photos: Path, tmp_path: Path) -> None:
    from resnet_cli import __version__
    from resnet_cli.output.files import read_results_meta

    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"labels.{fmt}"
        assert cli(tiny_model, photos, "-k", "2", "-o", out).exit_code == 0
        meta = read_results_meta(str(out))
        assert meta is not None, sorted(tmp_path.iterdir())
        assert meta["version"] == __version__ and meta["top_k"] == 2
        assert meta["model"] == str(tiny_model.resolve())
        assert meta["precision"] == "fp32" and meta["runtime"] and meta["revision"] is None
        assert (tmp_path / f"labels.{fmt}.meta.json").exists()
    # The records files themselves are exactly the formats plain readers expect.
    lines = (tmp_path / "labels.jsonl").read_text().splitlines()
    assert all("input" in json.loads(line) for line in lines)
    assert (tmp_path / "labels.csv").read_text().startswith("input,rank,label")


def test_old_results_without_a_header_still_resume(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.jsonl"
    classify_the_first(tiny_model, 2, photos, out)
    (tmp_path / "labels.jsonl.meta.json").unlink()  # as 0.1.0 left it
    result = cli(tiny_model, photos, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(inputs_of(out)) == sorted(str(p) for p in photos.iterdir())


# --------------------------------------------------------------------------- case 5


def test_overwrite_keeps_the_old_file_until_the_new_one_is_complete(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "labels.jsonl"
    out.write_text("precious\n")
    mistyped = cli(MISSING, photos, "-o", out, "--overwrite")
    assert mistyped.exit_code == 3 and out.read_text() == "precious\n"

    import resnet_cli.runtimes.classifier as model

    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "load_classifier", interrupted_load)
    cli(tiny_model, photos, "-o", out, "--overwrite")
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl", "photos"]  # no temp
    monkeypatch.undo()
    replaced = cli(tiny_model, photos, "-o", out, "--overwrite")
    assert replaced.exit_code == 0
    assert inputs_of(out) == sorted(str(p) for p in photos.iterdir())


def test_an_interrupted_overwrite_leaves_the_old_file(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resnet_cli.output.writers as writers

    out = tmp_path / "labels.jsonl"
    out.write_text("precious\n")
    write = writers.JsonlWriter.write

    def write_then_ctrl_c(self, records):
        write(self, records)
        raise KeyboardInterrupt

    monkeypatch.setattr(writers.JsonlWriter, "write", write_then_ctrl_c)
    result = runner.invoke(
        app,
        ["-m", str(tiny_model), "--offline", "-b", "2", str(photos), "-o", str(out), "--overwrite"],
    )
    assert result.exit_code == 130, result.output
    assert "left as it was" in result.stderr
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl", "photos"]


def test_a_file_system_without_hard_links_still_gets_a_claimed_file(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "labels.jsonl"
    assert cli(tiny_model, photos, "-o", out).exit_code == 0
    assert len(inputs_of(out)) == 6
    assert cli(tiny_model, photos, "-o", out).exit_code == 2  # still never shared


# --------------------------------------------------------------------------- case 6


def test_an_input_is_never_the_output(photos: Path) -> None:
    image = sorted(photos.iterdir())[0]
    before = image.read_bytes()
    for args in ([image, "-o", image, "--overwrite"], [photos, "-o", image, "--overwrite"]):
        result = cli(MISSING, *args, "-f", "jsonl")
        assert result.exit_code == 2, result.output
        [line] = error_lines(result.stderr)
        assert "is also an input" in line
        assert image.read_bytes() == before


# --------------------------------------------------------------------------- case 7


def test_a_device_is_never_replaced_or_written(photos: Path, tmp_path: Path) -> None:
    device = tmp_path / "null-device"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs root")
    for flags in ([], ["--overwrite"]):
        result = cli(MISSING, photos, "-o", device, "-f", "jsonl", *flags)
        assert result.exit_code == 2, result.output
        [line] = error_lines(result.stderr)
        assert "not a regular file" in line
        assert stat.S_ISCHR(device.lstat().st_mode)
    # The real /dev/null is only ever refused here, never with --overwrite.
    result = cli(MISSING, photos, "-o", "/dev/null", "-f", "jsonl")
    assert result.exit_code == 2 and "not a regular file" in result.stderr


# --------------------------------------------------------------------------- case 8


def test_resume_matches_inputs_by_resolved_path(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(tiny_model, "photos", "-o", "labels.jsonl").exit_code == 0
    for spelling in ("./photos", str(photos), "photos/../photos/"):
        again = runner.invoke(
            app, ["-m", str(tiny_model), "--offline", spelling, "-o", "labels.jsonl", "--resume"]
        )
        assert again.exit_code == 0, again.output
        assert "nothing to do" in again.stderr
    assert len(inputs_of(tmp_path / "labels.jsonl")) == 6


# --------------------------------------------------------------------------- case 9


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_a_symlinked_output_keeps_its_link_mode_and_owner(
    flag: str, tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    target = tmp_path / "real" / "labels.jsonl"
    target.parent.mkdir()
    classify_the_first(tiny_model, 2, photos, target)
    os.chmod(target, 0o640)
    owner = (os.getuid() + 1234, os.getgid() + 1234) if os.geteuid() == 0 else None
    if owner:
        os.chown(target, *owner)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    result = cli(tiny_model, photos, "-o", link, flag)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target
    assert sorted(inputs_of(target)) == sorted(str(p) for p in photos.iterdir())
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    if owner:
        assert (info.st_uid, info.st_gid) == owner


# --------------------------------------------------------------------------- case 16


@needs_command
def test_a_closed_pipe_stops_quietly(tiny_model: Path, photos: Path) -> None:
    for args in (["--help"], ["-m", str(tiny_model), "--offline", "-q", "-f", "jsonl", photos]):
        process = subprocess.Popen(
            [str(COMMAND), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()  # as `| head -1` does
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (0, 141), stderr
        assert b"Error" not in stderr and b"Traceback" not in stderr, stderr
        assert b"Exception ignored" not in stderr, stderr


@needs_command
def test_a_full_disk_is_one_line_and_exit_4(tiny_model: Path, photos: Path) -> None:
    with open("/dev/full", "wb") as full:  # every write: ENOSPC
        result = subprocess.run(
            [str(COMMAND), "-m", str(tiny_model), "--offline", "-q", "-f", "jsonl", str(photos)],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    stderr = result.stderr.decode()
    assert result.returncode == 4, stderr
    assert stderr.splitlines() == [
        "Error: cannot write the records to standard output: No space left on device"
    ]


def test_a_write_failure_names_the_file_and_exits_4(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resnet_cli.output.writers as writers

    def full(self, records):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers.JsonlWriter, "write", full)
    out = tmp_path / "labels.jsonl"
    result = cli(tiny_model, photos, "-o", out)
    assert result.exit_code == 4, result.output
    [line] = error_lines(result.stderr)
    assert line == f"Error: cannot write {str(out)!r}: No space left on device"


# --------------------------------------------------------------------------- case 17


def test_output_problems_are_found_before_the_model_loads(photos: Path, tmp_path: Path) -> None:
    cases = {
        str(tmp_path / "no-such-folder" / "labels.jsonl"): "does not exist",
        str(tmp_path / "newdir") + os.sep: "folder",
        str(tmp_path): "folder",
    }
    if (os.path.isdir("/sys") and not os.access("/sys", os.W_OK)) or os.geteuid() == 0:
        cases["/sys/labels.jsonl"] = "cannot write"
    for out, message in cases.items():
        result = cli(MISSING, photos, "-o", out)
        assert result.exit_code == 2, (out, result.output)
        [line] = error_lines(result.stderr)
        assert message in line, (out, line)
    assert not (tmp_path / "newdir").exists()


def test_dash_is_stdout_and_a_dangling_link_is_written_through(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(tiny_model, photos, "-o", "-", "-f", "jsonl")
    assert result.exit_code == 0 and not (tmp_path / "-").exists()
    assert len(read_records(result.stdout, "jsonl")) == 6
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "target.jsonl")
    for flags in ([], ["--overwrite"]):
        if flags:
            (tmp_path / "target.jsonl").unlink()
        result = cli(tiny_model, photos, "-o", link, *flags)
        assert result.exit_code == 0, result.output
        assert link.is_symlink() and len(inputs_of(tmp_path / "target.jsonl")) == 6


# --------------------------------------------------------------------------- case 19


def test_control_characters_in_names_are_escaped_on_stderr(tmp_path: Path) -> None:
    name = str(tmp_path / "\x1b[31mred\x07.jpg")
    result = cli(MISSING, name)
    assert result.exit_code == 2
    [line] = error_lines(result.stderr)
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b[31mred\\x07.jpg" in line


def test_an_image_piped_as_the_list_of_names_is_a_usage_error(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    scene(32, 32, seed=1).save(image)
    result = cli(MISSING, "-", stdin=image.read_bytes())
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert "unexpected" not in line and "file names" in line


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /loop.jpg\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["not-http", "redirect-loop"],
)
def test_odd_servers_give_one_line_errors(reply: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_cli.errors import ImageError
    from resnet_cli.inputs.fetch import fetch_url

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("resnet_cli.inputs.fetch.BACKOFF_S", 0.01)
    with (
        loopback_server(lambda connection: connection.sendall(reply)) as server,
        pytest.raises(ImageError) as caught,
    ):
        fetch_url(f"{server}/loop.jpg", timeout=2)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.isprintable(), message


# --------------------------------------------------------------------------- case 18


@needs_command
def test_sighup_is_handled_like_sigterm(tiny_model: Path, many: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    process = subprocess.Popen(
        [str(COMMAND), "-m", str(tiny_model), "-b", "2", "-j", "1", str(many), "-o", str(out)],
        preexec_fn=as_foreground,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 90
    while not (out.exists() and out.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"interrupted after" in stderr and b"Traceback" not in stderr
    assert out.read_text().endswith("\n")


# --------------------------------------------------------------------------- issue 24: case 5


def test_a_users_own_meta_json_is_never_replaced_or_removed(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    """FILE.meta.json is the tool's only where the tool wrote it: a user's own file of that
    name was replaced by a run, and removed by a run that failed early."""
    out, meta = tmp_path / "labels.jsonl", tmp_path / "labels.jsonl.meta.json"
    meta.write_text("my own notes\n")
    for model, flags in ((tiny_model, []), (MISSING, []), (tiny_model, ["--overwrite"])):
        if flags:
            out.write_text("")  # an output to overwrite
        result = cli(model, photos, "-o", out, *flags)
        assert result.exit_code == 2, result.output  # before anything: not 0, not 3
        [line] = error_lines(result.stderr)
        assert line == (
            f"Error: cannot write {str(meta)!r}, the metadata file of output {str(out)!r}: a "
            "file of that name is there that resnet-classify did not write (it is not JSON: "
            "Expecting value: line 1 column 1 (char 0)): move it away, or choose another "
            "output name"
        )
        assert meta.read_text() == "my own notes\n"
    # A metadata file the tool wrote (its output since removed) is its own to replace.
    out.unlink()
    meta.write_text(json.dumps({"resnet_classify": {"model": "old"}}))
    assert cli(tiny_model, photos, "-o", out).exit_code == 0
    assert json.loads(meta.read_text())["resnet_classify"]["model"] == str(tiny_model.resolve())
    # A run that fails early removes only what it made: no records, no metadata file left.
    failed = cli(MISSING, photos, "-o", tmp_path / "new.jsonl")
    assert failed.exit_code == 3
    assert not (tmp_path / "new.jsonl").exists()
    assert not (tmp_path / "new.jsonl.meta.json").exists()


@pytest.mark.parametrize(
    ("sidecar", "why"),
    [
        ("{not json", "is not one resnet-classify wrote (it is not JSON: "),
        ('{"other": 1}', "is not one resnet-classify wrote (it has no 'resnet_classify' object)"),
        ('{"resnet_classify": {"top_k": 5, "cwd": "/"}}', "has no valid 'model'"),
        ('{"resnet_classify": {"model": "m", "cwd": "/"}}', "has no valid 'top_k'"),
        ('{"resnet_classify": {"model": "m", "top_k": 5}}', "has no valid 'cwd'"),
    ],
    ids=["corrupt", "foreign", "no-model", "no-top-k", "no-cwd"],
)
def test_resume_refuses_a_damaged_metadata_file(
    sidecar: str, why: str, tiny_model: Path, other_model: Path, photos: Path, tmp_path: Path
) -> None:
    """A damaged metadata file turned resume's model check off (two models' records mixed,
    exit 0), or said "pass --model None"."""
    out = tmp_path / "labels.jsonl"
    classify_the_first(tiny_model, 2, photos, out)
    before = out.read_bytes()
    (tmp_path / "labels.jsonl.meta.json").write_text(sidecar)
    result = cli(other_model, photos, "-o", out, "--resume")
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    meta = str(tmp_path / "labels.jsonl.meta.json")
    assert line.startswith(f"Error: cannot resume {str(out)!r}: its metadata file {meta!r} ")
    assert why in line and "None" not in line
    assert line.endswith(
        ": move it away to resume checked by the records alone, or choose another output name"
    )
    assert out.read_bytes() == before


# --------------------------------------------------------------------------- issue 24: case 9


def test_report_takes_a_csv_cut_short_and_refuses_json_that_is_not_records(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    from resnet_cli.cli.report import report_app

    out = tmp_path / "labels.csv"
    assert cli(tiny_model, photos, "-o", out, "-k", "2").exit_code == 0
    whole = out.read_bytes()
    out.write_bytes(whole[: whole.rindex(b"\r\n", 0, len(whole) - 2) + 10])  # a full disk's cut
    page = tmp_path / "report.html"
    cut = runner.invoke(report_app, [str(out), "-o", str(page), "-q"])
    assert cut.exit_code == 0, cut.output
    assert page.read_text().count("photos/") >= 5  # the complete records are shown
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2]")
    for text in ("[1, 2]", '{"input": "x"}', "[[]]"):
        numbers.write_text(text)
        result = runner.invoke(report_app, [str(numbers), "-o", str(tmp_path / "r.html")])
        assert result.exit_code == 2, (text, result.output)
        [line] = error_lines(result.stderr)
        assert line.startswith(f"Error: {str(numbers)!r} is not a resnet-classify results file")


def test_a_blank_line_in_a_csv_does_not_block_resume(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    classify_the_first(tiny_model, 3, photos, out)
    lines = out.read_bytes().split(b"\r\n")
    out.write_bytes(b"\r\n".join([*lines[:4], b"", *lines[4:]]))  # an editor's blank line
    result = cli(tiny_model, photos, "-o", out, "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(inputs_of(out)) == sorted(str(p) for p in photos.iterdir())  # each once


def test_a_killed_overwrite_leaves_no_temporary_file_behind(
    tiny_model: Path, photos: Path, tmp_path: Path
) -> None:
    """SIGKILL cannot be caught: the next run that claims the output removes what the
    killed one left (``.labels.jsonl.PID.tmp``, its process gone and no lock on it)."""
    out = tmp_path / "labels.jsonl"
    out.write_text("precious\n")
    bystander = tmp_path / ".labels.jsonl.1.tmp.notes"  # not one of the tool's names
    bystander.write_text("mine")
    with loopback_server(lambda connection: time.sleep(30)) as server:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "resnet_cli", "-m", str(tiny_model), "-b", "1", "-q",
                str(sorted(photos.iterdir())[0]), f"{server}/stuck.jpg", "-o", str(out),
                "--overwrite",
            ],
            env={**os.environ, "RESNET_CLI_HTTP_TIMEOUT": "60"},
        )  # fmt: skip
        temporary = tmp_path / f".labels.jsonl.{process.pid}.tmp"
        deadline = time.monotonic() + 120
        while not (temporary.exists() and temporary.read_text().endswith("\n")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.kill()
        process.wait(timeout=30)
    assert temporary.exists() and out.read_text() == "precious\n"  # what SIGKILL leaves
    result = cli(tiny_model, photos, "-o", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["labels.jsonl", "labels.jsonl.meta.json", "photos", bystander.name]
    )


def test_report_on_a_full_disk_exits_4(
    tiny_model: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resnet_cli.output.report as report

    def full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(report, "write_report", full)
    page = tmp_path / "report.html"
    result = cli(tiny_model, photos, "-o", tmp_path / "labels.jsonl", "--report", page)
    assert result.exit_code == 4, result.output
    [line] = error_lines(result.stderr)
    assert line == f"Error: cannot write report {str(page)!r}: No space left on device"
