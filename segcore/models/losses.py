"""The data term L of the objective: cross-entropy (optionally class-balanced) plus an optional Dice term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..base.errors import TrainingFailed
from ..data.masks import IGNORE

# name → power of the median-frequency weights; "auto" is resolved per task by resolved_class_weighting
CLASS_WEIGHTINGS = {"auto": None, "none": None, "balanced": 1.0, "sqrt": 0.5}


COUNT_CHUNK = 64  # masks counted at once (data/record_store.READ_CHUNK: a pass over a split on disk reads as much)


def class_balance_weights(
    masks: torch.Tensor, num_classes: int, max_weight: float = 10.0, power: float = 1.0
) -> torch.Tensor:
    """Median-frequency balancing (Eigen & Fergus; SegNet on CamVid): weight_c = median(freq) / freq_c.

    Small training sets are dominated by road, sky and buildings; without this, rare classes (poles, signs,
    people) are never predicted and score 0 IoU. Classes absent from the masks get weight 0 (they contribute
    no pixels anyway); weights are capped so one rare class cannot swamp the loss.
    """
    counts = torch.zeros(num_classes, dtype=torch.double)
    for start in range(0, len(masks), COUNT_CHUNK):  # a chunk at a time: masks may be on disk, or large
        labels = masks[start : start + COUNT_CHUNK].reshape(-1)
        # counted where the masks live (on a GPU, training keeps them there), weighed on the CPU: a few numbers
        chunk = torch.bincount(labels[labels != IGNORE].long(), minlength=num_classes)[:num_classes]
        counts += chunk.double().cpu()
    present = counts > 0
    if not present.any():
        return torch.ones(num_classes)
    frequency = counts / counts.sum()
    weights = torch.zeros(num_classes, dtype=torch.double)
    weights[present] = frequency[present].median() / frequency[present]
    return weights.pow(power).clamp(max=max_weight).float()


def resolved_class_weighting(kind: str, num_classes: int) -> str:
    """The weighting "auto" stands for: plain cross-entropy for two classes, `sqrt` for three or more.

    Chosen on the tuning splits (bench/README.md, "Today's defaults re-checked"): on two-class tasks (car vs rest, membrane)
    `sqrt` weights trade precision for recall and plain cross-entropy scored higher in 8 of 8 pairs; on CamVid's
    11 classes `sqrt` gets rare classes predicted at all.
    """
    if kind not in CLASS_WEIGHTINGS:
        raise TrainingFailed(f"unknown class weighting '{kind}': choose one of {', '.join(CLASS_WEIGHTINGS)}")
    if kind == "auto":
        return "none" if num_classes <= 2 else "sqrt"
    return kind


def class_weights_for(kind: str, masks: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """The cross-entropy's class weights for a CLASS_WEIGHTINGS name (None: every pixel counts the same)."""
    power = CLASS_WEIGHTINGS[resolved_class_weighting(kind, num_classes)]
    return None if power is None else class_balance_weights(masks, num_classes, power=power)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = (target != IGNORE).unsqueeze(1)
    probabilities = logits.softmax(1) * valid
    one_hot = F.one_hot(target.clamp(max=logits.shape[1] - 1).long(), logits.shape[1]).permute(0, 3, 1, 2) * valid
    intersection = (probabilities * one_hot).sum((0, 2, 3))
    total = probabilities.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    return 1 - ((2 * intersection + 1) / (total + 1)).mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.0, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    loss = F.cross_entropy(logits.float(), target.long(), weight=class_weights, ignore_index=IGNORE)
    if dice_weight > 0:
        loss = loss + dice_weight * dice_loss(logits.float(), target)
    return loss
