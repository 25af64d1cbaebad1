"""Disk per student on a class server: what their runs and uploads take, against SEGCORE_QUOTA_MB.

An upload is refused before it is written when it would take the student past the quota (a zip counts with what it
declares it unpacks to, so a small zip of a large dataset is judged by its real size), and a new run is refused
while the student is over it. Without SEGCORE_QUOTA_MB nothing is limited (one person's laptop). Uploads are shared
by content in the cache, so a file two students uploaded counts for both.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import DatasetError
from ..runs.run import Run
from .workspace import WorkspaceRecord

QUOTA_ENV = "SEGCORE_QUOTA_MB"


def quota_bytes() -> int | None:
    text = os.environ.get(QUOTA_ENV, "").strip()
    try:
        return int(float(text) * 1024**2) if text and float(text) > 0 else None
    except ValueError:
        return None


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (links not followed); 0 when it is gone."""
    total = 0
    stack = [Path(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def unpacked_bytes(archive: Path) -> int:
    """What a zip declares it unpacks to (0 when it is not a readable zip: it will be refused when opened)."""
    try:
        with zipfile.ZipFile(archive) as handle:
            return sum(member.file_size for member in handle.infolist())
    except (OSError, zipfile.BadZipFile):
        return 0


@dataclass(frozen=True)
class DiskUse:
    runs: int
    uploads: int
    quota: int | None

    @property
    def total(self) -> int:
        return self.runs + self.uploads

    def sentence(self) -> str:
        used = f"{self.total / 1024**2:,.0f} MiB"
        return f"{used} of {self.quota / 1024**2:,.0f} MiB" if self.quota else used


def upload_bytes(source: str) -> int:
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".zip":
        return path.stat().st_size + unpacked_bytes(path)
    return folder_bytes(path) if path.is_dir() else 0


def disk_use(owner: str, runs_dir: Path, runs: list[Run]) -> DiskUse:
    """What `owner`'s run folders and uploads take on disk."""
    record = WorkspaceRecord.load(runs_dir, owner)
    return DiskUse(
        runs=sum(folder_bytes(run.path) for run in runs if run.owner == owner),
        uploads=sum(upload_bytes(u["source"]) for u in record.uploads or []),
        quota=quota_bytes(),
    )


def upload_problem(owner: str, runs_dir: Path, runs: list[Run], files: list[tuple[str, bytes]]) -> str | None:
    """Why these files may not be uploaded by `owner` (None when they fit): the quota, a zip judged by what it
    unpacks to."""
    quota = quota_bytes()
    if quota is None:
        return None
    incoming = sum(len(content) for _, content in files)
    if len(files) == 1 and files[0][0].lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(files[0][1])) as handle:
                incoming += sum(member.file_size for member in handle.infolist())
        except zipfile.BadZipFile:
            pass  # refused with its own message when it is opened
    use = disk_use(owner, runs_dir, runs)
    if use.total + incoming > quota:
        return (
            f"this upload needs {incoming / 1024**2:,.0f} MiB (unpacked) and you have used {use.sentence()} "
            f"({QUOTA_ENV}): delete some runs (sidebar: Delete my work) or upload less"
        )
    return None


def check_upload(owner: str, runs_dir: Path, runs: list[Run], files: list[tuple[str, bytes]]) -> None:
    problem = upload_problem(owner, runs_dir, runs, files)
    if problem:
        raise DatasetError("upload", problem)


def new_run_problem(owner: str | None, runs_dir: Path, runs: list[Run]) -> str | None:
    """Why `owner` may not start another run (None when they may): over their disk quota."""
    quota = quota_bytes()
    if quota is None or owner is None:
        return None
    use = disk_use(owner, runs_dir, runs)
    if use.total >= quota:
        return (
            f"you have used {use.sentence()} of disk ({QUOTA_ENV}): delete some runs (sidebar: Delete my work) "
            "before training more"
        )
    return None
