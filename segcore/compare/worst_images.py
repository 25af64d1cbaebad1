"""Show what goes wrong: the validation images where one class fares worst across the chosen runs."""

from __future__ import annotations

import numpy as np

from ..base.drawing import overlay, unpainted_classes
from ..base.errors import RunError
from ..data.dataset import SegmentationData
from ..data.masks import IGNORE
from .run_views import as_views
from .sheet import error_mask

PREDICTION_BATCH = 16


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
) -> list[dict]:
    """The `count` images of `split` where class `class_index` has the lowest IoU averaged over the runs
    (over the runs where the class is in the truth or predicted), worst first; images where no run predicts
    it and the truth lacks it are left out, so a class absent everywhere gives []. Each entry:
    index, name, iou (one per run, None where undefined), mean_iou, titles and tiles (image, truth overlay,
    each run's overlay with wrong pixels in the error colour; with class_errors_only, only the wrong pixels that involve
    this class, i.e. it was missed or wrongly predicted there)."""
    views = as_views(runs_or_predictors, data, split)
    if not views:
        raise RunError("choose at least one run to look for its worst images")
    classes = views[0].classes
    if data.num_classes != len(classes):
        raise RunError(
            f"the runs predict {len(classes)} classes but the dataset has {data.num_classes}: "
            "use the dataset the runs were trained on"
        )
    if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < len(classes):
        raise RunError(f"class {class_index!r} does not exist: choose 0 to {len(classes) - 1} ({', '.join(classes)})")
    images = data.load(split, views[0].size, fit=views[0].fit)

    scored = []
    for index in range(len(images)):
        ious = [view.outputs.class_iou(index, class_index) for view in views]  # saved by training: no model runs
        defined = [v for v in ious if v is not None]
        if defined:
            scored.append((float(np.mean(defined)), index, ious))
    scored.sort(key=lambda item: (item[0], item[1]))  # worst first; ties in dataset order, so results are stable

    unpainted = unpainted_classes(classes)
    titles = ["image", "ground truth"] + [v.run.run_id for v in views]
    worst = []
    for mean_iou, index, ious in scored[:count]:
        picture, truth = images.images[index].permute(1, 2, 0).numpy(), images.masks[index].numpy()
        tiles = [picture, overlay(picture, truth, views[0].colours, alpha, unpainted=unpainted)]
        for view in views:
            prediction = view.map(index)
            errors = error_mask(prediction, truth)
            if class_errors_only:
                errors &= (truth == class_index) | (prediction == class_index)
            tiles.append(overlay(picture, prediction, view.colours, alpha, errors, unpainted))
        worst.append(
            {
                "index": index,
                "name": images.names[index],
                "class": classes[class_index],
                "runs": [v.run.run_id for v in views],
                "iou": ious,
                "mean_iou": mean_iou,
                "titles": titles,
                "tiles": tiles,
            }
        )
    return worst


__all__ = ["class_iou", "worst_images_for_class"]
