"""The quality protocol's splits (segcore/data/derived.py): the tuning split is carved from 'train' with a fixed
seed, disjoint from the training part and from 'val'; the binary view remaps classes without touching files."""

import numpy as np
import pytest

from segcore import load_dataset
from segcore.data.derived import binary_view, protocol_view, tuning_indices

from .conftest import CAMVID, needs_camvid, write_images_masks


def test_tuning_indices_are_disjoint_complete_and_seeded():
    rest, tune = tuning_indices(367)
    assert len(tune) == 73 and len(rest) == 294
    assert not set(rest) & set(tune) and sorted(rest + tune) == list(range(367))
    assert tuning_indices(367) == (rest, tune)  # same seed, same split, every time
    assert tuning_indices(367, seed=1) != (rest, tune)
    assert tuning_indices(2) == ([1], [0]) or tuning_indices(2) == ([0], [1])  # never an empty part


def test_protocol_views_on_a_dataset_with_its_own_split(tmp_path):
    root = write_images_masks(tmp_path / "d", count=20)
    data = load_dataset(str(root), ignore_index=255, val_fraction=0.25, seed=0)  # 15 train, 5 val
    tune = protocol_view(data, "tune")
    train, held, val = ({p.image for p in v} for v in (tune.pairs("train"), tune.pairs("val"), data.pairs("val")))
    assert len(held) == 3 and len(train) == 12
    assert not train & held and not held & val and not train & val  # val is never trained on nor tuned on
    assert train | held == {p.image for p in data.pairs("train")}
    assert protocol_view(data, "report") is data
    assert [p.image for p in protocol_view(data, "tune").pairs("val")] == [p.image for p in tune.pairs("val")]
    with pytest.raises(ValueError):
        protocol_view(data, "val")


@needs_camvid
def test_camvid_tuning_split_and_car_vs_rest():
    data = load_dataset(CAMVID, ignore_index=11)
    tune = protocol_view(data, "tune")
    names = lambda pairs: {p.name for p in pairs}  # noqa: E731
    assert len(tune.pairs("val")) == 73 and len(tune.pairs("train")) == 294
    assert not names(tune.pairs("val")) & names(data.pairs("val"))
    assert not names(tune.pairs("val")) & names(tune.pairs("train"))
    car = binary_view(tune, ["Car"], "car")
    assert car.class_names == ["rest", "car"] and car.num_classes == 2
    multi, binary = tune.load("val", (96, 128)).masks, car.load("val", (96, 128)).masks
    expected = np.where(multi.numpy() == 255, 255, (multi.numpy() == data.class_names.index("Car")).astype(np.uint8))
    assert np.array_equal(binary.numpy(), expected)
