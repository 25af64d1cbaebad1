"""Taking work home: finished runs and their comparison sheet in one zip, and that zip imported elsewhere.

A bundle is `bundle.json` (format, run ids, when, each run's dataset, sha256 of every other entry),
`comparison.png` when given, and `runs/<run_id>/<file>` for the files a finished run is read from. Resume
state and worker logs stay behind: an imported run is finished, it never trains again.

On import the zip is hostile input, like an upload: every entry is checked by name, kind and size before
anything is written, every byte is checked against its hash, each run is staged in a private folder and
renamed into place only when all runs of the bundle passed, and an existing run is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from ..base.errors import RunError
from ..base.safetensors_header import safetensors_problem
from ..base.safezip import SafeZip, ZipRules
from ..jobs.classroom import may_act_on
from ..runs.files import (
    BEST_META,
    BEST_WEIGHTS,
    CONFIG,
    JSON_OBJECTS,
    LOG,
    METRICS,
    NEEDED_TO_COMPARE,
    PORTABLE,
    STATUS,
    SUMMARY,
)
from ..runs.naming import dataset_name
from ..runs.records import best_meta_problem, config_problem, metric_record_problem, summary_problem
from ..runs.run import Run, check_run_id
from ..runs.writer import record_config, record_status, write_portable_files

FORMAT = "segcore-comparison-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
SHEET = "comparison.png"
RUNS_FOLDER = "runs"
RUN_FILES = PORTABLE  # what a finished run is read from; resume state and worker logs stay behind
REQUIRED_RUN_FILES = NEEDED_TO_COMPARE

# Limits checked before anything is written: generous for real runs, small enough to stop a zip bomb.
MAX_RUNS = 32
MAX_ENTRIES = MAX_RUNS * len(RUN_FILES) + 2 + MAX_RUNS + 1  # + manifest, sheet, and folder entries a re-zip adds
MAX_MANIFEST_BYTES = 1024**2
MAX_ENTRY_BYTES = 2 * 1024**3  # a large backbone's checkpoint
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_RATIO = 20  # checkpoints barely compress, so a whole bundle never packs 20:1; a bomb does
IMPORTED_SUFFIX = "-imported"
# per file: what a real run writes, with room to spare; more is a bundle made to tie up the pages that read it
FILE_LIMITS = {
    CONFIG: MAX_MANIFEST_BYTES,
    STATUS: MAX_MANIFEST_BYTES,
    SUMMARY: MAX_MANIFEST_BYTES,
    BEST_META: MAX_MANIFEST_BYTES,
    METRICS: 64 * 1024**2,
    LOG: 16 * 1024**2,
}
BUNDLE_ZIP_RULES = ZipRules(
    inside="the bundle",
    hint="import only bundles exported by the workbench",
    max_entries=MAX_ENTRIES,
    max_total_bytes=MAX_TOTAL_BYTES,
    max_entry_bytes=MAX_ENTRY_BYTES,
    max_ratio=MAX_RATIO,
    redo_hint="the bundle is damaged: copy or export it again",
    password_hint="export the comparison again without a password",
)


class BundleError(RunError):
    """A bundle that cannot be exported or imported: which zip and entry, what is wrong, what to do."""

    def __init__(self, zip_path: object, entry: str | None, problem: str, hint: str) -> None:
        self.zip_path, self.entry, self.problem, self.hint = str(zip_path), entry, problem, hint
        where = f"{self.zip_path}, entry '{entry}'" if entry else self.zip_path
        super().__init__(f"{where}: {problem} — {hint}")


# -- export -----------------------------------------------------------------------------------------
def export_comparison(
    runs: list[Run],
    destination_zip: str | Path,
    sheet_png: bytes | None = None,
    owner: str | None = None,
    teacher: bool = False,
) -> Path:
    """Write one zip holding each finished run's files, the comparison sheet if given, and a manifest with
    the sha256 of every file. Written to a temporary name and renamed, so a failed export leaves no half zip.
    `owner`: a student may take home only their own runs (the teacher, and the command line, any)."""
    destination = Path(destination_zip)
    check_exportable(runs, owner, teacher)
    entries: dict[str, bytes] = {}
    described = []
    for run in runs:
        for name in RUN_FILES:
            path = run.path / name
            if path.is_file():
                entries[f"{RUNS_FOLDER}/{run.run_id}/{name}"] = path.read_bytes()
        source = str(run.config.get("data", ""))
        described.append(
            {
                "id": run.run_id,
                "strategy": run.config.get("strategy"),
                "backbone": run.config.get("backbone"),
                "data": source,
                "dataset": dataset_name(source) if source else "",
                "miou": run.summary().get("miou"),
            }
        )
    if sheet_png is not None:
        entries[SHEET] = bytes(sheet_png)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created": time.time(),
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "runs": described,
        "sheet": SHEET if sheet_png is not None else None,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in entries.items()
        },
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            _write_entry(archive, MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
            for name, data in entries.items():
                _write_entry(archive, name, data)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def check_exportable(runs: list[Run], owner: str | None = None, teacher: bool = False) -> None:
    """RunError naming what stops these runs from being taken home (someone else's, unfinished, damaged, too many,
    chosen twice); cheap: nothing is packed."""
    foreign = [run.run_id for run in runs if not may_act_on(run, owner, teacher)]
    if foreign:
        raise RunError(
            f"{', '.join(foreign)} belong{'s' if len(foreign) == 1 else ''} to another student: a bundle takes home "
            "your own runs only — leave theirs out"
        )
    if not runs:
        raise RunError("nothing to export: choose at least one finished run")
    if len(runs) > MAX_RUNS:
        raise RunError(f"{len(runs)} runs chosen; a bundle holds at most {MAX_RUNS}: export them in parts")
    ids = [run.run_id for run in runs]
    if len(set(ids)) != len(ids):
        raise RunError(
            f"the same run is chosen twice ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))}): choose each once"
        )
    for run in runs:
        _check_exportable(run)


def export_comparison_bytes(
    runs: list[Run], sheet_png: bytes | None = None, owner: str | None = None, teacher: bool = False
) -> bytes:
    """The bundle as bytes, for a page's download button (written and checked as export_comparison writes it)."""
    with tempfile.TemporaryDirectory() as folder:
        destination = Path(folder) / "comparison-bundle.zip"
        return export_comparison(runs, destination, sheet_png, owner, teacher).read_bytes()


def import_comparison_bytes(data: bytes, runs_dir: str | Path, owner: str | None = None) -> list[Run]:
    """import_comparison of a bundle uploaded through a page (its bytes)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle.zip"
        path.write_bytes(data)
        return import_comparison(path, runs_dir, owner)


def _check_exportable(run: Run) -> None:
    if run.state != "done":
        raise RunError(
            f"run {run.run_id} is {run.state}: only finished runs can be taken home — wait for it or leave it out"
        )
    problem = run.problem
    if problem:
        raise RunError(f"{problem} — leave this run out of the bundle or train it again")
    missing = [name for name in REQUIRED_RUN_FILES if not (run.path / name).is_file()]
    if missing:
        raise RunError(
            f"run {run.run_id} has no {', '.join(missing)}: only finished runs with a checkpoint can be taken home"
        )


def _write_entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain file: never read back as a link
    archive.writestr(info, data)


# -- import -----------------------------------------------------------------------------------------
def import_comparison(zip_path: str | Path, runs_dir: str | Path, owner: str | None = None) -> list[Run]:
    """Import a bundle's runs into runs_dir and return them (in the bundle's order). A run id already there
    gets a new one (`<id>-imported`, `<id>-imported-2`, …) and structure-transfer references between the
    imported runs follow. Imported runs read as done, with `imported: true` in status.json, and belong to
    `owner` (the student who imported them), whoever made them.
    BundleError (a RunError) naming the entry when the zip is not a sound bundle; nothing is written then."""
    zip_path, runs_dir = Path(zip_path), Path(runs_dir)

    def error(entry: str | None, problem: str, hint: str) -> BundleError:
        return BundleError(zip_path, entry, problem, hint)

    with SafeZip(zip_path, BUNDLE_ZIP_RULES, error) as archive:
        manifest = _read_manifest(zip_path, archive)
        run_ids = _manifest_run_ids(zip_path, manifest)
        expected = _expected_files(zip_path, manifest, run_ids)
        _match_entries(zip_path, archive.files, expected)
        runs_dir.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[str, Path]] = []
        try:
            for run_id in run_ids:
                staged.append((run_id, _stage_run(zip_path, archive, manifest, run_id, runs_dir)))
            if manifest.get("sheet"):
                _verified_bytes(zip_path, archive, SHEET, manifest["files"][SHEET])
            return _move_into_place(staged, runs_dir, zip_path, owner)
        finally:
            for _, folder in staged:
                shutil.rmtree(folder, ignore_errors=True)  # gone already unless something failed


def _read_manifest(zip_path: Path, archive: SafeZip) -> dict:
    if MANIFEST not in archive.files:
        raise BundleError(
            zip_path, MANIFEST, "the bundle has no manifest", "export the comparison again from the Compare page"
        )
    data = archive.read(MANIFEST, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError(zip_path, MANIFEST, "the manifest is not valid JSON", "export the comparison again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(
            zip_path, MANIFEST, "this is not a comparison bundle's manifest", "export one from the Compare page"
        )
    if manifest.get("version") != FORMAT_VERSION:
        raise BundleError(
            zip_path,
            MANIFEST,
            f"bundle format version {manifest.get('version')!r} is not the version "
            f"this workbench reads ({FORMAT_VERSION})",
            "export it again with this version of the workbench",
        )
    if not isinstance(manifest.get("runs"), list) or not isinstance(manifest.get("files"), dict):
        raise BundleError(
            zip_path, MANIFEST, "the manifest lists no runs or no file hashes", "export the comparison again"
        )
    return manifest


def _manifest_run_ids(zip_path: Path, manifest: dict) -> list[str]:
    ids = []
    for entry in manifest["runs"]:
        run_id = entry.get("id") if isinstance(entry, dict) else None
        try:
            check_run_id(run_id)
        except RunError as exc:
            raise BundleError(
                zip_path,
                MANIFEST,
                f"it names a run that cannot be imported: {exc}",
                "do not import this file: a workbench never writes such a name",
            ) from None
        if run_id in ids:
            raise BundleError(zip_path, MANIFEST, f"run '{run_id}' is listed twice", "export the comparison again")
        ids.append(run_id)
    if not ids:
        raise BundleError(zip_path, MANIFEST, "the bundle holds no runs", "export at least one finished run")
    if len(ids) > MAX_RUNS:
        raise BundleError(
            zip_path, MANIFEST, f"{len(ids)} runs, more than {MAX_RUNS}", "export the runs in smaller bundles"
        )
    return ids


def _expected_files(zip_path: Path, manifest: dict, run_ids: list[str]) -> dict[str, dict]:
    """The manifest's file list, refused unless every name is one a bundle may hold and every run has the
    files Compare reads."""
    allowed = {f"{RUNS_FOLDER}/{run_id}/{name}" for run_id in run_ids for name in RUN_FILES}
    if manifest.get("sheet") is not None:
        if manifest["sheet"] != SHEET:
            raise BundleError(
                zip_path,
                MANIFEST,
                f"the sheet is named {manifest['sheet']!r}, not {SHEET}",
                "export the comparison again",
            )
        allowed.add(SHEET)
    files = manifest["files"]
    for name, record in files.items():
        if name not in allowed:
            raise BundleError(
                zip_path,
                name,
                f"the manifest lists a file a bundle does not hold (only {', '.join(RUN_FILES)} per run, and {SHEET})",
                "do not import this file",
            )
        if not (isinstance(record, dict) and isinstance(record.get("sha256"), str) and len(record["sha256"]) == 64):
            raise BundleError(zip_path, name, "the manifest gives this file no sha256", "export the comparison again")
    for run_id in run_ids:
        for name in REQUIRED_RUN_FILES:
            if f"{RUNS_FOLDER}/{run_id}/{name}" not in files:
                raise BundleError(
                    zip_path,
                    f"{RUNS_FOLDER}/{run_id}/{name}",
                    "a run's file is missing from the bundle",
                    "export the comparison again from a finished run",
                )
    if manifest.get("sheet") is not None and SHEET not in files:
        raise BundleError(
            zip_path, SHEET, "the manifest names a sheet but gives it no hash", "export the comparison again"
        )
    return files


def _match_entries(zip_path: Path, members: dict, expected: dict[str, dict]) -> None:
    for name in members:
        if name != MANIFEST and name not in expected:
            raise BundleError(
                zip_path,
                name,
                "unexpected file: the manifest does not list it",
                "do not import this file: someone added to the bundle after it was exported",
            )
    for name in expected:
        if name not in members:
            raise BundleError(
                zip_path,
                name,
                "the manifest lists this file but the zip does not hold it",
                "the bundle is incomplete: export the comparison again",
            )


def _verified_bytes(zip_path: Path, archive: SafeZip, name: str, record: dict) -> bytes:
    data = archive.read(name)
    if hashlib.sha256(data).hexdigest() != record["sha256"].lower():
        raise BundleError(
            zip_path,
            name,
            "the content does not match its sha256 in the manifest (changed or damaged after export)",
            "copy the bundle again or export it again",
        )
    return data


def _stage_run(
    zip_path: Path,
    archive: SafeZip,
    manifest: dict,
    run_id: str,
    runs_dir: Path,
) -> Path:
    """The run's verified files in a private folder of runs_dir (same disk, so the final rename is atomic).
    config.json goes in last: a folder without it is not listed as a run while it is being written."""
    folder = Path(tempfile.mkdtemp(dir=runs_dir, prefix=".import-"))
    names = [n for n in RUN_FILES if f"{RUNS_FOLDER}/{run_id}/{n}" in manifest["files"]]
    try:
        contents = {}
        for name in names:
            entry = f"{RUNS_FOLDER}/{run_id}/{name}"
            contents[name] = _verified_bytes(zip_path, archive, entry, manifest["files"][entry])
            _check_content(zip_path, entry, name, contents[name])
        write_portable_files(folder, contents)
        problem = safetensors_problem(folder / BEST_WEIGHTS)
        if problem:
            raise BundleError(
                zip_path, f"{RUNS_FOLDER}/{run_id}/{BEST_WEIGHTS}", problem, "export the comparison again"
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _check_content(zip_path: Path, entry: str, name: str, data: bytes) -> None:
    """Every field a run carries keeps the rules a run made here keeps (runs/records.py): the JSON files are objects
    (config.json with valid settings, numbers are numbers, colours are colours), every metrics line is a record of
    the right kind. Refused naming the entry (and line) otherwise."""
    limit = FILE_LIMITS.get(name, MAX_ENTRY_BYTES)
    if len(data) > limit:
        raise BundleError(
            zip_path,
            entry,
            f"{len(data) / 1024**2:.1f} MiB, over the {limit / 1024**2:.0f} MiB a run's {name} may be",
            "import only bundles exported by the workbench",
        )
    if name == METRICS:
        _check_metrics(zip_path, entry, data)
        return
    if name not in JSON_OBJECTS:
        return
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BundleError(zip_path, entry, "not valid JSON", "export the comparison again") from None
    if not isinstance(value, dict):
        raise BundleError(zip_path, entry, "not a JSON object", "export the comparison again")
    rule = {CONFIG: config_problem, SUMMARY: summary_problem, BEST_META: best_meta_problem}.get(name)
    problem = rule(value) if rule else None
    if problem:
        raise BundleError(zip_path, entry, problem, "this run's files are damaged; leave it out of the bundle")


def _check_metrics(zip_path: Path, entry: str, data: bytes) -> None:
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise BundleError(zip_path, entry, "not text", "export the comparison again") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise BundleError(
                zip_path, entry, f"line {number} is not valid JSON", "export the comparison again"
            ) from None
        problem = "not a JSON object" if not isinstance(record, dict) else metric_record_problem(record)
        if problem:
            raise BundleError(zip_path, entry, f"line {number}: {problem}", "this run's curves are damaged")


def _move_into_place(staged: list[tuple[str, Path]], runs_dir: Path, zip_path: Path, owner: str | None) -> list[Run]:
    """Reserve every new name first, so source-run references can point at them before any run appears."""
    targets: dict[str, Path] = {}
    try:
        for run_id, _ in staged:
            targets[run_id] = _reserve_folder(runs_dir, run_id)
        for run_id, folder in staged:
            _finish_run(folder, run_id, targets, zip_path, owner)
            _rename_over_reserved(folder, targets[run_id])
    except BaseException:
        for target in targets.values():
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()  # a reserved name no run arrived in
        raise
    return [Run(targets[run_id]) for run_id, _ in staged]


def _reserve_folder(runs_dir: Path, run_id: str) -> Path:
    """An empty folder under a free name, made with mkdir so two imports never pick the same one."""
    candidates = [run_id] + [f"{run_id}{IMPORTED_SUFFIX}" + (f"-{n}" if n > 1 else "") for n in range(1, 10_000)]
    for candidate in candidates:
        suffix = candidate[len(run_id) :]
        name = check_run_id(run_id[: 128 - len(suffix)] + suffix)  # stay within the run-id length limit
        try:
            (runs_dir / name).mkdir()
        except FileExistsError:
            continue
        return runs_dir / name
    raise RunError(f"{runs_dir}: no free name for the imported run {run_id}: remove some imported copies first")


def _finish_run(folder: Path, run_id: str, targets: dict[str, Path], zip_path: Path, owner: str | None) -> None:
    """The staged run made a finished, imported run under its new name (no process: done, imported: true);
    the original start time stays, so time-to-accuracy curves read as they did."""
    target = targets[run_id]
    recorded = Run(folder).recorded_status()[0]
    status = {
        "state": "done",
        "imported": True,
        "imported_from": run_id,
        "imported_at": time.time(),
        "bundle": zip_path.name,
        "updated": time.time(),
    }
    for key in ("started", "miou"):  # the only fields that still mean something on another machine
        if isinstance(recorded.get(key), (int, float)) and not isinstance(recorded.get(key), bool):
            status[key] = recorded[key]
    record_status(folder, status)
    config = Run(folder).config
    if "run_id" in config:
        config["run_id"] = target.name
    if "source_run" in config:
        config["source_run"] = _redirected_source(config["source_run"], targets)
    if isinstance(config.get("owner"), str) and config.get("owner") != owner:
        config["made_by"] = config["owner"]  # credited to whoever trained it (Teacher page), not to the importer
    config["owner"] = owner
    record_config(folder, config)
    os.chmod(folder, stat.S_IMODE(target.stat().st_mode))  # mkdtemp made it private; now as this folder makes runs


def _redirected_source(source, targets: dict[str, Path]):
    """A structure-transfer run names its source run by folder or id; when that source came in the same
    bundle, point at the imported copy (it may have a new name, and it is in a new place)."""
    if not isinstance(source, str) or not source:
        return source
    source_id = PurePosixPath(source.replace("\\", "/")).name
    return str(targets[source_id].resolve()) if source_id in targets else source


def _rename_over_reserved(folder: Path, target: Path) -> None:
    try:
        os.rename(folder, target)  # POSIX: replaces the empty reserved folder in one step
    except OSError:
        target.rmdir()  # Windows will not rename onto a folder
        os.rename(folder, target)


__all__ = [
    "BundleError",
    "export_comparison",
    "export_comparison_bytes",
    "import_comparison",
    "import_comparison_bytes",
]
