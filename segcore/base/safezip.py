"""One reader for zips that arrive from elsewhere: uploaded datasets, lesson files and take-home bundles.

Every entry is checked before anything is written or read: the count, the total and per-entry sizes and the packing
ratio (a zip bomb), each name (no absolute path, drive, '..', NUL, colon or over-long part; a backslash is a path
trick unless the rules accept Windows separators), links, encryption, compression methods zipfile cannot unpack,
duplicates, a name that is both a file and a folder, and whatever the caller's own rule says of a name. While
reading, no entry may give more bytes than its header declares (headers can lie). Every problem is raised through the
caller's `error` factory, so a dataset says DatasetError, a lesson LessonError, a bundle BundleError, each naming
the entry.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_NAME_BYTES = 255  # one path part, as most file systems allow
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}

# (entry name or None for the whole zip, problem, hint) → the exception to raise
ZipErrorFactory = Callable[[str | None, str, str], Exception]


@dataclass(frozen=True)
class ZipRules:
    """What a kind of zip may hold. `inside` names its inside in messages ("the archive folder", "the lesson");
    `name_rule(parts, is_folder)` returns why an entry's name is not one this kind holds (None: it is)."""

    inside: str
    hint: str
    max_entries: int
    max_total_bytes: int
    max_entry_bytes: int
    max_ratio: float = 20.0  # datasets, checkpoints and runs hardly compress (images and weights): a bomb does
    ratio_exempt_bytes: int = 50 * 1024**2  # small zips may compress well (empty masks, logs): their size is harmless
    windows_separators: bool = False  # a backslash separates folders (zips made by older Windows tools)
    redo_hint: str = "copy or download it again"  # for a damaged entry
    password_hint: str = "make it again without a password"
    name_rule: Callable[[tuple[str, ...], bool], str | None] | None = None


class SafeZip:
    """A zip opened for reading under `rules`, every entry already checked (see the module docstring).
    `files`: the plain-file entries by name; `parts`: each entry's checked path parts."""

    def __init__(self, path: str | Path, rules: ZipRules, error: ZipErrorFactory) -> None:
        self.path, self.rules, self.error = Path(path), rules, error
        try:
            self.archive = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise error(None, f"this file is not a valid zip archive (not a readable zip: {exc})", rules.hint) from None
        except OSError as exc:
            raise error(
                None, f"the file cannot be read ({exc.strerror or exc})", "check the file and try again"
            ) from None
        try:
            self.members = self.archive.infolist()
            self.parts: dict[str, tuple[str, ...]] = {}
            self.files: dict[str, zipfile.ZipInfo] = {}
            self._check_all()
        except BaseException:
            self.archive.close()
            raise

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.archive.close()

    # -- checks -----------------------------------------------------------------------------------------------
    def _refuse(self, member: zipfile.ZipInfo, problem: str, hint: str | None = None) -> Exception:
        return self.error(member.filename[:200], problem, hint or self.rules.hint)

    def _check_all(self) -> None:
        rules = self.rules
        if len(self.members) > rules.max_entries:
            raise self.error(
                None,
                f"it holds {len(self.members)} entries, more than the limit of {rules.max_entries}",
                "use a smaller one",
            )
        total = sum(m.file_size for m in self.members)
        packed = sum(m.compress_size for m in self.members) or 1
        if total > rules.max_total_bytes or total / packed > rules.max_ratio and total > rules.ratio_exempt_bytes:
            raise self.error(
                None,
                f"it would unpack to {total / 1024**2:.0f} MiB from {packed / 1024**2:.1f} MiB (a zip bomb?)",
                rules.hint,
            )
        folders: set[tuple[str, ...]] = set()
        file_parts: dict[tuple[str, ...], zipfile.ZipInfo] = {}
        for member in self.members:
            parts = self.parts[member.filename] = self._checked_name(member)
            if stat.S_ISLNK(member.external_attr >> 16):
                raise self._refuse(member, "is a symbolic link", "zip real files, not links")
            if member.flag_bits & 0x1:
                raise self._refuse(member, "is encrypted (password-protected)", rules.password_hint)
            if member.compress_type not in SUPPORTED_COMPRESSION:
                method = zipfile.compressor_names.get(member.compress_type, f"method {member.compress_type}")
                raise self._refuse(
                    member,
                    f"uses a compression method that cannot be unpacked here ({method})",
                    rules.hint + " (Windows uses deflate64 for very large zips: zip smaller parts)",
                )
            if member.is_dir():
                if member.file_size:
                    raise self._refuse(member, f"is named like a folder but holds {member.file_size} bytes")
                folders.add(parts)
                continue
            if member.file_size > rules.max_entry_bytes:
                raise self._refuse(
                    member,
                    f"is {member.file_size / 1024**2:.0f} MiB, over the limit of {rules.max_entry_bytes / 1024**2:.0f} "
                    "MiB for one entry",
                )
            if parts in file_parts or member.filename in self.files:
                raise self._refuse(member, "appears twice in the zip")
            file_parts[parts] = member
            self.files[member.filename] = member
            folders.update(parts[:depth] for depth in range(1, len(parts)))
        clash = next((file_parts[parts] for parts in file_parts if parts in folders), None)
        if clash is not None:
            raise self._refuse(clash, "is both a file and a folder in the zip")

    def _checked_name(self, member: zipfile.ZipInfo) -> tuple[str, ...]:
        name, rules = member.filename, self.rules
        if "\0" in name:
            raise self._refuse(member, "has a NUL character in its name (a path trick)")
        if "\\" in name and not rules.windows_separators:
            raise self._refuse(member, "has a backslash in its name (a path trick)")
        text = name.replace("\\", "/")
        parts = tuple(p for p in text.split("/") if p not in ("", "."))
        if text.startswith("/") or (parts and ":" in parts[0]):
            raise self._refuse(member, f"points outside {rules.inside}: it is an absolute path")
        if ".." in parts or not parts:
            raise self._refuse(member, f"points outside {rules.inside} ('..' or an empty path)")
        if any(":" in part for part in parts):
            raise self._refuse(member, "has a colon in its name (a path trick on Windows)")
        too_long = next((p for p in parts if len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES), None)
        if too_long is not None:
            raise self._refuse(
                member,
                f"has a name part {len(too_long.encode('utf-8', 'surrogateescape'))} bytes long, over the limit of "
                f"{MAX_NAME_BYTES}",
                "rename that file with a shorter name and zip again",
            )
        problem = rules.name_rule(parts, member.is_dir()) if rules.name_rule else None
        if problem:
            raise self._refuse(member, problem)
        return parts

    # -- reading ----------------------------------------------------------------------------------------------
    def read(self, name: str, limit: int | None = None) -> bytes:
        """A file entry's bytes, never more than `limit` (default: the per-entry limit) nor than its header declares."""
        member = self.files[name]
        cap = min(limit if limit is not None else self.rules.max_entry_bytes, member.file_size)
        if member.file_size > cap:
            raise self._refuse(member, f"is {member.file_size:,} bytes, over the limit of {cap:,} for this entry")
        chunks, size = [], 0
        for chunk in self._chunks(member):
            size += len(chunk)
            if size > cap:
                raise self._refuse(member, "is larger than its header declares")
            chunks.append(chunk)
        return b"".join(chunks)

    def extract(self, destination: Path, write_error: Callable[[str, OSError], Exception] | None = None) -> Path:
        """Unpack every entry into `destination`, a fresh private folder (the checked parts cannot leave it).
        `write_error(what, OSError)`: the exception for a failed write (a full disk), else the OSError itself."""
        destination.mkdir(parents=True, exist_ok=True)
        made: set[Path] = set()
        for member in self.members:
            target = destination.joinpath(*self.parts[member.filename])
            try:
                folder = target if member.is_dir() else target.parent
                if folder not in made:
                    folder.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                if not member.is_dir():
                    self._copy(member, target)
            except OSError as exc:
                if write_error is None:
                    raise
                raise write_error(f"{self.path} → {member.filename[:120]}", exc) from None
        return destination

    def _copy(self, member: zipfile.ZipInfo, target: Path) -> None:
        with open(target, "wb") as sink:
            written = 0
            for chunk in self._chunks(member):
                written += len(chunk)
                if written > member.file_size:
                    raise self._refuse(member, "is larger than its header declares")
                sink.write(chunk)

    def _chunks(self, member: zipfile.ZipInfo):
        try:
            with self.archive.open(member) as source:
                while chunk := source.read(1 << 20):
                    yield chunk
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
            raise self._refuse(member, f"is damaged ({exc})", self.rules.redo_hint) from None
        except (NotImplementedError, RuntimeError) as exc:  # compression or encryption the header hid
            raise self._refuse(member, f"cannot be unpacked ({exc})") from None
