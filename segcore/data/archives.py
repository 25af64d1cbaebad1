"""Unpacking an uploaded zip safely (base/safezip.py checks every entry before anything is written); any failure
is a DatasetError naming the entry and what to do. Callers unpack into a private folder that is thrown away on
failure (base/atomic.py), so nothing is ever left half-extracted."""

from __future__ import annotations

from pathlib import Path

from ..base.errors import DatasetError
from ..base.safezip import SafeZip, ZipRules
from .uploads import write_error

# Limits for uploaded archives, read when a zip is opened (tests lower them).
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_UNCOMPRESSED_BYTES = 4 * 1024**3
MAX_ZIP_RATIO = 20  # image datasets hardly compress (PNG, JPEG are compressed already); a zip bomb does

REZIP_HINT = "re-create the zip with an ordinary tool (zip -r, or 'Compress' in the file manager) and upload that"


def dataset_zip_rules() -> ZipRules:
    return ZipRules(
        inside="the archive folder",
        hint=REZIP_HINT,
        max_entries=MAX_ZIP_MEMBERS,
        max_total_bytes=MAX_ZIP_UNCOMPRESSED_BYTES,
        max_entry_bytes=MAX_ZIP_UNCOMPRESSED_BYTES,
        max_ratio=MAX_ZIP_RATIO,
        windows_separators=True,  # older Windows tools write 'folder\\file.png'
        redo_hint="zip the dataset again, or download it again",
        password_hint="zip the dataset without a password",
    )


def safe_extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack a zip into destination, refusing path tricks, links, bombs and unreadable entries."""

    def error(entry: str | None, problem: str, hint: str) -> DatasetError:
        if entry is None:
            return DatasetError(archive, "the archive " + problem[3:] if problem.startswith("it ") else problem, hint)
        return DatasetError(archive, f"the entry '{entry[:120]}' {problem}", hint)

    with SafeZip(archive, dataset_zip_rules(), error) as checked:
        return checked.extract(destination, write_error)
