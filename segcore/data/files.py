"""Reading image and mask files, and unpacking zips safely: every failure names the file and the fix."""

from __future__ import annotations

import stat
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}

# Limits for uploaded archives, checked before anything is written to disk.
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_UNCOMPRESSED_BYTES = 4 * 1024**3
MAX_ZIP_RATIO = 200  # a real image dataset never compresses 200:1; a zip bomb does


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(
            path,
            "the image is too large to decode safely (over PIL's pixel limit)",
            "resize it to a few megapixels before using it",
        ) from None
    except UnidentifiedImageError:
        raise DatasetError(path, "this is not an image file that can be read", "remove it or re-export it as PNG/JPEG") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            path, f"the image file is damaged or truncated ({exc})", "re-export or re-download this file"
        ) from None


def read_image(path: Path) -> Image.Image:
    """An RGB image, rotated as its EXIF orientation says (phones store photos sideways)."""
    image = ImageOps.exif_transpose(_open(path))
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def read_mask_raw(path: Path) -> np.ndarray:
    """The stored values of a mask: (H, W) integers, or (H, W, 3) colours for a colour mask.

    Palette PNGs give their indices (not the colours); 16-bit masks keep their values;
    an alpha channel is dropped; a colour mask whose three channels agree is read as grey values.
    """
    image = ImageOps.exif_transpose(_open(path))
    if image.mode == "P":
        return np.asarray(image, dtype=np.int32)
    if image.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L"):
        return np.asarray(image).astype(np.int32)
    if image.mode == "F":
        array = np.asarray(image)
        if not np.all(array == np.round(array)):
            raise DatasetError(path, "the mask holds fractional values", "save masks as integer class indices")
        return array.astype(np.int32)
    if image.mode == "LA":
        return np.asarray(image.getchannel(0), dtype=np.int32)
    rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb


def safe_extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack a zip into destination, refusing path tricks, links and bombs before writing anything."""
    try:
        handle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DatasetError(archive, "this file is not a valid zip archive", "zip the dataset folder again and upload that") from None
    except OSError as exc:
        raise DatasetError(archive, f"the archive cannot be read ({exc})", "check the file and try again") from None
    with handle:
        members = handle.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DatasetError(
                archive, f"the archive holds {len(members)} entries, more than the limit of {MAX_ZIP_MEMBERS}",
                "upload a smaller dataset",
            )
        total = sum(m.file_size for m in members)
        packed = sum(m.compress_size for m in members) or 1
        if total > MAX_ZIP_UNCOMPRESSED_BYTES or total / packed > MAX_ZIP_RATIO and total > 50 * 1024**2:
            raise DatasetError(
                archive,
                f"the archive would unpack to {total / 1024**2:.0f} MiB from {packed / 1024**2:.1f} MiB (a zip bomb?)",
                "upload the dataset as an ordinary zip of its images and masks",
            )
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or (name.parts and ":" in name.parts[0]):
                raise DatasetError(
                    archive, f"the entry '{member.filename}' points outside the archive folder",
                    "zip the dataset folder with relative paths only",
                )
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DatasetError(
                    archive, f"the entry '{member.filename}' is a symbolic link", "zip real files, not links"
                )
        destination.mkdir(parents=True, exist_ok=True)
        root = destination.resolve()
        for member in members:
            target = (destination / member.filename).resolve()
            if not target.is_relative_to(root):
                raise DatasetError(archive, f"the entry '{member.filename}' points outside the archive folder", "")
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(member) as source, open(target, "wb") as sink:
                written = 0
                while chunk := source.read(1 << 20):
                    written += len(chunk)
                    if written > member.file_size:  # the header lied about the size
                        raise DatasetError(archive, f"the entry '{member.filename}' is larger than declared", "")
                    sink.write(chunk)
    return destination
