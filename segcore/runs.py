"""A run is a folder runs/<run_id>/: config.json, metrics.jsonl, status.json, best checkpoint, train.log.

Every whole-file write goes through write-then-rename, so a crash never leaves a half-written file;
metrics.jsonl is appended line by line and flushed, so another process can follow it live.

On a shared server every run folder is untrusted input: readers never raise on a damaged file, they
report it (`Run.problem`) and fall back to safe values. A running run proves it is alive with the pid
*and* the start time of its process (pids get reused) and a heartbeat its training process refreshes
in status.json, so a run whose machine went away or whose process froze stops blocking the queue.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .errors import RunError

logger = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATES = ("queued", "running", "done", "failed", "cancelled", "lost")
# A process's start time as psutil reads it twice can differ by rounding; a reused pid differs by far more.
PROCESS_START_TOLERANCE_S = 1.0


def heartbeat_interval_s() -> float:
    return _env_seconds("SEGCORE_HEARTBEAT_S", 5.0)


def heartbeat_limit_s() -> float:
    """How long a running run may stay silent before it reads as lost (read at each call, so tests can shorten it)."""
    return _env_seconds("SEGCORE_HEARTBEAT_LIMIT_S", 120.0)


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        logger.warning("%s=%r is not a number of seconds; using %s", name, text, default)
        return default
    return value if value > 0 else default


def _number(value) -> float | None:
    """A finite JSON number, or None (JSON from other processes may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _positive_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- processes --------------------------------------------------------------------------------------
def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def process_identity(pid, recorded_start=None) -> str:
    """'alive', 'gone' (no such process, or a zombie) or 'reused' (the pid now names another program)."""
    pid = _positive_int(pid)
    if pid is None:
        return "gone"
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        started = process.create_time()
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "alive"  # another user's process we may not inspect: it exists, and nothing says it is another one
    except ValueError:
        return "gone"
    recorded = _number(recorded_start)
    if recorded is not None and abs(started - recorded) > PROCESS_START_TOLERANCE_S:
        return "reused"
    return "alive"


def process_alive(pid, host=None, started=None) -> bool:
    """Whether a training process is still there (assumed alive when it ran on another machine: see judge_running)."""
    if not pid:
        return True  # not started yet: nothing to judge
    if host and host != socket.gethostname():
        return True
    return process_identity(pid, started) == "alive"


def judge_running(status: dict, now: float | None = None) -> tuple[str, str | None]:
    """What a status.json that says 'running' really means now: ('running', None), ('failed', why) or ('lost', why)."""
    now = time.time() if now is None else now
    limit = heartbeat_limit_s()
    host = status.get("host") if isinstance(status.get("host"), str) else None
    heartbeat = _number(status.get("heartbeat"))
    if status.get("launcher") == "ray":
        # a Ray job's pid means nothing here, wherever it runs: Ray's job status (asked by the queue, jobs.py) and
        # the heartbeat decide. Before the worker reports (no pid yet) Ray is still placing it: no heartbeat to miss.
        if _positive_int(status.get("pid")) is None:
            return "running", None
        return _judge_by_heartbeat(status, f"{host or 'a Ray node'} (Ray job {status.get('ray_job')})", now, limit)
    if host and host != socket.gethostname():
        # another machine's pid means nothing here: never look it up or signal it, judge by its heartbeat only
        return _judge_by_heartbeat(status, host, now, limit)
    pid = _positive_int(status.get("pid"))
    if pid is None:
        return (
            "failed",
            "status.json says 'running' but names no training process (no valid pid): resume it or train it again",
        )
    identity = process_identity(pid, status.get("pid_started"))
    if identity == "gone":
        return "failed", f"the training process (pid {pid}) ended without finishing (killed or crashed)"
    if identity == "reused":
        return "failed", (
            f"the training process (pid {pid}) ended without finishing (killed or crashed); "
            f"pid {pid} now belongs to another program"
        )
    if heartbeat is not None and now - heartbeat > limit:
        return "lost", (
            f"the training process (pid {pid}) has not reported for {_age(now - heartbeat)} (limit {limit:.0f} s, "
            "SEGCORE_HEARTBEAT_LIMIT_S): it is frozen or hung — cancel it, then resume"
        )
    return "running", None


def _judge_by_heartbeat(status: dict, where: str, now: float, limit: float) -> tuple[str, str | None]:
    reports = [_number(status.get(key)) for key in ("heartbeat", "updated", "started")]
    last = max((t for t in reports if t is not None), default=None)
    if last is None or now - last > limit:
        since = "at an unknown time" if last is None else f"{_age(now - last)} ago"
        return "lost", (
            f"it was training on {where}, and its machine stopped reporting {since} (limit {limit:.0f} s, "
            "SEGCORE_HEARTBEAT_LIMIT_S): resume it here or train it again"
        )
    return "running", None


# -- files ------------------------------------------------------------------------------------------
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


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be loaded (truncated, not safetensors), checked from its header and size
    alone; None when it looks whole. Cheap enough for every page load."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                return f"{path.name} is {size} bytes, too short to be a safetensors file"
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > min(size - 8, 100_000_000):
                return f"{path.name} is truncated or not a safetensors file (its header claims {header_size} bytes, the file has {size})"
            header = json.loads(stream.read(header_size))
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{path.name} is not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return f"{path.name} is not a safetensors file (its header is not a JSON object)"
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_positive_int(o) is not None or o == 0 for o in offsets)
        ):
            return f"{path.name} is not a safetensors file (tensor '{name}' has no valid data offsets)"
        data_end = max(data_end, offsets[1])
    expected = 8 + header_size + data_end
    if size != expected:
        return f"{path.name} is truncated or damaged: it has {size} bytes, its header describes {expected}"
    return None


def config_problem(payload) -> str | None:
    """What is wrong with a config.json's content, in words; None when TrainConfig can be built from it."""
    from .config import settings_problem

    if not isinstance(payload, dict):
        return f"config.json holds {_json_kind(payload)}, not an object of settings"
    created = payload.get("created")
    if created is not None and _number(created) is None:
        return f"config.json: 'created' is {created!r}, not a time in seconds"
    problem = settings_problem(payload)  # the same rules that refuse a new run's settings
    return f"config.json: {problem}" if problem else None


def _json_kind(value) -> str:
    if value is None:
        return "null"
    return {list: "a JSON list", str: "a JSON string", bool: "a JSON boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def check_run_id(run_id: str) -> str:
    """Run ids come from pages and the command line: letters, digits, '.', '_', '-' only, so no path escapes."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise RunError(f"'{run_id}' is not a valid run name: use letters, digits, '.', '_' and '-' (up to 128)")
    return run_id


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100] or "run"


def new_run_id(runs_dir: Path, name: str | None, strategy: str, data: object = "") -> str:
    """The run's folder name: the given name, else what the run is (dataset-strategy-time); never an existing one."""
    from .naming import default_run_name

    base = slugify(name) if name else default_run_name(data, strategy)
    candidate, counter = base, 1
    while (runs_dir / candidate).exists():
        counter += 1
        candidate = f"{base}-{counter}"
    return check_run_id(candidate)


# -- typed records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunStatus:
    """status.json as the rest of the code may trust it: every field has its type or is None."""

    state: str
    reason: str = ""
    pid: int | None = None
    pid_started: float | None = None
    host: str | None = None
    started: float | None = None
    updated: float | None = None
    heartbeat: float | None = None
    queued: float | None = None
    resume: bool = False
    previous: str | None = None
    miou: float | None = None

    @classmethod
    def from_dict(cls, status: dict) -> RunStatus:
        text = lambda key: status.get(key) if isinstance(status.get(key), str) else None  # noqa: E731
        return cls(
            state=status.get("state") if status.get("state") in STATES else "failed",
            reason=text("reason") or "",
            pid=_positive_int(status.get("pid")),
            pid_started=_number(status.get("pid_started")),
            host=text("host"),
            started=_number(status.get("started")),
            updated=_number(status.get("updated")),
            heartbeat=_number(status.get("heartbeat")),
            queued=_number(status.get("queued")),
            resume=status.get("resume") is True,
            previous=text("previous"),
            miou=_number(status.get("miou")),
        )


@dataclass(frozen=True)
class RunSummary:
    """summary.json of a finished run; None fields where the file lacks them or holds the wrong type."""

    miou: float | None = None
    best_epoch: int | None = None
    pixel_accuracy: float | None = None
    mean_dice: float | None = None
    strategy: str | None = None
    backbone: str | None = None
    train_time_s: float | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, summary: dict) -> RunSummary:
        text = lambda key: summary.get(key) if isinstance(summary.get(key), str) else None  # noqa: E731
        return cls(
            miou=_number(summary.get("miou")),
            best_epoch=_positive_int(summary.get("best_epoch")),
            pixel_accuracy=_number(summary.get("pixel_accuracy")),
            mean_dice=_number(summary.get("mean_dice")),
            strategy=text("strategy"),
            backbone=text("backbone"),
            train_time_s=_number(summary.get("train_time_s")),
            raw=summary,
        )


@dataclass(frozen=True)
class BestInfo:
    """best.json: which epoch the best checkpoint holds and how to rebuild its model."""

    epoch: int | None
    miou: float | None
    backbone: str | None
    num_classes: int | None
    classes: list[str]

    @classmethod
    def from_dict(cls, meta: dict) -> BestInfo:
        classes = meta.get("classes")
        return cls(
            epoch=_positive_int(meta.get("epoch")),
            miou=_number(meta.get("miou")),
            backbone=meta.get("backbone") if isinstance(meta.get("backbone"), str) else None,
            num_classes=_positive_int(meta.get("num_classes")),
            classes=[c for c in classes if isinstance(c, str)] if isinstance(classes, list) else [],
        )


_MISSING = object()


@dataclass
class Run:
    """Read access to a run folder, safe to use while another process writes it, and on damaged folders:
    the dict accessors always return dicts, the typed records always have typed fields, `problem` says what is wrong."""

    path: Path

    @classmethod
    def open(cls, runs_dir: str | Path, run_id: str) -> Run:
        runs_dir = Path(runs_dir)
        path = (runs_dir / check_run_id(run_id)).resolve()
        if not path.is_relative_to(runs_dir.resolve()) or not (path / "config.json").is_file():
            raise RunError(f"no run '{run_id}' in {runs_dir.resolve()}")
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

    def _read_json(self, name: str):
        """(value, problem): _MISSING when the file is absent; problem says why a present file cannot be used."""
        try:
            text = (self.path / name).read_bytes().decode("utf-8")
        except FileNotFoundError:
            return _MISSING, None
        except UnicodeDecodeError:
            return _MISSING, f"{name} is not text (binary content)"
        except OSError as exc:
            return _MISSING, f"{name} cannot be read ({exc.strerror or exc})"
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            return _MISSING, f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        except RecursionError:
            return _MISSING, f"{name} is nested too deeply to read"

    def _json(self, name: str, default=None):
        value, _ = self._read_json(name)
        return default if value is _MISSING else value

    def _object(self, name: str) -> tuple[dict, str | None]:
        value, problem = self._read_json(name)
        if value is _MISSING:
            return {}, problem
        if not isinstance(value, dict):
            return {}, f"{name} holds {_json_kind(value)}, not a JSON object"
        return value, None

    # -- config -----------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """config.json as a dict ({} when it is not an object); see train_config for checked settings."""
        return self._object("config.json")[0]

    def config_problem(self) -> str | None:
        value, problem = self._read_json("config.json")
        if problem:
            return problem
        if value is _MISSING:
            return "config.json is missing"
        return config_problem(value)

    @property
    def train_config(self):
        """The run's settings as a TrainConfig; RunError naming the file and the fault when config.json is damaged."""
        from .config import TrainConfig

        problem = self.config_problem()
        if problem:
            raise RunError(f"run {self.run_id}: {problem} — its settings cannot be used; train it again as a new run")
        return TrainConfig.from_dict(self.config)

    @property
    def created(self) -> float:
        """When the run was created (0 when config.json does not say, or says something that is not a time)."""
        return _number(self.config.get("created")) or 0.0

    @property
    def owner(self) -> str | None:
        owner = self.config.get("owner")
        return owner if isinstance(owner, str) else None

    # -- status -----------------------------------------------------------------------------------
    def recorded_status(self) -> tuple[dict, str | None]:
        """status.json as written (no liveness judgement), and what is wrong with it."""
        value, problem = self._read_json("status.json")
        if value is _MISSING:
            return ({"state": "queued"} if problem is None else {}), problem
        if not isinstance(value, dict):
            return {}, f"status.json holds {_json_kind(value)}, not a JSON object"
        if value.get("state") not in STATES:
            return value, f"status.json: state {value.get('state')!r} is not one of {', '.join(STATES)}"
        return value, None

    @property
    def status(self) -> dict:
        """The recorded status as a dict, except that what it claims is checked: a 'running' run whose process is
        gone reads as failed, one that stopped reporting as lost; a damaged status.json, or a queued run whose
        config.json cannot be used, reads as failed with the reason."""
        status, problem = self.recorded_status()
        if problem:
            return {**status, "state": "failed", "reason": f"{problem} — the run cannot be trusted; train it again"}
        state = status["state"]
        if state == "queued":
            problem = self.config_problem()
            if problem:
                return {
                    **status,
                    "state": "failed",
                    "reason": f"{problem} — it cannot be started; train it again as a new run",
                }
        if state == "running":
            verdict, reason = judge_running(status)
            if verdict != "running":
                return {**status, "state": verdict, "reason": reason}
        return status

    @property
    def status_record(self) -> RunStatus:
        return RunStatus.from_dict(self.status)

    def settle(self) -> dict:
        """Record what status sees: a dead 'running' run becomes 'failed' (or 'lost') on disk too, and a damaged
        status.json is replaced by a failed status with the reason."""
        status = self.status
        recorded, problem = self.recorded_status()
        exists = (self.path / "status.json").exists()
        if exists and (problem or status.get("state") != recorded.get("state")):
            atomic_write_json(self.path / "status.json", {**status, "updated": time.time()})
        return status

    @property
    def state(self) -> str:
        return self.status.get("state", "queued")

    # -- metrics, summary, log --------------------------------------------------------------------
    def _metric_lines(self) -> tuple[list[dict], list[str]]:
        """(records, problems): every complete line that is a JSON object; a last line still being written
        (no newline yet) is left for next time, a complete line that is not an object is a problem."""
        try:
            text = (self.path / "metrics.jsonl").read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"metrics.jsonl cannot be read ({exc.strerror or exc})"]
        lines = text.split("\n")
        unfinished = lines.pop()  # after the last newline: empty, or a line still being written
        del unfinished
        records, problems = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                problems.append(f"metrics.jsonl line {number} is not valid JSON")
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                problems.append(f"metrics.jsonl line {number} holds {_json_kind(record)}, not a JSON object")
        return records, problems

    def metrics(self) -> list[dict]:
        """Every complete line of metrics.jsonl that is a JSON object; a line still being written is left for next time."""
        return self._metric_lines()[0]

    def curves(self) -> tuple[list[dict], list[dict]]:
        """(step records, epoch records) from one read of metrics.jsonl."""
        records = self.metrics()
        return [r for r in records if r.get("kind") == "step"], [r for r in records if r.get("kind") == "epoch"]

    def epochs(self) -> list[dict]:
        return self.curves()[1]

    def steps(self) -> list[dict]:
        return self.curves()[0]

    def summary(self) -> dict:
        return self._object("summary.json")[0]

    @property
    def summary_record(self) -> RunSummary | None:
        """The finished run's summary, or None when there is no usable summary.json."""
        summary = self.summary()
        return RunSummary.from_dict(summary) if summary else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.path / "train.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- checkpoint -------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.path / "best.safetensors"

    def checkpoint_problem(self) -> str | None:
        """Why the best checkpoint cannot be used, when one is there; None when it is whole or there is none."""
        weights, sidecar = self.checkpoint.is_file(), (self.path / "best.json").is_file()
        if not weights and not sidecar:
            return None
        if weights:
            problem = safetensors_problem(self.checkpoint)
            if problem:
                return problem
        meta, problem = self._object("best.json")
        return problem or (None if weights and meta else "best.json and best.safetensors must both be there")

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file() and (self.path / "best.json").is_file() and self.checkpoint_problem() is None

    @property
    def best_info(self) -> BestInfo | None:
        meta, _ = self._object("best.json")
        return BestInfo.from_dict(meta) if meta and self.has_checkpoint() else None

    # -- what is wrong ----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        found = [self.config_problem(), self.recorded_status()[1], self.checkpoint_problem()]
        if (self.path / "summary.json").exists():
            found.append(self._object("summary.json")[1])
        found.extend(self._metric_lines()[1][:3])  # the first few are enough to show what happened
        return [p for p in found if p]

    @property
    def problem(self) -> str | None:
        """None, or one sentence naming each damaged file of this folder and what is wrong with it."""
        problems = self.problems()
        return f"run {self.run_id}: " + "; ".join(problems) if problems else None

    @property
    def broken(self) -> bool:
        return bool(self.problems())

    def has_resume_point(self) -> bool:
        from .resume import read_resume_point

        return read_resume_point(self.path)[0] is not None


class RunWriter(Run):
    """The training process's side of a run folder. While the run is 'running', a daemon thread refreshes the
    heartbeat in status.json so that other processes (and other machines) can tell it is still alive."""

    def __init__(self, path: Path, listener=None) -> None:
        super().__init__(path)
        self.listener = listener  # called with each metrics record, e.g. to drive a progress bar
        path.mkdir(parents=True, exist_ok=True)
        self._metrics = open(path / "metrics.jsonl", "a", encoding="utf-8")
        self._log = open(path / "train.log", "a", encoding="utf-8")
        self._status_lock = threading.Lock()  # the heartbeat thread and set_status both rewrite status.json
        self._heartbeat_stop: threading.Event | None = None

    def write_config(self, config: dict) -> None:
        atomic_write_json(self.path / "config.json", config)

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
            atomic_write_json(self.path / "status.json", status)
        if state == "running":
            self._start_heartbeat()

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
                    atomic_write_json(self.path / "status.json", {**status, "heartbeat": time.time()})
                except OSError:
                    logger.exception("%s: could not refresh the heartbeat in status.json", self.path)

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
    if not (path / "status.json").exists() and not (path / "config.json").exists():
        return False
    recorded, problem = run.recorded_status()
    pid = recorded.get("pid")
    if not problem and (recorded.get("state") not in ("queued", "running") or pid not in (None, os.getpid())):
        return False
    atomic_write_json(path / "status.json", {**recorded, "state": "failed", "reason": reason, "updated": time.time()})
    return True


def list_runs(runs_dir: str | Path) -> list[Run]:
    """Every run folder in runs_dir, oldest first; never raises (unreadable entries are logged and left out)."""
    runs_dir = Path(runs_dir)
    try:
        entries = list(runs_dir.iterdir()) if runs_dir.is_dir() else []
    except OSError:
        logger.exception("cannot list the runs folder %s", runs_dir)
        return []
    runs = []
    for entry in entries:
        try:
            if entry.is_dir() and (entry / "config.json").is_file():
                runs.append(Run(entry))
        except OSError:
            logger.warning("cannot read %s; left out of the run list", entry, exc_info=True)
    return sorted(runs, key=lambda run: (run.created, run.run_id))
