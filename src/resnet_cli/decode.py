"""Bytes on disk -> an upright RGB image, with typed errors and a bound on decoded size."""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from .errors import ImageError
from .photo_formats import open_image

# Our own bound replaces Pillow's global one: we check the header size before decoding, try
# JPEG DCT downscaling for images above the bound, and say what to do about the rest.
Image.MAX_IMAGE_PIXELS = None
# Pillow warns about recoverable oddities (corrupt EXIF, palette transparency) with raw
# UserWarnings; a bad file's problems belong in its record, not on stderr. Set once here:
# warnings.catch_warnings() is not thread-safe and decoding runs in threads.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
# A resize rule whose processor centre-crops needs at most this aspect ratio of the image:
# a 10000x3 strip would otherwise be resized to 853333x256 (gigabytes) to keep a 224 crop.
MAX_ASPECT = 4
DEFAULT_MAX_PIXELS = 100_000_000
JPEG_MAGIC = b"\xff\xd8\xff"


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


def read_file(path: str) -> bytes:
    """The file's bytes, or an ImageError that says why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageError("cannot read: dangling symlink (its target does not exist)") from None
        raise ImageError("cannot read: no such file") from None
    except PermissionError:
        raise ImageError("cannot read: permission denied") from None
    except IsADirectoryError:
        raise ImageError("cannot read: this is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("cannot read: symlink loop") from None
        raise ImageError(f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ImageError("not a readable image: the file is empty")
    return data


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
    try:
        image = open_image(data, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a readable image: unknown or corrupt image format") from None
    except Exception as exc:
        raise ImageError(f"not a readable image: {_describe(exc)}") from None
    width, height = original = image.size
    if width < 1 or height < 1:
        raise ImageError(f"not a readable image: it has no pixels ({width}x{height})")
    limited = max_pixels is not None and width * height > max_pixels
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
