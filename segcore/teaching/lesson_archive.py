"""The lesson file on disk: a zip of lesson.json, an optional dataset/ folder and an optional source_run/ folder.

A lesson arrives from someone else's machine, so reading one treats it as hostile: its size, entry count and
unpacked size are limited, every entry name is checked (no absolute paths, no '..', no links, no duplicates) and
must be one this format expects, all before anything is written. Unpacking goes to a private staging folder that
is renamed into place under the lesson's content hash, so a half-unpacked lesson is never seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from ..base.errors import LessonError
from ..base.safezip import SafeZip, ZipRules
from ..data.files import IMAGE_SUFFIXES
from ..runs.files import NEEDED_AS_SOURCE

FORMAT = "segcore-lesson"
FORMAT_VERSION = 1
LESSON_SUFFIXES = (".lesson.zip", ".segl")
MANIFEST = "lesson.json"
DATASET_DIR = "dataset"
SOURCE_RUN_DIR = "source_run"
SOURCE_RUN_FILES = NEEDED_AS_SOURCE
# a dataset folder holds images, masks and text files (classes.txt, labelmap.txt, ImageSets/*.txt); nothing else
DATASET_SUFFIXES = frozenset(IMAGE_SUFFIXES | {".txt"})

MAX_ZIP_MEMBERS = 20_000
MAX_LESSON_BYTES = 2 * 1024**3
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_MANIFEST_BYTES = 1024**2


def is_lesson_file(path: Path) -> bool:
    return path.name.lower().endswith(LESSON_SUFFIXES)


# -- writing --------------------------------------------------------------------------------------------------
def dataset_files(folder: Path) -> list[tuple[str, Path]]:
    """(name in the lesson, file) for every file of a dataset folder the lesson format carries: images, masks and
    text files, hidden files (caches, .complete markers) left out. Refuses a folder with nothing to carry."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in DATASET_SUFFIXES:
            files.append((f"{DATASET_DIR}/{relative.as_posix()}", path))
    if not files:
        raise LessonError(
            folder,
            "the dataset folder holds no image, mask or text files to embed",
            "give the folder that holds the images and masks",
        )
    if len(files) + len(SOURCE_RUN_FILES) + 1 > MAX_ZIP_MEMBERS:
        raise LessonError(
            folder,
            f"the dataset has {len(files)} files, more than a lesson may carry ({MAX_ZIP_MEMBERS})",
            "embed a smaller dataset, or reference it instead of embedding it",
        )
    return files


def write_lesson_zip(path: Path, manifest: dict, entries: list[tuple[str, Path | bytes]]) -> Path:
    """Write lesson.json and the (name in the lesson, file or content) entries atomically (a temporary file renamed
    over `path`): a reader never sees half a lesson."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            for name, source in entries:
                if isinstance(source, bytes):
                    archive.writestr(name, source)
                else:  # weights hardly compress: storing them keeps writing and reading fast
                    kind = zipfile.ZIP_STORED if source.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
                    archive.write(source, name, compress_type=kind)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# -- reading --------------------------------------------------------------------------------------------------
def _entry_problem(parts: tuple[str, ...], is_folder: bool) -> str | None:
    """Why an entry (already free of path tricks, base/safezip.py) is not one a lesson holds; None when it is."""
    if is_folder:  # only the two folders, and folders inside the dataset
        return None if parts[0] == DATASET_DIR or parts == (SOURCE_RUN_DIR,) else "is not a folder a lesson holds"
    if parts == (MANIFEST,):
        return None
    if parts[0] == SOURCE_RUN_DIR and len(parts) == 2 and parts[1] in SOURCE_RUN_FILES:
        return None
    if parts[0] == DATASET_DIR and len(parts) > 1:
        if any(p.startswith(".") for p in parts[1:]):
            return "is a hidden file inside the dataset"
        if PurePosixPath(parts[-1]).suffix.lower() not in DATASET_SUFFIXES:
            return "is not an image, mask or text file, the only files a lesson's dataset holds"
        return None
    return (
        f"is not part of the lesson format (expected {MANIFEST}, {DATASET_DIR}/… or "
        f"{SOURCE_RUN_DIR}/{{{','.join(SOURCE_RUN_FILES)}}})"
    )


LESSON_ZIP_RULES = ZipRules(
    inside="the lesson",
    hint="ask the teacher for the .lesson.zip file again",
    max_entries=MAX_ZIP_MEMBERS,
    max_total_bytes=MAX_UNPACKED_BYTES,
    max_entry_bytes=MAX_UNPACKED_BYTES,
    name_rule=_entry_problem,
)


def _open_zip(path: Path) -> SafeZip:
    """The lesson file opened with every entry checked; LessonError naming the entry and what is wrong otherwise."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LessonError(path, f"the file cannot be read ({exc.strerror or exc})", "check the path") from None
    if size > MAX_LESSON_BYTES:
        raise LessonError(
            path,
            f"the file is {size / 1024**2:.0f} MiB, over the limit of {MAX_LESSON_BYTES / 1024**2:.0f} MiB",
            "reference a large dataset instead of embedding it",
        )

    def error(entry: str | None, problem: str, hint: str) -> LessonError:
        if entry is None:
            return LessonError(path, problem, hint)
        return LessonError(
            path,
            f"the entry '{entry}' {problem}",
            "this file was not made by the workbench, or was altered: do not use it",
        )

    return SafeZip(path, LESSON_ZIP_RULES, error)


def read_checked_manifest(path: Path) -> tuple[dict, set[str]]:
    """lesson.json's content and the set of top-level parts present ('dataset', 'source_run'), after checking every
    entry of the zip. LessonError naming the entry and what is wrong with it otherwise."""
    path = Path(path)
    with _open_zip(path) as checked:
        seen = set(checked.files)
        if MANIFEST not in seen:
            raise LessonError(
                path,
                f"it has no {MANIFEST}",
                "this is not a lesson file; create one with 'python -m segcore lesson create' or from the app",
            )
        manifest = _json(path, MANIFEST, checked.read(MANIFEST, MAX_MANIFEST_BYTES))
    parts = {name.split("/", 1)[0] for name in seen if "/" in name}
    if SOURCE_RUN_DIR in parts and not all(f"{SOURCE_RUN_DIR}/{n}" in seen for n in SOURCE_RUN_FILES):
        missing = [n for n in SOURCE_RUN_FILES if f"{SOURCE_RUN_DIR}/{n}" not in seen]
        raise LessonError(
            path,
            f"its embedded source run lacks {', '.join(missing)}",
            "save the lesson again from a finished source run",
        )
    return manifest, parts


def read_json_entry(path: Path, name: str, limit: int = MAX_MANIFEST_BYTES):
    """One small JSON entry of a checked lesson file, read without unpacking anything."""
    with _open_zip(path) as checked:
        return _json(path, name, checked.read(name, limit))


def _json(path: Path, name: str, data: bytes):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LessonError(path, f"{name} is not valid JSON ({exc})") from None


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:20]


def unpack_lesson_zip(path: Path, root: Path, finish: Callable[[Path], None] = lambda folder: None) -> Path:
    """Unpack a checked lesson file into root/<content hash>/ (once: a later open finds it there). `finish` completes
    the staging folder (e.g. records the source run as done) before it is renamed into place."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / content_hash(path)
    if (target / ".complete").is_file():
        return target
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.", suffix=".partial"))
    try:
        with _open_zip(path) as checked:  # every check runs again on the file as it is now
            checked.extract(staging)
        finish(staging)
        (staging / ".complete").touch()
        if target.exists() and not (target / ".complete").is_file():  # damaged by hand; never a complete one
            shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            if not (target / ".complete").is_file():  # not simply another process that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
