"""One reading of the runs folder for the whole server: every open page of every student shares it.

A class keeps its pages open for the whole lesson; each page's live views ask for the runs every second or two. The
folder is listed and each run's small files read at most once per tick (TICK_S) for the whole server, however many
pages ask, and what they read is kept for the tick (a SnapshotRun reads its config and status once). A change stamp
per run (sizes and modification times of its files) lets a page redraw only what changed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .files import CONFIG, METRICS, STATUS, SUMMARY
from .records import STATES
from .run import Run, list_runs

TICK_S = 1.0


class SnapshotRun(Run):
    """A run as one snapshot saw it: config, status and summary read once (the snapshot lives one tick)."""

    @cached_property
    def config(self) -> dict:  # type: ignore[override]
        return super().config

    @cached_property
    def status(self) -> dict:  # type: ignore[override]
        return super().status

    @cached_property
    def _summary(self) -> dict:
        return super().summary()

    def summary(self) -> dict:
        return self._summary

    @cached_property
    def stamp(self) -> tuple:
        """What changes when the run does: its files' sizes and modification times, and its judged state."""
        parts = []
        for name in (CONFIG, STATUS, METRICS, SUMMARY):
            try:
                stat = (self.path / name).stat()
                parts.append((stat.st_mtime_ns, stat.st_size))
            except OSError:
                parts.append(None)
        return (self.run_id, self.state, tuple(parts))


@dataclass(frozen=True)
class RunsSnapshot:
    runs: tuple[SnapshotRun, ...]
    taken: float
    counts: dict = field(default_factory=dict)  # state → how many runs
    folder_stamp: int = 0  # the runs folder's modification time: a run added or removed changes it

    def stamp(self, runs=None) -> tuple:
        """A stamp that changes when any of `runs` (default: all) changes."""
        return tuple(run.stamp for run in (self.runs if runs is None else runs))


_SNAPSHOTS: dict[Path, RunsSnapshot] = {}
_LOCK = threading.Lock()
READINGS = {"count": 0}  # how many times a folder was read (tests count them)


def runs_snapshot(runs_dir: str | Path, tick_s: float = TICK_S) -> RunsSnapshot:
    """The runs of `runs_dir`, read at most once per `tick_s` for the whole process (every page of every student)."""
    key = Path(runs_dir).resolve()
    folder_stamp = _folder_stamp(key)
    with _LOCK:
        snapshot = _SNAPSHOTS.get(key)
        if (
            snapshot is not None
            and time.monotonic() - snapshot.taken < tick_s
            and snapshot.folder_stamp == folder_stamp  # a new run shows at once
        ):
            return snapshot
        READINGS["count"] += 1
        runs = tuple(SnapshotRun(run.path) for run in list_runs(key))
        states = [run.state for run in runs]
        counts = {state: states.count(state) for state in STATES}
        snapshot = RunsSnapshot(runs, time.monotonic(), counts, folder_stamp)
        _SNAPSHOTS[key] = snapshot
        return snapshot


def forget_snapshot(runs_dir: str | Path) -> None:
    """After this process changed a run (queued, cancelled, resumed it): the next reading shows it at once."""
    with _LOCK:
        _SNAPSHOTS.pop(Path(runs_dir).resolve(), None)


def _folder_stamp(folder: Path) -> int:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return 0
