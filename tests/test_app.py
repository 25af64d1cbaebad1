"""Every page under Streamlit's AppTest: renders on the defaults, has its widgets, and a run launched
through the UI trains and shows up on Compare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["data", "model", "training", "compare", "learn", "teacher"]


def shown(markdown: str) -> str:
    """What a reader sees of Markdown whose user text was escaped: the backslashes go."""
    return re.sub(r"\\(.)", r"\1", markdown)


def sign_in(app: AppTest, student: str = "Tester", secret: str = "tester passphrase") -> AppTest:
    """Sign in as a student does: a name, then the passphrase (chosen twice on the first visit)."""
    app.text_input(key="signin_name").set_value(student)
    app.button[0].click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    app.text_input(key="signin_secret").set_value(secret)
    if any(t.key == "signin_secret_again" for t in app.text_input):
        app.text_input(key="signin_secret_again").set_value(secret)
    app.button[0].click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    return app


def open_page(page: str, student: str = "Tester") -> AppTest:
    """A fresh browser session of `student` (signed in) on `page`."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.run()
    sign_in(app, student)
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_defaults_without_training(page, runs_dir):
    app = open_page(page)
    assert app.title and not app.error
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if p.is_dir()]  # a first look trains nothing


def test_data_page_shows_the_report_samples_and_controls(runs_dir):
    app = open_page("data")
    assert app.radio(key="data_origin").value == "Built-in"
    assert [m.label for m in app.metric][:3] == ["Training pairs", "Validation pairs", "Classes"]
    assert app.metric[0].value == "96"
    assert app.slider(key="sample_alpha").value == 0.5
    assert len(app.get("image")) == 12  # 8 samples + 4 augmentation previews
    assert any("Share of pixels" in s.value for s in app.subheader)


def test_data_page_explains_a_broken_dataset_instead_of_crashing(runs_dir, tmp_path):
    (tmp_path / "broken" / "images").mkdir(parents=True)
    (tmp_path / "broken" / "masks").mkdir()
    (tmp_path / "broken" / "images" / "a.png").write_bytes(b"not really a png")
    app = open_page("data")
    app.radio(key="data_origin").set_value("Folder on this server").run()
    app.text_input[0].set_value(str(tmp_path / "broken")).run()
    assert not app.exception
    assert any("cannot be used yet" in e.value and "a.png" in shown(e.value) for e in app.error)


def test_model_page_offers_backbones_strategies_and_train_buttons(runs_dir):
    app = open_page("model")
    assert app.selectbox(key="backbone").value == "tf_efficientnet_lite0"
    assert app.radio(key="strategy").options == [
        "From scratch (baseline)",
        "Parameter transfer (fine-tune)",
        "Feature transfer (frozen encoder)",
        "Structure transfer (whole network)",
        "Partial fine-tune (late stages)",
    ]
    assert app.latex, "the objective is shown"
    labels = [b.label for b in app.button]
    assert "▶ Train" in labels and "▶▶ Train all strategies" in labels and "📉 Data-efficiency sweep" in labels
    assert any("Trainable parameters" in c.value for c in app.caption)
    for key in ("epochs", "min_steps", "batch_size", "lr", "lambda", "seed"):
        app.number_input(key=key)
    app.radio(key="strategy").set_value("Parameter transfer (fine-tune)").run()
    app.number_input(key="freeze_epochs")
    # the fifth strategy gets its place: its diagram, its trainable share, and a Train button that queues it
    app.radio(key="strategy").set_value("Partial fine-tune (late stages)").run()
    assert not app.exception and any("first 4 levels frozen" in m.value for m in app.markdown)
    assert any("(80%)" in c.value for c in app.caption)
    app.segmented_control(key="precision").set_value("bf16").run()  # the memory-lean step (bench, large datasets)
    app.button[0].click().run()
    assert not app.exception
    from segcore.runs.run import list_runs

    (queued,) = list_runs(runs_dir)
    assert queued.config["strategy"] == "partial" and queued.config["precision"] == "bf16"
    from segcore.jobs.queue import JobQueue

    JobQueue(runs_dir).cancel(queued.run_id)  # the point was that it queues; do not train it for minutes


def _button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def test_a_run_launched_from_the_ui_trains_and_appears_on_compare(runs_dir):
    app = open_page("model")
    app.select_slider(key="size").set_value(64)
    app.number_input(key="epochs").set_value(1)
    app.number_input(key="min_steps").set_value(0)
    _button(app, "▶ Train").click().run()
    assert any("Queued" in s.value for s in app.success), [e.value for e in app.error]
    # the run trains in its own process; the Training page follows it from disk
    from segcore.jobs.queue import wait_for
    from segcore.runs.run import list_runs

    (run,) = list_runs(runs_dir)
    assert run.config["strategy"] == "feature" and run.config["height"] == 64
    training = open_page("training")
    assert any(run.run_id in shown(m.value) for m in training.markdown)
    assert wait_for(run, 180) == "done", run.status
    compare = open_page("compare")
    assert compare.multiselect(key="compare_runs").value[0].run_id == run.run_id
    assert compare.slider(key="cmp_alpha") and compare.toggle(key="cmp_errors")
    # image, ground truth, prediction for 4 validation images; then the 3 hardest images for the first class
    assert len(compare.get("image")) == 3 * 4 + 3 * 3
    # scored at each image's own size on request, beside the training-size mIoU
    compare.button(key="score_native").click().run()
    assert not compare.exception, [e.value for e in compare.exception]
    (native,) = [d.value for d in compare.dataframe if "mIoU, native size" in d.value.columns]
    assert 0 < native["mIoU, native size"][0] <= 1 and native["run"][0] == run.run_id


def test_a_first_visit_asks_for_a_name_and_a_passphrase_and_then_keeps_them(runs_dir):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.run()
    assert "Welcome" in app.title[0].value and not app.exception
    app.text_input(key="signin_name").set_value("<b>x</b>")
    app.button[0].click().run()
    assert app.error and "owner" not in app.session_state  # refused with the reason
    sign_in(app, "Ada  Lovelace", "analytical engine")
    assert app.session_state["owner"] == "Ada Lovelace" and "student" not in app.query_params
    app.switch_page("views/model.py").run()
    assert not app.exception and any("Ada Lovelace" in shown(m.value) for m in app.sidebar.markdown)


def test_the_chosen_dataset_is_kept_in_the_workspace_across_sessions(runs_dir, tmp_path):
    from tests.conftest import write_images_masks

    folder = write_images_masks(tmp_path / "cells", count=8)
    app = open_page("data")
    app.radio(key="data_origin").set_value("Folder on this server").run()
    app.text_input[0].set_value(str(folder)).run()
    assert not app.exception
    again = open_page("model")  # a reload: a new session of the same student
    assert any("cells" in shown(m.value) for m in again.sidebar.markdown)
    data_page = open_page("data")
    assert data_page.radio(key="data_origin").value == "Folder on this server"  # not reset to Built-in


def test_the_teacher_page_needs_the_pin_then_shows_and_stops_any_students_run(runs_dir, monkeypatch, train_dataset):
    from segcore import TrainConfig
    from segcore.jobs.queue import JobQueue

    monkeypatch.setenv("SEGCORE_TEACHER_PIN", "2468")
    queue = JobQueue(runs_dir, max_running=0)  # nothing starts: the runs wait in the queue
    tiny = dict(data=str(train_dataset), epochs=1, min_steps=0, height=64, width=64)
    alice = queue.submit(TrainConfig(**tiny), owner="Alice", start=False)
    queue.submit(TrainConfig(**tiny), owner="Bob", start=False)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.run()
    app.switch_page("views/teacher.py").run()
    assert not app.dataframe, "nothing is shown before the PIN"
    app.text_input[0].set_value("1111")
    app.button[0].click().run()
    assert app.error and not app.dataframe
    app.text_input[0].set_value("2468")
    app.button[0].click().run()
    table = app.dataframe[0].value
    assert set(table["student"]) == {"Alice", "Bob"}
    app.selectbox(key="teacher_cancel_pick").set_value(alice).run()
    app.button(key="teacher_cancel").click().run()
    assert alice.state == "cancelled" and not app.exception


def test_a_lesson_made_in_the_app_sets_the_model_page_exactly_in_a_fresh_session(runs_dir, monkeypatch):
    monkeypatch.setenv("SEGCORE_TEACHER_PIN", "2468")
    teacher = open_page("model")
    teacher.session_state["teacher"] = True  # unlocked on the Teacher page
    teacher.select_slider(key="size").set_value(96)
    teacher.number_input(key="epochs").set_value(2)
    teacher.number_input(key="lr").set_value(0.002)
    teacher.radio(key="strategy").set_value("Parameter transfer (fine-tune)").run()
    teacher.number_input(key="freeze_epochs").set_value(1)
    teacher.text_input(key="lesson_title").set_value("Frozen warm-up")
    teacher.text_area(key="lesson_instructions").set_value("Watch the loss after epoch 1.")
    teacher.run()
    teacher.button(key="make_lesson").click().run()
    assert not teacher.exception and any("Saved for the class" in s.value for s in teacher.success)
    student = open_page("data")  # another student, another session
    student.selectbox(key="lesson_pick").set_value(
        next(o for o in student.selectbox(key="lesson_pick").options if "Frozen warm-up" in o)
    )
    student.button(key="open_lesson").click().run()
    student.switch_page("views/model.py").run()
    assert not student.exception
    assert student.select_slider(key="size").value == 96 and student.number_input(key="epochs").value == 2
    assert student.number_input(key="lr").value == pytest.approx(0.002)
    assert student.radio(key="strategy").value == "feature"  # the cheapest first
    student.radio(key="strategy").set_value("Parameter transfer (fine-tune)").run()
    assert student.number_input(key="freeze_epochs").value == 1
    assert any("Frozen warm-up" in shown(m.value) for m in student.markdown)


def test_a_built_in_lesson_opens_with_its_preset(runs_dir):
    app = open_page("data")
    app.selectbox(key="lesson_pick").set_value(
        next(o for o in app.selectbox(key="lesson_pick").options if "Why transfer learning" in o)
    )
    app.button(key="open_lesson").click().run()
    app.switch_page("views/model.py").run()
    assert not app.exception
    assert app.select_slider(key="size").value == 128 and app.number_input(key="epochs").value == 3
    assert app.button(key="start_lesson")


@pytest.mark.parametrize("count", [2, 6])
def test_tiny_datasets_adapt_the_model_and_learn_pages_instead_of_crashing(runs_dir, tmp_path, count):
    from tests.conftest import write_images_masks

    folder = write_images_masks(tmp_path / f"tiny{count}", count=count)
    app = open_page("data")
    app.radio(key="data_origin").set_value("Folder on this server").run()
    app.text_input[0].set_value(str(folder)).run()
    assert not app.exception
    for page in ("model", "learn"):
        app.switch_page(f"views/{page}.py").run()
        assert not app.exception, (page, [e.value for e in app.exception])
        assert not app.error, (page, [e.value for e in app.error])
    app.switch_page("views/model.py").run()
    if count > 2:  # the share slider starts where one image is kept
        assert app.slider(key="train_pct").min >= 20


def test_the_model_page_names_rare_classes_and_warns_when_their_weights_are_turned_off(runs_dir, tmp_path):
    from PIL import Image

    from segcore import dataset_report, load_dataset
    from tests.conftest import write_images_masks

    def with_a_speck(mask):
        mask = mask.copy()
        mask[:3, :3] = 3  # 9 of 4096 pixels: a rare class, like CamVid's bicyclists
        return Image.fromarray(mask)

    folder = write_images_masks(tmp_path / "specks", count=8, mask_fn=with_a_speck, class_file=False)
    (folder / "classes.txt").write_text("background\nsquare\ndisc\n<b>speck</b>\n")
    assert list(dataset_report(load_dataset(folder)).rare_classes()) == ["<b>speck</b>"]
    app = open_page("data")
    app.radio(key="data_origin").set_value("Folder on this server").run()
    app.text_input[0].set_value(str(folder)).run()
    model = open_page("model")
    (hint,) = [i for i in model.info if "Rare classes in this dataset" in i.value]
    assert "<b>speck</b> (0.2%)" in shown(hint.value) and "\\<b\\>" in hint.value  # the name, escaped
    assert "may never predict them" not in hint.value  # the default weights are on
    model.segmented_control(key="class_weights").set_value("none").run()
    (hint,) = [i for i in model.info if "Rare classes in this dataset" in i.value]
    assert "may never predict them" in hint.value
    # a two-class task gets no such hint: plain cross-entropy is its default, rightly
    assert dataset_report(load_dataset(write_images_masks(tmp_path / "two", count=4, classes=2))).rare_classes() == {}


@pytest.mark.slow  # trains four tiny runs
def test_a_seeded_sweep_draws_each_point_with_its_spread_and_says_its_step_budget(runs_dir, train_dataset):
    import json

    from segcore import TrainConfig, load_dataset, train
    from segcore.jobs.planning import queue_all_strategies, sweep_step_budget
    from segcore.jobs.queue import JobQueue

    base = TrainConfig(
        data=str(train_dataset), strategy="feature", epochs=1, batch_size=4, height=64, width=64, augment="none"
    )
    data = load_dataset(str(train_dataset))
    queued = queue_all_strategies(
        JobQueue(runs_dir), base, train_sizes=(0.5, 1.0), strategies=["feature"], data=data, seeds=2
    )
    for run in queued:  # trained here, one after the other, instead of by the queue's workers
        train(TrainConfig.from_dict(run.config), runs_dir, run_id=run.run_id)
    budget = sweep_step_budget(base, len(data.pairs("train")))
    assert {run.summary()["steps"] for run in queued} == {budget}
    compare = open_page("compare")
    assert not compare.exception, [e.value for e in compare.exception]
    (curve,) = [c for c in compare.get("plotly_chart") if "Data efficiency" in c.proto.spec]
    traces = json.loads(curve.proto.spec)["data"]
    assert traces[0]["error_y"]["visible"] and len(traces[0]["x"]) == 2  # two points, two seeds each
    assert any(f"same {budget:,} optimiser steps" in c.value for c in compare.caption)
