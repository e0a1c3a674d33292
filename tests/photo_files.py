"""Phone and camera files made in the test: HEIC and AVIF through Pillow and pillow-heif, and a
small DNG (a camera RAW) around a JPEG preview, built by hand (nothing writes RAW files)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image

# TIFF field types
_SHORT, _LONG, _ASCII, _BYTE, _SRATIONAL = 3, 4, 2, 1, 10


def save_heic(image: Image.Image, path: Path, exif: bytes | None = None) -> Path:
    """``image`` as a HEIC file (pillow-heif's encoder), with ``exif`` if given."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    image.save(path, format="HEIF", quality=95, **({"exif": exif} if exif else {}))
    return path


def save_avif(image: Image.Image, path: Path) -> Path:
    """``image`` as an AVIF file (Pillow's own encoder)."""
    image.save(path, format="AVIF", quality=95)
    return path


def save_dng(image: Image.Image, path: Path, orientation: int = 1) -> Path:
    """A minimal DNG: ``image`` as its JPEG preview (IFD 0) and a 16-bit Bayer mosaic of it as
    the raw data (a SubIFD), with the TIFF orientation tag a camera would set."""
    preview = io.BytesIO()
    image.convert("RGB").save(preview, "JPEG", quality=95)
    jpeg = preview.getvalue()
    width, height = image.size
    rgb = image.convert("RGB").tobytes()
    mosaic = bytearray()
    for y in range(height):
        for x in range(width):
            channel = (0, 1)[x % 2] if y % 2 == 0 else (1, 2)[x % 2]  # RGGB
            mosaic += struct.pack("<H", rgb[(y * width + x) * 3 + channel] * 64)
    make, model = b"Test\0", b"Made In Test\0"

    header_size = 8
    # Layout: header, IFD0, raw IFD, then the data blocks they point to.
    ifd0_count, raw_count = 16, 12
    ifd0_at = header_size
    raw_at = ifd0_at + 2 + 12 * ifd0_count + 4
    data_at = raw_at + 2 + 12 * raw_count + 4
    blocks: list[bytes] = []

    def place(block: bytes) -> int:
        offset = data_at + sum(len(b) for b in blocks)
        blocks.append(block + (b"\0" if len(block) % 2 else b""))
        return offset

    jpeg_at = place(jpeg)
    mosaic_at = place(bytes(mosaic))
    make_at, model_at = place(make), place(model)
    bits_at = place(struct.pack("<3H", 8, 8, 8))
    color_matrix = b"".join(
        struct.pack("<ii", v, 10000) for v in (10000, 0, 0, 0, 10000, 0, 0, 0, 10000)
    )
    matrix_at = place(color_matrix)

    def entry(tag: int, kind: int, count: int, value: int | bytes) -> bytes:
        if isinstance(value, bytes):
            return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        if kind == _SHORT and count == 1:
            return struct.pack("<HHIHH", tag, kind, count, value, 0)
        return struct.pack("<HHII", tag, kind, count, value)

    ifd0 = [
        entry(254, _LONG, 1, 1),  # NewSubFileType: reduced-resolution preview
        entry(256, _LONG, 1, width),
        entry(257, _LONG, 1, height),
        entry(258, _SHORT, 3, bits_at),
        entry(259, _SHORT, 1, 7),  # JPEG
        entry(262, _SHORT, 1, 6),  # YCbCr
        entry(271, _ASCII, len(make), make_at),
        entry(272, _ASCII, len(model), model_at),
        entry(273, _LONG, 1, jpeg_at),
        entry(274, _SHORT, 1, orientation),
        entry(277, _SHORT, 1, 3),
        entry(278, _LONG, 1, height),
        entry(279, _LONG, 1, len(jpeg)),
        entry(330, _LONG, 1, raw_at),  # SubIFDs
        entry(50706, _BYTE, 4, bytes((1, 4, 0, 0))),  # DNGVersion
        entry(50721, _SRATIONAL, 9, matrix_at),  # ColorMatrix1
    ]
    raw = [
        entry(254, _LONG, 1, 0),
        entry(256, _LONG, 1, width),
        entry(257, _LONG, 1, height),
        entry(258, _SHORT, 1, 16),
        entry(259, _SHORT, 1, 1),
        entry(262, _SHORT, 1, 32803),  # CFA
        entry(273, _LONG, 1, mosaic_at),
        entry(277, _SHORT, 1, 1),
        entry(278, _LONG, 1, height),
        entry(279, _LONG, 1, len(mosaic)),
        entry(33421, _SHORT, 2, struct.pack("<HH", 2, 2)),  # CFARepeatPatternDim
        entry(33422, _BYTE, 4, bytes((0, 1, 1, 2))),  # CFAPattern: RGGB
    ]
    assert len(ifd0) == ifd0_count and len(raw) == raw_count
    out = bytearray(b"II*\0" + struct.pack("<I", ifd0_at))
    out += struct.pack("<H", ifd0_count) + b"".join(ifd0) + struct.pack("<I", 0)
    out += struct.pack("<H", raw_count) + b"".join(raw) + struct.pack("<I", 0)
    out += b"".join(blocks)
    path.write_bytes(bytes(out))
    return path
