"""What a student's workspace remembers between visits (dataset in use, uploads), and removing a student's work."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..base.atomic import atomic_write_json
from ..runs.run import Run


@dataclass
class WorkspaceRecord:
    """What a student's workspace remembers between visits: the dataset in use and the datasets uploaded
    (by the name they had on the student's computer), so a reload or another page never loses the choice."""

    owner: str
    dataset: str | None = None
    ignore_index: int | None = 255
    uploads: list[dict] | None = None  # [{"name": original file or folder name, "source": dataset source}]
    model_settings: dict | None = None  # the Model page's choices (widget key → JSON value), kept across reloads

    @staticmethod
    def path(runs_dir: Path, owner: str) -> Path:
        return Path(runs_dir) / ".workspaces" / (hashlib.sha1(owner.encode()).hexdigest()[:16] + ".json")

    @classmethod
    def load(cls, runs_dir: Path, owner: str) -> WorkspaceRecord:
        try:
            payload = json.loads(cls.path(runs_dir, owner).read_text())
        except (OSError, ValueError):
            return cls(owner, uploads=[])
        if not isinstance(payload, dict):
            return cls(owner, uploads=[])
        uploads = [
            u
            for u in payload.get("uploads") or []
            if isinstance(u, dict) and isinstance(u.get("name"), str) and isinstance(u.get("source"), str)
        ]
        ignore = payload.get("ignore_index")
        kept = payload.get("model_settings")
        kept = {
            k: v
            for k, v in (kept if isinstance(kept, dict) else {}).items()
            if isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool)))
        }
        return cls(
            owner,
            payload.get("dataset") if isinstance(payload.get("dataset"), str) else None,
            ignore if ignore is None or isinstance(ignore, int) else 255,
            uploads,
            kept,
        )

    def save(self, runs_dir: Path) -> None:
        atomic_write_json(self.path(runs_dir, self.owner), asdict(self))

    def remember_upload(self, name: str, source: str) -> None:
        self.uploads = [u for u in self.uploads or [] if u["source"] != source] + [{"name": name, "source": source}]
        self.uploads = self.uploads[-20:]

    def upload_name(self, source: str) -> str | None:
        return next((u["name"] for u in self.uploads or [] if u["source"] == source), None)


def delete_workspace(runs_dir: Path, owner: str, runs: list[Run]) -> list[str]:
    """Remove a student's finished, failed and cancelled runs and the workspace record; runs still queued or
    training are left (cancel them first). Returns the ids removed. Uploaded files stay in the shared cache,
    keyed by content, since a classmate may have uploaded the same files."""
    removed = []
    for run in runs:
        if run.owner == owner and run.state not in ("queued", "running"):
            shutil.rmtree(run.path, ignore_errors=True)
            removed.append(run.run_id)
    WorkspaceRecord.path(runs_dir, owner).unlink(missing_ok=True)
    return removed
