"""Show what goes wrong: the validation images where one class fares worst across the chosen runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..base.drawing import overlay, unpainted_classes
from ..base.errors import RunError
from ..data.dataset import SegmentationData
from ..data.masks import IGNORE
from ..runs.run import Run
from ..training.predict import Predictor
from .sheet import error_mask

PREDICTION_BATCH = 16


def as_predictors(runs_or_predictors, device: str = "auto") -> list[Predictor]:
    """Predictors as given, or built from runs / run folders (loading a model is the slow part: pass
    predictors when you already hold them)."""
    return [
        item if isinstance(item, Predictor) else Predictor(item if isinstance(item, Run) else Path(item), device=device)
        for item in runs_or_predictors
    ]


def class_iou(prediction: np.ndarray, truth: np.ndarray, class_index: int) -> float | None:
    """IoU of one class on one image over labelled pixels; None where the class is neither in the truth nor
    predicted (nothing to get right or wrong, as in the mIoU of segcore.metrics)."""
    labelled = truth != IGNORE
    predicted, actual = (prediction == class_index) & labelled, (truth == class_index) & labelled
    union = int(np.count_nonzero(predicted | actual))
    return None if union == 0 else int(np.count_nonzero(predicted & actual)) / union


def worst_images_for_class(
    runs_or_predictors,
    data: SegmentationData,
    class_index: int,
    split: str = "val",
    count: int = 4,
    alpha: float = 0.55,
    class_errors_only: bool = True,
    device: str = "auto",
) -> list[dict]:
    """The `count` images of `split` where class `class_index` has the lowest IoU averaged over the runs
    (over the runs where the class is in the truth or predicted), worst first; images where no run predicts
    it and the truth lacks it are left out, so a class absent everywhere gives []. Each entry:
    index, name, iou (one per run, None where undefined), mean_iou, titles and tiles (image, truth overlay,
    each run's overlay with wrong pixels in red; with class_errors_only, only the wrong pixels that involve
    this class, i.e. it was missed or wrongly predicted there)."""
    predictors = as_predictors(runs_or_predictors, device)
    if not predictors:
        raise RunError("choose at least one run to look for its worst images")
    classes = predictors[0].classes
    if data.num_classes != len(classes):
        raise RunError(
            f"the runs predict {len(classes)} classes but the dataset has {data.num_classes}: "
            "use the dataset the runs were trained on"
        )
    if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < len(classes):
        raise RunError(f"class {class_index!r} does not exist: choose 0 to {len(classes) - 1} ({', '.join(classes)})")
    images = data.load(split, predictors[0].size)
    pictures = [Image.fromarray(images.images[i].permute(1, 2, 0).numpy()) for i in range(len(images))]
    truths = [images.masks[i].numpy() for i in range(len(images))]
    predictions = [_predict_all(p, pictures) for p in predictors]  # once per image per run

    scored = []
    for index, truth in enumerate(truths):
        ious = [class_iou(run_maps[index], truth, class_index) for run_maps in predictions]
        defined = [v for v in ious if v is not None]
        if defined:
            scored.append((float(np.mean(defined)), index, ious))
    scored.sort(key=lambda item: (item[0], item[1]))  # worst first; ties in dataset order, so results are stable

    unpainted = unpainted_classes(classes)
    titles = ["image", "ground truth"] + [p.run.run_id for p in predictors]
    worst = []
    for mean_iou, index, ious in scored[:count]:
        picture, truth = pictures[index], truths[index]
        tiles = [np.asarray(picture), overlay(picture, truth, predictors[0].colours, alpha, unpainted=unpainted)]
        for predictor, run_maps in zip(predictors, predictions):
            prediction = run_maps[index]
            errors = error_mask(prediction, truth)
            if class_errors_only:
                errors &= (truth == class_index) | (prediction == class_index)
            tiles.append(predictor.overlay(picture, alpha, prediction, errors))
        worst.append(
            {
                "index": index,
                "name": images.names[index],
                "class": classes[class_index],
                "runs": [p.run.run_id for p in predictors],
                "iou": ious,
                "mean_iou": mean_iou,
                "titles": titles,
                "tiles": tiles,
            }
        )
    return worst


def _predict_all(predictor: Predictor, pictures: list[Image.Image]) -> list[np.ndarray]:
    maps: list[np.ndarray] = []
    for start in range(0, len(pictures), PREDICTION_BATCH):
        maps.extend(predictor.predict(pictures[start : start + PREDICTION_BATCH]))
    return maps


__all__ = ["as_predictors", "class_iou", "worst_images_for_class"]
