"""The only writers of a run's files (named in files.py): the training process's RunWriter, and the few status
and config records the queue, lessons and imports make. Every whole-file write is write-then-rename, so a crash
never leaves a half-written file; metrics.jsonl is appended line by line and flushed, so another process can follow
it live. While a run is 'running', a daemon thread refreshes its heartbeat (liveness.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from ..base.atomic import atomic_write_bytes, atomic_write_json
from ..models.checkpoints import save_checkpoint
from .files import CONFIG, LOG, METRICS, PORTABLE, STATUS, SUMMARY, WORKER_LOG
from .liveness import heartbeat_interval_s, process_start_time
from .records import STATES
from .resume import read_resume_point
from .run import Run
from .snapshot import forget_snapshot

logger = logging.getLogger(__name__)


def record_status(run_path: Path, status: dict) -> None:
    """Write a run's status.json whole (atomically); this process's pages see the change at once."""
    atomic_write_json(Path(run_path) / STATUS, status)
    forget_snapshot(Path(run_path).parent)


def record_config(run_path: Path, config: dict) -> None:
    """Write a run's config.json whole (atomically)."""
    atomic_write_json(Path(run_path) / CONFIG, config)


def write_judged_status(run: Run) -> dict:
    """Record what `run.status` sees: a dead 'running' run becomes 'failed' (or 'lost') on disk too, and a damaged
    status.json is replaced by a failed status with the reason. Returns that status."""
    status = run.status
    recorded, problem = run.recorded_status()
    exists = (run.path / STATUS).exists()
    if exists and (problem or status.get("state") != recorded.get("state")):
        record_status(run.path, {**status, "updated": time.time()})
    return status


def open_worker_log(run_path: Path):
    """The worker process's output file, opened to append (binary): its stdout and stderr go there."""
    return open(Path(run_path) / WORKER_LOG, "ab")


def write_portable_files(folder: Path, contents: dict[str, bytes]) -> None:
    """A finished run's files as they arrived (an imported bundle), config.json last: a folder without it is not
    listed as a run while the others are written."""
    for name in sorted(contents, key=lambda n: n == CONFIG):
        if name not in PORTABLE:
            raise ValueError(f"{name} is not a file a finished run is read from")
        (Path(folder) / name).write_bytes(contents[name])


def write_linked_copy(source: Run, target: Path, config: dict | None, status: dict) -> None:
    """A finished run's result under another folder, owner and group (identical settings trained once): its files
    hard-linked (copied where the file system cannot link), its own status.json and config.json (config last; None
    keeps the folder's own, for a run that waited for its twin)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PORTABLE:
        if name in (CONFIG, STATUS) or not (source.path / name).is_file():
            continue
        (target / name).unlink(missing_ok=True)
        try:
            os.link(source.path / name, target / name)
        except OSError:
            shutil.copy2(source.path / name, target / name)
    record_status(target, status)
    if config is not None:
        record_config(target, config)


def forget_metrics_after_resume_point(run_path: Path) -> None:
    """Drop metrics logged after the last resume point (the killed process's unfinished epoch), so the resumed
    run's curves do not show those steps twice; all of them when there is no usable point."""
    point, _ = read_resume_point(run_path)
    metrics_path = run_path / METRICS
    if not metrics_path.is_file():
        return
    if point is None:
        atomic_write_bytes(metrics_path, b"")
        return
    kept = []
    for line in metrics_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        step, epoch = record.get("step"), record.get("epoch")
        if (record.get("kind") == "step" and isinstance(step, int) and step <= point.step) or (
            record.get("kind") == "epoch" and isinstance(epoch, int) and epoch <= point.epoch
        ):
            kept.append(line)
    atomic_write_bytes(metrics_path, ("\n".join(kept) + "\n" if kept else "").encode())


class RunWriter(Run):
    """The training process's side of a run folder. While the run is 'running', a daemon thread refreshes the
    heartbeat in status.json so that other processes (and other machines) can tell it is still alive."""

    def __init__(self, path: Path, listener=None) -> None:
        super().__init__(path)
        self.listener = listener  # called with each metrics record, e.g. to drive a progress bar
        path.mkdir(parents=True, exist_ok=True)
        self._metrics = open(path / METRICS, "a", encoding="utf-8")
        self._log = open(path / LOG, "a", encoding="utf-8")
        self._status_lock = threading.Lock()  # the heartbeat thread and set_status both rewrite status.json
        self._heartbeat_stop: threading.Event | None = None

    def write_config(self, config: dict) -> None:
        record_config(self.path, config)

    def has_config(self) -> bool:
        return (self.path / CONFIG).exists()

    def save_best_checkpoint(self, model, meta: dict) -> None:
        """The best model so far: best.safetensors, then best.json (models/checkpoints.py)."""
        save_checkpoint(model, self.best_stem, meta)

    def set_status(self, state: str, **fields) -> None:
        assert state in STATES
        if state != "running":
            self._stop_heartbeat()
        with self._status_lock:
            status = {**self.recorded_status()[0], "state": state, "updated": time.time(), **fields}
            if state in ("running", "done") and "reason" not in fields:
                status.pop("reason", None)  # a resumed run's old failure is history, not its state
            if state == "running":
                status.setdefault("started", time.time())
                status.update(
                    pid=os.getpid(),
                    pid_started=process_start_time(os.getpid()),
                    host=socket.gethostname(),
                    heartbeat=time.time(),
                )
            record_status(self.path, status)
        if state == "running":
            self._start_heartbeat()

    def note_preparing(self, what: str, done: int, total: int) -> None:
        """What a running run does before its first step (decoding its images), for its card and a progress bar."""
        text = f"{what}: {done}/{total}"
        with self._status_lock:
            status = self.recorded_status()[0]
            if status.get("state") == "running":
                record_status(self.path, {**status, "preparing": text})
        if self.listener:
            self.listener({"kind": "preparing", "what": what, "done": done, "total": total})

    def fail(self, reason: str, details: str | None = None) -> None:
        """Record a failure as well as the disk allows: the status first (what pages and the queue read), then the log."""
        try:
            self.set_status("failed", reason=reason)
        except OSError:
            logger.exception("%s: could not record the failure (%s) in status.json", self.path, reason)
        try:
            self.log(details or f"failed: {reason}")
        except OSError:
            logger.exception("%s: could not write to train.log", self.path)

    def _start_heartbeat(self) -> None:
        if self._heartbeat_stop is not None:
            return
        self._heartbeat_stop = threading.Event()
        threading.Thread(
            target=self._beat_until_stopped, args=(self._heartbeat_stop,), daemon=True, name=f"heartbeat-{self.run_id}"
        ).start()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat_stop is not None:
            self._heartbeat_stop.set()
            self._heartbeat_stop = None

    def _beat_until_stopped(self, stop: threading.Event) -> None:
        while not stop.wait(heartbeat_interval_s()):
            with self._status_lock:
                if stop.is_set():
                    return
                status, problem = self.recorded_status()
                if problem or status.get("pid") != os.getpid():
                    logger.warning("%s: status.json no longer names this process; heartbeat stopped", self.path)
                    return
                if status.get("state") == "lost":  # we were frozen, and are back: the run is ours again
                    status = {**status, "state": "running"}
                    status.pop("reason", None)
                    self.log("reporting again after a pause; the run was marked lost meanwhile")
                elif status.get("state") != "running":
                    return
                try:
                    record_status(self.path, {**status, "heartbeat": time.time()})
                except OSError:
                    logger.exception("%s: could not refresh the heartbeat in status.json", self.path)

    def log_metrics(self, record: dict) -> None:
        self._metrics.write(json.dumps({"time": time.time(), **record}) + "\n")
        self._metrics.flush()
        if record.get("kind") == "epoch":
            self._note_epoch(record)
        if self.listener:
            self.listener(record)

    def _note_epoch(self, record: dict) -> None:
        """Keep the epoch and the best mIoU so far in status.json, so progress is read without reading the metrics."""
        miou = record.get("miou")
        with self._status_lock:
            status, problem = self.recorded_status()
            if problem or status.get("state") != "running":
                return
            best = status.get("best_miou")
            if isinstance(miou, (int, float)) and (not isinstance(best, (int, float)) or miou > best):
                status["best_miou"] = miou
            record_status(self.path, {**status, "epoch": record.get("epoch")})

    def log(self, message: str) -> None:
        self._log.write(time.strftime("%H:%M:%S ") + message + "\n")
        self._log.flush()

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.path / SUMMARY, summary)

    def close(self) -> None:
        self._stop_heartbeat()
        for stream in (self._metrics, self._log):
            try:
                stream.close()
            except OSError:  # a full disk can fail the last flush; the status already says what happened
                logger.exception("%s: could not close %s", self.path, Path(stream.name).name)


def fail_unfinished_run(path: Path, reason: str) -> bool:
    """Mark a run failed with `reason` unless it already ended, or another live process now owns it.
    For a worker that fails before training records anything itself. Returns whether it wrote."""
    run = Run(path)
    if not (path / STATUS).exists() and not (path / CONFIG).exists():
        return False
    recorded, problem = run.recorded_status()
    pid = recorded.get("pid")
    if not problem and (recorded.get("state") not in ("queued", "running") or pid not in (None, os.getpid())):
        return False
    record_status(path, {**recorded, "state": "failed", "reason": reason, "updated": time.time()})
    return True
