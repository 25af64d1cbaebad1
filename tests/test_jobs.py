"""The job queue: separate processes, FIFO at the configured concurrency, cancel that really stops, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from segcore import RunError, TrainConfig
from segcore.jobs.planning import queue_all_strategies
from segcore.jobs.queue import JobQueue, wait_for

from .conftest import wait_until

pytestmark = pytest.mark.slow  # every test here starts worker processes

TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4, augment="none")


def config(data, **kw):
    return TrainConfig(data=str(data), **{**TINY, **kw})


def test_runs_train_in_separate_processes_first_in_first_out(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    first = queue.submit(config(train_dataset, strategy="feature", run_name="first"))
    second = queue.submit(config(train_dataset, strategy="scratch", run_name="second"))
    assert first.state == "running" and second.state == "queued"
    assert first.status["pid"] != os.getpid()
    assert wait_for(first, 120) == "done"
    assert wait_for(second, 120) == "done"  # the finishing worker started the next job itself
    assert second.status["started"] >= first.status["updated"] - 1


def test_double_click_does_not_queue_the_same_run_twice(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    settings = config(train_dataset, strategy="feature", epochs=50)
    first, again = queue.submit(settings), queue.submit(settings)
    assert first.run_id == again.run_id
    assert len(queue.runs()) == 1
    queue.cancel(first.run_id)


def test_cancel_really_stops_a_running_process_within_seconds(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset, strategy="scratch", epochs=500, run_name="long"))
    assert wait_until(lambda: len(run.steps()) >= 2), run.log_tail()
    pid = run.status["pid"]
    started = time.time()
    assert queue.cancel(run.run_id) == "cancelled"
    assert time.time() - started < 10
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the process is gone (reaped or zombie-free) shortly after
            os.kill(pid, 0)
            if open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z":
                raise ProcessLookupError
            time.sleep(0.1)
    assert "cancelled" in run.status["reason"]


def test_cancelling_a_queued_run_means_it_never_starts(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    blocker = queue.submit(config(train_dataset, strategy="scratch", epochs=500, run_name="blocker"))
    waiting = queue.submit(config(train_dataset, strategy="feature", run_name="waiting"))
    assert queue.cancel(waiting.run_id) == "cancelled"
    queue.cancel(blocker.run_id)
    queue.pump()
    assert waiting.state == "cancelled" and not waiting.steps()


def test_a_killed_worker_is_marked_failed_with_its_reason(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset, strategy="scratch", epochs=500, run_name="victim"))
    assert wait_until(lambda: len(run.steps()) >= 1)
    os.kill(run.status["pid"], signal.SIGKILL)
    assert wait_until(lambda: run.state == "failed", 10)
    queue.pump()
    assert "ended without finishing" in run.status["reason"]


def test_train_all_strategies_runs_the_source_task_before_structure_transfer(
    tmp_path, train_dataset, source_dataset, monkeypatch
):
    monkeypatch.setattr("segcore.jobs.planning.SOURCE_TASK", str(source_dataset))
    queue = JobQueue(tmp_path / "runs", max_running=1)
    runs = queue_all_strategies(queue, config(train_dataset, max_steps=2), group="lesson")
    # the cheapest run first, so a class sees a result early; the source run just before structure transfer
    assert [r.run_id for r in runs] == [
        "lesson-feature",
        "lesson-parameter",
        "lesson-scratch",
        "lesson-source",
        "lesson-structure",
    ]
    structure = runs[-1]
    assert structure.config["source_run"] == str(runs[3].path)
    assert wait_for(structure, 300) == "done", structure.status
    assert all(r.state == "done" for r in runs)
    assert "source run lesson-source" in structure.summary()["encoder_origin"]


# -- a shared classroom server ------------------------------------------------------------------------


def running_status(run_path, **fields):
    now = time.time()
    status = {"state": "running", "host": socket.gethostname(), "started": now, "heartbeat": now, **fields}
    (run_path / "status.json").write_text(json.dumps(status))


@pytest.fixture
def sleeper():
    """A live process that has nothing to do with any run: its pid shows up in a stale status.json."""
    process = subprocess.Popen(
        ["sleep", "60"] if sys.platform != "win32" else [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    yield process
    process.kill()
    process.wait()


@pytest.mark.slow
def test_a_reused_pid_is_not_the_run_and_cancel_never_signals_it(tmp_path, train_dataset, sleeper):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset, run_name="stale"), start=False)
    real_start = psutil.Process(sleeper.pid).create_time()
    running_status(run.path, pid=sleeper.pid, pid_started=real_start)
    assert run.state == "running"  # the same process: it is the run's (the test can tell the two apart)
    running_status(run.path, pid=sleeper.pid, pid_started=real_start - 1000)  # the run's process died; pid reused
    assert run.state == "failed" and f"pid {sleeper.pid} now belongs to another program" in run.status["reason"]
    assert queue.cancel(run.run_id) == "failed"
    queue.pump()
    time.sleep(0.3)
    assert sleeper.poll() is None  # still alive: never signalled


@pytest.mark.slow
def test_a_run_on_another_machine_blocks_while_it_reports_and_is_lost_when_it_stops(
    tmp_path, train_dataset, sleeper, monkeypatch
):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    remote = queue.submit(config(train_dataset, run_name="remote"), start=False)
    queue.submit(config(train_dataset, run_name="waiting", seed=1), start=False)
    started = []
    monkeypatch.setattr(JobQueue, "_start", lambda q, r: started.append(r.run_id))
    # its pid is a live local process: a local lookup or signal would be wrong (the pid belongs to another machine)
    running_status(remote.path, host="another-machine", pid=sleeper.pid, pid_started=0)
    assert remote.state == "running" and queue.pump() == [] and started == []
    with pytest.raises(RunError, match="training on another machine \\(another-machine\\): cancel it there"):
        queue.cancel(remote.run_id)
    running_status(
        remote.path,
        host="another-machine",
        pid=sleeper.pid,
        pid_started=0,
        heartbeat=time.time() - 600,
        started=time.time() - 900,
    )
    assert remote.state == "lost"
    assert "another-machine, and its machine stopped reporting 10 min ago" in remote.status["reason"]
    assert queue.pump() == ["waiting"] and started == ["waiting"]  # the queue moves on
    assert json.loads((remote.path / "status.json").read_text())["state"] == "lost"
    assert queue.cancel(remote.run_id) == "cancelled"
    assert sleeper.poll() is None  # never signalled


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="SIGSTOP is POSIX-only")
def test_a_frozen_worker_reads_lost_after_the_heartbeat_limit(tmp_path, train_dataset, monkeypatch):
    monkeypatch.setenv("SEGCORE_HEARTBEAT_S", "0.3")  # inherited by the worker
    monkeypatch.setenv("SEGCORE_HEARTBEAT_LIMIT_S", "4")
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset, strategy="scratch", epochs=500, run_name="frozen"))
    assert wait_until(lambda: len(run.steps()) >= 1), run.log_tail()
    pid = run.status["pid"]
    assert run.state == "running"
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: run.state == "lost", 20)
        assert f"pid {pid}) has not reported for" in run.status["reason"]
        assert queue.cancel(run.run_id) == "cancelled"  # a frozen local worker is ours: it is killed
        assert wait_until(lambda: process_gone(pid), 10)
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_a_relative_runs_folder_from_another_directory_trains_to_done(tmp_path, train_dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    queue = JobQueue("runs", max_running=1)
    assert queue.runs_dir.is_absolute()
    run = queue.submit(config(train_dataset, max_steps=1, height=32, width=32, run_name="relative"))
    assert wait_for(run, 120) == "done", (run.status, (run.path / "worker.log").read_text())


def test_a_worker_that_cannot_open_its_run_records_the_real_reason(tmp_path):
    from segcore.jobs import worker

    folder = tmp_path / "runs" / "lost-config"
    folder.mkdir(parents=True)
    running_status(folder, pid=os.getpid())  # as the queue records a worker it has just started
    assert worker.main([str(tmp_path / "runs"), "lost-config"]) == 1
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "failed" and f"no run 'lost-config' in {tmp_path / 'runs'}" in status["reason"]


def test_a_double_click_is_per_session_two_sessions_get_two_runs(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    settings = config(train_dataset, strategy="feature")
    alice, alice_again = (
        queue.submit(settings, owner="alice", start=False),
        queue.submit(settings, owner="alice", start=False),
    )
    bob = queue.submit(settings, owner="bob", start=False)
    assert alice.run_id == alice_again.run_id and bob.run_id != alice.run_id
    assert len(queue.runs()) == 2 and alice.config["owner"] == "alice" and bob.owner == "bob"


def test_another_session_cannot_cancel_or_resume_a_run(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    run = queue.submit(config(train_dataset), owner="alice", start=False)
    with pytest.raises(RunError, match=f"run {run.run_id} belongs to another session"):
        queue.cancel(run.run_id, owner="bob")
    assert run.state == "queued"
    assert queue.cancel(run.run_id, owner="alice") == "cancelled"
    with pytest.raises(RunError, match="belongs to another session"):
        queue.resume(run.run_id, owner="bob")
    assert queue.resume(run.run_id, owner="alice").state in ("queued", "running")
    queue.cancel(run.run_id)


def test_pump_survives_a_run_it_cannot_start_and_says_why(tmp_path, train_dataset, monkeypatch, caplog):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    first = queue.submit(config(train_dataset, run_name="first"), start=False)
    queue.submit(config(train_dataset, run_name="second", seed=1), start=False)

    def start(q, run):
        if run.run_id == "first":
            raise OSError(28, "No space left on device")
        run.path.joinpath("started").write_text("yes")

    monkeypatch.setattr(JobQueue, "_start", start)
    assert queue.pump() == ["second"]
    assert first.state == "failed" and "the queue could not start it" in first.status["reason"]
    assert "No space left on device" in queue.last_error
    assert "could not be started" in caplog.text
