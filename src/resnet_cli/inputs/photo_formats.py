"""The formats phones and cameras write beyond Pillow's own: HEIC/HEIF (pillow-heif), AVIF
(Pillow's, when it was built with it) and camera RAW (rawpy, from the embedded preview).

The one place an encoded image is opened. Each optional backend is imported here, when the
first such file is decoded, never when the command starts.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any

from PIL import Image

from ..errors import ImageError, install_extra

HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
AVIF_EXTENSIONS = frozenset({".avif"})
RAW_EXTENSIONS = frozenset({".cr2", ".nef", ".arw", ".dng"})
NEEDS_RAW = f"camera RAW needs the raw extra: {install_extra('raw')}"
NEEDS_AVIF = (
    "cannot read AVIF: this Pillow was built without AVIF support; "
    "install Pillow 11.3 or later from PyPI (pip install -U pillow)"
)
NEEDS_HEIF = "cannot read HEIC/HEIF: the pillow-heif package is missing; pip install pillow-heif"

# ISO base media file brands (the ftyp box): AVIF's, then HEIF's (an AVIF also lists mif1).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_heif_lock = threading.Lock()
_heif_registered = False
# LibRaw's flip code -> the EXIF orientation that turns the picture upright.
_RAW_FLIP_TO_ORIENTATION = {3: 3, 5: 8, 6: 6}


def container_brand(data: bytes) -> str | None:
    """'avif' or 'heif' for an ISO base media (HEIF family) file, by its ftyp box; else None."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[:4], "big")
    end = min(max(size, 16), len(data), 4096)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heif"
    return None


def is_raw_name(name: str | None) -> bool:
    """Whether a file name has a camera RAW extension (case-insensitive)."""
    return name is not None and os.path.splitext(name)[1].lower() in RAW_EXTENSIONS


def open_image(data: bytes, name: str | None = None) -> Image.Image:
    """Open encoded image bytes lazily as a Pillow image (pixels not yet decoded).

    ``name``: the file's name or URL, which says whether the bytes are a camera RAW (they are
    TIFF-like, so only the name tells). Raises ImageError when a needed backend is missing;
    anything else Pillow raises is left to the caller.
    """
    if is_raw_name(name):
        return open_raw_preview(data)
    brand = container_brand(data)
    if brand == "avif":
        from PIL import features

        if not features.check("avif"):
            raise ImageError(NEEDS_AVIF)
    elif brand == "heif":
        register_heif()
    return Image.open(io.BytesIO(data))


def register_heif() -> None:
    """Register pillow-heif's HEIF opener with Pillow, once per process."""
    global _heif_registered
    with _heif_lock:
        if _heif_registered:
            return
        try:
            import pillow_heif
        except ImportError:
            raise ImageError(NEEDS_HEIF) from None
        pillow_heif.register_heif_opener()
        _heif_registered = True


def open_raw_preview(data: bytes) -> Image.Image:
    """The preview JPEG (or bitmap) a camera embeds in its RAW file, turned as the camera was:
    for classifying, it is the picture, and it costs a fraction of demosaicing the sensor data."""
    try:
        import rawpy
    except ImportError:
        raise ImageError(NEEDS_RAW) from None
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            flip = int(raw.sizes.flip)
            try:
                thumb = raw.extract_thumb()
            except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
                # No usable preview: develop the sensor data at half size instead.
                return Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"not a readable camera RAW file: {_first_line(exc)}") from None
    image: Image.Image
    if isinstance(thumb.data, bytes):  # ThumbFormat.JPEG; a BITMAP is an RGB array
        image = Image.open(io.BytesIO(thumb.data))
    else:
        image = Image.fromarray(thumb.data)
    _orient_like_raw(image, flip)
    return image


def _orient_like_raw(image: Image.Image, flip: int) -> None:
    """Give a preview without its own EXIF orientation the RAW file's, so that ``upright``
    turns it as it turns a JPEG."""
    orientation = _RAW_FLIP_TO_ORIENTATION.get(flip)
    exif: Any = image.getexif()
    if orientation is not None and exif.get(0x0112, 1) == 1:
        exif[0x0112] = orientation


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
