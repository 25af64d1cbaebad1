"""Reading image and mask files: every failure names the file and the fix.

Decoding is bounded: the pixel limit is checked from the header before any pixel is decoded, JPEGs are
decoded at the smallest DCT scale that still covers the requested size (Image.draft), and callers that
want a small picture get it resized right after decoding, so full-resolution arrays are never kept.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..base.errors import DatasetError
from .limits import limits

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
LOSSY_FORMATS = {"JPEG", "MPO"}  # formats whose compression changes pixel values
_EXIF_SWAPS_AXES = {5, 6, 7, 8}
_REDUCING_GAP = 3.0  # Image.reduce() by whole factors first, then a proper resample: fast and still smooth


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


@contextmanager
def _reading(path: Path):
    """Turn PIL's many exceptions into one DatasetError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(
            path,
            "the image is too large to decode safely (over PIL's pixel limit)",
            "resize it to a few megapixels before using it",
        ) from None
    except UnidentifiedImageError:
        raise DatasetError(
            path, "this is not an image file that can be read", "remove it or re-export it as PNG/JPEG"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            path, f"the image file is damaged or truncated ({exc})", "re-export or re-download this file"
        ) from None


def open_header(path: Path) -> Image.Image:
    """Open a file without decoding its pixels, refusing it if it has more pixels than allowed."""
    with _reading(path):
        image = Image.open(path)
    check_pixel_limit(path, image.size)
    return image


def check_pixel_limit(path: Path, size: tuple[int, int]) -> None:
    max_pixels = limits().max_pixels
    width, height = size
    if width * height > max_pixels:
        raise DatasetError(
            path,
            f"the image is {width}×{height} ({width * height / 1e6:.1f} megapixels): too large to decode safely "
            f"on a shared server (limit {max_pixels / 1e6:.1f} megapixels, SEGCORE_MAX_PIXELS)",
            "resize it to a few megapixels before uploading, or ask whoever runs the server to raise SEGCORE_MAX_PIXELS",
        )


def _decode(path: Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    image = open_header(path)
    with _reading(path):
        if draft_size is not None and image.format in ("JPEG", "MPO"):
            side = max(draft_size)  # EXIF may swap the axes after decoding: cover both
            image.draft(image.mode, (side, side))
        image.load()
    return image


def check_readable(path: Path) -> None:
    """Prove an image file can be read, cheaply: a PNG's chunk checksums are verified without inflating
    its pixels; other formats are decoded, JPEG at its smallest DCT scale."""
    image = open_header(path)
    with _reading(path):
        if image.format == "PNG":
            image.verify()
        else:
            image.draft(image.mode, (64, 64))
            image.load()
    image.close()


def _open(path: Path) -> Image.Image:
    """The whole image decoded at full resolution (after the pixel-limit check)."""
    return _decode(path)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF rotation, read from the header only."""
    image = open_header(path)
    with _reading(path):
        orientation = _header_orientation(image)
    width, height = image.size
    image.close()
    return (height, width) if orientation in _EXIF_SWAPS_AXES else (width, height)


def _upright(image: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says, without the full copy exif_transpose makes of an upright image."""
    if image.getexif().get(0x0112, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image)


def _header_orientation(image: Image.Image) -> int:
    """The EXIF orientation, without decoding: PIL's getexif() on a PNG decodes every pixel to look for an
    eXIf chunk after the image data, so a PNG's orientation is read only from chunks before it."""
    if image.format == "PNG":
        exif = Image.Exif()
        if "exif" in image.info:
            exif.load(image.info["exif"])
        return exif.get(0x0112, 1)
    return image.getexif().get(0x0112, 1)


def read_image(path: Path, size: tuple[int, int] | None = None) -> Image.Image:
    """An RGB image, rotated as its EXIF orientation says (phones store photos sideways); resized to
    size=(W, H) while decoding when given, so a huge photo never exists at full size."""
    image = _upright(_decode(path, size))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        if size is not None:
            image = image.resize(size, Image.NEAREST)  # before widening to float: a 16-bit scan stays small
        array = np.asarray(image, dtype=np.float32)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":  # convert() to the same mode would still copy every pixel
        image = image.convert("RGB")
    if size is not None and image.size != tuple(size):
        image = image.resize(size, Image.BILINEAR, reducing_gap=_REDUCING_GAP)
    return image


def read_mask_image(path: Path) -> tuple[Image.Image, bool]:
    """A mask decoded and turned upright, in a mode that holds its stored values; and whether it is lossy."""
    decoded = _decode(path)
    lossy = decoded.format in LOSSY_FORMATS
    image = _upright(decoded)
    if image.mode == "LA":
        image = image.getchannel(0)
    elif image.mode not in ("P", "1", "L", "I", "I;16", "I;16B", "I;16L", "F", "RGB"):
        image = image.convert("RGB")
    return image, lossy


def read_mask(path: Path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """The stored values of a mask in their own integer type — (H, W), or (H, W, 3) colours for a colour
    mask — and whether the file was saved in a lossy format. size=(W, H) picks pixels nearest-neighbour
    (never blending two class values) right after decoding.

    Palette PNGs give their indices (not the colours); 16/32-bit masks keep their values (never cast
    to a smaller type); an alpha channel is dropped; a colour mask whose three channels agree is read
    as grey values.
    """
    image, lossy = read_mask_image(path)
    if size is not None and image.size != tuple(size):
        image = image.resize(size, Image.NEAREST)
    return mask_array(image, path), lossy


def mask_array(image: Image.Image, path: Path) -> np.ndarray:
    """A mask image's stored values as an array (see read_mask)."""
    if image.mode == "F":
        array = np.asarray(image)
        if not np.all(array == np.round(array)):
            raise DatasetError(path, "the mask holds fractional values", "save masks as integer class indices")
        return array.astype(np.int64)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8)
    array = np.asarray(image)
    if (
        array.ndim == 3
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 0], array[..., 2])
    ):
        return array[..., 0].copy()
    return array


def read_mask_raw(path: Path) -> np.ndarray:
    """A mask's stored values at full size (see read_mask)."""
    return read_mask(path)[0]
