"""A run is a folder runs/<run_id>/: config.json, metrics.jsonl, status.json, best checkpoint, train.log.

Every whole-file write goes through write-then-rename, so a crash never leaves a half-written file;
metrics.jsonl is appended line by line and flushed, so another process can follow it live.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import RunError

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATES = ("queued", "running", "done", "failed", "cancelled")


def process_alive(pid, host=None) -> bool:
    """Whether a training process is still there (assumed alive when it ran on another machine)."""
    if not pid:
        return True  # not started yet: nothing to judge
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{int(pid)}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())


def check_run_id(run_id: str) -> str:
    """Run ids come from pages and the command line: letters, digits, '.', '_', '-' only, so no path escapes."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise RunError(f"'{run_id}' is not a valid run name: use letters, digits, '.', '_' and '-' (up to 128)")
    return run_id


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100] or "run"


def new_run_id(runs_dir: Path, name: str | None, strategy: str) -> str:
    base = slugify(name) if name else f"{time.strftime('%Y%m%d-%H%M%S')}-{strategy}"
    candidate, counter = base, 1
    while (runs_dir / candidate).exists():
        counter += 1
        candidate = f"{base}-{counter}"
    return check_run_id(candidate)


@dataclass
class Run:
    """Read access to a run folder, safe to use while another process writes it."""

    path: Path

    @classmethod
    def open(cls, runs_dir: str | Path, run_id: str) -> Run:
        runs_dir = Path(runs_dir)
        path = (runs_dir / check_run_id(run_id)).resolve()
        if not path.is_relative_to(runs_dir.resolve()) or not (path / "config.json").is_file():
            raise RunError(f"no run '{run_id}' in {runs_dir}")
        return cls(path)

    @classmethod
    def from_path(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise RunError(f"{path} is not a run folder (no config.json)")
        return cls(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    def _json(self, name: str, default=None):
        try:
            return json.loads((self.path / name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return default

    @property
    def config(self) -> dict:
        return self._json("config.json", {})

    @property
    def status(self) -> dict:
        """The recorded status, except that a 'running' run whose process is gone reads as failed."""
        status = self._json("status.json", {"state": "queued"})
        if status.get("state") == "running" and not process_alive(status.get("pid"), status.get("host")):
            status = {**status, "state": "failed",
                      "reason": f"the training process (pid {status.get('pid')}) ended without finishing (killed or crashed)"}
        return status

    def settle(self) -> dict:
        """Record what status() sees: a dead 'running' run becomes 'failed' on disk too."""
        status = self.status
        recorded = self._json("status.json", {})
        if status.get("state") != recorded.get("state") and recorded:
            atomic_write_json(self.path / "status.json", {**status, "updated": time.time()})
        return status

    @property
    def state(self) -> str:
        return self.status.get("state", "queued")

    def metrics(self) -> list[dict]:
        """Every complete line of metrics.jsonl; a line still being written is left for next time."""
        try:
            text = (self.path / "metrics.jsonl").read_text()
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def curves(self) -> tuple[list[dict], list[dict]]:
        """(step records, epoch records) from one read of metrics.jsonl."""
        records = self.metrics()
        return [r for r in records if r.get("kind") == "step"], [r for r in records if r.get("kind") == "epoch"]

    def epochs(self) -> list[dict]:
        return self.curves()[1]

    def steps(self) -> list[dict]:
        return self.curves()[0]

    def summary(self) -> dict:
        return self._json("summary.json", {})

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.path / "train.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    @property
    def checkpoint(self) -> Path:
        return self.path / "best.safetensors"

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file() and (self.path / "best.json").is_file()


class RunWriter(Run):
    """The training process's side of a run folder."""

    def __init__(self, path: Path, listener=None) -> None:
        super().__init__(path)
        self.listener = listener  # called with each metrics record, e.g. to drive a progress bar
        path.mkdir(parents=True, exist_ok=True)
        self._metrics = open(path / "metrics.jsonl", "a", encoding="utf-8")
        self._log = open(path / "train.log", "a", encoding="utf-8")

    def write_config(self, config: dict) -> None:
        atomic_write_json(self.path / "config.json", config)

    def set_status(self, state: str, **fields) -> None:
        assert state in STATES
        status = {**self.status, "state": state, "updated": time.time(), **fields}
        if state in ("running", "done") and "reason" not in fields:
            status.pop("reason", None)  # a resumed run's old failure is history, not its state
        if state in ("running",):
            status.setdefault("started", time.time())
            status["pid"] = os.getpid()
            status["host"] = socket.gethostname()
        atomic_write_json(self.path / "status.json", status)

    def log_metrics(self, record: dict) -> None:
        self._metrics.write(json.dumps({"time": time.time(), **record}) + "\n")
        self._metrics.flush()
        if self.listener:
            self.listener(record)

    def log(self, message: str) -> None:
        self._log.write(time.strftime("%H:%M:%S ") + message + "\n")
        self._log.flush()

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        self._metrics.close()
        self._log.close()


def list_runs(runs_dir: str | Path) -> list[Run]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [Run(p) for p in runs_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.config.get("created", 0))
