"""What starts, stops and checks a run's training process: the job queue's one seam to the machines.

The runs folder stays the queue's only state (queue.py: FIFO, double-click guard, source runs, owners); a
launcher only turns "start this run" into a process somewhere, and answers for that process afterwards.

- `local` (default): a detached `python -m segcore.jobs.worker` process on this machine; liveness by pid + heartbeat.
- `ray`: one Ray Job per attempt on a Ray cluster, chosen with `SEGCORE_BACKEND=ray:http://HEAD:8265`; Ray picks
  a machine with the GPUs the run asks for. Liveness by Ray's job status + the worker's heartbeat, never a pid.
  `ray` is imported only here and only when that backend is chosen (requirements-cluster.txt).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from ..base.errors import RunError
from ..runs.files import WORKER_LOG
from ..runs.liveness import process_identity, process_start_time
from ..runs.run import Run
from ..runs.writer import open_worker_log

logger = logging.getLogger(__name__)

BACKEND_ENV = "SEGCORE_BACKEND"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # segcore/
PROJECT_DIR = PACKAGE_DIR.parent
PROBE_TIMEOUT_S = 90.0


def max_jobs_from_env() -> int | None:
    text = os.environ.get("SEGCORE_MAX_JOBS", "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise RunError(
            f"SEGCORE_MAX_JOBS={text!r} is not a whole number: set it to how many runs may train at once"
        ) from None
    if value < 1:
        raise RunError(f"SEGCORE_MAX_JOBS={value}: at least 1 run must be allowed to train")
    return value


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


class LocalLauncher:
    """Today's workers: a detached process per run on this machine, in its own session so it outlives the server."""

    name = "local"

    def default_slots(self) -> int:
        return max_jobs_from_env() or 1

    def check_ready(self, runs_dir: Path) -> None:
        """Nothing to check: this machine sees its own runs folder."""

    def start(self, runs_dir: Path, run: Run, max_running: int) -> dict:
        with open_worker_log(run.path) as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "segcore.jobs.worker", str(runs_dir), run.run_id, str(max_running)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=PROJECT_DIR,
                **_detached(),
            )
        now = time.time()
        return {
            "launcher": self.name,
            "pid": process.pid,
            "pid_started": process_start_time(process.pid),
            "host": socket.gethostname(),
            "started": now,
            "heartbeat": now,
        }

    def stop(self, status: dict, force: bool) -> bool:
        """Signal the run's process (terminate; kill when forced). Another machine's pid is never signalled here."""
        if status.get("host") and status.get("host") != socket.gethostname():
            return False
        return signal_if_same(status, "kill" if force else "terminate")

    def verdict(self, status: dict) -> tuple[str, str] | None:
        """The pid and heartbeat in status.json say everything (runs.judge_running); nothing to add."""
        return None

    def job_log(self, run: Run, lines: int = 20) -> str:
        try:
            return tail((run.path / WORKER_LOG).read_text(errors="replace"), lines)
        except OSError:
            return ""

    def describe(self) -> str:
        return f"local: up to {self.default_slots()} run(s) at a time on this machine ({socket.gethostname()}; SEGCORE_MAX_JOBS)"


class RayLauncher:
    """Each run attempt is a Ray Job whose entrypoint is the worker; Ray places it by the GPUs/CPUs it asks for."""

    name = "ray"

    def __init__(self, address: str) -> None:
        self.address = address
        self._client = None

    # -- the cluster --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise RunError(
                    f"{BACKEND_ENV}=ray:{self.address} needs Ray on this machine: "
                    "pip install -r requirements-cluster.txt (or set SEGCORE_BACKEND=local)"
                ) from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError depending on the fault
                raise RunError(
                    f"cannot reach the Ray cluster at {self.address} ({BACKEND_ENV}): {exc} — start its head "
                    "(ray start --head --dashboard-host 0.0.0.0) or correct the address"
                ) from None
        return self._client

    def nodes(self) -> list[dict]:
        """Alive nodes as {'ip', 'resources'} from the dashboard's state API."""
        self.client  # a clear error first when Ray is missing or the head is down
        from ray.util.state import list_nodes

        found = list_nodes(address=self.address, detail=True, raise_on_missing_output=False)
        return [
            {"ip": node.node_ip, "resources": dict(node.resources_total or {})}
            for node in found
            if str(node.state) == "ALIVE"
        ]

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = {"nodes": 0, "GPU": 0.0, "CPU": 0.0}
        for node in self.nodes():
            totals["nodes"] += 1
            for key in ("GPU", "CPU"):
                totals[key] += node["resources"].get(key, 0.0)
        return totals

    def default_slots(self) -> int:
        configured = max_jobs_from_env()
        if configured:
            return configured
        totals = self.totals()
        # one run per GPU; on a CPU-only cluster one per core (each worker reserves one CPU)
        return max(1, int(totals["GPU"]) or int(totals["CPU"]))

    def describe(self) -> str:
        try:
            totals = self.totals()
        except Exception as exc:
            return f"Ray cluster at {self.address}: not reachable ({exc})"
        return (
            f"Ray cluster at {self.address}: {int(totals['nodes'])} machine(s), {totals['GPU']:g} GPU(s), "
            f"{totals['CPU']:g} CPU(s)"
        )

    # -- the shared runs folder ---------------------------------------------------------------
    def check_ready(self, runs_dir: Path) -> None:
        """Refuse to queue anything unless every alive node sees this runs folder at the same path: the worker
        writes its run there, the app reads it. A marker written here must be readable by a probe job on each node."""
        token = uuid.uuid4().hex
        marker = runs_dir / f".cluster-probe-{token}"
        marker.write_text(token)
        code = "import pathlib,sys; p=pathlib.Path(sys.argv[1]); sys.exit(0 if p.is_file() and p.read_text()==sys.argv[2] else 3)"
        try:
            jobs = {}
            for node in self.nodes():
                job_id = f"segcore-probe-{token[:12]}-{re.sub(r'[^A-Za-z0-9]', '-', node['ip'])}"
                self.client.submit_job(
                    entrypoint=f"{shlex.quote(ray_python())} -c {shlex.quote(code)} {shlex.quote(str(marker))} {token}",
                    submission_id=job_id,
                    entrypoint_num_cpus=0,
                    entrypoint_resources={f"node:{node['ip']}": 0.001},
                )  # pinned to that node
                jobs[job_id] = node["ip"]
            blind = self._wait_for_probes(jobs)
        finally:
            marker.unlink(missing_ok=True)
        if blind:
            raise RunError(
                f"the runs folder {runs_dir} is not visible at the same path on the Ray node(s) {', '.join(blind)}: "
                "workers there could not write their runs. Put the runs folder on storage every node mounts at the same "
                "path (e.g. NFS at /shared/runs), point SEGCORE_RUNS at it, and start the app again"
            )

    def _wait_for_probes(self, jobs: dict[str, str]) -> list[str]:
        """Nodes whose probe job did not succeed (the folder is not there, or the node never ran it)."""
        deadline = time.time() + PROBE_TIMEOUT_S
        pending, blind = dict(jobs), []
        while pending and time.time() < deadline:
            for job_id, ip in list(pending.items()):
                state = str(self.client.get_job_status(job_id))
                if state in ("SUCCEEDED", "FAILED", "STOPPED"):
                    del pending[job_id]
                    if state != "SUCCEEDED":
                        logger.warning("runs-folder probe on %s: %s\n%s", ip, state, self.client.get_job_logs(job_id))
                        blind.append(ip)
            time.sleep(0.3)
        for job_id, ip in pending.items():
            self.client.stop_job(job_id)
            blind.append(f"{ip} (its probe did not run within {PROBE_TIMEOUT_S:.0f} s)")
        return blind

    # -- one run ------------------------------------------------------------------------------
    def start(self, runs_dir: Path, run: Run, max_running: int) -> dict:
        config = run.train_config
        attempt = _count(run.recorded_status()[0].get("attempt")) + 1
        # 0 = auto: one GPU where the cluster has GPUs, else a CPU run
        gpus = config.gpus or (1 if self.totals()["GPU"] else 0)
        entrypoint = f"{shlex.quote(ray_python())} -m segcore.jobs.worker {shlex.quote(str(runs_dir))} {run.run_id} {max_running}"
        for _ in range(5):  # Ray refuses a submission id it has seen (a resume, or a cluster that kept old jobs)
            job_id = f"{run.run_id}-attempt{attempt}"
            try:
                self.client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=job_id,
                    entrypoint_num_gpus=gpus,
                    entrypoint_num_cpus=max(1, config.gpus),
                    runtime_env={"py_modules": [str(PACKAGE_DIR)], "env_vars": _forwarded_environment()},
                    metadata={"segcore_run": run.run_id},
                )
                break
            except RuntimeError as exc:
                if "already exists" not in str(exc):
                    raise
                attempt += 1
        else:
            raise RunError(f"run {run.run_id}: the Ray cluster refused every new job id up to {job_id}")
        now = time.time()
        # no pid: the worker records its own host and pid when Ray has placed it; until then Ray's status speaks
        return {
            "launcher": self.name,
            "ray_address": self.address,
            "ray_job": job_id,
            "attempt": attempt,
            "gpus_requested": gpus,
            "started": now,
            "heartbeat": now,
            "pid": None,
            "pid_started": None,
            "host": None,
        }

    def stop(self, status: dict, force: bool) -> bool:
        job_id = status.get("ray_job")
        if not isinstance(job_id, str):
            return False
        try:
            return bool(self.client.stop_job(job_id)) or force
        except RuntimeError as exc:  # the job is unknown to Ray: nothing left to stop
            logger.info("Ray job %s could not be stopped: %s", job_id, exc)
            return False

    def verdict(self, status: dict) -> tuple[str, str] | None:
        """('failed', Ray's reason) when Ray says the job ended while status.json still says it trains; None when
        Ray still runs (or queues) it, or cannot be asked right now (the heartbeat then decides)."""
        job_id = status.get("ray_job")
        if not isinstance(job_id, str):
            return "failed", "status.json names no Ray job for this run: resume it or train it again"
        try:
            info = self.client.get_job_info(job_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return "failed", (
                    f"the Ray cluster at {self.address} no longer knows job {job_id} (was the cluster "
                    "restarted?): resume the run"
                )
            logger.warning("cannot ask Ray about job %s: %s", job_id, exc)
            return None
        except Exception as exc:  # the head is down: the heartbeat decides until it is back
            logger.warning("cannot ask Ray about job %s: %s", job_id, exc)
            return None
        state = str(info.status)
        if state in ("PENDING", "RUNNING"):
            return None
        message = (info.message or "").strip() or "no reason given"
        if state == "SUCCEEDED":
            return "failed", f"the Ray job {job_id} ended without finishing the run ({message})"
        if state == "STOPPED":
            return "failed", f"the Ray job {job_id} was stopped by Ray before the run finished ({message})"
        return "failed", f"the Ray job {job_id} failed: {message}"

    def job_log(self, run: Run, lines: int = 20) -> str:
        job_id = run.recorded_status()[0].get("ray_job")
        if not isinstance(job_id, str):
            return ""
        try:
            return tail(self.client.get_job_logs(job_id), lines)
        except Exception as exc:
            return f"(the log of Ray job {job_id} cannot be read: {exc})"


Launcher = LocalLauncher | RayLauncher


def launcher_from_env() -> Launcher:
    """The backend SEGCORE_BACKEND names: 'local' (default) or 'ray:http://HEAD:8265'."""
    text = os.environ.get(BACKEND_ENV, "").strip()
    if text in ("", "local"):
        return LocalLauncher()
    if text.startswith("ray:"):
        address = text[len("ray:") :]
        if not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", address):
            raise RunError(
                f"{BACKEND_ENV}={text!r}: after 'ray:' give the Ray dashboard address, e.g. ray:http://head-node:8265"
            )
        return RayLauncher(address.rstrip("/"))
    raise RunError(f"{BACKEND_ENV}={text!r} is not a backend: use 'local' (default) or 'ray:http://HEAD:8265'")


def backend_description() -> str:
    """One line for the sidebar: which backend trains the runs, and for Ray how big the cluster is."""
    try:
        return launcher_from_env().describe()
    except RunError as exc:
        return f"backend not usable: {exc}"


RAY_PYTHON_ENV = "SEGCORE_RAY_PYTHON"


def ray_python() -> str:
    """The interpreter a Ray job runs the worker with: SEGCORE_RAY_PYTHON, else this app's own (a job's shell would
    otherwise take whatever `python` the node's PATH holds, often one without torch when the app lives in a virtual
    environment that is not activated). Every node needs an interpreter at that path with the same packages."""
    return os.environ.get(RAY_PYTHON_ENV, "").strip() or sys.executable


def _forwarded_environment() -> dict[str, str]:
    # the worker runs in the Ray node's environment, not ours: pass on the SEGCORE_* settings (runs folder, cache,
    # heartbeat, backend so a finishing worker starts the next job) and nothing else
    return {key: value for key, value in os.environ.items() if key.startswith("SEGCORE_")}


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _detached() -> dict:
    """Popen arguments that let a worker outlive the server and receive its own signals."""
    if os.name == "posix":
        return {"start_new_session": True}
    return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}


def signal_if_same(status: dict, how: str) -> bool:
    """terminate() or kill() the process status.json names, only if it is still that process (same pid and
    start time): a pid reused by another program is never signalled. Returns whether it was signalled."""
    pid = status.get("pid")
    if process_identity(pid, status.get("pid_started")) != "alive":
        logger.info("pid %s is not the run's training process any more; not signalled", pid)
        return False
    try:
        getattr(psutil.Process(pid), how)()  # psutil itself refuses if the pid was reused since this lookup
    except psutil.NoSuchProcess:
        logger.info("pid %s ended before it could be signalled", pid)
        return False
    except psutil.AccessDenied:
        logger.warning("pid %s belongs to another user; cannot %s it", pid, how)
        return False
    return True
