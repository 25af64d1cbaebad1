"""The quality protocol's splits (segcore/data/eval_splits.py): the tuning split is carved from 'train' with a fixed
seed, disjoint from the training part and from 'val'; the binary view remaps classes without touching files."""

import numpy as np
import pytest

from segcore import DatasetError, load_dataset
from segcore.data.eval_splits import binary_view, protocol_view, sequence_of, tuning_indices

from .conftest import CAMVID, needs_camvid, write_images_masks


def test_tuning_indices_are_disjoint_complete_and_seeded():
    names = [f"{i}" for i in range(367)]
    rest, tune = tuning_indices(names)
    assert len(tune) == 73 and len(rest) == 294
    assert not set(rest) & set(tune) and sorted(rest + tune) == list(range(367))
    assert tuning_indices(names) == (rest, tune)  # same seed, same split, every time
    assert tuning_indices(names, seed=1) != (rest, tune)
    assert tuning_indices(["a", "b"]) in (([1], [0]), ([0], [1]))  # never an empty part
    with pytest.raises(DatasetError):
        tuning_indices(["only"])


def test_the_tuning_part_is_a_contiguous_stretch_of_each_recording_not_frames_beside_training_frames():
    # two video sequences listed shuffled, frame numbers 30 apart as in CamVid (one frame a second)
    frames = {f"seqA_{30 * i:05d}": ("seqA", i) for i in range(50)}
    frames |= {f"seqB_f{30 * i:05d}": ("seqB_f", i) for i in range(100)}
    names = list(np.random.default_rng(0).permutation(list(frames)))
    _, tune = tuning_indices(names)
    for sequence, length in (("seqA", 50), ("seqB_f", 100)):
        held = sorted(frames[names[i]][1] for i in tune if frames[names[i]][0] == sequence)
        assert len(held) == length // 5  # 20 % of each recording
        assert held == list(range(held[0], held[0] + len(held)))  # one unbroken stretch
    assert sequence_of("0016E5_07959") == "0016E5" and sequence_of("0006R0_f02430") == "0006R0_f"
    # photos named without frame numbers are each their own recording: a seeded 20 % of them, as before
    photos = [f"photo-{word}" for word in ("cat", "dog", "owl", "fox", "elk", "yak", "emu", "gnu", "ant", "bee")]
    rest, tune = tuning_indices(photos)
    assert len(tune) == 2 and len(rest) == 8


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
