"""Datasets larger than memory: a split over SEGCORE_MAX_DECODED_MB is decoded once into the disk cache and read a
batch at a time; entries are shared, built atomically, kept under their own disk budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from segcore import DatasetError, TrainConfig, load_dataset, train
from segcore.data import record_store
from segcore.data.record_store import RecordArray, decoded_dir
from segcore.models.device import cpu_has_native_bf16

from .conftest import wait_until, write_images_masks

ON_DISK = {"SEGCORE_MAX_DECODED_MB": "1"}  # 1 MiB: 10 pairs at 256×256 (2.5 MiB) go to disk


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / "cache"))
    for name, value in ON_DISK.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "cache"


def test_a_split_over_the_memory_budget_is_read_from_disk_and_equals_the_in_memory_decode(
    small_dataset, cache, monkeypatch
):
    on_disk = load_dataset(small_dataset).load("train", (256, 256))
    assert on_disk.on_disk and len(on_disk) == 10
    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "256")
    in_memory = load_dataset(small_dataset).load("train", (256, 256))
    assert not in_memory.on_disk
    assert torch.equal(on_disk.images[:], in_memory.images) and torch.equal(on_disk.masks[:], in_memory.masks)
    assert on_disk.names == in_memory.names


def test_records_index_like_a_tensor(tmp_path):
    values = torch.arange(10 * 2 * 3, dtype=torch.uint8).reshape(10, 2, 3)
    path = tmp_path / "records.u8"
    path.write_bytes(values.numpy().tobytes())
    records = RecordArray(path, (10, 2, 3))
    for key in (3, -1, slice(2, 7), slice(None, None, 3), [7, 2, 2, 9], torch.tensor([5, 0]), values[:, 0, 0] % 4 == 0):
        assert torch.equal(records[key], values[key]), key
    view = records.view([8, 1, 4])
    assert len(view) == 3 and torch.equal(view[:], values[[8, 1, 4]]) and torch.equal(view[[2, 0]], values[[4, 8]])
    with pytest.raises(IndexError):
        records[10]


def test_two_runs_of_the_same_data_share_one_entry_and_decode_once(small_dataset, cache, monkeypatch):
    decoded = []
    original = record_store._decode_into

    def counting(staging, pairs, *args):
        decoded.append(len(pairs))
        return original(staging, pairs, *args)

    monkeypatch.setattr(record_store, "_decode_into", counting)
    first = load_dataset(small_dataset).load("train", (256, 256))
    second = load_dataset(small_dataset).load("train", (256, 256))  # another run, another student: a fresh dataset
    assert decoded == [10]
    assert first.images.path == second.images.path
    assert len([p for p in decoded_dir().iterdir() if p.is_dir()]) == 1


def test_training_reads_batches_never_the_whole_split(cache, tmp_path, monkeypatch):
    data_dir = write_images_masks(tmp_path / "many", count=90)  # 72 training pairs: 18 MiB at 256×256
    largest = [0]
    original = RecordArray._positions

    def watched(self, key):
        positions, single = original(self, key)
        largest[0] = max(largest[0], len(positions))
        return positions, single

    monkeypatch.setattr(RecordArray, "_positions", watched)
    config = TrainConfig(
        data=str(data_dir), strategy="feature", epochs=1, min_steps=0, height=256, width=256, batch_size=4
    )
    run = train(config, tmp_path / "runs", run_id="large")
    assert run.state == "done", run.status
    log = run.log_tail(100)
    assert "read from the disk cache a batch at a time" in log and "feature cache off" in log
    assert run.summary()["train_images"] == 72
    assert 0 < largest[0] <= record_store.READ_CHUNK < 72  # batches, and whole-split passes in chunks


def test_a_killed_decode_leaves_no_entry_and_the_next_load_rebuilds_it(tmp_path, cache):
    data_dir = write_images_masks(tmp_path / "slow", count=30, size=(96, 96))
    script = textwrap.dedent(f"""
        import time
        from segcore import load_dataset
        from segcore.data import dataset
        slow = dataset.SegmentationData._decode_pair
        def crawl(self, pair, size, *rest):
            time.sleep(0.2)
            return slow(self, pair, size, *rest)
        dataset.SegmentationData._decode_pair = crawl
        load_dataset({str(data_dir)!r}).load("train", (256, 256))
    """)
    env = {**os.environ, "SEGCORE_CACHE": str(cache), **ON_DISK}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        assert wait_until(lambda: any(decoded_dir().glob(".*.partial")) if decoded_dir().is_dir() else False, 120)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not [p for p in decoded_dir().iterdir() if p.is_dir() and not p.name.startswith(".")]
    rebuilt = load_dataset(data_dir).load("train", (256, 256))
    assert rebuilt.on_disk
    fresh = load_dataset(data_dir)
    fresh._cache.clear()
    pairs = fresh.pairs("train")
    expected = np.stack([fresh._decode_pair(p, (256, 256))[1] for p in pairs])
    assert np.array_equal(rebuilt.masks[:].numpy(), expected)
    assert not list(decoded_dir().glob(".*.partial")), "the dead decode's staging folder was not cleared"


def test_an_entry_over_the_disk_budget_is_refused_naming_the_setting(small_dataset, cache, monkeypatch):
    monkeypatch.setenv("SEGCORE_DECODED_CACHE_MB", "1")
    with pytest.raises(DatasetError, match=r"over the disk cache's limit of 1 MiB \(SEGCORE_DECODED_CACHE_MB\)"):
        load_dataset(small_dataset).load("train", (256, 256))


def test_least_recently_used_entries_leave_first(small_dataset, cache, monkeypatch):
    data = load_dataset(small_dataset)
    first = data.load("train", (256, 256)).images.path.parent
    os.utime(first, (time.time() - 100, time.time() - 100))
    monkeypatch.setenv("SEGCORE_DECODED_CACHE_MB", "3")  # room for one 2.5 MiB entry
    second = load_dataset(small_dataset).load("train", (224, 224)).images.path.parent
    assert second.is_dir() and not first.exists()


def test_native_scores_stream_from_disk_and_equal_the_in_memory_ones(cache, tmp_path, monkeypatch):
    from segcore import Predictor
    from segcore.training.evaluate import evaluate_run

    data_dir = write_images_masks(tmp_path / "forty", count=40)  # 8 validation pairs: 2 MiB at 256×256
    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "256")
    config = TrainConfig(
        data=str(data_dir), strategy="scratch", epochs=1, min_steps=0, max_steps=2, height=256, width=256
    )
    run = train(config, tmp_path / "runs", run_id="native")
    in_memory = evaluate_run(Predictor(run.path), load_dataset(data_dir), native=True)
    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "1")
    data = load_dataset(data_dir)
    on_disk = evaluate_run(Predictor(run.path), data, native=True)
    assert data.loaded("val", (256, 256)).on_disk
    assert on_disk["miou"] == pytest.approx(in_memory["miou"], abs=1e-9)
    assert on_disk["per_class_iou"] == pytest.approx(in_memory["per_class_iou"], abs=1e-9)


# -- the aspect kept: resize 'crop' ----------------------------------------------------------------------------
def test_framing_grows_the_training_size_to_the_typical_aspect():
    from segcore.data.framing import cover_box, framed_size

    assert framed_size((256, 256), (480, 360)) == (256, 341)  # CamVid's 4:3 frames
    assert framed_size((192, 256), (480, 360)) == (192, 256)  # already its aspect: nothing to cut
    resized, (top, left) = cover_box((300, 600), (256, 256))  # a tall photo: full width, the middle of its height
    assert resized == (256, 512) and (top, left) == (128, 0)


def test_random_windows_keep_each_mask_on_its_image():
    from segcore.data.transforms import augment_batch, make_augmentation

    rows = torch.arange(48, dtype=torch.uint8)[:, None].expand(48, 64)
    images = torch.stack([rows.expand(3, 48, 64), (rows + 50).expand(3, 48, 64)])
    masks = torch.stack([rows, rows + 50])  # each pixel's class is its image's value there
    cropped, cropped_masks = augment_batch(make_augmentation("flip", (32, 32), crop=True), images, masks)
    assert cropped.shape == (2, 3, 32, 32) and cropped_masks.shape == (2, 32, 32)
    for image, mask in zip(cropped, cropped_masks):
        assert torch.equal(image[0], mask)


def test_a_run_that_keeps_the_aspect_trains_on_windows_and_scores_whole_images(tmp_path):
    from segcore import Predictor
    from segcore.compare.run_views import run_view
    from segcore.training.evaluate import evaluate_run

    data_dir = write_images_masks(tmp_path / "wide", count=12, size=(48, 64))  # 4:3 frames
    config = TrainConfig(
        data=str(data_dir), strategy="scratch", resize="crop", epochs=1, min_steps=0, height=32, width=32
    )
    run = train(config, tmp_path / "runs", run_id="aspect")
    assert run.state == "done", run.status
    assert "aspect kept: images stored at 32×43" in run.log_tail(50)
    data = load_dataset(data_dir)
    view = run_view(run, data)
    assert view.size == (32, 43) and view.outputs.maps.shape[1:] == (32, 43)
    predictor = Predictor(run.path)
    image = data.load_pair(data.pairs("val")[0])[0]
    assert predictor.predict(image).shape == (48, 64)  # the native map, from a whole 32×43 input
    scored = evaluate_run(predictor, data, native=True)
    assert scored["miou"] == pytest.approx(run.summary()["miou"], abs=0.15)  # native vs stored grid: close


def test_camvid_sized_frames_train_at_their_native_size(tmp_path):
    data_dir = write_images_masks(tmp_path / "native", count=6, size=(360, 480))
    config = TrainConfig(
        data=str(data_dir), strategy="scratch", epochs=1, min_steps=0, max_steps=1, height=360, width=480, batch_size=2
    ).validate()
    run = train(config, tmp_path / "runs", run_id="native-size")
    assert run.state == "done", run.status


def test_scoring_batches_shrink_with_the_image_size_so_large_images_do_not_make_the_memory_peak():
    from segcore.training.windows import EVAL_BATCH_PIXELS, scoring_batch

    assert scoring_batch(16, 256, 256) == 16  # the training default's batches, unchanged
    assert scoring_batch(16, 512, 512) == 4
    assert scoring_batch(16, 768, 1024) * 768 * 1024 <= EVAL_BATCH_PIXELS
    assert scoring_batch(16, 4000, 6000) == 1  # never zero
    assert scoring_batch(8, 128, 128) == 8  # never more than asked


def test_windows_step_over_the_whole_side_and_end_flush_with_its_edge():
    from segcore.training.windows import window_starts

    assert window_starts(100, 100) == [0] and window_starts(80, 100) == [0]  # one window covers the side
    starts = window_starts(1000, 256)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 * 2 / 3 + 1 for a, b in zip(starts, starts[1:]))  # a third of each window overlaps


def _pointwise_model(classes: int = 3) -> torch.nn.Module:
    """A network without context (1×1 convolutions): its logits at a pixel do not depend on where a window cuts."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, classes, 1)).eval()


def test_sliding_windows_equal_the_whole_image_pass_when_the_window_covers_it_and_average_overlaps():
    from segcore.models import build
    from segcore.training.windows import sliding_window_logits

    model, _ = build("tf_efficientnet_lite0", 3, pretrained=False)
    model.eval()
    image = torch.randn(3, 64, 96)
    whole = model(image[None])[0]
    assert torch.equal(sliding_window_logits(model, image, (64, 96)), whole)  # the window covers: one pass
    assert torch.equal(sliding_window_logits(model, image, (128, 128)), whole)
    pointwise = _pointwise_model()
    tiled = sliding_window_logits(pointwise, image, (32, 32))  # 3×5 windows, overlapping
    assert torch.allclose(tiled, pointwise(image[None])[0], atol=1e-5)  # every overlap averaged, no seam
    real_tiled = sliding_window_logits(model, image, (32, 32))
    assert real_tiled.shape == whole.shape and torch.isfinite(real_tiled).all()


def test_images_larger_than_a_scoring_pass_are_scored_in_windows_with_the_whole_image_score(tmp_path, monkeypatch):
    """Scoring a run that keeps the aspect: with the scoring budget shrunk below one image, every image goes through
    windows of the training size; a context-free network scores exactly as in one whole pass."""
    from segcore.data.framing import COVER
    from segcore.data.transforms import Normalizer
    from segcore.training import windows
    from segcore.training.evaluate import native_confusion

    data = load_dataset(write_images_masks(tmp_path / "wide", count=10, size=(48, 64)))
    normalize = Normalizer([0.5] * 3, [0.25] * 3)
    model = _pointwise_model()
    whole = native_confusion(model, normalize, (16, 16), data, "val", fit=COVER).matrix.clone()
    passes = []
    monkeypatch.setattr(windows, "EVAL_BATCH_PIXELS", 16 * 16)  # one window's pixels: every covered image is larger
    model.register_forward_hook(lambda module, inputs, output: passes.append(tuple(inputs[0].shape[-2:])))
    windowed = native_confusion(model, normalize, (16, 16), data, "val", fit=COVER).matrix
    assert passes and set(passes) == {(16, 16)}  # only windows of the training size went through the network
    assert torch.equal(windowed, whole)


def test_the_memory_budget_bounds_both_splits_together(small_dataset, cache, monkeypatch, tmp_path):
    """Training's split fits SEGCORE_MAX_DECODED_MB alone; validation, which would take the two past it, is read from
    the disk cache instead of being held beside it; and when training streams from disk, so does validation."""
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "3")  # 10 training pairs at 272×272: 2.8 MiB; 2 validation: 0.6 MiB
    config = TrainConfig(data=str(small_dataset), strategy="scratch", epochs=1, min_steps=0, height=272, width=272)
    trainer = Trainer.build(config.validate(), load_dataset(small_dataset), RunWriter(tmp_path / "run"))
    assert not trainer.train_set.on_disk and trainer.val_set.on_disk
    assert len(trainer.train_set) == 10 and len(trainer.val_set) == 2
    monkeypatch.setenv("SEGCORE_MAX_DECODED_MB", "2")  # training streams from disk: validation too, though it fits
    trainer = Trainer.build(config.validate(), load_dataset(small_dataset), RunWriter(tmp_path / "run-2"))
    assert trainer.train_set.on_disk and trainer.val_set.on_disk


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with native bf16 (AVX512-BF16 or AMX)")
def test_bf16_precision_holds_a_smaller_step_in_memory_and_scores_in_full_precision(tmp_path):
    """precision bf16 is how a large image size fits a memory bound: the step's saved activations shrink; the run's
    score is still the full-precision one `segcore eval` recomputes."""
    from segcore import Predictor
    from segcore.runs.writer import RunWriter
    from segcore.training.evaluate import evaluate_run
    from segcore.training.loop import Trainer

    data_dir = write_images_masks(tmp_path / "data", count=12, size=(64, 64))
    data = load_dataset(data_dir)

    def saved_bytes(precision: str) -> int:
        config = TrainConfig(
            data=str(data_dir), strategy="parameter", precision=precision, epochs=1, max_steps=1, height=64, width=64
        ).validate(check_files=False)
        trainer = Trainer.build(config, data, RunWriter(tmp_path / f"runs-{precision}"))
        total = []

        def pack(tensor):
            total.append(tensor.untyped_storage().nbytes() if tensor.is_floating_point() else 0)
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            trainer.train_one_epoch(1)
        return sum(total)

    assert saved_bytes("bf16") < 0.75 * saved_bytes("fp32")
    config = TrainConfig(data=str(data_dir), strategy="parameter", precision="bf16", epochs=1, height=64, width=64)
    run = train(config, tmp_path / "runs", run_id="lean")
    assert run.state == "done", run.status
    assert evaluate_run(Predictor(run.path), data)["miou"] == pytest.approx(run.summary()["miou"], abs=1e-6)
