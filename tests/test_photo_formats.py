"""Phone and camera photos: HEIC/HEIF, AVIF and camera RAW, each beside a JPEG of the same
picture, give the same answer on the real model; a missing backend is an error record that
says what to install, and the other inputs still run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from photo_files import save_avif, save_dng, save_heic
from resnet_cli.inputs import photo_formats
from resnet_cli.inputs.decode import decode_image
from resnet_cli.inputs.sources import Source, collect_inputs
from resnet_cli.pipeline.local import decode_source

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"
CATS = range(281, 286)
ESPRESSO = 967


def _sideways(name: str) -> tuple[Image.Image, bytes]:
    """The photo as a camera held sideways stores it (turned), and EXIF orientation 6."""
    image = Image.open(EXAMPLES / f"{name}.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to show
    return image.transpose(Image.Transpose.ROTATE_90), exif.tobytes()


@pytest.fixture(scope="module")
def phone_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each photo as JPEG, HEIC, HEIF, AVIF and DNG, stored sideways with EXIF orientation 6
    (the DNG with its TIFF orientation tag), in one folder."""
    folder = tmp_path_factory.mktemp("phone-photos")
    for name in ("chelsea", "coffee"):
        stored, exif = _sideways(name)
        stored.save(folder / f"{name}.jpg", "JPEG", quality=95, exif=exif)
        save_heic(stored, folder / f"{name}.heic", exif=exif)
        save_heic(stored, folder / f"{name}-copy.HEIF", exif=exif)
        upright = stored.transpose(Image.Transpose.ROTATE_270)
        save_avif(upright, folder / f"{name}.avif")
        save_dng(stored, folder / f"{name}.dng", orientation=6)
    return folder


def test_every_phone_format_gets_the_jpegs_answer_on_the_real_model(
    real_model: Path, phone_photos: Path
) -> None:
    result = run_cli(phone_photos, "--model", real_model, "-f", "jsonl", "-k", "3", "-q")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {Path(r["input"]).name: r for r in records}
    # The folder contributes every format, the upper-case extension included.
    assert sorted(by_name) == sorted(
        f"{n}{ext}"
        for n in ("chelsea", "coffee")
        for ext in (".jpg", ".heic", "-copy.HEIF", ".avif", ".dng")
    )
    for name, right in (("chelsea", CATS), ("coffee", range(ESPRESSO, ESPRESSO + 1))):
        jpeg_top = by_name[f"{name}.jpg"]["predictions"][0]["class_id"]
        assert jpeg_top in right
        for ext in (".heic", "-copy.HEIF", ".avif", ".dng"):
            top = by_name[f"{name}{ext}"]["predictions"][0]["class_id"]
            assert top == jpeg_top, (name, ext, by_name[f"{name}{ext}"])


@pytest.mark.parametrize("ext", [".heic", ".dng"])
def test_orientation_is_applied_as_for_jpeg(phone_photos: Path, ext: str) -> None:
    jpeg = decode_image((phone_photos / "chelsea.jpg").read_bytes())
    path = phone_photos / f"chelsea{ext}"
    other = decode_image(path.read_bytes(), name=str(path))
    assert jpeg.size == other.size == (451, 300)  # upright: wider than tall, as shown
    difference = np.abs(np.asarray(jpeg, np.float32) - np.asarray(other, np.float32)).mean()
    assert difference < 6, difference  # the same picture, up to compression


def _error_of(path: Path) -> str | None:
    return decode_source(Source(name=str(path), path=str(path)), resize=None).error


def test_raw_without_rawpy_is_an_error_record_naming_the_extra(
    phone_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rawpy", None)  # import rawpy raises ImportError
    assert _error_of(phone_photos / "coffee.dng") == photo_formats.NEEDS_RAW
    assert photo_formats.NEEDS_RAW == (
        "camera RAW needs the raw extra: pip install '.[raw]' in your resnet-classify clone "
        "(it adds rawpy)"
    )
    assert _error_of(phone_photos / "coffee.jpg") is None  # the others are unaffected


def test_raw_without_rawpy_through_the_command(
    tiny_model: Path, phone_photos: Path, tmp_path: Path
) -> None:
    # A child whose rawpy import fails, as on an install without the extra.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "rawpy.py").write_text("raise ImportError('no rawpy here')\n")
    env_path = f"{hide}:{':'.join(sys.path)}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnet_cli",
            str(phone_photos / "chelsea.dng"),
            str(phone_photos / "chelsea.heic"),
            "--model",
            str(tiny_model),
            "-f",
            "jsonl",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first == {"input": str(phone_photos / "chelsea.dng"), "error": photo_formats.NEEDS_RAW}
    assert second["predictions"]


def test_avif_without_pillow_support_says_so(
    phone_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import features

    real_check = features.check
    monkeypatch.setattr(
        features, "check", lambda name: False if name == "avif" else real_check(name)
    )
    assert _error_of(phone_photos / "chelsea.avif") == photo_formats.NEEDS_AVIF
    # Named .jpg, an AVIF is still known by its bytes.
    renamed = phone_photos.parent / "avif-named.jpg"
    renamed.write_bytes((phone_photos / "chelsea.avif").read_bytes())
    assert _error_of(renamed) == photo_formats.NEEDS_AVIF


def test_broken_phone_files_are_error_records(tmp_path: Path) -> None:
    heic = tmp_path / "cut.heic"
    buffer = io.BytesIO()
    save_heic(Image.new("RGB", (64, 64), "red"), tmp_path / "whole.heic")
    buffer.write((tmp_path / "whole.heic").read_bytes()[:200])
    heic.write_bytes(buffer.getvalue())
    dng = tmp_path / "cut.dng"
    dng.write_bytes(b"II*\0" + b"\0" * 100)
    assert (_error_of(heic) or "").startswith("not a readable image")
    assert (_error_of(dng) or "").startswith("not a readable camera RAW file")


def test_globs_pick_up_phone_formats(phone_photos: Path) -> None:
    names = [Path(s.name).name for s in collect_inputs([str(phone_photos / "chelsea*")])]
    assert names == sorted(
        ["chelsea.jpg", "chelsea.heic", "chelsea-copy.HEIF", "chelsea.avif", "chelsea.dng"]
    )


def test_container_brand_tells_avif_from_heif(phone_photos: Path) -> None:
    assert photo_formats.container_brand((phone_photos / "chelsea.avif").read_bytes()) == "avif"
    assert photo_formats.container_brand((phone_photos / "chelsea.heic").read_bytes()) == "heif"
    assert photo_formats.container_brand((phone_photos / "chelsea.jpg").read_bytes()) is None


def test_help_imports_no_image_backend() -> None:
    probe = (
        "import sys\nfrom resnet_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = ('pillow_heif', 'rawpy', 'torch')\n"
        "print([m for m in names if m in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
