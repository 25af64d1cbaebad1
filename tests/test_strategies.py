"""Each strategy learns, and each changes exactly the parts it says it changes."""

from __future__ import annotations

import pytest
import torch

from segcore import RunError, TrainConfig, load_dataset, train
from segcore.models.checkpoints import load_checkpoint
from segcore.settings.strategies import STRATEGIES
from segcore.training.preparation import prepare

SMALL = dict(epochs=2, min_steps=0, height=64, width=64, batch_size=4, lr=3e-3, augment="none", warmup_epochs=0.25)


def _train(data_dir, runs, strategy, **overrides):
    config = TrainConfig(data=str(data_dir), strategy=strategy, **{**SMALL, **overrides})
    return train(config, runs, run_id=overrides.get("run_name") or strategy)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def source_run(runs, source_dataset):
    return _train(source_dataset, runs, "scratch", run_name="source-task", epochs=1)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_trains_two_epochs_and_its_loss_falls(strategy, train_dataset, runs, source_run):
    extra = {"source_run": str(source_run.path)} if STRATEGIES[strategy].needs_source_run else {}
    run = _train(train_dataset, runs, strategy, **extra)
    assert run.state == "done", run.status
    steps = [s["loss"] for s in run.steps()]
    steps_per_epoch = -(-run.summary()["train_images"] // SMALL["batch_size"])
    assert len(run.epochs()) == 2 and len(steps) == 2 * steps_per_epoch
    assert sum(steps[-2:]) / 2 < sum(steps[:2]) / 2
    summary = run.summary()
    assert 0 <= summary["miou"] <= 1 and summary["strategy"] == strategy
    assert run.has_checkpoint()


def _encoder_state(model):
    return {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}


def _one_pass(strategy, train_dataset, **kw):
    """Prepare a model and train it briefly in-process, returning (before, after) state dicts."""
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    data = load_dataset(train_dataset)
    config = TrainConfig(data=str(train_dataset), strategy=strategy, **{**SMALL, "epochs": 1, **kw})
    writer = RunWriter(train_dataset.parent / f"inproc-{strategy}-{kw.get('regularizer', 'l2')}")
    trainer = Trainer.build(config, data, writer)
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    writer.close()
    return trainer, before, after


def test_feature_transfer_leaves_every_encoder_tensor_bit_identical(train_dataset):
    trainer, before, after = _one_pass("feature", train_dataset)
    encoder_keys = [k for k in before if k.startswith("encoder.")]
    assert encoder_keys and any("running_mean" in k for k in encoder_keys)
    for key in encoder_keys:
        assert torch.equal(before[key], after[key]), f"{key} changed under feature transfer"
    decoder_keys = [k for k in before if k.startswith(("decoder.", "head.")) and before[k].is_floating_point()]
    assert any(not torch.equal(before[k], after[k]) for k in decoder_keys)
    assert trainer.cache is not None and trainer.cache.nbytes() > 0  # features were computed once and reused


def test_feature_transfer_with_train_bn_adapts_only_batchnorm_statistics(train_dataset):
    trainer, before, after = _one_pass("feature", train_dataset, train_bn="on")
    assert trainer.cache is None  # BN statistics change, so features cannot be cached
    changed = [k for k in before if k.startswith("encoder.") and not torch.equal(before[k], after[k])]
    assert changed and all(("running_" in k or "num_batches" in k) for k in changed)


def test_parameter_transfer_changes_the_pretrained_encoder(train_dataset):
    from segcore.models import pretrained_state_dict

    trainer, before, after = _one_pass("parameter", train_dataset)
    imagenet, _ = pretrained_state_dict("tf_efficientnet_lite0")
    assert torch.equal(before["encoder.conv_stem.weight"], imagenet["conv_stem.weight"])
    assert not torch.equal(before["encoder.conv_stem.weight"], after["encoder.conv_stem.weight"])
    groups = {g["name"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
    assert groups["encoder"] == pytest.approx(groups["decoder+head"] * 0.1)
    # by default (train_bn "auto") a learning encoder's BatchNorm statistics adapt to the new images
    assert not torch.equal(before["encoder.bn1.running_mean"], after["encoder.bn1.running_mean"])


def test_train_bn_off_keeps_the_transferred_batchnorm_statistics(train_dataset):
    _, before, after = _one_pass("parameter", train_dataset, train_bn="off")
    assert not torch.equal(before["encoder.conv_stem.weight"], after["encoder.conv_stem.weight"])  # still learns
    assert torch.equal(before["encoder.bn1.running_mean"], after["encoder.bn1.running_mean"])


def test_old_runs_with_a_true_or_false_train_bn_still_read(tmp_path):
    assert TrainConfig.from_dict({"train_bn": True}).validate().encoder_bn_mode() == "all"
    assert TrainConfig.from_dict({"strategy": "parameter", "train_bn": False}).validate().encoder_bn_mode() == "none"


def test_partial_fine_tune_freezes_early_encoder_stages_and_tunes_late_ones(train_dataset):
    trainer, before, after = _one_pass("partial", train_dataset)
    changed = {k for k in before if k.startswith("encoder.") and not torch.equal(before[k], after[k])}
    assert not any(k.startswith(("encoder.conv_stem", "encoder.blocks.0.", "encoder.blocks.4.")) for k in changed)
    assert any(k.startswith("encoder.blocks.6.") for k in changed)  # the last stage learns
    assert trainer.cache is None  # part of the encoder learns: features change, nothing to cache


def test_scratch_learns_its_encoder_batchnorm_statistics(train_dataset):
    _, before, after = _one_pass("scratch", train_dataset)
    assert not torch.equal(before["encoder.bn1.running_mean"], after["encoder.bn1.running_mean"])


def test_structure_transfer_starts_from_source_decoder_with_new_head(source_run):
    source_state, source_meta = load_checkpoint(source_run.path / "best")
    assert source_meta["num_classes"] == 2
    prepared = prepare(TrainConfig(strategy="structure", source_run=str(source_run.path)), 5)
    state = prepared.model.state_dict()
    for key, value in source_state.items():
        if not key.startswith("head."):
            assert torch.equal(state[key], value), key
    assert prepared.model.head.out_channels == 5
    assert "source run source-task" in prepared.origin


def test_structure_transfer_refuses_a_different_backbone(source_run):
    with pytest.raises(RunError, match="structure transfer needs the same backbone"):
        prepare(TrainConfig(strategy="structure", backbone="resnet18", source_run=str(source_run.path)), 3)


@pytest.mark.slow
def test_l2sp_pulls_weights_towards_the_start_more_than_l2(train_dataset):
    distances = {}
    for regularizer in ("l2", "l2sp"):
        trainer, before, after = _one_pass(
            "parameter", train_dataset, regularizer=regularizer, weight_decay=50.0, encoder_lr_factor=1.0
        )
        keys = [k for k in before if k.startswith("encoder.") and k.endswith("weight")]
        distances[regularizer] = sum(float((after[k] - before[k]).pow(2).sum()) for k in keys) ** 0.5
    assert distances["l2sp"] < 0.8 * distances["l2"]


def test_absurd_learning_rate_is_refused_before_a_run_folder_exists(train_dataset, runs):
    from segcore.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lr \(--lr\) = 1000000000000.0: must be between 1e-07 and 10"):
        _train(train_dataset, runs, "scratch", run_name="absurd", lr=1e12, epochs=3)
    assert not (runs / "absurd").exists()


def test_a_loss_that_becomes_nan_fails_the_run_with_its_reason(train_dataset, runs, monkeypatch):
    from segcore import Run, TrainingFailed
    from segcore.training import loop as train_module

    monkeypatch.setattr(train_module, "segmentation_loss", lambda logits, *a: logits.sum() * float("nan"))
    with pytest.raises(TrainingFailed, match="loss became"):
        _train(train_dataset, runs, "scratch", run_name="nan", epochs=3)
    run = Run.from_path(runs / "nan")
    assert run.state == "failed" and "learning rate" in run.status["reason"]


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(train_dataset, runs, monkeypatch):
    from segcore import Predictor, Run, TrainingFailed
    from segcore.training import loop as train_module

    real_loss, calls = train_module.segmentation_loss, {"n": 0}

    def loss_that_explodes_in_epoch_two(logits, target, *args):
        calls["n"] += 1
        loss = real_loss(logits, target, *args)
        return loss * float("nan") if calls["n"] > 5 else loss

    monkeypatch.setattr(train_module, "segmentation_loss", loss_that_explodes_in_epoch_two)
    with pytest.raises(TrainingFailed):
        _train(train_dataset, runs, "feature", run_name="nan-later", epochs=3)
    run = Run.from_path(runs / "nan-later")
    assert run.state == "failed" and "nan" in run.status["reason"]
    assert len(run.epochs()) == 1 and run.has_checkpoint()
    assert Predictor(run).meta["epoch"] == 1


def test_a_small_training_set_gets_extra_epochs_up_to_the_minimum_steps(train_dataset, runs):
    config = TrainConfig(data=str(train_dataset), strategy="feature", **{**SMALL, "epochs": 1, "min_steps": 7})
    train_images = 13  # 16 pairs, 20 % held out for validation
    assert config.planned_epochs(train_images) == 2  # 4 steps an epoch at batch 4: 2 epochs reach 7 steps
    assert TrainConfig(epochs=6, min_steps=100, batch_size=8).planned_epochs(367) == 6  # big sets: unchanged
    run = train(config, runs, run_id="min-steps")
    assert run.summary()["epochs"] == 2
    assert [e["epoch"] for e in run.curves()[1]] == [1, 2]
    assert "small training set: 2 epochs instead of 1" in (run.path / "train.log").read_text()
