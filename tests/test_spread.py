"""Seed spread for the data-efficiency curve (segcore/spread.py)."""

import math

import pytest

from segcore.compare.spread import data_efficiency_with_spread, format_mean_sd, mean_sd


def test_mean_and_sample_sd_by_hand():
    mean, sd = mean_sd([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6)
    assert sd == pytest.approx(0.1)  # sqrt(((-.1)² + 0 + .1²) / 2)
    assert mean_sd([0.4]) == (0.4, None)  # one run: no spread, not a spread of 0
    with pytest.raises(ValueError):
        mean_sd([])


def test_points_group_by_strategy_and_training_size():
    runs = [
        {"strategy": "parameter", "train_images": 367, "miou": 0.50, "seed": 0},
        {"strategy": "parameter", "train_images": 367, "miou": 0.54, "seed": 1},
        {"strategy": "parameter", "train_images": 37, "miou": 0.40, "seed": 0},
        {"strategy": "scratch", "train_images": 367, "miou": 0.30, "seed": 0},
        {"strategy": "scratch", "train_images": 367, "miou": float("nan"), "seed": 1},  # diverged: left out
        {"strategy": "scratch", "train_images": None, "miou": None},  # unfinished: left out
    ]
    rows = data_efficiency_with_spread(runs)
    assert [(r["strategy"], r["train_images"], r["n"]) for r in rows] == [
        ("parameter", 37, 1),
        ("parameter", 367, 2),
        ("scratch", 367, 1),
    ]
    full = rows[1]
    assert full["mean"] == pytest.approx(0.52) and full["sd"] == pytest.approx(math.sqrt(0.0008))
    assert full["seeds"] == [0, 1]
    assert rows[0]["sd"] is None


class FakeRun:
    def __init__(self, strategy, images, miou, seed):
        self.config = {"strategy": strategy, "seed": seed}
        self._summary = {"train_images": images, "miou": miou} if miou is not None else {}

    def summary(self):
        return self._summary


def test_run_objects_are_read_from_config_and_summary():
    rows = data_efficiency_with_spread(
        [FakeRun("feature", 92, 0.41, 0), FakeRun("feature", 92, 0.43, 1), FakeRun("feature", 92, None, 2)]
    )
    assert rows == [
        {
            "strategy": "feature",
            "train_images": 92,
            "mean": pytest.approx(0.42),
            "sd": pytest.approx(math.sqrt(0.0002)),
            "n": 2,
            "seeds": [0, 1],
        }
    ]


def test_format():
    assert format_mean_sd([0.5, 0.6, 0.7]) == "0.600 ± 0.100 (n=3)"
    assert format_mean_sd([0.5]) == "0.500 (n=1)"


def test_only_runs_of_the_same_recipe_are_pooled_into_one_point(tmp_path):
    import json

    from segcore import TrainConfig
    from segcore.compare.stats import same_recipe
    from segcore.runs.run import Run

    def run(name, **settings):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(TrainConfig(**settings).to_dict()))
        return Run(folder)

    base = run("a", seed=0, train_size=0.5)
    other_seed = run("b", seed=1, train_size=1.0, strategy="parameter", max_steps=60, min_steps=60)
    longer = run("c", seed=2, epochs=12)  # another recipe: its score is not seed spread
    assert same_recipe([base, other_seed, longer], base) == [base, other_seed]
