"""A class on one server: students' runs kept apart, a fair queue, the per-student limit, the teacher's view."""

from __future__ import annotations

import json

import pytest

from segcore import TrainConfig
from segcore.base.atomic import atomic_write_json
from segcore.base.errors import RunError
from segcore.compare.leaderboard import best_per_student, leaderboard
from segcore.jobs.classroom import ClassroomSettings, WorkspaceError, pin_matches, workspace_id
from segcore.jobs.queue import JobQueue
from segcore.runs.run import list_runs


def config(data, **kw):
    return TrainConfig(data=str(data), epochs=1, min_steps=0, height=64, width=64, batch_size=4, max_steps=2, **kw)


def test_one_students_five_runs_do_not_hold_up_a_classmates_one(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    alice, bob = workspace_id("Alice", "5A"), workspace_id("Bob", "5A")
    mine = [queue.submit(config(train_dataset, seed=i), owner=alice, start=False) for i in range(5)]
    theirs = queue.submit(config(train_dataset), owner=bob, start=False)
    order = [r.run_id for r in queue.queued()]
    assert order[:2] == [mine[0].run_id, theirs.run_id]  # Bob's one run starts second, not sixth
    assert order[2:] == [r.run_id for r in mine[1:]]
    # once Alice's first is running, Bob's is next in line
    import os
    import socket
    import time

    import psutil

    me = psutil.Process(os.getpid())  # a live process stands in for the worker
    atomic_write_json(
        mine[0].path / "status.json",
        {
            "state": "running",
            "pid": me.pid,
            "pid_started": me.create_time(),
            "host": socket.gethostname(),
            "heartbeat": time.time(),
        },
    )
    assert queue.queued()[0].run_id == theirs.run_id


def test_the_per_student_waiting_limit_is_the_teachers_and_per_student(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    queue = JobQueue(runs, max_running=1)
    ClassroomSettings(max_waiting_per_student=2).save(runs)
    for seed in range(2):
        queue.submit(config(train_dataset, seed=seed), owner="Alice", start=False)
    with pytest.raises(RunError, match="Alice already has 2 run\\(s\\) waiting and the class limit is 2"):
        queue.submit(config(train_dataset, seed=9), owner="Alice", start=False)
    queue.submit(config(train_dataset, seed=9), owner="Bob", start=False)  # a classmate is not held back
    assert ClassroomSettings.load(runs).max_waiting_per_student == 2
    # a plan that does not fit (a sweep with seeds) is refused whole: none of its runs is queued
    from segcore.jobs.planning import queue_all_strategies

    before = len(list_runs(runs))
    with pytest.raises(RunError, match="Carol already has 0 run\\(s\\) waiting.*this plan is 6 runs"):
        queue_all_strategies(
            queue, config(train_dataset), train_sizes=(0.5, 1.0), strategies=["feature"], seeds=3, owner="Carol"
        )
    assert len(list_runs(runs)) == before
    (runs / ".classroom.json").write_text("[not json")
    assert ClassroomSettings.load(runs).max_waiting_per_student == ClassroomSettings().max_waiting_per_student


@pytest.mark.parametrize("name", ["", "../x", "a/b", "<script>", "x" * 41, "\0"])
def test_workspace_names_that_could_confuse_anything_are_refused(name):
    with pytest.raises(WorkspaceError):
        workspace_id(name)


def test_the_teacher_pin_is_checked_in_constant_time_and_from_the_environment(monkeypatch):
    monkeypatch.setenv("SEGCORE_TEACHER_PIN", "4321")
    assert pin_matches("4321") and pin_matches(" 4321 ") and not pin_matches("1234") and not pin_matches("")


def test_leaderboard_and_class_comparison_take_each_students_best(tmp_path):
    from segcore.runs.run import Run

    def finished(name, owner, strategy, miou):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**TrainConfig(strategy=strategy).to_dict(), "owner": owner}))
        (folder / "status.json").write_text(json.dumps({"state": "done"}))
        (folder / "summary.json").write_text(json.dumps({"miou": miou, "train_time_s": 10.0}))
        return Run(folder)

    runs = [
        finished("a1", "5A/Alice", "feature", 0.6),
        finished("a2", "5A/Alice", "feature", 0.7),
        finished("b1", "5A/Bob", "feature", 0.65),
        finished("b2", "5A/Bob", "scratch", 0.3),
        finished("c1", "5A/Carol", "scratch", 0.3),  # the same score as Bob's: both lead, neither is dropped
        finished("d1", "5A/Dave", "scratch", 0.2999),  # level with them on the page (0.300)
    ]
    board = leaderboard(runs)
    assert [(r["strategy"], r["students"], r["mIoU"], r["run"]) for r in board] == [
        ("feature", "Alice", 0.7, "a2"),
        ("scratch", "Bob, Carol, Dave", 0.3, "b2"),
    ]
    assert {(r["student"], r["strategy"], r["mIoU"]) for r in best_per_student(runs, "builtin:shapes")} == {
        ("Alice", "feature", 0.7),
        ("Bob", "feature", 0.65),
        ("Bob", "scratch", 0.3),
        ("Carol", "scratch", 0.3),
        ("Dave", "scratch", 0.2999),
    }


def test_delete_my_work_removes_only_my_finished_runs(tmp_path, train_dataset):
    from segcore.jobs.workspace import WorkspaceRecord, delete_workspace
    from segcore.runs.run import list_runs

    runs = tmp_path / "runs"
    queue = JobQueue(runs, max_running=1)
    mine = queue.submit(config(train_dataset), owner="Alice", start=False)
    waiting = queue.submit(config(train_dataset, seed=3), owner="Alice", start=False)
    theirs = queue.submit(config(train_dataset), owner="Bob", start=False)
    atomic_write_json(mine.path / "status.json", {"state": "done"})
    record = WorkspaceRecord("Alice", dataset="builtin:shapes", uploads=[])
    record.save(runs)
    assert delete_workspace(runs, "Alice", list_runs(runs)) == [mine.run_id]
    assert {r.run_id for r in list_runs(runs)} == {waiting.run_id, theirs.run_id}
    assert WorkspaceRecord.load(runs, "Alice").dataset is None
