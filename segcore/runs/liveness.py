"""Is a 'running' run really running? Its process (pid and start time: pids get reused) and its heartbeat decide.

A run whose process is gone reads as failed, one whose heartbeat stopped as lost, so a crashed or frozen run never
blocks the queue. Another machine's pid means nothing here: only its heartbeat counts.
"""

from __future__ import annotations

import socket
import time

import psutil

from ..base.values import age_words, env_seconds, finite_number, positive_int

PROCESS_START_TOLERANCE_S = 1.0


def heartbeat_interval_s() -> float:
    return env_seconds("SEGCORE_HEARTBEAT_S", 5.0)


def heartbeat_limit_s() -> float:
    """How long a running run may stay silent before it reads as lost (read at each call, so tests can shorten it)."""
    return env_seconds("SEGCORE_HEARTBEAT_LIMIT_S", 120.0)


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def process_identity(pid, recorded_start=None) -> str:
    """'alive', 'gone' (no such process, or a zombie) or 'reused' (the pid now names another program)."""
    pid = positive_int(pid)
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
    recorded = finite_number(recorded_start)
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


def last_report(status: dict, now: float, written: float | None = None) -> float | None:
    """When the run last reported: its newest heartbeat / update / start time, but never later than status.json was
    last written (`written`, this machine's clock: a heartbeat claimed from the future cannot keep a run alive) nor
    than now."""
    reports = [finite_number(status.get(key)) for key in ("heartbeat", "updated", "started")]
    last = max((t for t in reports if t is not None), default=None)
    if written is not None:
        last = written if last is None else min(last, written)
    return None if last is None else min(last, now)


def judge_running(status: dict, now: float | None = None, written: float | None = None) -> tuple[str, str | None]:
    """What a status.json that says 'running' really means now: ('running', None), ('failed', why) or ('lost', why).
    `written`: when status.json was last written (its modification time), which bounds every time it claims."""
    now = time.time() if now is None else now
    limit = heartbeat_limit_s()
    host = status.get("host") if isinstance(status.get("host"), str) else None
    if status.get("launcher") == "ray":
        # a Ray job's pid means nothing here, wherever it runs: Ray's job status (asked by the queue, jobs/queue.py) and
        # the heartbeat decide. Before the worker reports (no pid yet) Ray is still placing it: no heartbeat to miss.
        if positive_int(status.get("pid")) is None:
            return "running", None
        where = f"{host or 'a Ray node'} (Ray job {status.get('ray_job')})"
        return _judge_by_heartbeat(status, where, now, limit, written)
    if host and host != socket.gethostname():
        # another machine's pid means nothing here: never look it up or signal it, judge by its heartbeat only
        return _judge_by_heartbeat(status, host, now, limit, written)
    pid = positive_int(status.get("pid"))
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
    # a live pid is not enough (without its start time pid 1 would pass): the run must also have reported lately
    last = last_report(status, now, written)
    if last is None or now - last > limit:
        silent = "an unknown time" if last is None else age_words(now - last)
        return "lost", (
            f"the training process (pid {pid}) has not reported for {silent} (limit {limit:.0f} s, "
            "SEGCORE_HEARTBEAT_LIMIT_S): it is frozen or hung — cancel it, then resume"
        )
    return "running", None


def _judge_by_heartbeat(
    status: dict, where: str, now: float, limit: float, written: float | None
) -> tuple[str, str | None]:
    last = last_report(status, now, written)
    if last is None or now - last > limit:
        since = "at an unknown time" if last is None else f"{age_words(now - last)} ago"
        return "lost", (
            f"it was training on {where}, and its machine stopped reporting {since} (limit {limit:.0f} s, "
            "SEGCORE_HEARTBEAT_LIMIT_S): resume it here or train it again"
        )
    return "running", None
