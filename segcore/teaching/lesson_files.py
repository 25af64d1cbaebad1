"""Lesson files: saving a Lesson (lesson_archive.py is the zip format), opening one someone handed out (checked whole
before anything is unpacked), listing a class's lessons, and queueing a lesson's runs."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..base.atomic import atomic_write_bytes
from ..base.errors import LessonError, SegcoreError
from ..base.paths import cache_dir, default_lessons_dir
from ..jobs.planning import queue_plan
from ..runs.files import BEST_META, CONFIG, NEEDED_AS_SOURCE
from ..runs.naming import slug
from ..runs.run import Run, is_valid_run_id
from ..runs.writer import record_status
from ..settings.config import PRESETS, TrainConfig
from .builtin_lessons import BUILTIN_LESSONS
from .lesson import EMBEDDED, UNPACKED_SOURCE_DIR, Lesson, backbone_problem
from .lesson_archive import (
    DATASET_DIR,
    FORMAT,
    FORMAT_VERSION,
    LESSON_SUFFIXES,
    SOURCE_RUN_DIR,
    dataset_files,
    is_lesson_file,
    read_checked_manifest,
    read_json_entry,
    unpack_lesson_zip,
    write_lesson_zip,
)

logger = logging.getLogger(__name__)


def _portable_run_config(folder: Path) -> bytes:
    """The source run's config.json as the lesson carries it: its settings only, without this machine's paths and
    the session that queued it."""
    config = Run(folder).train_config
    config = replace(config, weights_file=None, source_run=Path(config.source_run).name if config.source_run else None)
    return (json.dumps({**config.to_dict(), "run_id": folder.name}, indent=2) + "\n").encode()


# -- saving and opening -----------------------------------------------------------------------------------------
def save_lesson(
    lesson: Lesson,
    path: str | Path,
    dataset_folder: str | Path | None = None,
    source_run_folder: str | Path | None = None,
) -> Path:
    """Write `lesson` to `path` (.lesson.zip or .segl). dataset_folder: embed that dataset (its images, masks and text
    files) instead of referring to lesson.data_source; source_run_folder: embed that finished run's best checkpoint
    and settings (else lesson.source_run is kept as a reference to a folder on this machine)."""
    path = Path(path)
    if not is_lesson_file(path):
        raise LessonError(
            path,
            f"a lesson file's name must end in {' or '.join(LESSON_SUFFIXES)}",
            f"name it e.g. {path.stem.split('.')[0] or 'lesson'}.lesson.zip",
        )
    source = Path(source_run_folder) if source_run_folder else None
    checked = replace(
        lesson,
        data_source=str(dataset_folder) if dataset_folder else lesson.data_source,
        source_run=str(source) if source else lesson.source_run,
    )
    if dataset_folder and not Path(dataset_folder).is_dir():
        raise LessonError(dataset_folder, "the dataset to embed is not a folder", "give the dataset's folder")
    checked.check()
    entries: list[tuple[str, Path | bytes]] = []
    if dataset_folder:
        entries += dataset_files(Path(dataset_folder))
    if source:
        if Run(source).state != "done":
            raise LessonError(source, f"the source run is {Run(source).state}, not done", "wait until it has finished")
        entries += [
            (f"{SOURCE_RUN_DIR}/{name}", _portable_run_config(source) if name == CONFIG else source / name)
            for name in NEEDED_AS_SOURCE
        ]
    manifest = lesson.manifest(
        EMBEDDED if dataset_folder else lesson.data_source, EMBEDDED if source else lesson.source_run
    )
    return write_lesson_zip(path, manifest, entries)


def lesson_file_bytes(lesson: Lesson, dataset_folder: str | Path | None = None) -> tuple[str, bytes]:
    """(file name, content) of `lesson` saved as a file, for a page's download button and for publishing."""
    name = f"{slug(lesson.title.strip().lower(), fallback='lesson')}.lesson.zip"
    with tempfile.TemporaryDirectory() as folder:
        return name, save_lesson(lesson, Path(folder) / name, dataset_folder=dataset_folder).read_bytes()


def publish_lesson(name: str, content: bytes, lessons_dir: str | Path) -> Path:
    """Put a lesson file into the class's list (`lessons_dir`), whole or not at all: students list it at once."""
    if Path(name).name != name or not is_lesson_file(Path(name)):
        raise LessonError(name, f"a lesson file's name must be a plain name ending in {' or '.join(LESSON_SUFFIXES)}")
    target = Path(lessons_dir) / name
    atomic_write_bytes(target, content)
    return target


def _field(path: Path, manifest: dict, key: str, kinds, default=...):
    if key not in manifest:
        if default is not ...:
            return default
        raise LessonError(path, f"lesson.json has no '{key}'", "this file was not made by the workbench")
    value = manifest[key]
    if not isinstance(value, kinds):
        raise LessonError(path, f"lesson.json: '{key}' is {value!r}, of the wrong kind")
    return value


def _settle_source_run(lesson_file: Path):
    """Make the unpacked source_run/ a finished run folder the queue and structure transfer accept: recorded as done,
    and moved to source/<its run id>/, so that pages and summaries name it as the teacher did ("source run X")."""

    def finish(folder: Path) -> None:
        run = folder / SOURCE_RUN_DIR
        if not run.is_dir():
            return
        record_status(
            run, {"state": "done", "updated": time.time(), "reason": f"carried in the lesson {lesson_file.name}"}
        )
        run_id = Run(run).config.get("run_id")
        name = run_id if is_valid_run_id(run_id) else "source"
        (folder / UNPACKED_SOURCE_DIR).mkdir()
        run.rename(folder / UNPACKED_SOURCE_DIR / name)

    return finish


def _unpacked_source_run(folder: Path) -> Path:
    runs = [p for p in (folder / UNPACKED_SOURCE_DIR).iterdir() if p.is_dir()]
    if len(runs) != 1:
        raise LessonError(
            folder,
            "the unpacked lesson does not hold exactly one source run",
            f"delete {folder} and open the lesson again",
        )
    return runs[0]


def open_lesson(path: str | Path, workdir: str | Path | None = None) -> Lesson:
    """Read a lesson file someone handed out. Everything is checked before anything is unpacked; an embedded dataset
    or source run is unpacked once into <workdir>/<content hash>/ (default workdir: <cache>/lessons) and becomes the
    lesson's data_source / source_run. LessonError saying what is wrong and what to do otherwise."""
    path = Path(path)
    manifest, parts = read_checked_manifest(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LessonError(path, 'lesson.json is not a segcore lesson (no "format": "segcore-lesson")')
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LessonError(path, f"lesson.json: format_version {version!r} is not a version number")
    if version > FORMAT_VERSION:
        raise LessonError(
            path,
            f"it was made by a newer workbench (lesson format {version}; this one reads up to {FORMAT_VERSION})",
            "update the workbench, or ask the teacher to save it for this version",
        )
    dataset = _field(path, manifest, "dataset", str)
    source_ref = _field(path, manifest, "source_run", (str, type(None)), None)
    for part, reference in ((DATASET_DIR, dataset), (SOURCE_RUN_DIR, source_ref)):
        if (reference == EMBEDDED) != (part in parts):
            raise LessonError(
                path,
                f"lesson.json says its {part.replace('_', ' ')} is {reference!r}, but the file "
                f"{'holds' if part in parts else 'lacks'} a {part}/ folder",
                "this file was altered or damaged: ask the teacher for it again",
            )
    lesson = Lesson(
        title=_field(path, manifest, "title", str),
        instructions=_field(path, manifest, "instructions", str, ""),
        data_source=dataset,
        settings=_field(path, manifest, "settings", dict, {}),
        strategies=_field(path, manifest, "strategies", list),
        sweep=_field(path, manifest, "sweep", bool, False),
        source_run=None if source_ref == EMBEDDED else source_ref,
        preset=_known_preset(_field(path, manifest, "preset", (str, type(None)), None)),
        origin=str(path),
        source_task=_field(path, manifest, "source_task", (str, type(None)), None),
        unlabelled=_field(path, manifest, "unlabelled", (str, type(None)), None),
    )
    lesson.check_shape()
    if source_ref == EMBEDDED:  # refuse a source run of another backbone before unpacking anything
        problem = backbone_problem(
            read_json_entry(path, f"{SOURCE_RUN_DIR}/{BEST_META}"), lesson.settings_backbone(), "in this lesson"
        )
        if problem:
            raise LessonError(path, problem)
    if parts:
        folder = unpack_lesson_zip(
            path, Path(workdir) if workdir else cache_dir() / "lessons", _settle_source_run(path)
        )
        if dataset == EMBEDDED:
            lesson.data_source = str(folder / DATASET_DIR)
        if source_ref == EMBEDDED:
            lesson.source_run = str(_unpacked_source_run(folder))
    return lesson.check()


def list_lessons(folder: str | Path | None = None) -> list[tuple[Path, Lesson | SegcoreError]]:
    """Every lesson file in `folder` (default: $SEGCORE_LESSONS, else lessons/ beside the runs folder), by name, each
    with its Lesson or the error that says why it cannot be used. Never raises for a broken file."""
    folder = Path(folder) if folder else default_lessons_dir()
    try:
        paths = sorted(p for p in folder.iterdir() if p.is_file() and is_lesson_file(p)) if folder.is_dir() else []
    except OSError as exc:
        logger.warning("cannot list the lessons folder %s: %s", folder, exc)
        return []
    found: list[tuple[Path, Lesson | SegcoreError]] = []
    for path in paths:
        try:
            found.append((path, open_lesson(path)))
        except SegcoreError as exc:
            found.append((path, exc))
        except Exception as exc:  # a file we cannot even read (permissions, disk): report it, list the others
            logger.exception("lesson %s cannot be opened", path)
            found.append((path, LessonError(path, f"it cannot be opened ({type(exc).__name__}: {exc})")))
    return found


def resolve_lesson(reference: str | Path, workdir: str | Path | None = None) -> Lesson:
    """'builtin:KEY' for a shipped lesson, else a lesson file's path."""
    text = str(reference)
    if text.startswith("builtin:"):
        key = text.split(":", 1)[1]
        if key not in BUILTIN_LESSONS:
            raise LessonError(
                text, "no such built-in lesson", f"choose from {', '.join('builtin:' + k for k in BUILTIN_LESSONS)}"
            )
        return BUILTIN_LESSONS[key]
    return open_lesson(reference, workdir)


def lesson_group(lesson: Lesson) -> str:
    """A run group named after the lesson and the time it was queued, e.g. why-transfer-learning-20250101-101500."""
    return f"{slug(lesson.title.lower(), limit=40, fallback='lesson')}-{time.strftime('%Y%m%d-%H%M%S')}"


def earlier_lesson_runs(lesson: Lesson, owner: str | None, runs: list[Run]) -> list[Run]:
    """This student's runs of an earlier start of the same lesson that are queued, training or done: starting it again
    would queue them all once more (the page asks first)."""
    prefix = lesson_group(lesson).rsplit("-", 2)[0] + "-"
    return [
        run
        for run in runs
        if run.owner == owner
        and str(run.config.get("group") or "").startswith(prefix)
        and run.state in ("queued", "running", "done")
    ]


def queue_lesson(
    queue,
    lesson: Lesson,
    group: str | None = None,
    owner: str | None = None,
    base: TrainConfig | None = None,
    data=None,
) -> list[Run]:
    """Queue the lesson's plan through the JobQueue (the source run first where one is planned); returns the runs.
    data: the lesson's dataset when it is loaded already (see Lesson.plan)."""
    group = group or lesson_group(lesson)
    return queue_plan(queue, lesson.plan(group, base, data), group, owner)


def _known_preset(name: str | None) -> str | None:
    """A saved lesson's preset name, or None when that preset is gone (e.g. the retired "rare"): the name is only a
    label, the lesson's settings hold the values, so the lesson still opens as it was saved."""
    return name if name in PRESETS else None
