"""Saving uploaded files (a zip, or a whole folder's files) under the cache, with sizes and paths checked."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from ..base.atomic import build_folder_once
from ..base.errors import DatasetError
from ..base.paths import cache_dir
from .files import read_image

MAX_UPLOAD_BYTES = 1024 * 1024**2
MAX_NAME_BYTES = 255  # one path part, as most file systems allow
MAX_PATH_BYTES = 1024  # a whole relative path; deeper trees are not datasets


def safe_relative_path(name: str) -> PurePosixPath:
    if "\0" in name:
        raise DatasetError(
            name.replace("\0", "\\0"), "the file name contains a NUL character", "rename the file and upload again"
        )
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts:
        raise DatasetError(name, "the uploaded file name points outside the upload folder", "upload the folder itself")
    too_long = next((p for p in parts if len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES), None)
    if too_long is not None:
        raise DatasetError(
            name[:80] + "…",
            f"a part of the file name is {len(too_long.encode('utf-8', 'surrogateescape'))} bytes long, "
            f"over the limit of {MAX_NAME_BYTES}",
            "rename the file with a shorter name",
        )
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise DatasetError(
            name[:80] + "…", f"the file path is over {MAX_PATH_BYTES} bytes long", "use shorter folder and file names"
        )
    return PurePosixPath(*parts)


def _write_files(folder: Path, files: list[tuple[PurePosixPath, bytes]]) -> None:
    for relative, content in files:
        target = folder / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        except OSError as exc:
            raise write_error(str(relative), exc) from None


def write_error(name: str, exc: OSError) -> DatasetError:
    """An OSError while saving `name`, said for a person (nothing is kept: callers write to a private folder)."""
    if exc.errno == errno.ENOSPC:
        return DatasetError(
            name,
            "the server's disk is full, so the upload could not be saved (nothing was kept)",
            "ask whoever runs the server to free disk space, or upload a smaller dataset",
        )
    if exc.errno == errno.ENAMETOOLONG:
        return DatasetError(name, "the file name is too long for the server", "use shorter folder and file names")
    return DatasetError(name, f"the file could not be saved ({exc.strerror or exc})", "check the file and upload again")


def save_uploads(files: list[tuple[str, bytes]], max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Write (name, content) pairs to a folder keyed by their content; return the dataset source to load:
    the zip itself for a single .zip, else the folder (names keep their relative paths)."""
    total = sum(len(content) for _, content in files)
    if total > max_bytes:
        raise DatasetError(
            "upload",
            f"the upload is {total / 1024**2:.0f} MiB, over the limit of {max_bytes / 1024**2:.0f} MiB",
            "upload fewer or smaller images, or give a folder path on the server instead",
        )
    relative = [(safe_relative_path(name), content) for name, content in files]  # check every name first
    digest = hashlib.sha1()
    for name, content in sorted(files):
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0" + hashlib.sha1(content).digest())
    # pages rerun on every click and several sessions may upload the same files at once: each builds
    # privately and the first complete copy is renamed into place
    folder = build_folder_once(
        cache_dir() / "uploads" / digest.hexdigest()[:16], lambda tmp: _write_files(tmp, relative)
    )
    evict_uploads(keep=folder)
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        return folder / relative[0][0]
    return folder


UPLOADS_ENV = "SEGCORE_UPLOADS_MB"
CACHED_DATA = ("uploads", "unzipped")  # the cache folders that hold students' data, keyed by content


def evict_uploads(keep: Path | None = None) -> list[Path]:
    """Past SEGCORE_UPLOADS_MB in all (unset: no limit), remove the least recently used uploads and unpacked zips
    (a dataset is marked used each time it is opened), never `keep`. Returns the folders removed."""
    try:
        limit = float(os.environ.get(UPLOADS_ENV, "0") or 0) * 1024**2
    except ValueError:
        limit = 0
    if limit <= 0:
        return []
    entries = []
    for kind in CACHED_DATA:
        root = cache_dir() / kind
        for folder in root.iterdir() if root.is_dir() else []:
            if folder.is_dir() and not folder.name.startswith("."):
                size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
                entries.append((folder.stat().st_mtime, size, folder))
    total, removed = sum(size for _, size, _ in entries), []
    for _, size, folder in sorted(entries):
        if total <= limit:
            break
        if keep is not None and folder.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        total -= size
    return removed


def mark_used(path: Path) -> None:
    """Mark a cached dataset folder as just used (least recently used ones are removed first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def read_uploaded_image(name: str, content: bytes):
    """An image a student uploads to be segmented (not a dataset), read with the same checks as dataset images
    (pixel limit, orientation): DatasetError naming the file when it cannot be used."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / safe_relative_path(name).name
        path.write_bytes(content)
        return read_image(path)
