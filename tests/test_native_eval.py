"""Native-resolution scores: logits upsampled to each image's original size before argmax (segcore/evaluate.py)."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from segcore import TrainConfig, load_dataset, train
from segcore.data.transforms import Normalizer
from segcore.training.evaluate import evaluate_run, native_confusion
from segcore.training.predict import Predictor

from .conftest import write_images_masks


def hand_miou(pairs: list[tuple[np.ndarray, np.ndarray]], classes: int) -> float:
    """mIoU over classes present in ground truth or prediction, counted with numpy alone."""
    inter, union = np.zeros(classes), np.zeros(classes)
    for truth, prediction in pairs:
        for c in range(classes):
            t, p = truth == c, prediction == c
            inter[c] += np.logical_and(t, p).sum()
            union[c] += np.logical_or(t, p).sum()
    present = union > 0
    return float((inter[present] / union[present]).mean())


def test_native_miou_of_a_tiny_run_equals_a_hand_computation(tmp_path):
    root = write_images_masks(tmp_path / "data", count=8, size=(64, 96))  # native 64×96, trained at 32×64
    run = train(
        TrainConfig(
            data=str(root),
            strategy="scratch",
            epochs=1,
            min_steps=0,
            max_steps=2,
            height=32,
            width=64,
            batch_size=4,
            augment="none",
            device="cpu",
        ),
        tmp_path / "runs",
    )
    predictor = Predictor(run, device="cpu")
    data = load_dataset(str(root), ignore_index=255, val_fraction=0.2, seed=0)
    result = evaluate_run(predictor, data, "val", native=True)

    pairs, small = [], data.load("val", (32, 64))
    with torch.no_grad():
        logits = predictor.model.eval()(predictor.normalize(small.images))
    for pair, logit in zip(data.pairs("val"), logits):
        truth = np.asarray(Image.open(pair.mask))
        up = F.interpolate(logit[None], size=truth.shape, mode="bilinear", align_corners=False)[0]
        prediction = up.argmax(0).numpy()
        pairs.append((truth, prediction))
        # the export path gives the very same native map (Predictor resizes the input the way the dataset does)
        assert np.array_equal(predictor.predict(Image.open(pair.image)), prediction)
        assert predictor.predict(Image.open(pair.image), native=False).shape == (32, 64)
    assert result["resolution"] == "native" and result["images"] == len(pairs)
    assert abs(result["miou"] - hand_miou(pairs, 3)) < 1e-9
    assert evaluate_run(predictor, data, "val")["resolution"].endswith("(training size)")


class ColourIsClass(nn.Module):
    """A perfect predictor for images whose pure red / green / blue regions are classes 0 / 1 / 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 10)

    def forward(self, x):
        return self.conv(x)


def write_blocks(root: Path, sizes) -> Path:
    """Images of vertical colour stripes at several native sizes; mask = the stripe's colour index. Stripes, not
    a checkerboard: bilinear upsampling cannot keep a block's convex corner (3 of its 4 neighbours win there),
    so even a perfect low-resolution predictor loses a few corner pixels; straight edges it keeps exactly."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    colours = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], dtype=np.uint8)
    for i, (h, w) in enumerate(sizes):
        scale = h // 64  # blocks of 16 pixels at 64×96, 32 at 128×192: block edges fall on the 32×48 grid
        blocks = np.repeat(rng.integers(0, 3, (1, 6)), 4, axis=0)
        mask = np.kron(blocks, np.ones((16 * scale, 16 * scale), dtype=np.int64)).astype(np.uint8)
        Image.fromarray(colours[mask]).save(root / "images" / f"b{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"b{i}.png")
    (root / "classes.txt").write_text("red\ngreen\nblue\n")
    return root


def test_a_perfect_predictor_scores_one_at_native_size_when_the_training_size_differs(tmp_path):
    root = write_blocks(tmp_path / "blocks", [(64, 96), (128, 192), (64, 96), (128, 192)])
    data = load_dataset(str(root), ignore_index=255, val_fraction=0.5, seed=0)
    masks = [np.asarray(Image.open(p.mask)) for p in data.pairs("val")]
    assert len(np.unique(np.concatenate([m.ravel() for m in masks]))) == 3  # every class has edges to keep
    assert {m.shape for m in masks} != {(32, 48)}  # scored at the native sizes, not the 32×48 it runs at
    matrix = native_confusion(ColourIsClass(), Normalizer([0.5] * 3, [0.5] * 3), (32, 48), data, "val")
    assert matrix.matrix.sum() == sum(m.size for m in masks)  # every native pixel counted once
    assert matrix.compute()["miou"] == 1.0
