"""Reads are bounded: issue 16's cases 10-15 (bombs that slip past --max-pixels, inputs that
never end, downloads that trickle).

The bombs are decoded in a child process under an address-space limit, so a regression shows
as a failed test, never as a machine out of memory; the child reports its peak memory.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import loopback_server, scene

_NEXT_TO_PYTHON = Path(sys.executable).with_name("resnet-classify")
COMMAND = str(_NEXT_TO_PYTHON) if _NEXT_TO_PYTHON.exists() else shutil.which("resnet-classify")
ADDRESS_SPACE_MIB = 2048  # the child's hard limit: a full decode of any bomb here needs more
PEAK_MIB = 400  # what a refusal may cost at most, interpreter and Pillow included

DECODE = """
import json, resource, sys
limit = int(sys.argv[2]) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from resnet_cli.inputs.decode import ResizeRule, decode_image, read_file
from resnet_cli.errors import ImageError
try:
    image = decode_image(read_file(sys.argv[1]), resize=ResizeRule.convnext(224, 0.875))
    outcome = {"size": list(image.size)}
except ImageError as exc:
    outcome = {"error": str(exc)}
except BaseException as exc:
    outcome = {"crash": repr(exc)}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked parent through exec.
status = open("/proc/self/status").read().split("VmHWM:")[1]
outcome["peak_mib"] = int(status.split()[0]) / 1024
print(json.dumps(outcome))
"""


def decode_in_child(path: Path, timeout: float = 60) -> dict[str, Any]:
    """decode_image(read_file(path)) as the engine calls it, in a memory-capped child."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("measures peak memory from /proc/self/status (Linux)")
    result = subprocess.run(
        [sys.executable, "-c", DECODE, str(path), str(ADDRESS_SPACE_MIB)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def progressive_dc_only_jpeg(side: int) -> bytes:
    """A complete progressive grayscale JPEG of side x side: one DC scan, every block's DC
    difference coded as the one-bit code for 0. About side**2 / 512 bytes: 8 MB at 65000."""
    quant = segment(0xDB, b"\x00" + bytes([1] * 64))
    frame = segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00")
    huffman = segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # DC table 0: "0" -> 0
    scan = segment(0xDA, b"\x01\x01\x00\x00\x00\x00")  # component 1, Ss=Se=0, Ah=Al=0
    blocks = ((side + 7) // 8) ** 2
    data = bytes(blocks // 8) + b"\xff\x00" * (1 if blocks % 8 else 0)
    return b"\xff\xd8" + quant + frame + huffman + scan + data + b"\xff\xd9"


def with_claimed_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header saying width x height, the scan data unchanged."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def png_bomb(side: int) -> bytes:
    """A 1-bit all-black PNG of side x side pixels: tens of kilobytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def ico_wrapping(png: bytes) -> bytes:
    """An ICO whose directory says 256x256 (0, 0) around an embedded PNG of any size."""
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


# --------------------------------------------------------------------------- case 10


def test_a_jpeg_with_missing_scan_data_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # to read the header here
    small = io.BytesIO()
    scene(16, 16, seed=1).save(small, "JPEG", quality=75)
    path = tmp_path / "claims-65000.jpg"
    path.write_bytes(with_claimed_size(small.getvalue(), 65000, 65000))
    assert path.stat().st_size < 1000
    with Image.open(path) as header:
        assert header.size == (65000, 65000)
    outcome = decode_in_child(path)
    assert "truncated" in outcome.get("error", ""), outcome
    assert outcome["peak_mib"] < PEAK_MIB, outcome


def test_a_whole_small_jpeg_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "flat.jpg"
    Image.new("RGB", (4000, 3000), (120, 130, 140)).save(path, "JPEG", quality=10)
    assert path.stat().st_size < 200_000  # a flat picture compresses very well
    assert decode_in_child(path).get("size"), path


# --------------------------------------------------------------------------- case 11


def test_a_progressive_jpeg_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # to read the header here
    path = tmp_path / "progressive-65000.jpg"
    path.write_bytes(progressive_dc_only_jpeg(65000))
    with Image.open(path) as header:
        assert header.size == (65000, 65000) and header.info.get("progressive")
    outcome = decode_in_child(path)
    error = outcome.get("error", "")
    assert "too large" in error and "progressive" in error, outcome
    assert outcome["peak_mib"] < PEAK_MIB, outcome


def test_a_small_progressive_jpeg_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "progressive.jpg"
    scene(640, 480, seed=2).save(path, "JPEG", progressive=True)
    assert decode_in_child(path).get("size"), path


# --------------------------------------------------------------------------- case 12


@pytest.mark.parametrize("kind", ["dev-zero", "symlink-to-urandom", "sparse-4g"])
def test_endless_or_huge_inputs_are_refused_before_reading(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "input.jpg"
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "symlink-to-urandom":
        path.symlink_to("/dev/urandom")
    else:
        with open(path, "wb") as handle:
            handle.truncate(4 << 30)
    started = time.monotonic()
    outcome = decode_in_child(path)
    assert time.monotonic() - started < 30
    error = outcome.get("error", "")
    expected = "too large" if kind == "sparse-4g" else "not a regular file"
    assert expected in error, outcome
    assert outcome["peak_mib"] < PEAK_MIB, outcome


def test_the_size_cap_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_cli.errors import ImageError
    from resnet_cli.inputs.decode import read_file

    path = tmp_path / "two-mb.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(2 << 20))
    assert len(read_file(str(path))) == path.stat().st_size
    monkeypatch.setenv("RESNET_CLI_MAX_FILE_MB", "1")
    with pytest.raises(ImageError, match="RESNET_CLI_MAX_FILE_MB"):
        read_file(str(path))


# --------------------------------------------------------------------------- case 13


def test_an_ico_wrapping_a_huge_png_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.ico"
    path.write_bytes(ico_wrapping(png_bomb(24000)))
    outcome = decode_in_child(path)
    assert "too large" in outcome.get("error", ""), outcome
    assert outcome["peak_mib"] < PEAK_MIB, outcome


def test_a_plain_ico_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "icon.ico"
    scene(64, 64, seed=3).save(path, "ICO", sizes=[(64, 64)])
    assert decode_in_child(path).get("size"), path


# --------------------------------------------------------------------------- case 14


def trickle(where: str) -> Callable[[socket.socket], None]:
    """A reply that sends one byte every 0.2 s, in the headers or in the body, for at most
    60 s (bounded, so that a failing test still ends)."""
    headers = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 400\r\n\r\n"

    def respond(connection: socket.socket) -> None:
        if where == "body":
            connection.sendall(headers)
        payload = (headers if where == "headers" else b"") + b"\0" * 400
        for byte in payload[:300]:
            connection.sendall(bytes([byte]))
            time.sleep(0.2)

    return respond


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_download_ends_at_its_deadline(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet_cli.errors import ImageError
    from resnet_cli.inputs.fetch import fetch_url

    monkeypatch.delenv("HF_HUB_OFFLINE")
    outcome: list[BaseException | bytes] = []
    with loopback_server(trickle(where)) as server:
        url = f"{server}/slow.jpg"
        started = time.monotonic()

        def download() -> None:
            try:
                outcome.append(fetch_url(url, timeout=1))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=download, daemon=True)
        worker.start()
        worker.join(timeout=20)
        elapsed = time.monotonic() - started
    assert not worker.is_alive(), "the download was still running after 20 s"
    [error] = outcome
    assert isinstance(error, ImageError), error
    assert "longer than 2 s" in str(error), error
    assert elapsed < 4, elapsed  # twice the timeout for the whole download, retries included


# --------------------------------------------------------------------------- case 15


def test_a_fifo_named_on_the_command_line_is_an_error_at_once(
    tiny_model: Path, tmp_path: Path
) -> None:
    if COMMAND is None:
        pytest.skip("resnet-classify is not installed")
    first, last = tmp_path / "a.jpg", tmp_path / "z.jpg"
    scene(96, 80, seed=1).save(first)
    scene(96, 80, seed=2).save(last)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    command = [str(COMMAND), "-m", str(tiny_model), "--offline", "-q", "-f", "jsonl", "-b", "1"]
    result = subprocess.run(
        [*command, str(first), str(fifo), str(last)],
        capture_output=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["input"] for r in records] == [str(first), str(fifo), str(last)]
    assert "not a regular file" in records[1]["error"] and "FIFO" in records[1]["error"]
    assert "predictions" in records[0] and "predictions" in records[2]
