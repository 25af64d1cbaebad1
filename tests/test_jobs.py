"""The job queue: separate processes, FIFO at the configured concurrency, cancel that really stops, no duplicates."""

from __future__ import annotations

import os
import signal
import time

import pytest

from segcore import TrainConfig
from segcore.jobs import JobQueue, wait_for
from segcore.planning import queue_all_strategies

from .conftest import wait_until

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


def test_train_all_strategies_runs_the_source_task_before_structure_transfer(tmp_path, train_dataset, source_dataset,
                                                                            monkeypatch):
    monkeypatch.setattr("segcore.planning.SOURCE_TASK", str(source_dataset))
    queue = JobQueue(tmp_path / "runs", max_running=1)
    runs = queue_all_strategies(queue, config(train_dataset, max_steps=2), group="lesson")
    # the cheapest run first, so a class sees a result early; the source run just before structure transfer
    assert [r.run_id for r in runs] == ["lesson-feature", "lesson-parameter", "lesson-scratch", "lesson-source",
                                        "lesson-structure"]
    structure = runs[-1]
    assert structure.config["source_run"] == str(runs[3].path)
    assert wait_for(structure, 300) == "done", structure.status
    assert all(r.state == "done" for r in runs)
    assert "source run lesson-source" in structure.summary()["encoder_origin"]
