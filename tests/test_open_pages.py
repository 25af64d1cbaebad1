"""Thirty students on one server: one reading of the runs folder per tick, Compare and its report drawn from what
training saved (no forward pass), live views silent once nothing they show is active."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segcore import Predictor, TrainConfig, load_dataset, train
from segcore.runs import snapshot as snapshots
from segcore.runs.files import VAL_OUTPUTS
from segcore.runs.run import Run
from segcore.runs.val_outputs import read_val_outputs

TINY = dict(epochs=2, min_steps=0, height=64, width=64, batch_size=4, augment="none")


def test_thirty_sessions_asking_within_a_tick_read_the_runs_folder_once(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    for n in range(3):
        train(TrainConfig(data=str(train_dataset), strategy="scratch", max_steps=1, run_name=f"r{n}", **TINY), runs)
    snapshots.forget_snapshot(runs)
    before = snapshots.READINGS["count"]
    seen = [snapshots.runs_snapshot(runs, tick_s=60) for _ in range(30)]  # thirty pages' timers in one tick
    assert snapshots.READINGS["count"] == before + 1
    assert all(s is seen[0] for s in seen) and len(seen[0].runs) == 3 and seen[0].counts["done"] == 3
    (runs / "r0" / "status.json").write_text('{"state": "cancelled"}')
    assert snapshots.runs_snapshot(runs, tick_s=60) is seen[0]  # within the tick: still the one reading
    assert snapshots.runs_snapshot(runs, tick_s=0).counts["cancelled"] == 1  # the next tick sees the change


@pytest.fixture(scope="module")
def finished(tmp_path_factory, train_dataset):
    runs = tmp_path_factory.mktemp("compare-runs")
    return [
        train(TrainConfig(data=str(train_dataset), strategy=s, run_name=f"cmp-{s}", **TINY), runs)
        for s in ("scratch", "feature")
    ]


def test_training_saves_the_best_models_validation_outputs_which_match_its_predictions(finished, train_dataset):
    data = load_dataset(str(train_dataset))
    for run in finished:
        outputs = read_val_outputs(run.path)
        images = data.load("val", (64, 64))
        assert outputs is not None and outputs.maps.shape == (len(images), 64, 64)
        predictor = Predictor(run, device="cpu")
        for index in range(len(images)):
            picture = Image.fromarray(images.images[index].permute(1, 2, 0).numpy())
            assert (predictor.predict(picture) == outputs.maps[index]).mean() > 0.999
        totals = outputs.intersection.sum(0), outputs.union.sum(0)
        present = totals[1] > 0
        assert (totals[0][present] / totals[1][present]).mean() == pytest.approx(run.summary()["miou"], abs=1e-6)


def test_compare_and_its_report_make_no_forward_pass_and_an_uploaded_image_still_is_predicted(
    finished, train_dataset, monkeypatch
):
    from segcore.compare.report_html import comparison_report
    from segcore.compare.sheet import comparison_tiles, render_comparison
    from segcore.compare.worst_images import worst_images_for_class
    from segcore.models.unet import SegmentationModel

    data = load_dataset(str(train_dataset))
    real_forward = SegmentationModel.forward

    def refuse(self, *args, **kwargs):
        raise AssertionError("Compare ran a model")

    monkeypatch.setattr(SegmentationModel, "forward", refuse)
    tiles = comparison_tiles(finished, data, count=3)
    assert len(tiles) == 3 and len(tiles[0]) == 2 + len(finished)
    assert render_comparison(finished, data, count=2).size[0] > 0
    assert worst_images_for_class(finished, data, 1, count=2)
    report = comparison_report(finished, data, count=2)
    assert report.count("<img") >= 2 * (2 + len(finished))
    monkeypatch.setattr(SegmentationModel, "forward", real_forward)
    own = Image.new("RGB", (50, 40), (230, 210, 40))
    assert Predictor(finished[0], device="cpu").predict(own).shape == (40, 50)  # a new image needs the model


def test_a_run_saved_without_outputs_gets_them_computed_once_and_kept(finished, train_dataset, tmp_path):
    import shutil

    from segcore.compare.run_views import run_view

    copy = tmp_path / finished[0].run_id
    shutil.copytree(finished[0].path, copy)
    (copy / VAL_OUTPUTS).unlink()  # as a run trained before outputs were saved, or imported without them
    view = run_view(Run(copy), load_dataset(str(train_dataset)))
    assert (copy / VAL_OUTPUTS).is_file()
    assert np.array_equal(view.outputs.maps, read_val_outputs(finished[0].path).maps)


def test_a_long_runs_curve_is_drawn_with_a_bounded_number_of_points_that_keep_its_trend_and_its_last_step():
    """A page redrawn every second would send and plot every step of a run, a payload that grows with the run."""
    from segcore.compare.curves import CURVE_POINTS, thinned

    loss = [(step, 2.0 / step + (0.3 if step % 2 else -0.3)) for step in range(1, 3001)]  # a falling, noisy loss
    drawn = thinned(loss)
    assert len(drawn) <= CURVE_POINTS and drawn[-1][0] == 3000 and drawn[0][0] < 20
    assert [s for s, _ in drawn] == sorted(s for s, _ in drawn)
    assert abs(sum(v for _, v in drawn) / len(drawn) - sum(v for _, v in loss) / len(loss)) < 1e-9  # equal buckets
    assert max(abs(v - 2.0 / s) for s, v in drawn[5:]) < 0.05  # the step-to-step noise averages out, the trend stays
    short = loss[:120]
    assert thinned(short) == short
    parts = [(step, 1.0, 0.5, 0.1 * (step % 3)) for step in range(1, 1001)]  # a semi-supervised run's four columns
    assert all(len(point) == 4 for point in thinned(parts)) and len(thinned(parts)) <= CURVE_POINTS
