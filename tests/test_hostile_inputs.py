"""A hostile-input corpus, generated in tmp_path, through the installed CLI in a subprocess.

Every file is made here (no binary blobs in the repository): empty, truncated, zero-size and
corrupt files, a text file named .jpg, a PNG named .jpg, CMYK JPEG, 16-bit grayscale PNGs (one
bright, one dark), palette PNG with transparency, animated GIF, multi-page TIFF, JPEGs in all 8
EXIF orientations and with a malformed or invalid EXIF block, a 1x1 and a 10000x3 image, a
decompression bomb, an unreadable file, dangling and looping symlinks, a folder symlink loop, a
FIFO, and file names with spaces, quotes, commas, newlines, glob characters, non-UTF-8 bytes
and non-Latin scripts.

The CLI runs four times, concurrently, once for the whole module (its startup dominates):

- ``main``: ``resnet-classify -m MODEL --offline -f jsonl corpus EXPLICIT...``
- ``stdin``: the same inputs, one per record, NUL-separated on stdin with ``- -0``
- ``bomb``: the decompression bomb next to one good image
- ``fifo``: a folder holding a named pipe with an image name between two photos; it must not
  hang. It is also the baseline for the bomb run's CPU time and peak memory.

Several comparisons carry a control that must *differ* from the reference (an uncorrected
EXIF orientation, the other GIF frame or TIFF page, a 16-bit image clipped to white), so each
closeness check is shown able to fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image

from conftest import LABELS, scene

_NEXT_TO_PYTHON = Path(sys.executable).with_name("resnet-classify")
COMMAND = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("resnet-classify")
pytestmark = [
    pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed"),
    pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs POSIX (wait4, mkfifo, symlinks)"),
]

RUN_TIMEOUT_S = 240
TOP_K = 5
EXIF_TOLERANCE = 2e-2  # JPEG loss between separately encoded orientations
SAME_PIXELS_TOLERANCE = 1e-3  # the same decoded pixels, another file
BOMB_SIDE = 20_000  # 400 megapixels, above the default --max-pixels of 100 megapixels
BOMB_EXTRA_RSS_MIB = 300  # a full decode costs about 1.9 GiB more than the baseline run
BOMB_EXTRA_CPU_S = 3.0  # a full decode costs about 4.5 s of CPU more than the baseline run

T = Image.Transpose
# EXIF orientation -> how the upright picture is stored so that a viewer applying the tag
# shows it upright again (the inverse of the viewer's correction).
STORED_AS: dict[int, Image.Transpose | None] = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,  # stored turned 90 degrees counter-clockwise; the tag says turn it back
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}


# --------------------------------------------------------------------------- pictures


def striped(seed: int, period: int, width: int = 320, height: int = 240) -> Image.Image:
    """An asymmetric picture (horizontal stripes, a block of vertical ones on the left, a patch
    top-right) that the tiny model scores away from saturation and differently in every
    orientation, so an orientation mistake shows in the scores."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    first, second, third, patch = (rng.uniform(0, 255, 3) for _ in range(4))
    horizontal = (np.floor(y / period) % 2)[..., None]
    vertical = (np.floor(x / (period * 2)) % 2)[..., None]
    pixels = first * horizontal + second * (1 - horizontal)
    left = x < width / 3
    pixels[left] = (third * vertical + first * (1 - vertical))[left]
    pixels[(y < height / 4) & (x > width * 0.7)] = patch
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def upright_picture() -> Image.Image:
    return striped(seed=3, period=8)


def other_picture() -> Image.Image:
    return striped(seed=3, period=4)


def gray_8bit() -> np.ndarray:
    """Stripes over a left-to-right gradient, 8-bit."""
    stripes = np.asarray(upright_picture().convert("L"), dtype=np.float64)
    ramp = np.linspace(0, 150, stripes.shape[1])[None, :]
    return np.clip(stripes + ramp, 0, 255).round().astype(np.uint8)


def gray_16bit() -> np.ndarray:
    """The 8-bit picture at 16 bits, with low-order detail that scales back to the same value."""
    low = np.random.default_rng(0).integers(0, 128, size=gray_8bit().shape)
    return (gray_8bit().astype(np.uint32) * 257 + low).astype(np.uint16)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(image: Image.Image, orientation: int | None = None) -> bytes:
    options: dict[str, Any] = {"quality": 95, "subsampling": 0}
    if orientation is not None:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        options["exif"] = exif.tobytes()
    return encoded(image, "JPEG", **options)


def stored_for(orientation: int) -> Image.Image:
    method = STORED_AS[orientation]
    picture = upright_picture()
    return picture if method is None else picture.transpose(method)


def animated_gif() -> bytes:
    return encoded(
        upright_picture(),
        "GIF",
        save_all=True,
        append_images=[other_picture()],
        duration=100,
        loop=0,
    )


def gif_frame(index: int) -> bytes:
    with Image.open(io.BytesIO(animated_gif())) as gif:
        gif.seek(index)
        return encoded(gif.convert("RGB"), "PNG")


def multipage_tiff() -> bytes:
    return encoded(upright_picture(), "TIFF", save_all=True, append_images=[other_picture()])


def tiff_page(index: int) -> bytes:
    with Image.open(io.BytesIO(multipage_tiff())) as tiff:
        tiff.seek(index)
        return encoded(tiff.convert("RGB"), "PNG")


def palette_with_transparency() -> bytes:
    palette = upright_picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encoded(palette, "PNG", transparency=0)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int) -> bytes:
    """A 1-bit all-black PNG of side x side pixels: tens of kilobytes on disk."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the packed pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def scene_jpeg(seed: int) -> bytes:
    return encoded(scene(160, 120, seed), "JPEG", quality=90)


def scene_png(seed: int) -> bytes:
    return encoded(scene(160, 120, seed), "PNG")


def truncated_jpeg() -> bytes:
    data = encoded(scene(320, 240, 11), "JPEG", quality=90)
    return data[: len(data) // 2]


def corrupt_header_jpeg() -> bytes:
    data = bytearray(encoded(scene(320, 240, 12), "JPEG", quality=90))
    data[3:40] = b"\x00\x13\x37garbage where the JFIF/DQT headers were"[:37]
    return bytes(data)


def zero_size_png() -> bytes:
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def truncated_png() -> bytes:
    data = encoded(scene(320, 240, 18), "PNG")
    return data[: len(data) // 2]


def malformed_exif_jpeg() -> bytes:
    """The upright picture with an EXIF block whose first IFD offset points past its end."""
    data = jpeg(upright_picture())
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\xff\xff\xff\xf0" + b"\x13\x37" * 20
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def gray_16bit_dark() -> np.ndarray:
    """A dark 16-bit picture: every sample at most 255 of 65535 (under 0.4% brightness)."""
    return gray_8bit().astype(np.uint16)


def gray_8bit_of_dark() -> np.ndarray:
    """What the dark 16-bit picture is at 8 bits: nearly black (0s and 1s)."""
    return (gray_16bit_dark() / 257).round().astype(np.uint8)


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Case:
    """One input: its name as the record shows it, how to make it, and what to expect.

    ``error``: None when the input must be classified; else keywords, one of which the error
    message must contain (case-insensitive).
    """

    name: str
    make: Callable[[bytes], None]
    error: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def data(payload: Callable[[], bytes]) -> Callable[[bytes], None]:
    def make(path: bytes) -> None:
        with open(path, "wb") as handle:
            handle.write(payload())

    return make


def symlink(target: str) -> Callable[[bytes], None]:
    def make(path: bytes) -> None:
        os.symlink(os.fsencode(target), path)

    return make


def unreadable(path: bytes) -> None:
    data(lambda: scene_jpeg(13))(path)
    os.chmod(path, 0)


def self_loop(path: bytes) -> None:
    os.symlink(os.path.basename(path), path)


def folder(path: bytes) -> None:
    os.mkdir(path)


CORPUS = "corpus"
NOT_AN_IMAGE = ("unknown", "unrecognized", "not an image", "cannot identify", "format")
CORRUPT = (
    "corrupt",
    "broken",
    "invalid",
    "malformed",
    "unknown",
    "unrecognized",
    "cannot identify",
)
ZERO_SIZE = ("no pixels", "0x0", "corrupt", "invalid", "unknown", "empty")
NON_UTF8_FOLDER_NAME = os.fsdecode(b"latin1 caf\xe9.jpg")
NON_UTF8_FOLDER_NAME_2 = os.fsdecode(b"\xff\xfe invalid utf-8.png")
NON_UTF8_EXPLICIT_NAME = os.fsdecode(b"extra/caf\xe9 explicit.png")

# Files in the folder (classified or failing, each gets a record), in any order here.
FOLDER_CASES: list[Case] = [
    Case("photo.jpg", data(lambda: scene_jpeg(1))),
    Case("empty.jpg", data(lambda: b""), ("empty",)),
    Case('empty, "quoted" name.png', data(lambda: b""), ("empty",)),
    Case("truncated.jpg", data(truncated_jpeg), ("truncated",)),
    Case("truncated.png", data(truncated_png), ("truncated",)),
    Case("zero_size.png", data(zero_size_png), ZERO_SIZE),
    Case("text_not_image.jpg", data(lambda: b"just some text, not an image\n" * 20), NOT_AN_IMAGE),
    Case("corrupt_header.jpg", data(corrupt_header_jpeg), CORRUPT),
    Case("png_named.jpg", data(lambda: encoded(upright_picture(), "PNG"))),
    Case("png_named_reference.png", data(lambda: encoded(upright_picture(), "PNG"))),
    Case("cmyk.jpg", data(lambda: encoded(upright_picture().convert("CMYK"), "JPEG", quality=95))),
    Case("cmyk_reference_rgb.png", data(lambda: encoded(upright_picture(), "PNG"))),
    Case("gray16.png", data(lambda: encoded(Image.fromarray(gray_16bit()), "PNG"))),
    Case("gray16_reference_8bit.png", data(lambda: encoded(Image.fromarray(gray_8bit()), "PNG"))),
    Case(
        "gray16_clipped_control.png",
        data(
            lambda: encoded(Image.fromarray(np.clip(gray_16bit(), 0, 255).astype(np.uint8)), "PNG")
        ),
    ),
    Case("gray16_dark.png", data(lambda: encoded(Image.fromarray(gray_16bit_dark()), "PNG"))),
    Case(
        "gray16_dark_reference_8bit.png",
        data(lambda: encoded(Image.fromarray(gray_8bit_of_dark()), "PNG")),
    ),
    Case("palette_transparent.png", data(palette_with_transparency)),
    Case("animated.gif", data(animated_gif)),
    Case("animated_frame0_reference.png", data(lambda: gif_frame(0))),
    Case("animated_frame1_control.png", data(lambda: gif_frame(1))),
    Case("multipage.tif", data(multipage_tiff)),
    Case("multipage_page0_reference.png", data(lambda: tiff_page(0))),
    Case("multipage_page1_control.png", data(lambda: tiff_page(1))),
    Case("exif_upright_reference.jpg", data(lambda: jpeg(upright_picture()))),
    *(
        Case(f"exif_{n}.jpg", data(lambda n=n: jpeg(stored_for(n), orientation=n)))
        for n in range(1, 9)
    ),
    *(Case(f"exif_raw_{n}_no_tag.jpg", data(lambda n=n: jpeg(stored_for(n)))) for n in range(2, 9)),
    Case("exif_malformed_block.jpg", data(malformed_exif_jpeg)),
    Case("exif_orientation_9_invalid.jpg", data(lambda: jpeg(upright_picture(), orientation=9))),
    Case("one_pixel.png", data(lambda: encoded(Image.new("RGB", (1, 1), (200, 30, 40)), "PNG"))),
    Case("elongated_10000x3.png", data(lambda: encoded(scene(10_000, 3, 14), "PNG"))),
    Case("unreadable.jpg", unreadable, ("permission",)),
    Case("dangling_symlink.jpg", symlink("does-not-exist.jpg"), ("dangling",)),
    Case("symlink_loop.jpg", self_loop, ("loop",)),
    Case("name with spaces.jpg", data(lambda: scene_jpeg(2))),
    Case("quotes 'single' and \"double\".jpg", data(lambda: scene_jpeg(3))),
    Case("commas,in,the,name.png", data(lambda: scene_png(4))),
    Case("new\nline.jpg", data(lambda: scene_jpeg(5))),
    Case("tab\there.png", data(lambda: scene_png(6))),
    Case("glob chars [a-z]* ?.png", data(lambda: scene_png(7))),
    Case("-dash-first.jpg", data(lambda: scene_jpeg(8))),
    Case(NON_UTF8_FOLDER_NAME, data(lambda: scene_jpeg(9))),
    Case(NON_UTF8_FOLDER_NAME_2, data(lambda: scene_png(10))),
    Case("Кошка на диване.jpg", data(lambda: scene_jpeg(15))),
    Case("猫の写真.png", data(lambda: scene_png(16))),
    Case("zz_nested/inside.png", data(lambda: scene_png(17))),
]

# Entries in the folder that must produce no record at all.
FOLDER_SKIPPED: list[tuple[str, Callable[[bytes], None]]] = [
    (".hidden.jpg", data(lambda: scene_jpeg(20))),
    ("notes.txt", data(lambda: b"not an image extension\n")),
    ("loop_to_self", symlink(".")),  # a folder symlink to the folder itself
    ("zz_nested/up", symlink("..")),  # a folder symlink to its parent
]

# Given on the command line after the folder, in this order.
EXPLICIT_CASES: list[Case] = [
    Case(
        f"extra/bomb_{BOMB_SIDE}x{BOMB_SIDE}.png",
        data(lambda: png_bomb(BOMB_SIDE)),
        ("too large", "max-pixels"),
    ),
    Case("extra/png payload.data", data(lambda: scene_png(21))),
    Case("extra/missing.jpg", lambda path: None, ("no such", "not found", "does not exist")),
    Case("extra/no_images_here", folder, ("no image",)),
    Case("extra/dangling explicit.jpg", symlink("gone.jpg"), ("dangling",)),
    Case(NON_UTF8_EXPLICIT_NAME, data(lambda: scene_png(22))),
    Case("extra/line\nbreak explicit.png", data(lambda: scene_png(23))),
]

FOLDER_EXPECTED = sorted(
    (Case(f"{CORPUS}/{c.name}", c.make, c.error) for c in FOLDER_CASES), key=lambda c: c.name
)
EXPECTED: list[Case] = [*FOLDER_EXPECTED, *EXPLICIT_CASES]
BY_NAME = {c.name: c for c in EXPECTED}
BOMB = EXPLICIT_CASES[0].name
UNREADABLE = f"{CORPUS}/unreadable.jpg"
GOOD_FOR_BOMB_RUN = f"{CORPUS}/photo.jpg"
FIFO_FOLDER = "fifo_folder"
FIFO = f"{FIFO_FOLDER}/pipe.jpg"
FIFO_NEIGHBOURS = [f"{FIFO_FOLDER}/a_photo.jpg", f"{FIFO_FOLDER}/z_photo.jpg"]
FIFO_GRACE_S = 15.0


def build_corpus(root: Path) -> None:
    base = os.fsencode(root)
    for directory in (CORPUS, f"{CORPUS}/zz_nested", "extra"):
        os.makedirs(os.path.join(base, os.fsencode(directory)), exist_ok=True)
    for case in EXPECTED:
        case.make(os.path.join(base, os.fsencode(case.name)))
    for name, make in FOLDER_SKIPPED:
        make(os.path.join(base, os.fsencode(f"{CORPUS}/{name}")))
    data(lambda: b"a note\n")(os.path.join(base, b"extra/no_images_here/readme.txt"))
    os.mkdir(root / FIFO_FOLDER)
    for seed, name in enumerate(FIFO_NEIGHBOURS):
        (root / name).write_bytes(scene_jpeg(30 + seed))
    os.mkfifo(root / FIFO)  # nobody ever writes to it: opening it for reading blocks


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    label: str
    returncode: int
    stdout: bytes
    stderr: str
    maxrss_mib: float
    cpu_s: float
    wall_s: float
    killed: bool = False  # it did not finish in time and was killed

    @property
    def records(self) -> list[dict[str, Any]]:
        assert not self.killed, self.describe()
        return parse_jsonl(self.stdout)

    def describe(self) -> str:
        state = f"killed after {self.wall_s:.0f}s" if self.killed else f"exit {self.returncode}"
        return f"{self.label} run: {state}\n--- stderr ---\n{self.stderr[-3000:]}"


def parse_jsonl(stdout: bytes) -> list[dict[str, Any]]:
    """bytes -> strict UTF-8 -> one JSON object per line (newlines inside names are escaped)."""
    text = stdout.decode("utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


@dataclass(frozen=True)
class Job:
    args: list[str]
    stdin: bytes | None = None
    # Kill it if it is still running this many seconds after the ``paced_by`` run finished
    # (a run doing the same work without the hostile input): a deadline that holds on a
    # loaded machine as well as on an idle one.
    paced_by: str | None = None
    grace_s: float = 0.0


class Pending:
    """A started CLI process whose output goes to files, reaped with wait4 for its rusage."""

    def __init__(self, label: str, job: Job, cwd: Path):
        self.label = label
        logs = cwd / "logs"
        logs.mkdir(exist_ok=True)
        self.out_path, self.err_path = logs / f"{label}.out", logs / f"{label}.err"
        stdin_path = logs / f"{label}.in"
        stdin_path.write_bytes(job.stdin or b"")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("RESNET_CLI_DEBUG", None)
        with (
            open(stdin_path, "rb") as stdin_file,
            open(self.out_path, "wb") as out,
            open(self.err_path, "wb") as err,
        ):
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [os.fsencode(str(COMMAND)), *map(os.fsencode, job.args)],
                cwd=cwd,
                stdin=stdin_file if job.stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
            )

    def poll(self, kill: bool = False) -> Run | None:
        if kill:
            self.process.kill()
        pid, status, usage = os.wait4(self.process.pid, 0 if kill else os.WNOHANG)
        if pid == 0:
            return None
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return Run(
            label=self.label,
            returncode=self.process.returncode,
            stdout=self.out_path.read_bytes(),
            stderr=self.err_path.read_bytes().decode("utf-8", "replace"),
            maxrss_mib=usage.ru_maxrss / 1024,  # kilobytes on Linux
            cpu_s=usage.ru_utime + usage.ru_stime,
            wall_s=time.monotonic() - self.started,
            killed=kill,
        )


def run_all(jobs: dict[str, Job], cwd: Path) -> dict[str, Run]:
    """Run the jobs concurrently; one that overstays its deadline is killed and marked so."""
    pending = {label: Pending(label, job, cwd) for label, job in jobs.items()}
    done: dict[str, Run] = {}
    finished_at: dict[str, float] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while pending:
            now = time.monotonic()
            for label, process in list(pending.items()):
                job = jobs[label]
                paced = job.paced_by in finished_at
                overdue = now > deadline or (
                    paced and now > finished_at[str(job.paced_by)] + job.grace_s
                )
                run = process.poll(kill=overdue)
                if run is not None:
                    done[label] = run
                    finished_at[label] = now
                    del pending[label]
            time.sleep(0.05)
    finally:
        for process in pending.values():
            process.poll(kill=True)
    return done


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    build_corpus(root)
    return root


@pytest.fixture(scope="module")
def permissions_apply(corpus_root: Path) -> bool:
    """Whether the chmod 000 file is unreadable to us (not so for root: os.geteuid() == 0)."""
    try:
        with open(corpus_root / UNREADABLE, "rb"):
            return False
    except PermissionError:
        return True


@pytest.fixture(scope="module")
def runs(tiny_model: Path, corpus_root: Path) -> dict[str, Run]:
    root = corpus_root
    base = ["-m", str(tiny_model), "--offline", "-f", "jsonl"]
    listing = b"".join(os.fsencode(case.name) + b"\0" for case in EXPECTED)  # find -print0
    return run_all(
        {
            "main": Job([*base, CORPUS, *(c.name for c in EXPLICIT_CASES)]),
            "stdin": Job([*base, "-", "-0"], stdin=listing),
            "bomb": Job([*base, BOMB, GOOD_FOR_BOMB_RUN]),
            # Two small photos (and a FIFO, which costs no CPU or memory whether it blocks or
            # is skipped): also the baseline the bomb run is measured against.
            "fifo": Job([*base, FIFO_FOLDER], paced_by="bomb", grace_s=FIFO_GRACE_S),
        },
        cwd=root,
    )


@pytest.fixture(scope="module")
def records(runs: dict[str, Run]) -> dict[str, dict[str, Any]]:
    """The main run's records by input name (the order is checked on its own)."""
    return {record["input"]: record for record in runs["main"].records}


def record_for(records: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    assert name in records, f"no record for input {name!r}; inputs: {sorted(records)}"
    return records[name]


def scores(record: dict[str, Any]) -> dict[str, float]:
    assert "predictions" in record, f"expected predictions, got {record!r}"
    return {p["label"]: p["score"] for p in record["predictions"]}


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The largest score difference over the labels either record lists (unlisted: 0)."""
    sa, sb = scores(a), scores(b)
    return max(abs(sa.get(label, 0.0) - sb.get(label, 0.0)) for label in {*sa, *sb})


def top1(record: dict[str, Any]) -> str:
    return record["predictions"][0]["label"]


# --------------------------------------------------------------------------- whole-run checks


def test_exit_code_is_1_when_some_inputs_fail(runs: dict[str, Run]) -> None:
    main = runs["main"]
    assert main.returncode == 1, main.describe()


def test_no_traceback_on_stderr(runs: dict[str, Run]) -> None:
    for run in runs.values():
        assert "Traceback" not in run.stderr, run.describe()
        assert "unexpected failure" not in run.stderr, run.describe()


@pytest.mark.parametrize("label", ["main", "stdin"])
def test_no_raw_python_warnings_on_stderr(runs: dict[str, Run], label: str) -> None:
    """Library warnings (Pillow's "Corrupt EXIF data" for the malformed EXIF block, ...) are
    not messages for the user; the decoder means to silence them."""
    run = runs[label]
    leaked = [line for line in run.stderr.splitlines() if re.search(r"\w+Warning: ", line)]
    assert not leaked, run.describe()


def test_stdout_is_utf8_jsonl_records_only(runs: dict[str, Run]) -> None:
    stdout = runs["main"].stdout
    text = stdout.decode("utf-8")  # non-UTF-8 names must arrive as \udcXX escapes
    assert text.endswith("\n")
    for line in text.split("\n")[:-1]:
        record = json.loads(line)
        assert isinstance(record, dict)
        assert set(record) in ({"input", "predictions"}, {"input", "error"}), record


def test_one_record_per_input_in_order(runs: dict[str, Run]) -> None:
    got = [record["input"] for record in runs["main"].records]
    expected = [case.name for case in EXPECTED]
    missing = [name for name in expected if name not in got]
    unexpected = [name for name in got if name not in expected]
    assert not missing, f"inputs without a record: {missing}"
    assert not unexpected, f"records for inputs that should have none: {unexpected}"
    assert got == expected


def test_hidden_non_image_and_looping_entries_get_no_record(runs: dict[str, Run]) -> None:
    inputs = [record["input"] for record in runs["main"].records]
    for name, _ in FOLDER_SKIPPED:
        path = f"{CORPUS}/{name}"
        assert not [i for i in inputs if i == path or i.startswith(path + "/")], path


# --------------------------------------------------------------------------- per input


@pytest.mark.parametrize("name", [case.name for case in EXPECTED], ids=ascii)
def test_input(records: dict[str, dict[str, Any]], permissions_apply: bool, name: str) -> None:
    case = BY_NAME[name]
    record = record_for(records, name)
    if name == UNREADABLE and not permissions_apply:
        pytest.skip(
            "file permissions do not apply here (running as root, os.geteuid() == 0, or with "
            "CAP_DAC_OVERRIDE): the chmod 000 file is readable"
        )
    if case.ok:
        assert "error" not in record, f"{name!r} should be classified, got {record!r}"
        predictions = record["predictions"]
        assert [p["rank"] for p in predictions] == list(range(1, TOP_K + 1)), record
        for p in predictions:
            assert p["label"] in LABELS, record
            assert p["class_id"] == LABELS.index(p["label"]), record
            assert 0.0 <= p["score"] <= 1.0, record
        assert len({p["label"] for p in predictions}) == TOP_K, record
        listed = [p["score"] for p in predictions]
        assert listed == sorted(listed, reverse=True), record
    else:
        assert "predictions" not in record, f"{name!r} must fail, not be classified: {record!r}"
        error = record.get("error")
        assert isinstance(error, str) and error.strip(), record
        assert "\n" not in error, record
        assert any(word in error.lower() for word in case.error or ()), (
            f"{name!r}: error {error!r} should mention one of {case.error}"
        )


# --------------------------------------------------------------------------- decoding right


def test_png_named_jpg_is_decoded_as_png(records: dict[str, dict[str, Any]]) -> None:
    mislabelled = record_for(records, f"{CORPUS}/png_named.jpg")
    reference = record_for(records, f"{CORPUS}/png_named_reference.png")
    assert distance(mislabelled, reference) <= SAME_PIXELS_TOLERANCE, (mislabelled, reference)


def test_cmyk_jpeg_has_the_colours_of_the_rgb_picture(records: dict[str, dict[str, Any]]) -> None:
    cmyk = record_for(records, f"{CORPUS}/cmyk.jpg")
    reference = record_for(records, f"{CORPUS}/cmyk_reference_rgb.png")
    assert top1(cmyk) == top1(reference), (cmyk, reference)
    assert distance(cmyk, reference) <= EXIF_TOLERANCE, (cmyk, reference)


def test_16bit_grayscale_is_scaled_not_clipped(records: dict[str, dict[str, Any]]) -> None:
    sixteen = record_for(records, f"{CORPUS}/gray16.png")
    eight = record_for(records, f"{CORPUS}/gray16_reference_8bit.png")
    clipped = record_for(records, f"{CORPUS}/gray16_clipped_control.png")
    # The control: clipping 16-bit values to 8 bits changes the scores, so this test can fail.
    assert distance(clipped, eight) > 10 * SAME_PIXELS_TOLERANCE, (clipped, eight)
    assert top1(sixteen) == top1(eight), (sixteen, eight)
    assert distance(sixteen, eight) <= SAME_PIXELS_TOLERANCE, (sixteen, eight)


def test_dark_16bit_grayscale_is_scaled_by_bit_depth_not_by_content(
    records: dict[str, dict[str, Any]],
) -> None:
    """A 16-bit image whose samples are all <= 255 is nearly black; it must not be read as an
    8-bit image (which would make it as bright as the 8-bit picture)."""
    dark = record_for(records, f"{CORPUS}/gray16_dark.png")
    reference = record_for(records, f"{CORPUS}/gray16_dark_reference_8bit.png")
    bright = record_for(records, f"{CORPUS}/gray16_reference_8bit.png")
    # The control: nearly black and the bright picture score differently.
    assert distance(reference, bright) > 10 * SAME_PIXELS_TOLERANCE, (reference, bright)
    assert distance(dark, reference) <= SAME_PIXELS_TOLERANCE, (
        f"dark 16-bit: {scores(dark)}; as 8 bits (nearly black): {scores(reference)}; "
        f"the same samples read as 8-bit: {scores(bright)}"
    )


@pytest.mark.parametrize("name", ["exif_malformed_block.jpg", "exif_orientation_9_invalid.jpg"])
def test_bad_exif_keeps_the_image_as_stored(records: dict[str, dict[str, Any]], name: str) -> None:
    record = record_for(records, f"{CORPUS}/{name}")
    upright = record_for(records, f"{CORPUS}/exif_upright_reference.jpg")
    assert distance(record, upright) <= EXIF_TOLERANCE, (record, upright)


@pytest.mark.parametrize(
    ("name", "first_name", "second_name"),
    [
        ("animated.gif", "animated_frame0_reference.png", "animated_frame1_control.png"),
        ("multipage.tif", "multipage_page0_reference.png", "multipage_page1_control.png"),
    ],
)
def test_multi_frame_files_use_the_first_frame(
    records: dict[str, dict[str, Any]], name: str, first_name: str, second_name: str
) -> None:
    record = record_for(records, f"{CORPUS}/{name}")
    first = record_for(records, f"{CORPUS}/{first_name}")
    second = record_for(records, f"{CORPUS}/{second_name}")
    assert distance(first, second) > EXIF_TOLERANCE, "the two frames must score differently"
    assert distance(record, first) <= SAME_PIXELS_TOLERANCE, (record, first)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(records: dict[str, dict[str, Any]], orientation: int) -> None:
    tagged = record_for(records, f"{CORPUS}/exif_{orientation}.jpg")
    upright = record_for(records, f"{CORPUS}/exif_upright_reference.jpg")
    assert top1(tagged) == top1(upright), (tagged, upright)
    assert distance(tagged, upright) <= EXIF_TOLERANCE, (tagged, upright)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_uncorrected_orientation_scores_differ(
    records: dict[str, dict[str, Any]], orientation: int
) -> None:
    """The control: the stored pixels without the tag score differently from the upright
    picture, so ``test_exif_orientation_is_applied`` fails if the tag is ignored."""
    raw = record_for(records, f"{CORPUS}/exif_raw_{orientation}_no_tag.jpg")
    upright = record_for(records, f"{CORPUS}/exif_upright_reference.jpg")
    assert distance(raw, upright) > EXIF_TOLERANCE, (raw, upright)


def test_broken_inputs_never_borrow_a_neighbours_prediction(
    runs: dict[str, Run], permissions_apply: bool
) -> None:
    got = runs["main"].records
    for index, record in enumerate(got):
        case = BY_NAME.get(record["input"])
        if case is None or case.ok or (case.name == UNREADABLE and not permissions_apply):
            continue
        neighbours = [got[i] for i in (index - 1, index + 1) if 0 <= i < len(got)]
        assert "predictions" not in record, (record, neighbours)


# --------------------------------------------------------------------------- bomb and stdin


def test_decompression_bomb_is_refused_quickly_in_bounded_memory(runs: dict[str, Run]) -> None:
    # The baseline: the same model loaded and small photos classified, nothing large decoded.
    bomb, baseline = runs["bomb"], runs["fifo"]
    assert not bomb.killed and bomb.returncode == 1, bomb.describe()
    got = bomb.records
    assert [r["input"] for r in got] == [BOMB, GOOD_FOR_BOMB_RUN], got
    error = got[0].get("error", "")
    assert "max-pixels" in error.lower() or "too large" in error.lower(), got[0]
    assert f"{BOMB_SIDE}x{BOMB_SIDE}" in error or "megapixel" in error.lower(), got[0]
    assert "predictions" in got[1], got[1]
    extra_rss = bomb.maxrss_mib - baseline.maxrss_mib
    extra_cpu = bomb.cpu_s - baseline.cpu_s
    assert extra_rss < BOMB_EXTRA_RSS_MIB, (
        f"the bomb run peaked at {bomb.maxrss_mib:.0f} MiB, the baseline run at "
        f"{baseline.maxrss_mib:.0f} MiB: the bomb was decoded"
    )
    assert extra_cpu < BOMB_EXTRA_CPU_S, (
        f"the bomb run used {bomb.cpu_s:.1f}s of CPU, the baseline run {baseline.cpu_s:.1f}s"
    )


def test_fifo_in_a_folder_does_not_hang_the_run(runs: dict[str, Run]) -> None:
    """A named pipe with an image name is not an image file: skip it or report an error, but
    never wait forever on it (nobody writes to it)."""
    fifo = runs["fifo"]
    assert not fifo.killed, (
        f"still running {FIFO_GRACE_S:.0f}s after the bomb run finished: it hangs on the "
        f"FIFO {FIFO!r}; records written before the kill: {fifo.stdout!r}\n{fifo.describe()}"
    )
    got = fifo.records
    inputs = [r["input"] for r in got]
    assert inputs in (FIFO_NEIGHBOURS, [FIFO_NEIGHBOURS[0], FIFO, FIFO_NEIGHBOURS[1]]), got
    assert all("predictions" in r for r in got if r["input"] != FIFO), got
    for record in got:
        if record["input"] == FIFO:
            assert "predictions" not in record, record
            assert any(
                word in record.get("error", "").lower()
                for word in ("not a regular file", "fifo", "pipe", "special", "not a file")
            ), record
    assert fifo.returncode == (1 if FIFO in inputs else 0), fifo.describe()


def test_stdin_null_separated_gives_the_same_records(runs: dict[str, Run]) -> None:
    main, piped = runs["main"], runs["stdin"]
    assert piped.returncode == main.returncode, piped.describe()
    got, want = piped.records, main.records
    assert [r["input"] for r in got] == [r["input"] for r in want]
    assert [r["input"] for r in got] == [case.name for case in EXPECTED]
    for a, b in zip(got, want, strict=True):
        assert a.get("error") == b.get("error"), (a, b)
        if "predictions" in b:
            assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
            assert distance(a, b) <= SAME_PIXELS_TOLERANCE, (a, b)
