"""Unpacking an uploaded zip safely: every entry is checked before anything is written, and any failure
is a DatasetError naming the entry and what to do. Callers unpack into a private folder that is thrown
away on failure (segcore.atomic_dir), so nothing is ever left half-extracted."""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path

from ..errors import DatasetError
from ..uploads import MAX_NAME_BYTES, write_error

# Limits for uploaded archives, checked before anything is written to disk.
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_UNCOMPRESSED_BYTES = 4 * 1024**3
MAX_ZIP_RATIO = 200  # a real image dataset never compresses 200:1; a zip bomb does

SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
REZIP_HINT = "re-create the zip with an ordinary tool (zip -r, or 'Compress' in the file manager) and upload that"


def _entry_error(archive: Path, member: zipfile.ZipInfo, problem: str, hint: str = REZIP_HINT) -> DatasetError:
    return DatasetError(archive, f"the entry '{member.filename[:120]}' {problem}", hint)


def _entry_parts(archive: Path, member: zipfile.ZipInfo) -> tuple[str, ...]:
    """The entry's path as parts, checked: relative, inside the archive folder, each part a legal file name."""
    name = member.filename.replace("\\", "/")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise _entry_error(
            archive, member, "points outside the archive folder", "zip the dataset folder with relative paths only"
        )
    too_long = [p for p in parts if len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES]
    if too_long:
        raise _entry_error(
            archive,
            member,
            f"has a name part {len(too_long[0].encode('utf-8', 'surrogateescape'))} bytes "
            f"long, over the limit of {MAX_NAME_BYTES}",
            "rename that file with a shorter name and zip again",
        )
    return parts


def check_members(archive: Path, members: list[zipfile.ZipInfo]) -> dict[str, tuple[str, ...]]:
    """Refuse, before writing anything, every archive we could not unpack completely and safely."""
    if len(members) > MAX_ZIP_MEMBERS:
        raise DatasetError(
            archive,
            f"the archive holds {len(members)} entries, more than the limit of {MAX_ZIP_MEMBERS}",
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
    files: dict[tuple[str, ...], zipfile.ZipInfo] = {}
    folders: set[tuple[str, ...]] = set()
    checked: dict[str, tuple[str, ...]] = {}
    for member in members:
        name = checked[member.filename] = _entry_parts(archive, member)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise _entry_error(archive, member, "is a symbolic link", "zip real files, not links")
        if member.flag_bits & 0x1:
            raise _entry_error(
                archive, member, "is encrypted (password-protected)", "zip the dataset without a password"
            )
        if member.compress_type not in SUPPORTED_COMPRESSION:
            method = zipfile.compressor_names.get(member.compress_type, f"method {member.compress_type}")
            raise _entry_error(
                archive,
                member,
                f"uses a compression method that cannot be unpacked here ({method})",
                REZIP_HINT + " (Windows uses deflate64 for very large zips: zip smaller parts)",
            )
        if member.is_dir():
            if member.file_size:
                raise _entry_error(archive, member, f"is named like a folder but holds {member.file_size} bytes")
            folders.add(name)
            continue
        if name in files:
            raise _entry_error(archive, member, "appears twice in the archive")
        files[name] = member
        folders.update(name[:depth] for depth in range(1, len(name)))
    clash = next((files[name] for name in files if name in folders), None)
    if clash is not None:
        raise _entry_error(archive, clash, "is both a file and a folder in the archive")
    return checked


def safe_extract_zip(archive: Path, destination: Path) -> Path:
    """Unpack a zip into destination, refusing path tricks, links, bombs and unreadable entries."""
    try:
        handle = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DatasetError(
            archive, "this file is not a valid zip archive", "zip the dataset folder again and upload that"
        ) from None
    except OSError as exc:
        raise DatasetError(archive, f"the archive cannot be read ({exc})", "check the file and try again") from None
    with handle:
        members = handle.infolist()
        parts_of = check_members(archive, members)
        destination.mkdir(parents=True, exist_ok=True)
        made: set[Path] = set()
        for member in members:
            # the parts are checked relative names and the destination is a fresh private folder holding no
            # links, so joining them cannot leave it
            target = destination.joinpath(*parts_of[member.filename])
            try:
                folder = target if member.is_dir() else target.parent
                if folder not in made:
                    folder.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                if not member.is_dir():
                    _copy_entry(archive, handle, member, target)
            except OSError as exc:
                raise write_error(f"{archive} → {member.filename[:120]}", exc) from None
    return destination


def _copy_entry(archive: Path, handle: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    try:
        with handle.open(member) as source, open(target, "wb") as sink:
            written = 0
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > member.file_size:  # the header lied about the size
                    raise _entry_error(archive, member, "is larger than declared")
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _entry_error(
            archive, member, f"is damaged ({exc})", "zip the dataset again, or download it again"
        ) from None
    except (NotImplementedError, RuntimeError) as exc:  # compression or encryption the header hid
        raise _entry_error(archive, member, f"cannot be unpacked ({exc})") from None
