"""The feature-transfer cache on disk: shared by runs of the same content, keyed by content, safe to read."""

from __future__ import annotations

import os
import time

import pytest
import torch

from segcore import Predictor, Run, TrainConfig, load_dataset, train
from segcore.data.dataset import ImageSet
from segcore.data.transforms import Normalizer
from segcore.models import build
from segcore.models.device import inference_dtype
from segcore.runs.writer import RunWriter
from segcore.training.evaluate import evaluate_run
from segcore.training.feature_cache import FeatureCache, evict, features_dir
from segcore.training.loop import Trainer

SMALL = dict(strategy="feature", epochs=1, min_steps=0, height=64, width=64, batch_size=4, augment="flip")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test starts from an empty cache folder."""
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEGCORE_FEATURE_CACHE_MB", raising=False)


def _trainer(data_dir, tmp_path, name, **overrides):
    data = load_dataset(data_dir)
    config = TrainConfig(data=str(data_dir), **{**SMALL, **overrides}).validate()
    trainer = Trainer.build(config, data, RunWriter(tmp_path / name))
    calls = []
    trainer.model.encoder.register_forward_hook(lambda *_: calls.append(1))
    return trainer, calls


def _cache(backbone="tf_efficientnet_lite0", classes=3):
    torch.manual_seed(0)  # the same random weights every time: the key follows the weights
    model, _ = build(backbone, classes)
    model.freeze_encoder()
    return FeatureCache(
        model, Normalizer(**model.data_config()), torch.device("cpu"), inference_dtype(torch.device("cpu"))
    )


def _files():
    return sorted(features_dir().glob("*.safetensors"))


def test_a_second_run_reads_the_features_from_disk_and_never_runs_the_encoder(train_dataset, tmp_path):
    first, first_calls = _trainer(train_dataset, tmp_path, "first")
    first.fit()
    assert first.cache.built == 3 and first.cache.loaded == 0 and first_calls  # train ×2 orientations + val
    assert len(_files()) == 3

    second, second_calls = _trainer(train_dataset, tmp_path, "second")
    second.fit()
    assert second_calls == [] and second.cache.built == 0 and second.cache.loaded == 3
    log = (tmp_path / "second" / "train.log").read_text()
    assert "read from disk" in log and "encoder pass skipped" in log


def test_loaded_features_equal_freshly_computed_ones(train_dataset, tmp_path):
    first, _ = _trainer(train_dataset, tmp_path, "first")
    first.batches.prepare()
    second, calls = _trainer(train_dataset, tmp_path, "second")
    second.batches.prepare()
    assert calls == [] and second.cache.loaded == 2
    fresh = _cache()
    fresh.model.load_state_dict(second.model.state_dict())
    for flip in (False, True):
        stored = second.cache.store[(id(second.train_set), flip)]
        computed = fresh._compute(second.train_set, flip, batch_size=32, exact=False)  # the same reduced precision
        images = second.train_set.images.flip(-1) if flip else second.train_set.images
        with torch.no_grad():
            full_precision = fresh.model.eval().encoder(fresh.normalize(images))
        assert len(stored) == len(computed) == len(full_precision)
        for level, expected, exact in zip(stored, computed, full_precision):
            assert level.dtype == torch.float16
            torch.testing.assert_close(level, expected, atol=1e-3, rtol=1e-3)
            # bf16 on a CPU that has it (device.inference_dtype) stays within a few % of the fp32 pass
            assert (level.float() - exact).norm() / exact.norm() < 0.06


def test_the_runs_miou_equals_evals_recomputation_when_features_come_from_disk(train_dataset, tmp_path):
    runs = tmp_path / "runs"
    config = TrainConfig(data=str(train_dataset), **{**SMALL, "epochs": 2})
    train(config, runs, run_id="build")
    run = train(config, runs, run_id="reuse")
    assert "encoder pass skipped" in (run.path / "train.log").read_text()
    recomputed = evaluate_run(Predictor(Run.from_path(run.path), device="cpu"), load_dataset(train_dataset))
    assert recomputed["miou"] == pytest.approx(run.summary()["miou"], abs=1e-6)


def test_keys_differ_with_size_backbone_data_orientation_and_precision(train_dataset, source_dataset):
    data, other = load_dataset(train_dataset), load_dataset(source_dataset)
    cache = _cache()
    small, large = data.load("train", (64, 64)), data.load("train", (96, 96))
    base = cache.key(small, flip=False, exact=False)
    assert base == cache.key(ImageSet(small.images.clone(), small.masks, small.names), flip=False, exact=False)
    assert base == _cache().key(small, flip=False, exact=False)  # same content, new objects: same key
    others = {
        "size": cache.key(large, flip=False, exact=False),
        "data": cache.key(other.load("train", (64, 64)), flip=False, exact=False),
        "orientation": cache.key(small, flip=True, exact=False),
        "precision": cache.key(small, flip=False, exact=True),
        "backbone": _cache("mobilenetv3_small_100").key(small, flip=False, exact=False),
    }
    changed = _cache()
    with torch.no_grad():
        next(changed.model.encoder.parameters()).add_(1e-3)
    others["weights"] = changed.key(small, flip=False, exact=False)
    one_pixel = small.images.clone()
    one_pixel[0, 0, 0, 0] ^= 1
    others["one pixel"] = cache.key(ImageSet(one_pixel, small.masks, small.names), flip=False, exact=False)
    assert len({base, *others.values()}) == len(others) + 1, others


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip-bytes"])
def test_a_damaged_cache_file_is_ignored_and_rebuilt(train_dataset, tmp_path, damage):
    first, _ = _trainer(train_dataset, tmp_path, "first", augment="none")
    first.batches.prepare()
    (path,) = _files()
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    else:  # the header is intact, the feature values are not
        path.write_bytes(raw[:-64] + bytes(b ^ 0xFF for b in raw[-64:]))
    second, calls = _trainer(train_dataset, tmp_path, "second", augment="none")
    second.batches.prepare()
    assert calls and second.cache.built == 1 and second.cache.loaded == 0
    assert "damaged" in (tmp_path / "second" / "train.log").read_text()
    torch.testing.assert_close(
        second.cache.store[(id(second.train_set), False)], first.cache.store[(id(first.train_set), False)]
    )
    third, calls = _trainer(train_dataset, tmp_path, "third", augment="none")
    third.batches.prepare()  # the rebuilt file is whole again
    assert calls == [] and third.cache.loaded == 1


def test_eviction_keeps_the_folder_under_the_limit_least_recently_used_first(
    train_dataset, source_dataset, monkeypatch
):
    cache = _cache()
    images = load_dataset(train_dataset).load("train", (64, 64))
    other = load_dataset(source_dataset).load("train", (64, 64))
    cache.ensure(images, flips=True)  # two entries: plain and mirrored
    plain, mirrored = cache.key(images, False, False), cache.key(images, True, False)
    one = (features_dir() / f"{plain}.safetensors").stat().st_size
    old = time.time() - 100
    os.utime(features_dir() / f"{plain}.safetensors", (old, old))  # the least recently used
    monkeypatch.setenv("SEGCORE_FEATURE_CACHE_MB", str(2.5 * one / 1024**2))
    cache.ensure(other, flips=False)
    assert sum(p.stat().st_size for p in _files()) <= 2.5 * one
    assert {p.stem for p in _files()} == {mirrored, cache.key(other, False, False)}


def test_evict_removes_oldest_files_and_stale_temporaries():
    folder = features_dir()
    folder.mkdir(parents=True)
    now = time.time()
    for i in range(5):
        path = folder / f"{i}.safetensors"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - 100 + i, now - 100 + i))
    stale, fresh = folder / ".a.1.2.tmp", folder / ".b.1.2.tmp"
    stale.write_bytes(b"x"), fresh.write_bytes(b"x")
    os.utime(stale, (now - 7200, now - 7200))
    removed = evict(1500, keep="0")  # the others may take 1500 bytes: 1, 2 and 3 go
    assert sorted(p.name for p in removed) == ["1.safetensors", "2.safetensors", "3.safetensors"]
    assert sorted(p.name for p in folder.iterdir()) == [".b.1.2.tmp", "0.safetensors", "4.safetensors"]


def test_a_zero_limit_turns_the_disk_cache_off(train_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCORE_FEATURE_CACHE_MB", "0")
    trainer, calls = _trainer(train_dataset, tmp_path, "off", augment="none")
    trainer.batches.prepare()
    assert calls and _files() == []


def test_the_cache_builds_in_bf16_only_on_a_cpu_that_has_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("segcore.models.device.cpu_has_native_bf16", lambda: False)
    assert inference_dtype(cpu) is None  # emulated bf16 would be slower than fp32
    monkeypatch.setattr("segcore.models.device.cpu_has_native_bf16", lambda: True)
    assert inference_dtype(cpu) == torch.bfloat16
    assert inference_dtype(torch.device("mps")) is None
