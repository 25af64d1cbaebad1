"""A small persistent job queue: training runs in separate processes, FIFO, at most N at a time.

The queue *is* the runs folder: a queued run is a folder whose status says 'queued'. Anyone may call
`pump()` (the app's scheduler thread, a finishing worker, the CLI); a file lock makes sure only one
of them starts the next job. Workers run in their own process session, so they outlive a restart of
the Streamlit server; a worker that died is seen as failed (see Run.status).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .config import TrainConfig
from .errors import RunError
from .runs import Run, RunWriter, atomic_write_json, check_run_id, list_runs, new_run_id

ACTIVE = ("queued", "running")
DEFAULT_MAX_RUNNING = int(os.environ.get("SEGCORE_MAX_JOBS", "1"))
MAX_QUEUED = int(os.environ.get("SEGCORE_MAX_QUEUED", "64"))
DUPLICATE_WINDOW_S = 30.0


def config_fingerprint(config: TrainConfig) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in ("run_name",)}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class JobQueue:
    def __init__(self, runs_dir: str | Path = "runs", max_running: int = DEFAULT_MAX_RUNNING) -> None:
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running

    @contextmanager
    def _lock(self):
        with open(self.runs_dir / ".queue.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- asking ---------------------------------------------------------------------------------
    def submit(self, config: TrainConfig, group: str | None = None, start: bool = True) -> Run:
        """Queue a run. The same settings submitted again while the first is still queued or running
        (a double-click) return the first run instead of a second one. Invalid settings are refused here,
        before anything is queued, not later inside a worker."""
        config.validate()
        fingerprint = config_fingerprint(config)
        with self._lock():
            active = [r for r in list_runs(self.runs_dir) if r.state in ACTIVE]
            for run in active:
                if run.config.get("fingerprint") == fingerprint and time.time() - run.config.get("created", 0) < DUPLICATE_WINDOW_S:
                    return run
            if sum(r.state == "queued" for r in active) >= MAX_QUEUED:
                raise RunError(f"the queue is full ({MAX_QUEUED} runs waiting): wait for some to finish, or cancel some")
            run_id = new_run_id(self.runs_dir, config.run_name, config.strategy)
            writer = RunWriter(self.runs_dir / run_id)
            writer.write_config({**config.to_dict(), "created": time.time(), "run_id": run_id, "group": group,
                                 "fingerprint": fingerprint})
            atomic_write_json(writer.path / "status.json", {"state": "queued", "queued": time.time()})
            writer.log("queued")
            writer.close()
        if start:
            self.pump()
        return Run(writer.path)

    def cancel(self, run_id: str, grace_s: float = 8.0) -> str:
        """Stop a run: a queued one never starts; a running one gets SIGTERM (it stops at the next step),
        then SIGKILL if it has not stopped after grace_s. Returns the final state."""
        run = Run.open(self.runs_dir, check_run_id(run_id))
        with self._lock():
            status = run.status
            if status["state"] == "queued":
                atomic_write_json(run.path / "status.json", {**status, "state": "cancelled", "reason": "cancelled before it started"})
                return "cancelled"
        if status["state"] != "running":
            return status["state"]
        pid = int(status["pid"])
        _signal(pid, signal.SIGTERM)
        deadline = time.time() + grace_s
        while time.time() < deadline:
            if run.state != "running":
                break
            time.sleep(0.1)
        if run.state == "running" or run.state == "failed" and "ended without finishing" in run.status.get("reason", ""):
            _signal(pid, signal.SIGKILL)
            atomic_write_json(run.path / "status.json", {**run.status, "state": "cancelled", "reason": "cancelled by the user (stopped forcibly)"})
        self.pump()
        return Run(run.path).state

    def resume(self, run_id: str) -> Run:
        """Queue a failed or cancelled run again; it continues from its last finished epoch."""
        run = Run.open(self.runs_dir, check_run_id(run_id))
        with self._lock():
            status = run.settle()
            if status["state"] not in ("failed", "cancelled"):
                raise RunError(f"run {run_id} is {status['state']}: only a failed or cancelled run can be resumed")
            atomic_write_json(run.path / "status.json", {"state": "queued", "queued": time.time(), "resume": True,
                                                         "previous": status.get("reason", status["state"])})
        self.pump()
        return run

    # -- scheduling -----------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return list_runs(self.runs_dir)

    def queued(self) -> list[Run]:
        return sorted((r for r in self.runs() if r.state == "queued"), key=lambda r: r.status.get("queued", 0))

    def running(self) -> list[Run]:
        return [r for r in self.runs() if r.state == "running"]

    def pump(self) -> list[str]:
        """Start queued runs, oldest first, while fewer than max_running are running. Settles dead runs."""
        started = []
        with self._lock():
            for run in self.runs():
                run.settle()
            running = len(self.running())
            for run in self.queued():
                if running >= self.max_running:
                    break
                waiting = self._waits_for_source(run)
                if waiting:
                    continue
                self._start(run)
                started.append(run.run_id)
                running += 1
        return started

    def _waits_for_source(self, run: Run) -> bool:
        source = run.config.get("source_run")
        if not source:
            return False
        source_path = Path(source)
        if not (source_path / "config.json").is_file():
            return False  # not a run of this queue: let training report it
        state = Run(source_path).state
        if state in ACTIVE:
            return True
        if state != "done":
            atomic_write_json(run.path / "status.json", {**run.status, "state": "failed",
                                                         "reason": f"its source run {source_path.name} {state}"})
            return True
        return False

    def _start(self, run: Run) -> None:
        log = open(run.path / "worker.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "segcore.worker", str(self.runs_dir), run.run_id, str(self.max_running)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the app's restart; gets its own signals
            cwd=Path(__file__).resolve().parents[1],
        )
        log.close()
        import socket

        atomic_write_json(run.path / "status.json", {**run.status, "state": "running", "pid": process.pid,
                                                     "host": socket.gethostname(), "started": time.time()})


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_for(run: Run, timeout_s: float = 600, poll_s: float = 0.5) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = run.state
        if state not in ACTIVE:
            return state
        time.sleep(poll_s)
    return run.state
