"""Issue 24: a property test over random sequences of runs on a small tree of photos.

Each step is a run of the command with a random --organize-mode (link, symlink, copy, move),
organize folder (outside the input folder, or inside it, named through a symlink or by its
real path), input spelling, output format, and a new output, --resume or --overwrite of
the last one; some runs are killed with SIGKILL after a small random delay. After every
step: each photo's bytes are still in a regular file somewhere, and nothing outside the
input folder, the organize folders and the outputs' folder changed.

Bounded for CI: a few examples of a few runs each (about 20-40 s on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import scene

PHOTOS = 5
step = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["link", "symlink", "copy", "move"]),
        # The organize folder: beside the photos, or inside their folder, named through the
        # symlink photos -> real/photos or by its real path.
        "organize": st.sampled_from(["sorted", "photos/sorted", "real/photos/sorted"]),
        "inputs": st.sampled_from(["photos", "real/photos", "photos/p1.jpg"]),
        "output": st.sampled_from(["new", "resume", "overwrite"]),
        "format": st.sampled_from(["jsonl", "csv"]),
        # One run in three is killed, after up to 0.6 s (a whole run takes about 0.4 s).
        "kill": st.tuples(st.integers(0, 2), st.floats(min_value=0.0, max_value=0.6)).map(
            lambda drawn: drawn[1] if drawn[0] == 0 else None
        ),
    }
)


def run(mode: str, organize: str, inputs: str = "photos", output: str = "new") -> dict[str, Any]:
    return {
        "mode": mode,
        "organize": organize,
        "inputs": inputs,
        "output": output,
        "format": "jsonl",
        "kill": None,
    }


def make_tree(base: Path) -> dict[str, bytes]:
    """base/real/photos (the photos), base/photos -> real/photos, base/elsewhere (a
    bystander: a file, and a link to a photo), base/out (the outputs)."""
    photos = base / "real" / "photos"
    photos.mkdir(parents=True)
    for i in range(PHOTOS):
        scene(72 + i, 60, seed=200 + i).save(photos / f"p{i}.jpg", quality=80)
    (base / "photos").symlink_to(photos)
    (base / "elsewhere").mkdir()
    (base / "elsewhere" / "notes.txt").write_text("not the tool's")
    (base / "elsewhere" / "link.jpg").symlink_to(photos / "p0.jpg")
    (base / "out").mkdir()
    return {f"p{i}.jpg": (photos / f"p{i}.jpg").read_bytes() for i in range(PHOTOS)}


def outside(base: Path) -> dict[str, Any]:
    """Everything below ``base`` that the runs must leave as it is: all but the input
    folder (with the organize folder inside it), the other organize folder and the outputs."""
    allowed = (base / "real" / "photos", base / "sorted", base / "out")
    state: dict[str, Any] = {}
    for root, folders, files in os.walk(base):
        folders[:] = [f for f in folders if Path(root, f) not in allowed]
        for name in [*folders, *files]:
            path = Path(root, name)
            if path in allowed:
                continue
            key = str(path.relative_to(base))
            if path.is_symlink():
                state[key] = ("link", os.readlink(path))
            elif path.is_file():
                state[key] = ("file", path.read_bytes())
            else:
                state[key] = ("folder",)
    return state


def kept_bytes(base: Path) -> set[bytes]:
    """The bytes of every regular file below ``base`` (a symlink holds nothing)."""
    found = set()
    for root, _, files in os.walk(base):
        for name in files:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                found.add(path.read_bytes())
    return found


def command(model: Path, base: Path, step: dict[str, Any], outputs: dict[str, str]) -> list[str]:
    fmt = step["format"]
    flags: list[str] = []
    if step["output"] != "new" and fmt in outputs:
        out = outputs[fmt]
        flags = ["--resume" if step["output"] == "resume" else "--overwrite"]
    else:
        out = outputs[fmt] = f"out/run{len(os.listdir(base / 'out'))}.{fmt}"
    return [
        sys.executable, "-m", "resnet_cli", "-m", str(model), "-q", "-b", "2", "-j", "1",
        step["inputs"], "-o", out, *flags,
        "--organize", step["organize"], "--organize-mode", step["mode"],
    ]  # fmt: skip


@example(steps=[run("symlink", "sorted"), run("move", "sorted")])  # case 1
@example(steps=[run("move", "photos/sorted"), run("move", "real/photos/sorted")])  # case 2
@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=2, max_size=4))
def test_any_sequence_of_runs_keeps_every_photo(tiny_model: Path, steps: list) -> None:
    base = Path(tempfile.mkdtemp(prefix="organize-property-"))
    try:
        photos = make_tree(base)
        before = outside(base)
        outputs: dict[str, str] = {}
        for number, step in enumerate(steps):
            args = command(tiny_model, base, step, outputs)
            process = subprocess.Popen(
                args,
                cwd=base,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            if step["kill"] is not None:
                time.sleep(step["kill"])
                process.send_signal(signal.SIGKILL)
            _, stderr = process.communicate(timeout=300)
            said = stderr.decode(errors="replace")
            context = f"step {number} of {steps}: {said}"
            if step["kill"] is None or process.returncode != -signal.SIGKILL:
                assert process.returncode in (0, 1, 2), context
                assert "Traceback" not in said and "unexpected" not in said, context
            lost = [name for name, data in photos.items() if data not in kept_bytes(base)]
            assert not lost, f"photos lost: {lost}; {context}"
            assert outside(base) == before, context
    finally:
        shutil.rmtree(base, ignore_errors=True)
