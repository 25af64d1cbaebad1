"""Planning a comparison before the click: which runs, in what order, and an honest time estimate."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from segcore.jobs.estimate import PROCESS_START_S, estimate_seconds
from segcore.jobs.planning import SOURCE_PLACEHOLDER, comparison_order, comparison_plan
from segcore.runs.run import Run
from segcore.settings.config import PRESETS, TrainConfig
from segcore.settings.strategies import STRATEGIES


def fake_finished_run(folder, strategy: str, seconds: float, images: int = 96, size: int = 160) -> Run:
    folder.mkdir(parents=True)
    config = TrainConfig(
        strategy=strategy, height=size, width=size, source_run="x" if strategy == "structure" else None
    )
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    (folder / "status.json").write_text(json.dumps({"state": "done", "updated": 1.0}))
    (folder / "summary.json").write_text(json.dumps({"train_time_s": seconds, "train_images": images}))
    return Run(folder)


def test_the_estimate_starts_from_the_reference_and_then_learns_this_machine(tmp_path):
    config = TrainConfig(strategy="parameter")  # 96 images at batch 8: 12 steps an epoch, 9 epochs for 100 steps
    reference, basis = estimate_seconds(config, 96)
    assert "reference" in basis
    assert reference == pytest.approx(PROCESS_START_S + 108 * 8 / STRATEGIES["parameter"].reference_images_per_s)
    slow = fake_finished_run(tmp_path / "slow", "parameter", seconds=4 * 108 * 8 / 20.4)  # 4× slower machine
    measured, basis = estimate_seconds(config, 96, [slow])
    assert "measured on this machine" in basis
    assert measured - PROCESS_START_S == pytest.approx(4 * (reference - PROCESS_START_S), rel=0.01)
    other = fake_finished_run(tmp_path / "feature", "feature", seconds=1.0)  # another strategy says nothing
    assert estimate_seconds(config, 96, [other])[0] == pytest.approx(reference)


def test_the_estimate_grows_with_pixels_and_the_quick_preset_is_quicker():
    standard = estimate_seconds(TrainConfig(strategy="feature"), 96)[0]
    bigger = estimate_seconds(TrainConfig(strategy="feature", height=320, width=320), 96)[0]
    quick = estimate_seconds(PRESETS["quick"].apply(TrainConfig(strategy="feature")), 96)[0]
    assert bigger - PROCESS_START_S == pytest.approx(4 * (standard - PROCESS_START_S))
    assert quick < standard / 2 + PROCESS_START_S


def test_a_comparison_runs_the_cheapest_first_and_the_source_just_before_structure():
    assert comparison_order()[0] == "feature"
    plan = comparison_plan(TrainConfig(), "g")
    names = [c.run_name for c in plan]
    assert names == ["g-feature", "g-parameter", "g-scratch", "g-source", "g-structure"]
    assert plan[-1].source_run == SOURCE_PLACEHOLDER and plan[3].data == "builtin:shapes-source"
    existing = comparison_plan(TrainConfig(), "g", source_run="/runs/src")
    assert [c.run_name for c in existing][-1] == "g-structure" and "g-source" not in [c.run_name for c in existing]
    sweep = comparison_plan(TrainConfig(), "g", train_sizes=(0.1, 1.0))
    assert sum(c.run_name == "g-source" for c in sweep) == 1 and len(sweep) == 9


def test_every_point_of_a_sweep_trains_the_steps_of_the_full_run_and_seeds_give_each_point_a_spread():
    from segcore.data.builtin import BUILTINS
    from segcore.teaching.builtin_lessons import BUILTIN_LESSONS

    base = TrainConfig(data="builtin:shapes", seed=4)
    full = BUILTINS["shapes"].train
    budget = base.planned_steps(full)
    sweep = comparison_plan(base, "g", train_sizes=(0.1, 0.5, 1.0), seeds=3, full_train_images=full)
    runs = [c for c in sweep if c.run_name != "g-source"]
    assert len(runs) == 3 * 3 * 4 and sum(c.run_name == "g-source" for c in sweep) == 1
    for config in runs:  # the 10 % point trains as many steps as the 100 % point, not a tenth
        images = round(config.train_size * full)
        assert config.planned_steps(images) == budget, (config.run_name, config.train_size)
    assert {c.seed for c in runs} == {4, 5, 6} and len({c.run_name for c in runs}) == len(runs)
    # one run per point needs no seed in its name; a single training size is not a sweep
    assert comparison_plan(base, "g", train_sizes=(0.1, 1.0))[0].run_name == "g-feature-n0.1"
    assert comparison_plan(base, "g", full_train_images=full)[0].max_steps == 0
    # a step limit asked for (a smoke test) still holds
    assert {
        c.max_steps
        for c in comparison_plan(replace(base, max_steps=3), "g", (0.1, 1.0), full_train_images=full)
        if c.run_name != "g-source"
    } == {3}
    # the built-in sweep lesson plans equal steps by itself (a built-in declares its size)
    lesson = BUILTIN_LESSONS["how-many-labels"]
    planned = [c for c in lesson.plan("g") if not c.run_name.endswith("-source")]
    steps = {c.planned_steps(len(range(round((c.train_size or 1) * BUILTINS["shapes"].train)))) for c in planned}
    assert len(steps) == 1, steps


def test_a_queued_run_shows_the_epochs_and_steps_it_will_train_from_the_start(tmp_path, train_dataset):
    from segcore import load_dataset, train
    from segcore.jobs.queue import JobQueue
    from segcore.runs.progress import run_progress

    config = TrainConfig(
        data=str(train_dataset),
        strategy="feature",
        epochs=1,
        min_steps=7,
        batch_size=4,
        height=64,
        width=64,
        augment="none",
    )
    images = len(load_dataset(str(train_dataset)).train_indices(None))
    queue = JobQueue(tmp_path / "runs")
    run = queue.submit(config, start=False, train_images=images)
    queued = run_progress(run)
    assert (queued["state"], queued["epochs"], queued["total_steps"]) == ("queued", 2, 8)  # 13 images: 4 steps/epoch
    train(config, tmp_path / "runs", run_id=run.run_id)
    trained = run_progress(run)
    assert (trained["epochs"], trained["total_steps"], trained["step"]) == (2, 8, 8)


def test_default_names_say_what_a_run_is(tmp_path, train_dataset):
    from segcore.runs.naming import dataset_name
    from segcore.runs.run import new_run_id

    assert dataset_name("builtin:shapes") == "shapes" and dataset_name("/data/camvid/") == "camvid"
    run_id = new_run_id(tmp_path, None, "feature", "builtin:shapes")
    assert run_id.startswith("shapes-feature-")
    uploaded = tmp_path / "uploads" / "0123456789abcdef"
    (uploaded / "My cells").mkdir(parents=True)
    assert dataset_name(uploaded) == "My cells"
    assert new_run_id(tmp_path, None, "scratch", uploaded).startswith("My-cells-scratch-")


def test_names_given_to_runs_and_comparisons_are_kept_and_limited(tmp_path):
    from segcore.base.errors import SegcoreError
    from segcore.runs.naming import Titles

    titles = Titles(tmp_path)
    titles.set("runs", "shapes-feature-1125-231102", "  my   first run ")
    titles.set("comparisons", "shapes-1125-231100", "Monday's lesson")
    again = Titles(tmp_path)
    assert again.get("runs", "shapes-feature-1125-231102") == "my first run"
    assert again.get("comparisons", "shapes-1125-231100") == "Monday's lesson"
    titles.set("runs", "shapes-feature-1125-231102", "")  # back to the default name
    assert again.get("runs", "shapes-feature-1125-231102") is None
    with pytest.raises(SegcoreError, match="at most 80 characters"):
        titles.set("runs", "x", "y" * 81)
    (tmp_path / ".titles.json").write_text("[broken")
    assert Titles(tmp_path).get("runs", "x") is None
