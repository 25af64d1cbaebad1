"""A small persistent job queue: training runs in separate processes, FIFO, at most N at a time.

The queue *is* the runs folder: a queued run is a folder whose status says 'queued'. Anyone may call
`pump()` (the app's scheduler thread, a finishing worker, the CLI); a file lock makes sure only one
of them starts the next job. Workers run in their own process session, so they outlive a restart of
the Streamlit server; a worker that died is seen as failed, one that stopped reporting as lost
(see Run.status). Every run folder is untrusted: a damaged one is reported and skipped, never fatal.
What starts, stops and checks a run's process is a launcher (launchers.py): local processes by default, or
Ray Jobs on a cluster (SEGCORE_BACKEND=ray:http://HEAD:8265).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from ..base.errors import RunError
from ..data.builtin import builtin_train_images
from ..runs.naming import Titles
from ..runs.run import Run, check_run_id, is_run_folder, list_runs, new_run_id
from ..runs.writer import RunWriter, record_status, write_judged_status, write_linked_copy
from ..settings.config import TrainConfig
from .classroom import ClassroomSettings, fair_order, may_act_on, waiting_limit_problem
from .identical import active_twin, result_key, sharing_on, trained_twin
from .launchers import Launcher, launcher_from_env
from .quotas import new_run_problem

logger = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
RESUMABLE = ("failed", "cancelled", "lost")
MAX_QUEUED = int(os.environ.get("SEGCORE_MAX_QUEUED", "64"))
DUPLICATE_WINDOW_S = 30.0


def config_fingerprint(config: TrainConfig) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in ("run_name",)}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class JobQueue:
    def __init__(
        self,
        runs_dir: str | Path = "runs",
        max_running: int | None = None,
        launcher: Launcher | None = None,
        check_backend: bool = True,
    ) -> None:
        """max_running: default SEGCORE_MAX_JOBS, else 1 locally and one per GPU (or CPU) on a Ray cluster.
        check_backend: make sure the launcher can run this queue's runs (Ray: every node sees the runs folder at
        the same path) before anything is queued; a worker, already placed by the launcher, skips it."""
        # absolute, so that workers (started in the package folder) and a later chdir find the same runs
        self.runs_dir = Path(runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.launcher = launcher or launcher_from_env()
        if check_backend:
            self.launcher.check_ready(self.runs_dir)
        self.max_running = max_running if max_running is not None else self.launcher.default_slots()  # 0: none start
        self.last_error: str | None = None  # the latest problem pump() met and survived, for a page to show
        self._reported: set[tuple[str, str]] = set()  # (run, problem) pairs already logged, so a loop does not flood

    @contextmanager
    def _lock(self):
        # a fresh FileLock per use: threads of one server and other processes exclude each other alike
        with FileLock(self.runs_dir / ".queue.lock"):
            yield

    def _note(self, message: str) -> None:
        self.last_error = f"{time.strftime('%H:%M:%S')} {message}"

    # -- asking ---------------------------------------------------------------------------------
    def room_problem(self, owner: str | None, adding: int) -> str | None:
        """Why `adding` more runs would not fit the queue or the student's waiting limit (None: they fit). Asked
        before a plan of several runs is queued, so a sweep is refused whole instead of queued in part."""
        queued = [r for r in list_runs(self.runs_dir) if r.state == "queued"]
        training = [r for r in queued if not r.status.get("follows")]  # a follower costs nothing: not counted
        if len(training) + adding > MAX_QUEUED:
            return (
                f"the queue holds at most {MAX_QUEUED} waiting runs and {len(training)} are waiting: these {adding} "
                "do not fit"
            )
        return waiting_limit_problem(owner, queued, adding, self.runs_dir)

    def submit(
        self,
        config: TrainConfig,
        group: str | None = None,
        start: bool = True,
        owner: str | None = None,
        train_images: int | None = None,
        role: str | None = None,
    ) -> Run:
        """Queue a run. `role` "source": the source run a comparison's structure transfer carries over. The same settings submitted again by the same owner (a browser session) while the first
        is still queued or running and under 30 s old (a double-click) return the first run; another owner's
        identical settings are their own run. Invalid settings are refused here, before anything is queued,
        not later inside a worker. `train_images`, when the caller knows it, records the planned epochs and steps
        so a queued run shows them from the start."""
        config.validate()
        train_images = train_images or builtin_train_images(config)
        plan = (
            {"epochs": config.planned_epochs(train_images), "steps": config.planned_steps(train_images)}
            if train_images
            else None
        )
        fingerprint = config_fingerprint(config)
        with self._lock():
            active = [r for r in list_runs(self.runs_dir) if r.state in ACTIVE]
            for run in active:
                if (
                    run.config.get("fingerprint") == fingerprint
                    and run.owner == owner
                    and time.time() - run.created < DUPLICATE_WINDOW_S
                ):
                    return run
            if sum(r.state == "queued" and not r.status.get("follows") for r in active) >= MAX_QUEUED:
                raise RunError(
                    f"the queue is full ({MAX_QUEUED} runs waiting): wait for some to finish, or cancel some"
                )
            limit = waiting_limit_problem(owner, [r for r in active if r.state == "queued"], 1, self.runs_dir)
            if limit:
                raise RunError(limit)
            over = new_run_problem(owner, self.runs_dir, list_runs(self.runs_dir))
            if over:
                raise RunError(over)
            run_id = new_run_id(self.runs_dir, config.run_name, config.strategy, config.data)
            key = result_key(config) if sharing_on(ClassroomSettings.load(self.runs_dir).share_identical) else None
            record = {
                **config.to_dict(),
                "created": time.time(),
                "run_id": run_id,
                "group": group,
                "fingerprint": fingerprint,
                "owner": owner,
                "plan": plan,
                "result_key": key,
                "role": role,
            }
            everyone = list_runs(self.runs_dir)
            twin = trained_twin(everyone, key) if key else None
            if twin is not None:  # trained here already with everything that decides the result: done at once
                write_linked_copy(twin, self.runs_dir / run_id, record, self._linked_status(twin))
                return Run(self.runs_dir / run_id)
            leader = active_twin(everyone, key) if key else None
            writer = RunWriter(self.runs_dir / run_id)
            writer.write_config(record)
            status = {"state": "queued", "queued": time.time()}
            if leader is not None:  # the same run is queued or training: follow it instead of training it again
                status["follows"] = leader.run_id
            record_status(writer.path, status)
            writer.log("queued" + (f", following the identical run {leader.run_id}" if leader else ""))
            writer.close()
        if start:
            self.pump()
        return Run(writer.path)

    def _check_owner(self, run: Run, owner: str | None, action: str, teacher: bool = False) -> None:
        """A student may only act on their own runs (classroom.may_act_on); the teacher and the command line on any."""
        if not may_act_on(run, owner, teacher):
            raise RunError(
                f"run {run.run_id} belongs to another session, another student's: only they or the teacher can "
                f"{action} it"
            )

    def rename(self, kind: str, key: str, title: str, owner: str | None = None, teacher: bool = False) -> str:
        """Give a run ("runs", its id) or a comparison ("comparisons", its group) a name people read; refused for a
        classmate's. Names are plain text wherever they are shown."""
        if kind == "runs":
            targets = [Run.open(self.runs_dir, check_run_id(key))]
        elif kind == "comparisons":
            targets = [r for r in self.runs() if r.config.get("group") == key]
            if not targets:
                raise RunError(f"no comparison '{key}' in {self.runs_dir}")
        else:
            raise ValueError(f"{kind!r} is not runs or comparisons")
        for run in targets:
            self._check_owner(run, owner, "rename", teacher)
        return Titles(self.runs_dir).set(kind, key, title)

    def cancel(self, run_id: str, grace_s: float = 8.0, owner: str | None = None, teacher: bool = False) -> str:
        """Stop a run: a queued one never starts; a running one is asked to stop (it stops at the next step),
        then killed if it has not stopped after grace_s. Only a process proven to be the run's own (same pid and
        start time, this machine) is ever signalled. Returns the final state."""
        run = Run.open(self.runs_dir, check_run_id(run_id))
        self._check_owner(run, owner, "cancel", teacher)
        with self._lock():
            status = run.status
            if status["state"] == "queued":
                record_status(run.path, {**status, "state": "cancelled", "reason": "cancelled before it started"})
                return "cancelled"
            if status["state"] == "lost":
                # a frozen worker is stopped by its launcher (locally only if its pid and start time still match)
                launcher = self._launcher_of(status)
                if launcher is not None:
                    launcher.stop(status, force=True)
                record_status(
                    run.path,
                    {
                        **status,
                        "state": "cancelled",
                        "reason": f"cancelled by the user after it was lost ({status.get('reason', '')})",
                    },
                )
                return "cancelled"
        if status["state"] != "running":
            return status["state"]
        launcher = self._launcher_of(status)
        if launcher is None:
            raise RunError(
                f"run {run.run_id} was started by the {status.get('launcher')} backend, not this queue's "
                f"({self.launcher.name}): cancel it with SEGCORE_BACKEND set as when it started"
            )
        if launcher.name == "local" and status.get("host") and status.get("host") != socket.gethostname():
            raise RunError(f"run {run.run_id} is training on another machine ({status.get('host')}): cancel it there")
        if not launcher.stop(status, force=False):
            return write_judged_status(Run(run.path)).get("state", "failed")
        deadline = time.time() + grace_s
        while time.time() < deadline and run.state == "running":
            time.sleep(0.1)
        current = run.status
        if (
            current["state"] == "running"
            or current["state"] == "failed"
            and "ended without finishing" in current.get("reason", "")
        ):
            launcher.stop(current, force=True)
            record_status(
                run.path,
                {**current, "state": "cancelled", "reason": "cancelled by the user (stopped forcibly)"},
            )
        self.pump()
        return Run(run.path).state

    def cancel_waiting(self, owner: str) -> list[str]:
        """Cancel every run of `owner` that has not started yet (one click for a student who queued too much)."""
        waiting = [r for r in self.runs() if r.owner == owner and r.state == "queued"]
        return [run.run_id for run in waiting if self.cancel(run.run_id, owner=owner) == "cancelled"]

    def resume(self, run_id: str, owner: str | None = None, teacher: bool = False) -> Run:
        """Queue a failed, cancelled or lost run again; it continues from its last finished epoch."""
        run = Run.open(self.runs_dir, check_run_id(run_id))
        self._check_owner(run, owner, "resume", teacher)
        problem = run.config_problem()
        if problem:
            raise RunError(f"run {run_id} cannot be resumed: {problem} — train it again as a new run")
        with self._lock():
            status = write_judged_status(run)
            if status["state"] not in RESUMABLE:
                raise RunError(
                    f"run {run_id} is {status['state']}: only a failed, cancelled or lost run can be resumed"
                )
            record_status(
                run.path,
                {
                    "state": "queued",
                    "queued": time.time(),
                    "resume": True,
                    "previous": status.get("reason", status["state"]),
                    "attempt": status.get("attempt", 0),
                },
            )  # Ray job ids stay unique
        self.pump()
        return run

    # -- scheduling -----------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return list_runs(self.runs_dir)

    def queued(self, runs: list[Run] | None = None) -> list[Run]:
        """Waiting runs in the order they will start: fair between students (classroom.fair_order). `runs`: a reading
        of the runs folder the caller holds already (a page's snapshot)."""
        runs = self.runs() if runs is None else runs
        return fair_order([r for r in runs if r.state == "queued"], [r for r in runs if r.state != "queued"])

    def running(self) -> list[Run]:
        return [r for r in self.runs() if r.state == "running"]

    def pump(self) -> list[str]:
        """Start queued runs, oldest first, while fewer than max_running are running. Settles dead runs, marks
        queued runs that cannot start (damaged folder) failed with the reason, and never raises for one bad run."""
        started = []
        with self._lock():
            for run in self.runs():
                try:
                    self._report_problem(run)
                    self._ask_launcher(run)
                    write_judged_status(run)
                except Exception as exc:  # e.g. a folder we may not write: leave it, keep the queue moving
                    logger.exception("run %s: could not settle its status", run.run_id)
                    self._note(f"run {run.run_id}: could not settle its status ({exc})")
            waiting = []
            for run in self.queued():  # runs following an identical one take no slot: linked as soon as it is done
                try:
                    if not self._waits_for_twin(run):
                        waiting.append(run)
                except Exception as exc:
                    logger.exception("run %s: could not follow its identical run", run.run_id)
                    self._note(f"run {run.run_id}: could not follow its identical run ({exc})")
            running = len(self.running())
            for run in waiting:
                if running >= self.max_running:
                    break
                try:
                    if self._waits_for_source(run):
                        continue
                    self._start(run)
                except Exception as exc:
                    logger.exception("run %s: could not be started", run.run_id)
                    self._note(f"run {run.run_id}: could not be started ({exc})")
                    try:
                        record_status(
                            run.path,
                            {**run.status, "state": "failed", "reason": f"the queue could not start it: {exc}"},
                        )
                    except OSError:
                        logger.exception("run %s: could not record that it failed to start", run.run_id)
                    continue
                started.append(run.run_id)
                running += 1
        return started

    def _report_problem(self, run: Run) -> None:
        # only the files that decide whether a run can start: pump runs every 2 s, and reading every run's
        # metrics and checkpoint header that often would load a shared server (pages show run.problem)
        problem = run.config_problem() or run.recorded_status()[1]
        if problem and (run.run_id, problem) not in self._reported:
            self._reported.add((run.run_id, problem))
            logger.warning("damaged run folder %s: %s", run.path, problem)

    def _launcher_of(self, status: dict) -> Launcher | None:
        """This queue's launcher if it started the run (runs from before launchers existed were local), else None."""
        return self.launcher if status.get("launcher", "local") == self.launcher.name else None

    def _ask_launcher(self, run: Run) -> None:
        """Record what the launcher knows and the run folder cannot (Ray: the job failed, with Ray's reason)."""
        recorded, problem = run.recorded_status()
        if problem or recorded.get("state") not in ("running", "lost") or self._launcher_of(recorded) is None:
            return
        verdict = self.launcher.verdict(recorded)
        if verdict is None:
            return
        state, reason = verdict
        current, _ = run.recorded_status()  # the worker may have recorded its own ending meanwhile: that one wins
        if current.get("state") == recorded.get("state") and current.get("ray_job") == recorded.get("ray_job"):
            record_status(run.path, {**current, "state": state, "reason": reason, "updated": time.time()})
            logger.warning("run %s: %s", run.run_id, reason)

    def job_log(self, run: Run, lines: int = 20) -> str:
        """The end of the run's process output as its launcher keeps it (worker.log locally, the Ray job's log)."""
        launcher = self._launcher_of(run.recorded_status()[0])
        return launcher.job_log(run, lines) if launcher else ""

    def backend_description(self) -> str:
        return self.launcher.describe()

    def _waits_for_source(self, run: Run) -> bool:
        source = run.config.get("source_run")
        if not source or not isinstance(source, str):
            return False
        source_path = Path(source)
        if not is_run_folder(source_path):
            return False  # not a run of this queue: let training report it
        state = Run(source_path).state
        if state in ACTIVE:
            return True
        if state != "done":
            record_status(
                run.path,
                {**run.status, "state": "failed", "reason": f"its source run {source_path.name} {state}"},
            )
            return True
        return False

    @staticmethod
    def _linked_status(twin: Run) -> dict:
        now = time.time()
        return {
            "state": "done",
            "linked_to": twin.run_id,
            "queued": now,
            "started": now,
            "updated": now,
            "miou": twin.status_record.miou,
        }

    def _waits_for_twin(self, run: Run) -> bool:
        """A run following an identical one: linked when that one is done, trains itself if that one ended otherwise,
        waits (without taking a slot) while it trains."""
        leader_id = run.status.get("follows")
        if not isinstance(leader_id, str):
            return False
        try:
            leader = Run.open(self.runs_dir, leader_id)
        except RunError:
            leader = None
        state = leader.state if leader is not None else "gone"
        if state in ACTIVE:
            return True
        if state == "done" and leader.has_checkpoint() and not leader.broken:
            write_linked_copy(leader, run.path, None, self._linked_status(leader))
            return True
        status = {k: v for k, v in run.recorded_status()[0].items() if k != "follows"}
        record_status(run.path, {**status, "previous": f"the identical run {leader_id} {state}: trained itself"})
        return False

    def _start(self, run: Run) -> None:
        launched = self.launcher.start(self.runs_dir, run, self.max_running)
        record_status(run.path, {**run.recorded_status()[0], "state": "running", **launched})


def wait_for(run: Run, timeout_s: float = 600, poll_s: float = 0.5) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = run.state
        if state not in ACTIVE:
            return state
        time.sleep(poll_s)
    return run.state
