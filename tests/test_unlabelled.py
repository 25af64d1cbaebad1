"""Unlabelled images: found where a user puts them, counted, never labelled by accident, and learnt from by every
strategy (semi-supervised training) without reading a single mask of theirs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from segcore import DatasetError, TrainConfig, load_dataset, train
from segcore.base.errors import ConfigError
from segcore.data.report import dataset_report
from segcore.data.unlabelled import unlabelled_paths
from segcore.settings.strategies import STRATEGIES
from segcore.training.semi_supervised import consistency_loss, cutmix, pseudo_labels

from .conftest import synthetic_pair, write_images_masks

TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4, lr=3e-3, augment="none", warmup_epochs=0.25)


def _add_unlabelled(root, count=6, seed=11, folder="unlabelled"):
    rng = np.random.default_rng(seed)
    (root / folder).mkdir(exist_ok=True)
    for i in range(count):
        image, _ = synthetic_pair(rng)
        Image.fromarray(image).save(root / folder / f"photo_{i:03d}.jpg")
    return root / folder


def test_an_unlabelled_folder_beside_images_is_counted_apart_from_the_labelled_pairs(tmp_path):
    root = write_images_masks(tmp_path / "d", count=8)
    _add_unlabelled(root, count=5)
    data = load_dataset(root)
    assert len(data.unlabelled) == 5 and all(p.parent.name == "unlabelled" for p in data.unlabelled)
    assert sum(len(pairs) for pairs in data.splits.values()) == 8
    report = dataset_report(data)
    assert (report.labelled_images, report.unlabelled_images) == (8, 5)
    assert "8 labelled, 5 unlabelled" in report.to_text()


def test_voc_images_without_a_segmentation_mask_are_unlabelled(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image, mask = synthetic_pair(rng)
        Image.fromarray(image).save(root / "JPEGImages" / f"2007_{i:06d}.jpg")
        if i < 4:
            Image.fromarray(mask).save(root / "SegmentationClass" / f"2007_{i:06d}.png")
    data = load_dataset(root)
    assert sorted(p.name for p in data.unlabelled) == ["2007_000004.jpg", "2007_000005.jpg"]


def test_rest_is_the_training_images_left_out_and_never_their_masks(train_dataset):
    data = load_dataset(train_dataset)
    kept = set(data.train_indices(0.25, 0))
    rest = unlabelled_paths(data, "rest", 0.25, 0)
    train_pairs = data.pairs("train")
    assert len(kept) + len(rest) == len(train_pairs)
    assert not {train_pairs[i].image for i in kept} & set(rest)
    assert all(path.parent.name == "images" for path in rest)


def test_poisoned_masks_of_the_left_out_images_change_nothing(tmp_path):
    """'rest' learns from the left-out images and never reads their masks: scrambling those masks gives the same run,
    step for step."""
    clean = write_images_masks(tmp_path / "clean", count=16)
    poisoned = write_images_masks(tmp_path / "poisoned", count=16)
    data = load_dataset(poisoned)
    rest = unlabelled_paths(data, "rest", 0.25, 0)
    rng = np.random.default_rng(5)
    for image in rest:
        mask = poisoned / "masks" / (image.stem + ".png")
        Image.fromarray(rng.integers(0, 3, (64, 64), dtype=np.uint8)).save(mask)
    losses = []
    for root in (clean, poisoned):
        config = TrainConfig(data=str(root), strategy="scratch", train_size=0.25, unlabelled="rest", **TINY)
        run = train(config, tmp_path / "runs", run_id=root.name)
        assert run.state == "done", run.status
        losses.append([round(s["loss"], 6) for s in run.steps()])
    assert losses[0] == losses[1]


def test_settings_refused_where_the_run_is_created(tmp_path, train_dataset):
    with pytest.raises(ConfigError, match="unlabelled.*'rest' means the training images --train-size leaves out"):
        TrainConfig(data=str(train_dataset), unlabelled="rest").validate()
    with pytest.raises(ConfigError, match="unlabelled.*no such folder or .zip"):
        TrainConfig(data=str(train_dataset), unlabelled=str(tmp_path / "missing")).validate()
    with pytest.raises(ConfigError, match="confidence"):
        TrainConfig(data=str(train_dataset), unlabelled="rest", train_size=0.5, confidence=1.5).validate()


def test_asking_for_the_datasets_unlabelled_images_when_it_has_none_says_what_to_do(train_dataset):
    data = load_dataset(train_dataset)
    with pytest.raises(DatasetError, match="has none.*unlabelled/ folder"):
        unlabelled_paths(data, "dataset")


def test_pseudo_labels_count_only_where_the_model_is_sure():
    logits = torch.tensor([[[[4.0, 0.0]], [[0.0, 0.1]]]])  # (1, 2 classes, 1, 2): sure at pixel 0, unsure at 1
    labels, confident = pseudo_labels(logits, 0.9)
    assert labels.tolist() == [[[0, 1]]] and confident.tolist() == [[[True, False]]]
    # the unsure pixel adds nothing, yet counts in the average (the loss grows as more pixels become sure)
    strong = torch.tensor([[[[0.0, 9.0]], [[0.0, -9.0]]]])
    assert consistency_loss(strong, labels, confident) == pytest.approx(float(np.log(2)) / 2, rel=1e-4)


def test_cutmix_moves_the_pseudo_labels_with_the_pixels():
    images = torch.stack([torch.zeros(3, 16, 16, dtype=torch.uint8), torch.full((3, 16, 16), 200, dtype=torch.uint8)])
    labels = torch.stack([torch.zeros(16, 16, dtype=torch.long), torch.ones(16, 16, dtype=torch.long)])
    keep = torch.ones(2, 16, 16, dtype=torch.bool)
    mixed, mixed_labels, _ = cutmix(images, labels, keep)
    assert torch.equal(mixed[:, 0] == 200, mixed_labels == 1)
    assert 0 < int((mixed_labels[0] == 1).sum()) < 16 * 16


@pytest.mark.parametrize("strategy", ["scratch", "feature"])
def test_a_semi_supervised_run_records_both_losses_and_the_confident_share(tmp_path, train_dataset, strategy):
    folder = _add_unlabelled(tmp_path, count=6)
    config = TrainConfig(data=str(train_dataset), strategy=strategy, unlabelled=str(folder), confidence=0.6, **TINY)
    run = train(config, tmp_path / "runs", run_id=f"semi-{strategy}")
    assert run.state == "done", run.status
    steps = run.steps()
    assert all({"sup_loss", "unsup_loss", "confident"} <= set(s) for s in steps)
    assert all(0.0 <= s["confident"] <= 1.0 for s in steps)
    for s in steps:  # the loss is the supervised part plus the weighted unlabelled part
        assert s["unsup_weight"] == config.unlabelled_weight  # no warm-up asked for
        assert s["loss"] == pytest.approx(s["sup_loss"] + s["unsup_weight"] * s["unsup_loss"], rel=1e-3)
    log = run.log_tail(200)
    assert "semi-supervised: 6 unlabelled images" in log
    if STRATEGIES[strategy].caches_features:
        assert "feature dropout on the cached features" in log


@pytest.mark.parametrize("strategy", ["parameter", "structure"])
def test_the_other_strategies_train_semi_supervised(tmp_path, train_dataset, source_dataset, strategy):
    runs = tmp_path / "runs"
    extra = {}
    if STRATEGIES[strategy].needs_source_run:
        source = train(TrainConfig(data=str(source_dataset), strategy="scratch", **TINY), runs, run_id="source")
        extra["source_run"] = str(source.path)
    config = TrainConfig(
        data=str(train_dataset), strategy=strategy, train_size=0.5, unlabelled="rest", confidence=0.6, **TINY, **extra
    )
    run = train(config, runs, run_id=f"semi-{strategy}")
    assert run.state == "done", run.status
    assert all("unsup_loss" in s for s in run.steps())
    assert json.loads((run.path / "config.json").read_text())["unlabelled"] == "rest"


def test_the_lesson_on_expensive_labels_plans_each_strategy_with_and_without_unlabelled_images():
    from segcore.teaching.builtin_lessons import BUILTIN_LESSONS

    lesson = BUILTIN_LESSONS["labels-expensive"].check()
    configs = lesson.plan("g")
    by_name = {c.run_name: c for c in configs}
    for strategy in lesson.strategies:
        plain = [c for c in configs if c.strategy == strategy and not c.unlabelled]
        semi = [c for c in configs if c.strategy == strategy and c.unlabelled == "rest"]
        assert len(plain) == 1 and len(semi) == 1
        assert plain[0].train_size == semi[0].train_size == 0.1
        assert semi[0].run_name.endswith("-semi") and semi[0].run_name in by_name
    for config in configs:
        config.validate()


def test_the_advice_names_semi_supervised_training_when_unlabelled_images_outnumber_labelled_ones():
    from segcore.teaching.advice import advise

    speeds = {"scratch": 60.0, "parameter": 60.0, "feature": 20.0, "structure": 60.0}
    many = advise(30, None, None, "cpu", speeds, unlabelled_images=300)
    assert any("300 unlabelled images" in reason and "semi-supervised" in reason for reason in many.reasons)
    few = advise(30, None, None, "cpu", speeds, unlabelled_images=10)
    assert not any("unlabelled" in reason for reason in few.reasons)


def test_the_pseudo_label_picture_of_a_students_run(tmp_path, train_dataset):
    from segcore.teaching.pseudo_label_picture import NOT_CONFIDENT, pseudo_label_picture, unlabelled_images_of
    from segcore.training.predict import Predictor

    folder = _add_unlabelled(tmp_path, count=3)
    config = TrainConfig(data=str(train_dataset), strategy="scratch", unlabelled=str(folder), **TINY)
    run = train(config, tmp_path / "runs", run_id="semi")
    paths = unlabelled_images_of(run)
    assert sorted(p.name for p in paths) == ["photo_000.jpg", "photo_001.jpg", "photo_002.jpg"]
    sure = pseudo_label_picture(Predictor(run.path, device="cpu"), paths[0], 0.5)
    unsure = pseudo_label_picture(Predictor(run.path, device="cpu"), paths[0], 0.99)
    assert sure.image.shape == sure.pseudo_label.shape == sure.confident.shape == (64, 64, 3)
    assert 0.0 <= unsure.confident_share <= sure.confident_share <= 1.0
    grey = (unsure.confident == np.array(NOT_CONFIDENT)).all(-1).mean()
    assert grey == pytest.approx(1 - unsure.confident_share, abs=0.01)


def test_the_unlabelled_weight_grows_over_its_warm_up():
    from segcore.training.semi_supervised import unlabelled_weight_at

    config = TrainConfig(unlabelled_weight=2.0, unlabelled_rampup=0.5)
    assert [unlabelled_weight_at(config, step, 100) for step in (0, 25, 50, 99)] == [0.0, 1.0, 2.0, 2.0]


def test_adapting_a_run_to_a_new_domain_re_estimates_batchnorm_as_a_new_run(tmp_path, train_dataset):
    import subprocess
    import sys

    from segcore.runs.run import Run
    from segcore.training.predict import Predictor

    runs = tmp_path / "runs"
    run = train(TrainConfig(data=str(train_dataset), strategy="scratch", **TINY), runs, run_id="day")
    dusk = tmp_path / "dusk"
    dusk.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):  # a darker domain
        Image.fromarray(rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)).save(dusk / f"frame_{i}.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "segcore",
            "adapt",
            str(run.path),
            "--unlabelled",
            str(dusk),
            "--data",
            str(train_dataset),
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "SEGCORE_RUNS": str(runs)},
    )
    assert done.returncode == 0, done.stderr
    adapted = Run(runs / next(p.name for p in runs.iterdir() if p.name.startswith("day-bn-adapted")))
    assert adapted.state == "done" and adapted.config["adapted_from"] == "day"
    assert "re-estimated on 6 images" in adapted.log_tail(5)
    before = dict(Predictor(run.path).model.named_buffers())
    after = dict(Predictor(adapted.path).model.named_buffers())
    moved = [name for name in before if name.endswith("running_mean") and not torch.equal(before[name], after[name])]
    assert moved, "no BatchNorm statistic changed"
    assert isinstance(adapted.summary()["miou"], float)


@pytest.mark.parametrize("strategy", ["scratch", "feature"])
def test_a_mean_teacher_labels_the_unlabelled_images_and_follows_the_network_slowly(tmp_path, train_dataset, strategy):
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    folder = _add_unlabelled(tmp_path, count=6)
    config = TrainConfig(
        data=str(train_dataset), strategy=strategy, unlabelled=str(folder), teacher_momentum=0.9, **TINY
    ).validate()
    trainer = Trainer.build(config, load_dataset(train_dataset), RunWriter(tmp_path / "run"))
    teacher = trainer.teacher.module
    labelled = []
    teacher.head.register_forward_hook(lambda module, inputs, output: labelled.append(module.training))
    before = teacher.head.weight.detach().clone()
    trainer.train_one_epoch(1)
    assert labelled and not any(labelled)  # the teacher made the pseudo-labels, in evaluation mode
    after, student = teacher.head.weight.detach(), trainer.model.head.weight.detach()
    assert not torch.equal(after, before) and not torch.equal(after, student)  # it moved, but lags the network
    assert (after - student).abs().sum() < (before - student).abs().sum()  # towards it
    assert all(not p.requires_grad for p in teacher.parameters())
    assert "from a mean teacher (momentum 0.9)" in trainer.writer.log_tail(50)


def test_without_a_momentum_the_network_labels_its_own_images(tmp_path, train_dataset):
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    folder = _add_unlabelled(tmp_path, count=6)
    config = TrainConfig(data=str(train_dataset), strategy="scratch", unlabelled=str(folder), **TINY).validate()
    assert Trainer.build(config, load_dataset(train_dataset), RunWriter(tmp_path / "run")).teacher is None
