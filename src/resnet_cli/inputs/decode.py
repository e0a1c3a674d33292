"""Bytes on disk -> an upright RGB image, with typed errors and a bound on decoded size."""

from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from ..errors import ImageError
from .photo_formats import open_image
from .sources import file_kind

# Our own bound comes first: we check the header size before decoding, try JPEG DCT
# downscaling for images above the bound, and say what to do about the rest. Pillow's guard
# stays on behind it, set by decode_image from --max-pixels to what no DCT downscaling could
# bring within it (it also checks what a container holds, such as an ICO's embedded PNG).
DRAFT_FACTOR = 64  # the 1/8 DCT scale divides the pixel count by 64
# Pillow warns about recoverable oddities (corrupt EXIF, palette transparency) with raw
# UserWarnings; a bad file's problems belong in its record, not on stderr. Set once here:
# warnings.catch_warnings() is not thread-safe and decoding runs in threads.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
# A resize rule whose processor centre-crops needs at most this aspect ratio of the image:
# a 10000x3 strip would otherwise be resized to 853333x256 (gigabytes) to keep a 224 crop.
MAX_ASPECT = 4
DEFAULT_MAX_PIXELS = 100_000_000
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"  # EOI: the last marker of a whole JPEG
ICO_MAGIC = (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")  # icons, cursors
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Files above this are refused before they are read (RESNET_CLI_MAX_FILE_MB changes it): far
# above any photo, and a bound on what one input can make us hold in memory.
DEFAULT_MAX_FILE_MB = 256
# Huffman-coded JPEG frames: each block of the full-resolution component costs at least one
# bit, so a file shorter than that has lost its scan data (arithmetic coding is exempt).
_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
_PROGRESSIVE_FRAMES = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
Image.MAX_IMAGE_PIXELS = DRAFT_FACTOR // 2 * DEFAULT_MAX_PIXELS  # Pillow refuses above twice this


@dataclass(frozen=True)
class ResizeRule:
    """The first resize a model's image processor applies: the shorter side to
    ``shortest_edge`` keeping the aspect ratio, or to a fixed ``size`` (width, height)."""

    shortest_edge: int | None = None
    size: tuple[int, int] | None = None
    crops: bool = False  # a centre crop no larger than shortest_edge follows the resize

    @classmethod
    def convnext(cls, shortest_edge: int, crop_pct: float) -> ResizeRule:
        """A ConvNeXt-style processor's resize (microsoft/resnet-50's): below 384, the shorter
        side to shortest_edge / crop_pct, then a centre crop; from 384 up, a square warp."""
        if shortest_edge < 384:
            return cls(shortest_edge=int(shortest_edge / crop_pct), crops=True)
        return cls(size=(int(shortest_edge), int(shortest_edge)))

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The size the processor resizes a ``width`` x ``height`` image to (its rounding)."""
        if self.size is not None:
            return self.size
        edge = int(self.shortest_edge or 0)
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(edge * long / short)
        return (edge, new_long) if width <= height else (new_long, edge)

    @property
    def draft_edge(self) -> int:
        """The shorter side a DCT-downscaled decode keeps: 1.5x what the model needs, because
        the deepest scale (1/8: one pixel per 8x8 block) aliases visibly; 1/4 and 1/2 don't."""
        return int(1.5 * (self.shortest_edge or max(self.size or (0, 0))))


def max_file_bytes() -> int:
    """The size cap on an input file, from RESNET_CLI_MAX_FILE_MB when set."""
    megabytes = os.environ.get("RESNET_CLI_MAX_FILE_MB")
    return int(float(megabytes or DEFAULT_MAX_FILE_MB) * 1024 * 1024)


# Start-of-frame markers of the Huffman-coded JPEGs a GPU decoder takes: baseline, extended,
# progressive. Lossless and arithmetic-coded ones are left to the CPU.
_DEVICE_SOF = (0xC0, 0xC1, 0xC2)
_ANY_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # less DHT, JPG, DAC


@dataclass(frozen=True)
class JpegFrame:
    """What a JPEG's markers say before any decoding: its size, colour components, bits per
    sample, coding (start-of-frame marker) and EXIF orientation (1 where there is none)."""

    width: int
    height: int
    components: int
    bits: int
    sof: int
    orientation: int = 1

    @property
    def device_decodable(self) -> bool:
        """8-bit grey or colour, Huffman-coded: what nvJPEG decodes as the CPU would."""
        return self.bits == 8 and self.components in (1, 3) and self.sof in _DEVICE_SOF


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """The frame header of a JPEG (``data`` from its SOI marker), read by walking its markers
    in a few microseconds, where Pillow's parser (Python too) takes 200 and holds the GIL that
    a GPU run's main thread needs; None for anything not laid out as expected."""
    if not data.startswith(JPEG_MAGIC):
        return None
    orientation, at, end = 0, 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        segment = data[at + 4 : at + 2 + length]
        if length < 2 or len(segment) != length - 2 or marker == 0xDA:  # cut, or a scan first
            return None
        if marker == 0xE1 and not orientation and segment.startswith(b"Exif\0\0"):
            orientation = _exif_orientation(segment[6:])
        elif marker in _ANY_SOF:
            if len(segment) < 6:
                return None
            height = int.from_bytes(segment[1:3], "big")
            width = int.from_bytes(segment[3:5], "big")
            turn = orientation if 1 <= orientation <= 8 else 1
            return JpegFrame(width, height, segment[5], segment[0], marker, turn)
        at += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of a TIFF block's first IFD (0 where it is missing or malformed)."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 0
    endian: Any = order
    ifd = int.from_bytes(tiff[4:8], endian)
    if ifd + 2 > len(tiff):
        return 0
    for entry in range(int.from_bytes(tiff[ifd : ifd + 2], endian)):
        start = ifd + 2 + 12 * entry
        if start + 12 > len(tiff):
            return 0
        if int.from_bytes(tiff[start : start + 2], endian) == 0x0112:
            kind = int.from_bytes(tiff[start + 2 : start + 4], endian)
            if kind != 3:  # SHORT
                return 0
            return int.from_bytes(tiff[start + 8 : start + 10], endian)
    return 0


def read_file(path: str) -> bytes:
    """The file's bytes, or an ImageError that says why it cannot be read.

    Only regular files are read, and only up to the size cap: a FIFO, device or socket is
    refused at once (opening without blocking, so a pipe nobody writes to cannot hang us).
    """
    limit = max_file_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageError("cannot read: dangling symlink (its target does not exist)") from None
        raise ImageError("cannot read: no such file") from None
    except PermissionError:
        raise ImageError("cannot read: permission denied") from None
    except IsADirectoryError:
        raise ImageError("cannot read: this is a folder, not a file") from None
    except OSError as exc:
        raise ImageError(_cannot_read(exc)) from None
    try:
        with open(fd, "rb", closefd=True) as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ImageError(f"cannot read: not a regular file ({file_kind(info.st_mode)})")
            if info.st_size > limit:
                raise ImageError(_too_big(info.st_size, limit))
            data = handle.read(limit + 1)  # the file may grow while we read it
    except IsADirectoryError:
        raise ImageError("cannot read: this is a folder, not a file") from None
    except OSError as exc:
        raise ImageError(_cannot_read(exc)) from None
    if len(data) > limit:
        raise ImageError(_too_big(len(data), limit))
    if not data:
        raise ImageError("not a readable image: the file is empty")
    return data


def _cannot_read(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "cannot read: symlink loop"
    return f"cannot read: {exc.strerror or exc}"


def _too_big(size: int, limit: int) -> str:
    return (
        f"file too large: {size / 1048576:.0f} MB, above the {limit / 1048576:g} MB cap on "
        "input files; set RESNET_CLI_MAX_FILE_MB to allow it"
    )


def decode_image(
    data: bytes,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    resize: ResizeRule | None = None,
    name: str | None = None,
) -> Image.Image:
    """Decode an encoded image into an upright RGB image.

    ``resize``: the model's first resize. When given and the image is a JPEG at least twice as
    large, libjpeg downscales in the DCT domain (``Image.draft``, far cheaper than a full
    decode) and the result is resized to exactly the size the processor would have produced
    from the full image, so its crop lands on the same pixels. ``name``: the file's name,
    which tells a camera RAW (see ``photo_formats.open_image``).
    """
    image: Image.Image
    fence = None if max_pixels is None else DRAFT_FACTOR // 2 * max_pixels
    if fence != Image.MAX_IMAGE_PIXELS:  # one value per run: threads agree on it
        Image.MAX_IMAGE_PIXELS = fence
    if max_pixels is not None and data.startswith(ICO_MAGIC):
        check_icon_frames(data, max_pixels)  # Pillow decodes an icon's largest frame in open()
    try:
        image = open_image(data, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a readable image: unknown or corrupt image format") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"image too large: more than {DRAFT_FACTOR} times --max-pixels {max_pixels}; "
            "raise --max-pixels to classify it"
        ) from None
    except Exception as exc:
        raise ImageError(f"not a readable image: {_describe(exc)}") from None
    width, height = original = image.size
    if width < 1 or height < 1:
        raise ImageError(f"not a readable image: it has no pixels ({width}x{height})")
    limited = max_pixels is not None and width * height > max_pixels
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        check_jpeg_frame(data, width, height, max_pixels)
    if isinstance(image, JpegImagePlugin.JpegImageFile) and (resize or limited):
        edge = resize.draft_edge if resize else 1
        if limited and max_pixels is not None:
            # The smallest DCT scale is 1/8; ask for at least that, more if the model needs it.
            edge = max(edge, int(min(width, height) / 8))
        if min(width, height) >= 2 * edge:
            image.draft("RGB", (edge, edge))
            width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
            f"above --max-pixels {max_pixels}; raise --max-pixels to classify it"
        )
    drafted = image.size != original
    try:
        image.load()
        stored = image.size
        image = to_rgb(upright(image))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"not a readable image: {_describe(exc)}") from None
    if drafted and resize is not None:
        turned = image.size != stored  # EXIF orientation swapped width and height
        full_width, full_height = (original[1], original[0]) if turned else original
        image = image.resize(resize.target(full_width, full_height), Image.Resampling.BICUBIC)
    if resize is not None and resize.crops:
        image = crop_extreme_aspect(image)
    return image


def check_jpeg_frame(data: bytes, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse, before decoding, a JPEG that cannot be decoded in bounded memory or whose
    scan data is missing.

    A progressive JPEG is DCT-downscaled only after libjpeg has kept every coefficient of
    the full image (9 GB for 65000x65000), so above --max-pixels it is refused outright. A
    Huffman-coded JPEG shorter than one bit per 8x8 block cannot hold its image: libjpeg
    would make up the missing blocks and the picture would get a label.
    """
    frame = jpeg_frame_marker(data)
    pixels = width * height
    if frame in _PROGRESSIVE_FRAMES and max_pixels is not None and pixels > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} is {pixels / 1e6:.0f} megapixels, above "
            f"--max-pixels {max_pixels}, and a progressive JPEG cannot be decoded downscaled "
            "without holding the full image; raise --max-pixels to classify it"
        )
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    if frame in _HUFFMAN_FRAMES and len(data) < blocks // 8:
        raise ImageError(
            f"not a readable image: truncated JPEG data (its header says {width}x{height}, "
            f"which needs at least {blocks // 8} bytes; the file holds {len(data)})"
        )


def jpeg_frame_marker(data: bytes) -> int | None:
    """The SOFn marker of a JPEG (0xC0 baseline, 0xC2 progressive, ...), from its headers."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        if marker == 0xDA:  # scan data before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, at + 2)
        at += 2 + length
    return None


def check_icon_frames(data: bytes, max_pixels: int) -> None:
    """Refuse an icon that embeds a PNG above --max-pixels: its directory may say 256x256
    whatever the PNG inside is, and Pillow decodes the largest frame as it opens the file."""
    (count,) = struct.unpack_from("<H", data, 4)
    for entry in range(count):
        at = 6 + 16 * entry
        if at + 16 > len(data):
            return
        (offset,) = struct.unpack_from("<I", data, at + 12)
        if data[offset : offset + 8] == PNG_MAGIC and offset + 24 <= len(data):
            width, height = struct.unpack_from(">II", data, offset + 16)
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: the icon holds a {width}x{height} PNG, "
                    f"{width * height / 1e6:.0f} megapixels, above --max-pixels {max_pixels}; "
                    "raise --max-pixels to classify it"
                )


def crop_extreme_aspect(image: Image.Image) -> Image.Image:
    """Keep the central part of a very elongated image: the model's centre crop only sees the
    middle, and resizing the whole strip first would take memory out of all proportion."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    if long <= MAX_ASPECT * short:
        return image
    keep = MAX_ASPECT * short
    start = (long - keep) // 2
    box = (start, 0, start + keep, height) if width > height else (0, start, width, start + keep)
    return image.crop(box)


def load_image(path: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and fully decode one image file (the reference path: no DCT downscaling)."""
    return decode_image(read_file(path), max_pixels=max_pixels, name=path)


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (as stored, if that tag is malformed)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A malformed EXIF block should not cost the user the image: keep it as stored.
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, scaling high-bit-depth data instead of clipping it."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        if mode.startswith("I;16"):
            array = array / 257.0  # by bit depth, not content: a dark 16-bit image stays dark
        elif mode == "F" and top <= 1.0:
            array = array * 255.0
        elif top > 255.0:  # 32-bit integers: treat as 16-bit data unless they go beyond
            array = array / 257.0 if top <= 65535.0 else array / (top / 255.0)
        gray = Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "truncated" in lowered:
        return "truncated image data"
    return text
