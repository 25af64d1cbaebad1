"""Segmentation metrics from one confusion matrix (rows: ground truth, columns: prediction)."""

from __future__ import annotations

import torch

from ..data.masks import IGNORE

MIOU_NOTE = "mIoU = mean IoU over the classes present in the ground truth or the prediction; ignored pixels excluded"


class ConfusionMatrix:
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, target: torch.Tensor, prediction: torch.Tensor) -> None:
        # counted where the tensors are (GPU or CPU); only the small matrix comes back
        target, prediction = target.reshape(-1).long(), prediction.reshape(-1).to(target.device).long()
        keep = target != IGNORE
        index = target[keep] * self.num_classes + prediction[keep]
        counts = torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)
        self.matrix += counts.cpu()

    def compute(self) -> dict:
        m = self.matrix.double()
        true_positive = m.diag()
        gt, pred = m.sum(1), m.sum(0)
        union = gt + pred - true_positive
        present = union > 0
        iou = torch.where(present, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
        dice = torch.where(present, 2 * true_positive / (gt + pred).clamp(min=1), torch.full_like(union, float("nan")))
        total = m.sum()
        return {
            "miou": float(iou[present].mean()) if present.any() else 0.0,
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else 0.0,
            "mean_dice": float(dice[present].mean()) if present.any() else 0.0,
            "per_class_iou": [None if not p else float(v) for v, p in zip(iou, present)],
        }
