"""Saving uploaded files (a zip, or a whole folder's files) under the cache, with sizes and paths checked."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from .errors import DatasetError
from .paths import cache_dir

MAX_UPLOAD_BYTES = 1024 * 1024**2


def safe_relative_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts:
        raise DatasetError(name, "the uploaded file name points outside the upload folder", "upload the folder itself")
    return PurePosixPath(*parts)


def save_uploads(files: list[tuple[str, bytes]], max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Write (name, content) pairs to a folder keyed by their content; return the dataset source to load:
    the zip itself for a single .zip, else the folder (names keep their relative paths)."""
    total = sum(len(content) for _, content in files)
    if total > max_bytes:
        raise DatasetError(
            "upload", f"the upload is {total / 1024**2:.0f} MiB, over the limit of {max_bytes / 1024**2:.0f} MiB",
            "upload fewer or smaller images, or give a folder path on the server instead",
        )
    digest = hashlib.sha1()
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha1(content).digest())
    folder = cache_dir() / "uploads" / digest.hexdigest()[:16]
    targets = [(folder / safe_relative_path(name), content) for name, content in files]  # check every name first
    if not (folder / ".complete").exists():  # pages rerun on every click: write each upload once
        for target, content in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        (folder / ".complete").touch()
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        return folder / safe_relative_path(files[0][0])
    return folder
