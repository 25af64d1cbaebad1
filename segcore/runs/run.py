"""A run is a folder runs/<run_id>/ (its files: files.py). `Run` reads one, safely while another process writes it.

On a shared server every run folder is untrusted input: readers never raise on a damaged file, they report it
(`Run.problem`) and fall back to safe values. A 'running' status is judged (liveness.py) before anyone trusts it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import RunError
from ..base.safetensors_header import safetensors_problem
from ..base.values import finite_number, json_kind
from ..settings.config import TrainConfig
from .files import BEST_META, BEST_STEM, BEST_WEIGHTS, CONFIG, LOG, METRICS, STATUS, SUMMARY
from .liveness import judge_running
from .naming import default_run_name, slug
from .records import (
    STATES,
    BestInfo,
    RunStatus,
    RunSummary,
    best_meta_problem,
    config_problem,
    metric_record_problem,
    summary_problem,
)
from .resume import read_resume_point

logger = logging.getLogger(__name__)

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_METRICS_READ = 8 * 1024**2  # the curves of a run: ~40,000 step records, more than any run here trains
TAIL_READ = 64 * 1024  # the newest records, for progress
_MISSING = object()


class _ParsedMetrics:
    """Parsed metrics files by (path, read limit), least recently used out past BUDGET bytes of source."""

    BUDGET = 256 * 1024**2

    def __init__(self) -> None:
        self._entries: OrderedDict = OrderedDict()
        self._sizes: dict = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            return None

    def put(self, key, value, size: int) -> None:
        with self._lock:
            self._entries[key], self._sizes[key] = value, size
            self._entries.move_to_end(key)
            while sum(self._sizes.values()) > self.BUDGET and len(self._entries) > 1:
                oldest, _ = self._entries.popitem(last=False)
                self._sizes.pop(oldest, None)


_PARSED_METRICS = _ParsedMetrics()


def is_run_folder(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def is_valid_run_id(run_id: object) -> bool:
    return isinstance(run_id, str) and bool(RUN_ID_PATTERN.match(run_id)) and ".." not in run_id


def check_run_id(run_id: str) -> str:
    """Run ids come from pages and the command line: letters, digits, '.', '_', '-' only, so no path escapes."""
    if not is_valid_run_id(run_id):
        raise RunError(f"'{run_id}' is not a valid run name: use letters, digits, '.', '_' and '-' (up to 128)")
    return run_id


def new_run_id(runs_dir: Path, name: str | None, strategy: str, data: object = "") -> str:
    """The run's folder name: the given name, else what the run is (dataset-strategy-time); never an existing one."""
    base = slug(name, limit=100, fallback="run") if name else default_run_name(data, strategy)
    candidate, counter = base, 1
    while (runs_dir / candidate).exists():
        counter += 1
        candidate = f"{base}-{counter}"
    return check_run_id(candidate)


@dataclass
class Run:
    """Read access to a run folder, safe to use while another process writes it, and on damaged folders:
    the dict accessors always return dicts, the typed records always have typed fields, `problem` says what is wrong."""

    path: Path

    @classmethod
    def open(cls, runs_dir: str | Path, run_id: str) -> Run:
        runs_dir = Path(runs_dir)
        path = (runs_dir / check_run_id(run_id)).resolve()
        if not path.is_relative_to(runs_dir.resolve()) or not is_run_folder(path):
            raise RunError(f"no run '{run_id}' in {runs_dir.resolve()}")
        return cls(path)

    @classmethod
    def from_path(cls, path: str | Path) -> Run:
        path = Path(path)
        if not is_run_folder(path):
            raise RunError(f"{path} is not a run folder (no {CONFIG})")
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

    def _written(self, name: str) -> float | None:
        try:
            return (self.path / name).stat().st_mtime
        except OSError:
            return None

    def _json(self, name: str, default=None):
        value, _ = self._read_json(name)
        return default if value is _MISSING else value

    def _object(self, name: str) -> tuple[dict, str | None]:
        value, problem = self._read_json(name)
        if value is _MISSING:
            return {}, problem
        if not isinstance(value, dict):
            return {}, f"{name} holds {json_kind(value)}, not a JSON object"
        return value, None

    # -- config -----------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """config.json as a dict ({} when it is not an object); see train_config for checked settings."""
        return self._object(CONFIG)[0]

    def config_problem(self) -> str | None:
        value, problem = self._read_json(CONFIG)
        if problem:
            return problem
        if value is _MISSING:
            return f"{CONFIG} is missing"
        return config_problem(value)

    @property
    def train_config(self) -> TrainConfig:
        """The run's settings as a TrainConfig; RunError naming the file and the fault when config.json is damaged."""
        problem = self.config_problem()
        if problem:
            raise RunError(f"run {self.run_id}: {problem} — its settings cannot be used; train it again as a new run")
        return TrainConfig.from_dict(self.config)

    @property
    def created(self) -> float:
        """When the run was created (0 when config.json does not say, or says something that is not a time)."""
        return finite_number(self.config.get("created")) or 0.0

    @property
    def owner(self) -> str | None:
        owner = self.config.get("owner")
        return owner if isinstance(owner, str) else None

    # -- status -----------------------------------------------------------------------------------
    def recorded_status(self) -> tuple[dict, str | None]:
        """status.json as written (no liveness judgement), and what is wrong with it."""
        value, problem = self._read_json(STATUS)
        if value is _MISSING:
            return ({"state": "queued"} if problem is None else {}), problem
        if not isinstance(value, dict):
            return {}, f"{STATUS} holds {json_kind(value)}, not a JSON object"
        if value.get("state") not in STATES:
            return value, f"{STATUS}: state {value.get('state')!r} is not one of {', '.join(STATES)}"
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
            verdict, reason = judge_running(status, written=self._written(STATUS))
            if verdict != "running":
                return {**status, "state": verdict, "reason": reason}
        return status

    @property
    def status_record(self) -> RunStatus:
        return RunStatus.from_dict(self.status)

    @property
    def state(self) -> str:
        return self.status.get("state", "queued")

    # -- metrics, summary, log --------------------------------------------------------------------
    def _metric_lines(self, limit: int = MAX_METRICS_READ) -> tuple[list[dict], list[str]]:
        """(records, problems) from the last `limit` bytes of metrics.jsonl (see _parse_metrics), parsed once per
        change of the file for the whole process: every page that draws this run's curves shares the parse. The
        lists are shared: read them, never change them."""
        path = self.path / METRICS
        try:
            stat = path.stat()
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"{METRICS} cannot be read ({exc.strerror or exc})"]
        key, stamp = (str(path), limit), (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = _PARSED_METRICS.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        parsed = self._parse_metrics(limit)
        _PARSED_METRICS.put(key, (stamp, parsed), min(stat.st_size, limit))
        return parsed

    def _parse_metrics(self, limit: int) -> tuple[list[dict], list[str]]:
        """(records, problems) from the last `limit` bytes of metrics.jsonl: every complete line that is a JSON
        object keeping the metric rules (records.metric_record_problem). A last line still being written (no newline
        yet) is left for next time; a bad complete line is a problem, named by its place. The read is bounded, so a
        huge file (an imported bundle, a very long run) costs the same as a normal one: its oldest records are left
        out of the curves."""
        try:
            with open(self.path / METRICS, "rb") as stream:
                size = stream.seek(0, 2)
                stream.seek(max(0, size - limit))
                data = stream.read(limit)
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"{METRICS} cannot be read ({exc.strerror or exc})"]
        problems = []
        if size > limit:  # only the newest records: the first line read was cut in the middle
            data = data[data.find(b"\n") + 1 :]
        lines = data.decode("utf-8", errors="replace").split("\n")
        lines.pop()  # after the last newline: empty, or a line still being written
        where = "line" if size <= limit else "line (from the end)"
        records = []
        for number, line in enumerate(lines, 1):
            place = number if size <= limit else len(lines) - number + 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                problems.append(f"{METRICS} {where} {place} is not valid JSON")
                continue
            if not isinstance(record, dict):
                problems.append(f"{METRICS} {where} {place} holds {json_kind(record)}, not a JSON object")
                continue
            problem = metric_record_problem(record)
            if problem:
                problems.append(f"{METRICS} {where} {place}: {problem}")
                continue
            records.append(record)
        return records, problems

    def latest_step(self) -> dict:
        """The newest step record, read from the end of metrics.jsonl (a constant amount, however long the run)."""
        steps = [r for r in self._metric_lines(TAIL_READ)[0] if r.get("kind") == "step"]
        return steps[-1] if steps else {}

    def metrics(self) -> list[dict]:
        """Every complete line of metrics.jsonl that is a JSON object; a line still being written is left for next time."""
        return list(self._metric_lines()[0])

    def curves(self) -> tuple[list[dict], list[dict]]:
        """(step records, epoch records) from one read of metrics.jsonl."""
        records = self.metrics()
        return [r for r in records if r.get("kind") == "step"], [r for r in records if r.get("kind") == "epoch"]

    def epochs(self) -> list[dict]:
        return self.curves()[1]

    def steps(self) -> list[dict]:
        return self.curves()[0]

    def summary(self) -> dict:
        return self._object(SUMMARY)[0]

    @property
    def summary_record(self) -> RunSummary | None:
        """The finished run's summary, or None when there is no usable summary.json."""
        summary = self.summary()
        return RunSummary.from_dict(summary) if summary else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.path / LOG).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- checkpoint -------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.path / BEST_WEIGHTS

    @property
    def best_stem(self) -> Path:
        """The best checkpoint without its suffix, as models/checkpoints.py loads it (weights + sidecar)."""
        return self.path / BEST_STEM

    def best_meta(self) -> tuple[dict, str | None]:
        """best.json as a dict ({} when absent or damaged), and what is wrong with it."""
        return self._object(BEST_META)

    def checkpoint_problem(self) -> str | None:
        """Why the best checkpoint cannot be used, when one is there; None when it is whole or there is none."""
        weights, sidecar = self.checkpoint.is_file(), (self.path / BEST_META).is_file()
        if not weights and not sidecar:
            return None
        if weights:
            problem = safetensors_problem(self.checkpoint)
            if problem:
                return problem
        meta, problem = self._object(BEST_META)
        if problem:
            return problem
        if not (weights and meta):
            return f"{BEST_META} and {BEST_WEIGHTS} must both be there"
        problem = best_meta_problem(meta)
        return f"{BEST_META}: {problem}" if problem else None

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file() and (self.path / BEST_META).is_file() and self.checkpoint_problem() is None

    @property
    def best_info(self) -> BestInfo | None:
        meta, _ = self._object(BEST_META)
        return BestInfo.from_dict(meta) if meta and self.has_checkpoint() else None

    # -- what is wrong ----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        found = [self.config_problem(), self.recorded_status()[1], self.checkpoint_problem()]
        if (self.path / SUMMARY).exists():
            summary, problem = self._object(SUMMARY)
            found.append(problem or (f"{SUMMARY}: {summary_problem(summary)}" if summary_problem(summary) else None))
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
        return read_resume_point(self.path)[0] is not None


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
            if entry.is_dir() and is_run_folder(entry):
                runs.append(Run(entry))
        except OSError:
            logger.warning("cannot read %s; left out of the run list", entry, exc_info=True)
    return sorted(runs, key=lambda run: (run.created, run.run_id))
