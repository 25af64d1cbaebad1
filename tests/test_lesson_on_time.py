"""A lesson runs on time in a real class: a fair queue with one slot, the class's identical runs trained once,
compute time beside wall time, nothing lost between clicks, a Teacher page that tells the truth."""

from __future__ import annotations

import json
import os
import socket
import time

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from segcore import TrainConfig, train
from segcore.compare.leaderboard import best_per_student, leaderboard
from segcore.jobs.planning import queue_plan
from segcore.jobs.queue import JobQueue
from segcore.runs.run import Run, list_runs
from segcore.runs.writer import record_status

from .test_app import ROOT, open_page

TINY = dict(
    backbone="test_efficientnet",
    epochs=1,
    min_steps=0,
    max_steps=1,
    height=32,
    width=32,
    batch_size=4,
    decoder_channels=(16, 8),
)


def as_running(run: Run) -> None:
    me = psutil.Process(os.getpid())  # a live process stands in for the worker
    record_status(
        run.path,
        {
            "state": "running",
            "pid": me.pid,
            "pid_started": me.create_time(),
            "host": socket.gethostname(),
            "started": time.time(),
            "heartbeat": time.time(),
        },
    )


def as_done(run: Run) -> None:
    status = run.recorded_status()[0]
    record_status(run.path, {**status, "state": "done", "updated": time.time()})


def test_with_one_slot_a_classmates_first_run_goes_before_a_students_next_one(tmp_path, train_dataset):
    queue = JobQueue(tmp_path / "runs", max_running=1)
    config = TrainConfig(data=str(train_dataset), **TINY)
    alice = [queue.submit(TrainConfig(**{**config.to_dict(), "seed": i}), owner="alice", start=False) for i in range(5)]
    bob = queue.submit(config, owner="bob", start=False)
    assert [r.run_id for r in queue.queued()][:2] == [alice[0].run_id, bob.run_id]
    as_running(alice[0])
    assert queue.queued()[0].run_id == bob.run_id
    as_done(alice[0])  # Alice's first has finished: she has had her turn, Bob has had none
    assert queue.queued()[0].run_id == bob.run_id, [r.run_id for r in queue.queued()]


@pytest.mark.slow
def test_thirty_students_starting_the_same_lesson_train_five_runs_and_link_the_rest(tmp_path, monkeypatch):
    from segcore.teaching.builtin_lessons import BUILTIN_LESSONS

    runs = tmp_path / "runs"
    lesson = BUILTIN_LESSONS["why-transfer"]
    base = TrainConfig(**{**TINY, "backbone": "tf_efficientnet_lite0", "decoder_channels": (16, 8)})
    plan = lesson.plan("why-transfer-lesson", base)
    assert len(plan) == 5  # the source run and four strategies
    queue = JobQueue(runs, max_running=0)  # no worker starts: the test trains the runs itself, as workers would
    students = [f"student{n:02d}" for n in range(30)]
    for name in students:
        group = f"{name}-why-transfer"
        queue_plan(queue, lesson.plan(group, base), group, owner=name)
    trainers = [r for r in list_runs(runs) if r.state == "queued" and not r.status.get("follows")]
    assert len(trainers) == 5 and {r.owner for r in trainers} == {"student00"}
    for run in trainers:  # what the workers would do, one after another
        train(run.train_config, runs, run_id=run.run_id)
        queue.pump()
    everyone = list_runs(runs)
    assert len(everyone) == 150 and all(r.state == "done" for r in everyone), {r.state for r in everyone}
    linked = [r for r in everyone if r.status.get("linked_to")]
    assert len(linked) == 145
    assert {r.owner for r in linked} == set(students[1:])
    for run in linked:  # each a run of its own student, with the trained run's very result
        twin = Run.open(runs, run.status["linked_to"])
        assert run.summary()["miou"] == twin.summary()["miou"] and run.has_checkpoint()
        assert os.path.samefile(run.checkpoint, twin.checkpoint)  # hard-linked: no copy on disk
    structure = [r for r in everyone if r.config["strategy"] == "structure"]
    assert len({r.config["result_key"] for r in structure}) == 1  # each student's source run stood for the same


def test_sharing_identical_runs_can_be_turned_off(tmp_path, train_dataset, monkeypatch):
    monkeypatch.setenv("SEGCORE_SHARE_IDENTICAL", "0")
    queue = JobQueue(tmp_path / "runs", max_running=1)
    config = TrainConfig(data=str(train_dataset), **TINY)
    first = queue.submit(config, owner="a", start=False)
    second = queue.submit(config, owner="b", start=False)
    assert not second.status.get("follows") and first.config["result_key"] is None


def test_a_train_click_followed_at_once_by_a_page_switch_still_queues(runs_dir):
    app = open_page("model")
    app.select_slider(key="size").set_value(64)
    app.number_input(key="epochs").set_value(1)
    app.button(key="train_one").click()
    app.switch_page("views/training.py").run()  # the student left the page in the same moment
    assert not app.exception
    (run,) = list_runs(runs_dir)
    assert run.owner == "Tester" and run.config["height"] == 64 and run.config["epochs"] == 1
    JobQueue(runs_dir).cancel(run.run_id)


def test_a_preset_and_the_settings_survive_a_page_switch_and_a_reload(runs_dir):
    app = open_page("model")
    app.segmented_control(key="preset").set_value("quick").run()
    assert app.select_slider(key="size").value == 128
    app.number_input(key="seed").set_value(7).run()
    app.switch_page("views/data.py").run()
    app.switch_page("views/model.py").run()
    assert app.segmented_control(key="preset").value == "quick" and app.number_input(key="seed").value == 7
    again = open_page("model")  # a reload: a new session of the same student
    assert again.segmented_control(key="preset").value == "quick" and again.select_slider(key="size").value == 128
    assert again.number_input(key="seed").value == 7


@pytest.mark.slow
def test_starting_a_lesson_twice_asks_first(runs_dir, monkeypatch):
    from segcore.teaching.builtin_lessons import BUILTIN_LESSONS

    app = open_page("model")
    app.session_state["lesson"] = BUILTIN_LESSONS["why-transfer"]
    app.run()
    app.button(key="start_lesson").click().run()
    first = len(list_runs(runs_dir))
    assert first == 5 and any("Queued 5 runs" in s.value for s in app.success)
    app.button(key="start_lesson").click().run()
    assert len(list_runs(runs_dir)) == first and any("started this lesson before" in w.value for w in app.warning)
    for run in list_runs(runs_dir):  # a minute later (within 30 s a second click counts as a double click)
        config = json.loads((run.path / "config.json").read_text())
        (run.path / "config.json").write_text(json.dumps({**config, "created": config["created"] - 60}))
    app.button(key="start_lesson_again").click().run()
    assert len(list_runs(runs_dir)) == 2 * first
    waiting = [r.run_id for r in list_runs(runs_dir) if r.state == "queued"]
    assert sorted(JobQueue(runs_dir).cancel_waiting("Tester")) == sorted(waiting)
    assert all(r.state != "queued" for r in list_runs(runs_dir))


def test_imported_runs_are_credited_to_their_maker_and_source_runs_are_not_a_students_score(tmp_path, train_dataset):
    from segcore.compare.bundle import export_comparison, import_comparison

    home, school = tmp_path / "home", tmp_path / "school"
    config = TrainConfig(data=str(train_dataset), strategy="scratch", **{**TINY, "max_steps": 2})
    alices = JobQueue(home).submit(config, owner="alice", start=False)
    alices = train(config, home, run_id=alices.run_id)
    (imported,) = import_comparison(export_comparison([alices], tmp_path / "b.zip"), school, owner="bob")
    source = JobQueue(school).submit(
        TrainConfig(**{**config.to_dict(), "seed": 3}), owner="bob", role="source", start=False
    )
    train(source.train_config, school, run_id=source.run_id)
    runs = list_runs(school)
    assert imported.config["made_by"] == "alice" and imported.status["imported"]
    assert leaderboard(runs) == [] and best_per_student(runs, str(train_dataset)) == []


def test_compute_time_is_recorded_and_the_time_chart_never_hides_its_title(tmp_path, train_dataset):
    from segcore.compare.curves import run_curves, seconds_to_reach, time_axis
    from views._charts import time_to_accuracy_figure

    run = train(
        TrainConfig(
            data=str(train_dataset),
            strategy="scratch",
            **{**TINY, "max_steps": 0, "epochs": 2, "height": 64, "width": 64},
        ),
        tmp_path,
    )
    curves = run_curves(run)
    times, kind = time_axis(curves)
    assert kind == "compute" and len(times) == 2 and 0 < times[0] <= times[1]
    assert 0 < run.summary()["compute_time_s"] and seconds_to_reach(curves) in times
    long_names = [run_curves(run) for _ in range(4)]
    for c in long_names:
        c.label = "x" * 40
    figure = time_to_accuracy_figure(long_names)
    assert figure.layout.legend.y < 0 < figure.layout.title.y  # legend under the plot, title over it


def test_wrong_pixels_take_the_colour_farthest_from_every_class_colour():
    from segcore.base.drawing import error_colour

    horses = [(0, 0, 0), (255, 140, 0), (230, 30, 20)]  # background, an orange class, a red one
    name, colour = error_colour(horses)
    assert name not in ("red", "black") and colour in [(255, 0, 255), (0, 255, 255), (0, 0, 255), (255, 255, 255)]


def test_a_long_pasted_name_is_kept_with_a_message_not_emptied(runs_dir):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.run()
    app.text_input(key="signin_name").set_value("A" * 60)
    app.button[0].click().run()
    assert app.text_input(key="signin_name").value == "A" * 60
    assert any("at most 40 characters" in e.value for e in app.error)
