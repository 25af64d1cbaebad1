"""A class on one server: who a run belongs to, a fair queue between students, the per-student limit a
teacher sets, and the teacher's PIN.

A student is known by a workspace name ("class/student", or just "student" on a server with one class). The
name is not a secret: it separates students' work so nobody sees or stops a classmate's runs by accident; the
teacher's page is what a PIN protects.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..base.atomic import atomic_write_json
from ..base.attempts import AttemptLimiter
from ..runs.run import Run
from .accounts import SignInError
from .names import WorkspaceError, check_name

SETTINGS_FILE = ".classroom.json"
PIN_ENV = "SEGCORE_TEACHER_PIN"
# the teacher's PIN: 5 wrong tries per browser session, 20 across the server, then waits that double
PIN_GUESSES = AttemptLimiter(free=5, first_wait_s=2.0, max_wait_s=300.0)
SERVER_PIN_GUESSES = AttemptLimiter(free=20, first_wait_s=2.0, max_wait_s=60.0)


def workspace_id(student: str, class_name: str | None = None) -> str:
    """The owner recorded on a student's runs: 'class/student' (or 'student' with no class). With SEGCORE_CLASSES
    set, only those classes."""
    student = check_name(student, "student name")
    if not class_name:
        if offered_classes():
            raise WorkspaceError(f"choose your class: {', '.join(offered_classes())}")
        return student
    class_name = check_name(class_name, "class name")
    if offered_classes() and class_name not in offered_classes():
        raise WorkspaceError(f"'{class_name}' is not a class on this server: choose {', '.join(offered_classes())}")
    return f"{class_name}/{student}"


def may_act_on(run: Run, owner: str | None, teacher: bool = False) -> bool:
    """Whether someone may cancel, resume, rename, delete or export `run`: its owner, the teacher, and anyone at all
    for a run without an owner (made from the command line). `owner` None: the command line itself."""
    return teacher or owner is None or run.owner is None or run.owner == owner


def student_of(owner: str | None) -> str:
    return (owner or "—").split("/", 1)[-1]


@dataclass
class ClassroomSettings:
    """What a teacher sets for the whole class, kept beside the runs (survives restarts)."""

    max_waiting_per_student: int = int(os.environ.get("SEGCORE_MAX_WAITING_PER_STUDENT", "20"))
    share_identical: bool = True  # identical runs trained once (jobs/identical.py)

    @classmethod
    def load(cls, runs_dir: Path) -> ClassroomSettings:
        try:
            payload = json.loads((Path(runs_dir) / SETTINGS_FILE).read_text())
        except (OSError, ValueError):
            return cls()  # no settings yet, or a damaged file: the defaults hold
        settings = cls()
        if isinstance(payload, dict):
            limit = payload.get("max_waiting_per_student")
            if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= 1000:
                settings.max_waiting_per_student = limit
            if isinstance(payload.get("share_identical"), bool):
                settings.share_identical = payload["share_identical"]
        return settings

    def save(self, runs_dir: Path) -> None:
        if not 1 <= self.max_waiting_per_student <= 1000:
            raise WorkspaceError("the per-student limit must be between 1 and 1000 waiting runs")
        atomic_write_json(Path(runs_dir) / SETTINGS_FILE, asdict(self))


SERVICE_WINDOW_S = 3600.0


def service_received(runs: list[Run], now: float | None = None) -> Counter:
    """Runs each student had trained for them in the last hour (started, whether running or ended): what a fair
    queue evens out. A linked copy of an identical run and an imported run cost the server nothing and do not count."""
    now = time.time() if now is None else now
    served: Counter = Counter()
    for run in runs:
        record = run.status
        started = record.get("started")
        recent = isinstance(started, (int, float)) and now - started < SERVICE_WINDOW_S
        if (
            (run.state == "running" or record.get("state") != "queued" and recent)
            and not record.get("linked_to")
            and not record.get("imported")
        ):
            served[run.owner] += 1
    return served


def fair_order(queued: list[Run], others: list[Run], now: float | None = None) -> list[Run]:
    """Queued runs in the order they should start: the student who has had the least service comes first, so a
    classmate's first run starts before a student's second, whatever is running and whatever has finished (with one
    slot, counting only running runs let a student's next run follow their last). Each waiting run's turn is its
    owner's service plus its place in the owner's own line; ties go to the earlier submission."""
    served = service_received(others, now)
    turn: Counter = Counter()
    keyed = []
    for run in sorted(queued, key=lambda r: r.status_record.queued or 0.0):
        keyed.append((served[run.owner] + turn[run.owner], run.status_record.queued or 0.0, run))
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
    """The teacher's PIN: SEGCORE_TEACHER_PIN, else a random 6-digit one made once per server start (and printed)."""
    return os.environ.get(PIN_ENV) or _generated_pin()


_PIN: list[str] = []


def _generated_pin() -> str:
    if not _PIN:
        _PIN.append(f"{secrets.randbelow(10**6):06d}")
        print(f"\n  Teacher PIN for this server: {_PIN[0]}  (set SEGCORE_TEACHER_PIN to choose one)\n", flush=True)
    return _PIN[0]


def pin_matches(given: str, session_id: str = "") -> bool:
    """Whether `given` is the teacher's PIN. After too many wrong tries (per browser session, and across the server)
    every try waits, growing with each failure: SignInError says how long. Failures are logged on the console."""
    keys = (f"session:{session_id}",)
    wait = max(PIN_GUESSES.wait_s(*keys), SERVER_PIN_GUESSES.wait_s("server"))
    if wait > 0:
        raise SignInError(f"too many wrong PINs: wait {wait:.0f} s and try again")
    if hmac.compare_digest(str(given).strip().encode(), teacher_pin().encode()):
        PIN_GUESSES.succeeded(*keys)
        return True
    PIN_GUESSES.failed(*keys, what="teacher PIN")
    SERVER_PIN_GUESSES.failed("server", what="teacher PIN")
    return False


def offered_classes() -> list[str]:
    """SEGCORE_CLASSES="5A,5B" on a server that hosts several classes; empty for one class."""
    return [c.strip() for c in os.environ.get("SEGCORE_CLASSES", "").split(",") if c.strip()]
