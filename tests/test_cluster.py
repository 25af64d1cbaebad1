"""A department cluster on a CPU: the queue on a (local, one-node) Ray cluster, one run trained by two DDP processes (gloo),
and liveness that never trusts a Ray job's pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segcore import RunError, TrainConfig
from segcore.jobs.queue import JobQueue, wait_for
from segcore.jobs.ray_head import LocalRayHead
from segcore.runs.liveness import judge_running
from segcore.runs.run import Run

from .conftest import wait_until

pytestmark = pytest.mark.slow

TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4, augment="none")
PROJECT = Path(__file__).resolve().parents[1]


def config(data, **kw) -> TrainConfig:
    return TrainConfig(data=str(data), **{**TINY, **kw})


# -- a local Ray head ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray.job_submission", reason="ray is not installed: pip install -r requirements-cluster.txt")
    with LocalRayHead(cpus=2) as address:
        yield address


@pytest.fixture
def ray_queue(ray_address, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCORE_BACKEND", f"ray:{ray_address}")  # forwarded to the workers Ray starts
    return JobQueue(tmp_path / "runs", max_running=2)


def ray_job_status(address: str, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job_id))


def pump_until(queue: JobQueue, predicate, timeout_s: float = 120) -> bool:
    def check():
        queue.pump()  # what the app's scheduler thread does every 2 s: asks Ray about running jobs
        return predicate()

    return wait_until(check, timeout_s, poll_s=0.5)


def test_ray_backend_trains_a_run_to_done_and_cancel_stops_its_job(ray_queue, ray_address, train_dataset):
    assert "Ray cluster at" in ray_queue.backend_description() and "2 CPU(s)" in ray_queue.backend_description()
    done = ray_queue.submit(config(train_dataset, strategy="feature", max_steps=3, run_name="short"))
    long = ray_queue.submit(config(train_dataset, strategy="scratch", epochs=500, run_name="long"))
    assert done.status["launcher"] == "ray" and done.status["ray_job"] == "short-attempt1"
    assert long.state == "running"

    assert pump_until(ray_queue, lambda: len(long.steps()) >= 1), ray_queue.job_log(long)
    assert ray_queue.cancel(long.run_id) == "cancelled"
    assert "cancelled" in long.status["reason"]
    assert wait_until(lambda: ray_job_status(ray_address, "long-attempt1") == "STOPPED", 30)

    assert pump_until(ray_queue, lambda: done.state not in ("queued", "running")), ray_queue.job_log(done, 50)
    assert done.state == "done", done.status
    steps, epochs = done.curves()
    assert [s["step"] for s in steps] == [1, 2, 3] and len(epochs) == 1 and "miou" in epochs[0]
    # the worker records "done" before its process exits: Ray's verdict follows a moment later
    assert wait_until(lambda: ray_job_status(ray_address, "short-attempt1") == "SUCCEEDED", 60)
    assert "segcore.jobs.worker" in ray_queue.job_log(done, 200)  # the Training page's log box reads Ray's job log


def test_a_ray_job_whose_process_is_killed_reads_failed_with_rays_reason_and_resumes_once(
    ray_queue, ray_address, train_dataset
):
    # six epochs, so the kill lands mid-run even when the first one was slow to start on a busy machine
    victim = ray_queue.submit(config(train_dataset, strategy="scratch", epochs=6, run_name="victim"))
    assert pump_until(ray_queue, lambda: len(victim.epochs()) >= 1, 300), ray_queue.job_log(victim, 50)
    os.kill(victim.status["pid"], signal.SIGKILL)
    assert pump_until(ray_queue, lambda: victim.state == "failed", 120), victim.status
    reason = victim.status["reason"]
    assert "the Ray job victim-attempt1 failed" in reason and "exit code" in reason, reason

    resumed = ray_queue.resume(victim.run_id)
    assert resumed.status["ray_job"] == "victim-attempt2"  # Ray refuses a used submission id
    assert pump_until(ray_queue, lambda: victim.state not in ("queued", "running"), 300), ray_queue.job_log(victim, 50)
    assert victim.state == "done", victim.status
    steps, epochs = victim.curves()
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))  # every step once: none counted twice
    assert [e["epoch"] for e in epochs] == list(range(1, 7))


def test_a_runs_folder_a_ray_node_cannot_see_is_refused_at_start_up(ray_address, tmp_path, monkeypatch):
    from segcore.jobs import launchers

    monkeypatch.setenv("SEGCORE_BACKEND", f"ray:{ray_address}")
    monkeypatch.setattr(launchers, "PROBE_TIMEOUT_S", 3.0)
    real_nodes = launchers.RayLauncher.nodes
    # a second node that never runs its probe: as a machine that does not mount the runs folder, seen from here
    monkeypatch.setattr(
        launchers.RayLauncher,
        "nodes",
        lambda self: [*real_nodes(self), {"ip": "10.255.255.1", "resources": {"CPU": 1.0}}],
    )
    with pytest.raises(
        RunError, match=r"runs folder .* is not visible at the same path on the Ray node\(s\) 10\.255\.255\.1"
    ):
        JobQueue(tmp_path / "runs")
    assert not list((tmp_path / "runs").glob(".cluster-probe-*"))  # the marker is cleaned up


def test_an_unknown_backend_is_refused_with_the_setting_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCORE_BACKEND", "slurm")
    with pytest.raises(RunError, match="SEGCORE_BACKEND='slurm' is not a backend: use 'local'"):
        JobQueue(tmp_path / "runs")


# -- liveness without pids ------------------------------------------------------------------------------
def test_a_ray_run_is_judged_by_its_heartbeat_never_by_a_pid(monkeypatch):
    monkeypatch.setenv("SEGCORE_HEARTBEAT_LIMIT_S", "30")
    now = time.time()
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    placed = {
        "state": "running",
        "launcher": "ray",
        "ray_job": "r-attempt1",
        "started": now - 900,
        "heartbeat": now - 900,
    }
    assert judge_running(placed, now) == ("running", None)  # not placed by Ray yet: Ray's status speaks, not a clock
    reporting = {**placed, "pid": int(dead_pid), "host": socket.gethostname(), "heartbeat": now - 1}
    assert judge_running(reporting, now) == ("running", None)  # this machine's pid table says nothing about a Ray job
    silent = {**reporting, "heartbeat": now - 600, "updated": now - 600}
    verdict, reason = judge_running(silent, now)
    assert verdict == "lost" and "(Ray job r-attempt1)" in reason and "stopped reporting 10 min ago" in reason


# -- one run, two processes ------------------------------------------------------------------------------
def ddp_environment(checksums: Path) -> dict:
    checksums.mkdir()
    return {**os.environ, "SEGCORE_DDP_ON_CPU": "1", "SEGCORE_DDP_CHECKSUMS": str(checksums)}


def assert_ranks_held_identical_parameters(checksums: Path, steps: int) -> None:
    ranks = [(checksums / f"rank{r}.txt").read_text().splitlines() for r in (0, 1)]
    assert ranks[0] == ranks[1], "the two processes' parameters differ after a step: gradients were not synchronised"
    assert [line.split()[0] for line in ranks[0]] == [str(s) for s in range(1, steps + 1)]
    assert len({line.split()[1] for line in ranks[0]}) == steps  # the parameters did change at every step


def assert_reads_like_a_one_process_run(run: Run, steps: int) -> None:
    assert run.state == "done", run.status
    names = {p.name for p in run.path.iterdir() if not p.name.startswith(".")}
    pieces = {n for n in names if n.startswith("resume-")}
    assert names - pieces == {
        "config.json",
        "status.json",
        "metrics.jsonl",
        "train.log",
        "best.safetensors",
        "best.json",
        "summary.json",
        "resume.json",
    } | ({"worker.log"} & names)
    assert len(pieces) == 2
    step_records, epochs = run.curves()
    assert [s["step"] for s in step_records] == list(range(1, steps + 1)) and len(epochs) == 1  # written once
    log = run.log_tail(100)
    assert log.count("done") == 1 and "× 2 processes (DDP)" in log
    assert run.summary()["processes"] == 2


def one_process_eval(run: Run, tmp_path: Path) -> float:
    out = tmp_path / f"{run.run_id}-eval.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "segcore",
            "--runs-dir",
            str(run.path.parent),
            "eval",
            run.run_id,
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
        check=True,
        cwd=PROJECT,
        capture_output=True,
    )
    return json.loads(out.read_text())["miou"]


def test_parameter_transfer_on_two_processes_from_the_cli(tmp_path, train_dataset):
    # 13 training images → 7 per process at batch 2: 4 steps an epoch on each rank
    command = [
        sys.executable,
        "-m",
        "segcore",
        "--runs-dir",
        str(tmp_path / "runs"),
        "train",
        "--data",
        str(train_dataset),
        "--strategy",
        "parameter",
        "--epochs",
        "1",
        "--min-steps",
        "0",
        "--size",
        "64",
        "--batch-size",
        "2",
        "--augment",
        "none",
        "--max-steps",
        "3",
        "--gpus",
        "2",
        "--quiet",
    ]  # no --name: rank 0 picks the id
    result = subprocess.run(
        command, cwd=PROJECT, env=ddp_environment(tmp_path / "checksums"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("run ") == 1  # one process speaks for the run
    [run] = [Run(p) for p in (tmp_path / "runs").iterdir()]
    assert_ranks_held_identical_parameters(tmp_path / "checksums", 3)
    assert_reads_like_a_one_process_run(run, 3)
    assert run.summary()["miou"] == pytest.approx(one_process_eval(run, tmp_path), abs=1e-9)


def test_feature_transfer_on_two_processes_from_the_queue_syncs_the_decoder(tmp_path, train_dataset, monkeypatch):
    # the cached-features path calls decode() directly: only its own DDP wrapper keeps decoder and head in step
    for key, value in ddp_environment(tmp_path / "checksums").items():
        monkeypatch.setenv(key, value)
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset, strategy="feature", batch_size=2, max_steps=4, gpus=2, run_name="ddp"))
    assert wait_for(run, 300) == "done", (run.status, (run.path / "worker.log").read_text()[-3000:])
    assert "feature cache off" not in run.log_tail(100)  # the cached path really ran
    assert_ranks_held_identical_parameters(tmp_path / "checksums", 4)
    assert_reads_like_a_one_process_run(run, 4)
    assert run.summary()["miou"] == pytest.approx(one_process_eval(run, tmp_path), abs=1e-9)
