"""Faults: killed training, a restarted server, NaN, out of memory, a writer killed mid-write, a full class."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from segcore import Run, RunError, TrainConfig, TrainingFailed, train
from segcore.jobs import JobQueue, wait_for

from .conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "segcore", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode:
        raise AssertionError(result.stdout + result.stderr)
    return result



def test_a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    settings = ["--data", train_dataset, "--strategy", "scratch", "--epochs", 4, "--min-steps", 0, "--size", 64, "--batch-size", 2,
                "--augment", "full", "--seed", 3, "--quiet"]
    cli("--runs-dir", runs, "train", *settings, "--name", "whole")
    victim = subprocess.Popen([sys.executable, "-m", "segcore", "--runs-dir", str(runs), "train",
                               *map(str, settings), "--name", "killed"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = runs / "killed"
    try:
        assert wait_until(lambda: (killed / "config.json").exists()
                          and any(s["epoch"] == 3 for s in Run(killed).steps()))
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    run = Run.open(runs, "killed")
    assert run.state == "failed" and "ended without finishing" in run.status["reason"]
    assert [e["epoch"] for e in run.epochs()] == [1, 2] and run.has_checkpoint()
    cli("--runs-dir", runs, "resume", "killed")
    whole, resumed = Run.open(runs, "whole"), Run.open(runs, "killed")
    assert resumed.state == "done" and "reason" not in resumed.status
    assert [e["epoch"] for e in resumed.epochs()] == [1, 2, 3, 4]  # the lost half-epoch is not shown twice
    # weights, optimiser, schedule and random state come back exactly: the first resumed steps repeat the
    # uninterrupted run's losses; later, float rounding in freshly allocated tensors lets them drift a little
    first_resumed = next(i for i, s in enumerate(whole.steps()) if s["epoch"] == 3)
    whole_losses = [s["loss"] for s in whole.steps()]
    resumed_losses = [s["loss"] for s in resumed.steps()]
    assert len(resumed_losses) == len(whole_losses)
    assert resumed_losses[: first_resumed + 2] == pytest.approx(whole_losses[: first_resumed + 2], abs=1e-5)
    assert resumed_losses == pytest.approx(whole_losses, rel=0.02)
    assert resumed.summary()["miou"] == pytest.approx(whole.summary()["miou"], abs=0.02)
    assert [s["lr"] for s in resumed.steps()] == [s["lr"] for s in whole.steps()]


def test_training_survives_the_server_that_started_it(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    server = subprocess.run([sys.executable, "-c", (
        "import os; from segcore import TrainConfig; from segcore.jobs import JobQueue;"
        f"run = JobQueue({str(runs)!r}).submit(TrainConfig(data={str(train_dataset)!r}, epochs=2, min_steps=0, height=64, width=64));"
        "print(run.run_id); os._exit(0)")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    run = Run.open(runs, server.stdout.strip().splitlines()[-1])  # the 'server' is gone; its worker is not
    assert wait_for(run, 180) == "done", run.status
    for name in ("config.json", "status.json", "summary.json", "best.json"):
        json.loads((run.path / name).read_text())


def test_out_of_memory_fails_the_run_with_advice(tmp_path, train_dataset, monkeypatch):
    from segcore import training

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "segmentation_loss", out_of_memory)
    with pytest.raises(TrainingFailed, match="out of GPU memory: choose a smaller batch size or image size"):
        train(TrainConfig(data=str(train_dataset), epochs=1, height=64, width=64), tmp_path, run_id="oom")
    assert "smaller batch" in Run.open(tmp_path, "oom").status["reason"]


WRITER = """
import sys, itertools
from pathlib import Path
from segcore.runs import atomic_write_json
folder = Path(sys.argv[1])
for i in itertools.count():
    payload = {"state": "running", "step": i, "padding": "x" * (i % 5000)}
    atomic_write_json(folder / "status.json", payload)
    atomic_write_json(folder / "config.json", {"epochs": i, "notes": "y" * (i % 7000)})
"""


def test_a_writer_killed_mid_write_leaves_every_run_file_parsable(tmp_path):
    for attempt in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT)
        assert wait_until(lambda: (tmp_path / "config.json").exists(), 30)
        time.sleep(0.2 + 0.13 * attempt)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        for name in ("status.json", "config.json"):
            json.loads((tmp_path / name).read_text())
    # the killed writer may leave its temporary file behind, never a broken run file
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if p.suffix == ".tmp")


def test_thirty_students_queue_at_once_and_each_run_trains_exactly_once_in_order(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=2)
    results, errors = [], []

    def student(number: int) -> None:
        config = TrainConfig(data=str(train_dataset), strategy="feature", epochs=1, max_steps=1, height=32,
                             width=32, seed=number, run_name=f"student-{number:02d}")
        try:
            results.append(queue.submit(config, start=False))
        except RunError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=student, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({r.run_id for r in results}) == 30
    order = [r.run_id for r in queue.queued()]
    most_at_once = 0
    queue.pump()
    deadline = time.time() + 400
    while time.time() < deadline and any(r.state in ("queued", "running") for r in results):
        most_at_once = max(most_at_once, len(queue.running()))
        time.sleep(0.2)
    assert all(r.state == "done" for r in results), [(r.run_id, r.status) for r in results if r.state != "done"]
    assert most_at_once <= 2
    started = sorted(results, key=lambda r: r.status["started"])
    assert [r.run_id for r in started] == order  # first in, first out
    for run in results:  # trained once: one step, one epoch, one process
        assert len(run.steps()) == 1 and len(run.epochs()) == 1


def test_a_full_queue_refuses_with_a_reason(tmp_path, train_dataset, monkeypatch):
    monkeypatch.setattr("segcore.jobs.MAX_QUEUED", 3)
    queue = JobQueue(tmp_path / "runs", max_running=1)
    for seed in range(3):
        queue.submit(TrainConfig(data=str(train_dataset), seed=seed), start=False)
    with pytest.raises(RunError, match="the queue is full \\(3 runs waiting\\)"):
        queue.submit(TrainConfig(data=str(train_dataset), seed=99), start=False)
