"""Faults: killed training, a restarted server, NaN, out of memory, a writer killed mid-write, a full class."""

from __future__ import annotations

import errno
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from segcore import Run, RunError, TrainConfig, TrainingFailed, train
from segcore.jobs.queue import JobQueue, wait_for
from segcore.runs import resume as resume_points
from segcore.runs.resume import RunBusy

from .conftest import wait_until

pytestmark = pytest.mark.slow  # every test here kills, restarts or floods worker processes

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "segcore", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode:
        raise AssertionError(result.stdout + result.stderr)
    return result


def test_a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    settings = [
        "--data",
        train_dataset,
        "--strategy",
        "scratch",
        "--epochs",
        4,
        "--min-steps",
        0,
        "--size",
        64,
        "--batch-size",
        2,
        "--augment",
        "full",
        "--seed",
        3,
        "--quiet",
    ]
    cli("--runs-dir", runs, "train", *settings, "--name", "whole")
    victim = subprocess.Popen(
        [sys.executable, "-m", "segcore", "--runs-dir", str(runs), "train", *map(str, settings), "--name", "killed"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = runs / "killed"
    try:
        assert wait_until(
            lambda: (killed / "config.json").exists() and any(s["epoch"] == 3 for s in Run(killed).steps())
        )
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
    server = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import os; from segcore import TrainConfig; from segcore.jobs.queue import JobQueue;"
                f"run = JobQueue({str(runs)!r}).submit(TrainConfig(data={str(train_dataset)!r}, epochs=2, min_steps=0, height=64, width=64));"
                "print(run.run_id); os._exit(0)"
            ),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = Run.open(runs, server.stdout.strip().splitlines()[-1])  # the 'server' is gone; its worker is not
    assert wait_for(run, 180) == "done", run.status
    for name in ("config.json", "status.json", "summary.json", "best.json"):
        json.loads((run.path / name).read_text())


def test_out_of_memory_fails_the_run_with_advice(tmp_path, train_dataset, monkeypatch):
    from segcore.training import loop as training

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(training, "segmentation_loss", out_of_memory)
    with pytest.raises(TrainingFailed, match="out of GPU memory: choose a smaller batch size or image size"):
        train(TrainConfig(data=str(train_dataset), epochs=1, height=64, width=64), tmp_path, run_id="oom")
    assert "smaller batch" in Run.open(tmp_path, "oom").status["reason"]


WRITER = """
import sys, itertools
from pathlib import Path
from segcore.base.atomic import atomic_write_json
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
        status = json.loads((tmp_path / "status.json").read_text())  # whole files, never torn ones:
        config = json.loads((tmp_path / "config.json").read_text())  # each one's length matches its counter
        assert len(status["padding"]) == status["step"] % 5000 and len(config["notes"]) == config["epochs"] % 7000
    # whatever a kill leaves behind is hidden (a dot-file), so no page ever lists it as a run file
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"status.json", "config.json"}


def test_thirty_students_queue_at_once_and_each_run_trains_exactly_once_in_order(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=2)
    results, errors = [], []

    def student(number: int) -> None:
        config = TrainConfig(
            data=str(train_dataset),
            strategy="feature",
            epochs=1,
            max_steps=1,
            height=32,
            width=32,
            seed=number,
            run_name=f"student-{number:02d}",
        )
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
    monkeypatch.setattr("segcore.jobs.queue.MAX_QUEUED", 3)
    queue = JobQueue(tmp_path / "runs", max_running=1)
    for seed in range(3):
        queue.submit(TrainConfig(data=str(train_dataset), seed=seed), start=False)
    with pytest.raises(RunError, match="the queue is full \\(3 runs waiting\\)"):
        queue.submit(TrainConfig(data=str(train_dataset), seed=99), start=False)


# -- resume points, concurrent trainers, a full disk ----------------------------------------------------


TINY = dict(epochs=2, min_steps=0, height=32, width=32, batch_size=4, augment="none")


def tiny(data, **kw):
    return TrainConfig(data=str(data), **{**TINY, **kw})


@pytest.mark.slow
def test_two_concurrent_resumes_train_the_run_once_and_the_second_fails_fast(tmp_path, train_dataset):
    settings = tiny(train_dataset)
    train(settings, tmp_path, run_id="shared")
    first_busy, release = threading.Event(), threading.Event()
    outcome = {}

    def hold_the_run(record):  # the first resume pauses mid-training, holding the run
        first_busy.set()
        release.wait(60)

    def first_resume():
        outcome["first"] = train(settings, tmp_path, run_id="shared", resume=True, listener=hold_the_run).state

    thread = threading.Thread(target=first_resume)
    # a finished run's resume point leaves nothing to train: without it the resume starts over, with steps to pause in
    (tmp_path / "shared" / "resume.json").unlink()
    thread.start()
    try:
        assert first_busy.wait(60)
        status_before = (tmp_path / "shared" / "status.json").read_bytes()
        metrics_before = (tmp_path / "shared" / "metrics.jsonl").read_bytes()
        began = time.time()
        with pytest.raises(RunBusy, match="run shared is already being trained by another process"):
            train(settings, tmp_path, run_id="shared", resume=True)
        assert time.time() - began < 2  # fails fast, does not wait for the lock
        assert (tmp_path / "shared" / "status.json").read_bytes() == status_before  # touched nothing
        assert (tmp_path / "shared" / "metrics.jsonl").read_bytes() == metrics_before
    finally:
        release.set()
        thread.join(120)
    assert outcome["first"] == "done"
    assert [e["epoch"] for e in Run.open(tmp_path, "shared").epochs()] == [1, 2]  # trained once, not twice


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda run, m: (run / m["state"]["file"]).unlink(), "the state named by resume.json, is missing"),
        (
            lambda run, m: (run / "resume.json").write_text(json.dumps({**m, "token": "e0001-s0000001-00000000"})),
            "does not belong to the resume point",
        ),
        (
            lambda run, m: (run / m["weights"]["file"]).write_bytes((run / m["weights"]["file"]).read_bytes()[:-8]),
            "bytes, resume.json recorded",
        ),
    ],
    ids=["missing state", "mismatched token", "truncated weights"],
)
def test_a_resume_point_with_a_missing_or_mismatched_piece_is_not_used(
    tmp_path, train_dataset, caplog, damage, message
):
    settings = tiny(train_dataset)
    train(settings, tmp_path, run_id="damaged")
    run_path = tmp_path / "damaged"
    damage(run_path, json.loads((run_path / "resume.json").read_text()))
    assert resume_points.read_resume_point(run_path)[0] is None
    with caplog.at_level(logging.WARNING, logger="segcore.runs.resume"):
        resumed = train(settings, tmp_path, run_id="damaged", resume=True)
    assert message in caplog.text and "resume point not used" in caplog.text
    assert f"{message}" in resumed.log_tail(40) and "starting from the beginning" in resumed.log_tail(40)
    assert resumed.state == "done" and [e["epoch"] for e in resumed.epochs()] == [1, 2]  # started clean, shown once


@pytest.mark.slow
def test_a_kill_between_the_pieces_and_the_manifest_keeps_the_previous_point_whole(
    tmp_path, train_dataset, monkeypatch
):
    writes = {"manifests": 0}
    real_write_json = resume_points.atomic_write_json

    def manifest_then_crash(path, payload):
        writes["manifests"] += 1
        if writes["manifests"] == 2:  # epoch 2's pieces are on disk; the process dies before naming them
            raise KeyboardInterrupt("killed")
        real_write_json(path, payload)

    monkeypatch.setattr(resume_points, "atomic_write_json", manifest_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(train_dataset), tmp_path, run_id="interrupted")
    point, why_not = resume_points.read_resume_point(tmp_path / "interrupted")
    assert point is not None and point.epoch == 1, why_not
    weights, state = resume_points.load_resume_point(point)
    assert state["resume_token"] == point.token and state["step"] == point.step


@pytest.mark.slow
def test_a_full_disk_while_training_fails_the_run_with_what_to_do(tmp_path, train_dataset, monkeypatch):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(resume_points, "atomic_write_bytes", disk_full)
    with pytest.raises(TrainingFailed, match="the disk is full: free space in"):
        train(tiny(train_dataset), tmp_path, run_id="full")
    status = Run.open(tmp_path, "full").status
    assert status["state"] == "failed"
    assert status["reason"].startswith(f"the disk is full: free space in {tmp_path.resolve()}")
    assert "and resume the run" in status["reason"] and "killed or crashed" not in status["reason"]
