"""Scoring a finished run on any split of any dataset the engine reads."""

from __future__ import annotations

import torch

from .data.dataset import SegmentationData
from .errors import RunError
from .metrics import MIOU_NOTE, ConfusionMatrix
from .predict import Predictor


@torch.no_grad()
def evaluate_run(predictor: Predictor, data: SegmentationData, split: str = "val", batch_size: int = 16) -> dict:
    if data.num_classes != len(predictor.classes):
        raise RunError(
            f"the run predicts {len(predictor.classes)} classes ({', '.join(predictor.classes)}) but the dataset has "
            f"{data.num_classes}: evaluate it on data with the same classes"
        )
    images = data.load(split, predictor.size)
    matrix = ConfusionMatrix(data.num_classes)
    predictor.model.eval()
    for start in range(0, len(images), batch_size):
        logits = predictor.model(predictor.normalize(images.images[start : start + batch_size].to(predictor.device)))
        matrix.update(images.masks[start : start + batch_size], logits.argmax(1))
    metrics = matrix.compute()
    return {
        "run": predictor.run.run_id, "data": data.source, "split": split, "images": len(images),
        **metrics, "per_class_iou": dict(zip(data.class_names, metrics["per_class_iou"])), "miou_note": MIOU_NOTE,
    }
