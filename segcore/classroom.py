"""A class on one server: who a run belongs to, a fair queue between students, the per-student limit a
teacher sets, and the teacher's overview (leaderboard, best run per student and strategy).

A student is known by a workspace name ("class/student", or just "student" on a server with one class). The
name is not a secret: it separates students' work so nobody sees or stops a classmate's runs by accident; the
teacher's page is what a PIN protects.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SegcoreError
from .runs import Run, atomic_write_json

NAME_PATTERN = re.compile(r"^[\w][\w .'-]{0,39}$", re.UNICODE)
SETTINGS_FILE = ".classroom.json"


class WorkspaceError(SegcoreError):
    """A workspace (student or class) name that cannot be used."""


def check_name(name: str, what: str = "name") -> str:
    name = " ".join(str(name).split())
    if not NAME_PATTERN.match(name):
        raise WorkspaceError(
            f"'{name[:40]}' cannot be a {what}: use 1–40 letters, digits, spaces, '.', "
            "'-', \"'\" or '_', starting with a letter or digit"
        )
    return name


def workspace_id(student: str, class_name: str | None = None) -> str:
    """The owner recorded on a student's runs: 'class/student' (or 'student' with no class)."""
    student = check_name(student, "student name")
    return f"{check_name(class_name, 'class name')}/{student}" if class_name else student


def student_of(owner: str | None) -> str:
    return (owner or "—").split("/", 1)[-1]


@dataclass
class ClassroomSettings:
    """What a teacher sets for the whole class, kept beside the runs (survives restarts)."""

    max_waiting_per_student: int = int(os.environ.get("SEGCORE_MAX_WAITING_PER_STUDENT", "20"))

    @classmethod
    def load(cls, runs_dir: Path) -> ClassroomSettings:
        try:
            payload = json.loads((Path(runs_dir) / SETTINGS_FILE).read_text())
            limit = payload.get("max_waiting_per_student")
            if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 1000:
                return cls(limit)
        except (OSError, ValueError, AttributeError):
            pass  # no settings yet, or a damaged file: the defaults hold
        return cls()

    def save(self, runs_dir: Path) -> None:
        if not 1 <= self.max_waiting_per_student <= 1000:
            raise WorkspaceError("the per-student limit must be between 1 and 1000 waiting runs")
        atomic_write_json(Path(runs_dir) / SETTINGS_FILE, asdict(self))


def fair_order(queued: list[Run], running: list[Run]) -> list[Run]:
    """Queued runs in the order they should start: round-robin between students rather than first come, so one
    student's ten runs do not hold up a classmate's one. Each run's turn is its place in its owner's own line,
    counting what the owner already has running; ties go to the earlier submission."""
    busy = Counter(r.owner for r in running)
    turn: Counter = Counter()
    keyed = []
    for run in sorted(queued, key=lambda r: r.status_record.queued or 0.0):
        keyed.append((busy[run.owner] + turn[run.owner], run.status_record.queued or 0.0, run))
        turn[run.owner] += 1
    return [run for *_, run in sorted(keyed, key=lambda k: (k[0], k[1]))]


def waiting_limit_problem(owner: str | None, queued: list[Run], adding: int, runs_dir: Path) -> str | None:
    if owner is None:
        return None
    limit = ClassroomSettings.load(runs_dir).max_waiting_per_student
    waiting = sum(r.owner == owner for r in queued)
    if waiting + adding > limit:
        return (
            f"{student_of(owner)} already has {waiting} run(s) waiting and the class limit is {limit}: wait for "
            "some to finish or cancel some (the teacher sets the limit)"
        )
    return None


def teacher_pin() -> str:
    """The teacher's PIN: SEGCORE_TEACHER_PIN, else a random one made once per server start (and printed)."""
    return os.environ.get("SEGCORE_TEACHER_PIN") or _generated_pin()


_PIN: list[str] = []


def _generated_pin() -> str:
    if not _PIN:
        _PIN.append(f"{secrets.randbelow(10**6):06d}")
        print(f"\n  Teacher PIN for this server: {_PIN[0]}  (set SEGCORE_TEACHER_PIN to choose one)\n", flush=True)
    return _PIN[0]


def pin_matches(given: str) -> bool:
    return hmac.compare_digest(str(given).strip().encode(), teacher_pin().encode())


def leaderboard(runs: list[Run]) -> list[dict]:
    """Best finished run per dataset and strategy across the class: who, mIoU, training time. Students level at
    the precision the page shows (3 decimals) share the place — a class on the same defaults and seed often ties —
    and the run shown is the first of theirs to get there."""
    best: dict[tuple, dict] = {}
    for run in runs:  # oldest first (list_runs)
        summary = run.summary()
        miou = summary.get("miou")
        if run.state != "done" or not isinstance(miou, (int, float)):
            continue
        key = (str(run.config.get("data")), str(run.config.get("strategy")))
        student = student_of(run.owner)
        leader = best.get(key)
        if leader and round(miou, 3) == round(leader["mIoU"], 3):
            leader["students"].add(student)
        elif leader is None or miou > leader["mIoU"]:
            best[key] = {
                "dataset": key[0],
                "strategy": key[1],
                "mIoU": miou,
                "students": {student},
                "training time (s)": summary.get("train_time_s"),
                "run": run.run_id,
            }
    rows = [{**row, "students": ", ".join(sorted(row["students"]))} for row in best.values()]
    return sorted(rows, key=lambda row: (row["dataset"], -row["mIoU"]))


def best_per_student(runs: list[Run], data: str) -> list[dict]:
    """For one dataset: each student's best mIoU per strategy (the class comparison)."""
    best: dict[tuple, float] = {}
    for run in runs:
        miou = run.summary().get("miou")
        if run.state == "done" and run.config.get("data") == data and isinstance(miou, (int, float)):
            key = (student_of(run.owner), str(run.config.get("strategy")))
            best[key] = max(best.get(key, -1.0), miou)
    return [{"student": s, "strategy": k, "mIoU": v} for (s, k), v in sorted(best.items())]


@dataclass
class WorkspaceRecord:
    """What a student's workspace remembers between visits: the dataset in use and the datasets uploaded
    (by the name they had on the student's computer), so a reload or another page never loses the choice."""

    owner: str
    dataset: str | None = None
    ignore_index: int | None = 255
    uploads: list[dict] | None = None  # [{"name": original file or folder name, "source": dataset source}]

    @staticmethod
    def path(runs_dir: Path, owner: str) -> Path:
        import hashlib

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
        return cls(
            owner,
            payload.get("dataset") if isinstance(payload.get("dataset"), str) else None,
            ignore if ignore is None or isinstance(ignore, int) else 255,
            uploads,
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
    import shutil

    removed = []
    for run in runs:
        if run.owner == owner and run.state not in ("queued", "running"):
            shutil.rmtree(run.path, ignore_errors=True)
            removed.append(run.run_id)
    WorkspaceRecord.path(runs_dir, owner).unlink(missing_ok=True)
    return removed
