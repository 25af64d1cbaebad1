"""Scoring a finished run on any split of any dataset the engine reads: at the training size, or at each
image's native size (as published CamVid results are reported)."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from ..base.errors import RunError
from ..data.dataset import SegmentationData
from ..data.files import image_size, read_image, read_mask_raw
from ..data.framing import COVER, SQUASH, cover_box
from ..data.limits import limits
from ..models.metrics import MIOU_NOTE, ConfusionMatrix
from .predict import Predictor, native_class_map
from .windows import bounded_logits, scoring_batch

NATIVE_NOTE = (
    "native: logits upsampled bilinearly to each image's original size before argmax, scored against "
    "the original-size mask (the same maps Predictor.predict returns)"
)


def native_masks(data: SegmentationData, split: str) -> list[torch.Tensor]:
    """A split's masks at their original sizes as class maps (1 byte a pixel). Kept with the dataset's decoded
    splits when they fit the decoded-memory limit (a benchmark scores the same split after every run)."""
    key = (split, "native-masks")
    if key in data._cache:
        return data._cache[key]
    pairs = data.pairs(split)
    masks = [torch.from_numpy(data.encoding.apply(read_mask_raw(p.mask), p.mask)) for p in pairs]
    if sum(m.numel() for m in masks) <= limits().max_decoded_bytes:
        data._cache[key] = masks
    return masks


@torch.no_grad()
def native_confusion(
    model: torch.nn.Module,
    normalize,
    size: tuple[int, int],
    data: SegmentationData,
    split: str = "val",
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    autocast=nullcontext,
    fit: str = SQUASH,
) -> ConfusionMatrix:
    """Confusion matrix at native resolution. The input is the split decoded at the training size exactly as
    the training-size score sees it, so the two scores differ only in where the argmax is taken. With the aspect
    kept (fit COVER) each whole image is resized to cover the training size and scored on its own."""
    if fit == COVER:
        return _native_confusion_covered(model, normalize, size, data, split, device, autocast)
    images = data.load(split, size)
    kept = data._cache.get((split, "native-masks"))
    masks = kept if images.on_disk else native_masks(data, split)  # on disk: one native mask at a time
    pairs = data.pairs(split)
    matrix = ConfusionMatrix(data.num_classes)
    model.eval()
    batch_size = scoring_batch(batch_size, *images.images.shape[-2:])
    for start in range(0, len(images), batch_size):
        with autocast():
            logits = model(normalize(images.images[start : start + batch_size].to(device)))
        for offset, logit in enumerate(logits):
            if masks is not None:
                mask = masks[start + offset]
            else:  # read one native mask at a time: a large split's masks are never all in memory
                pair = pairs[start + offset]
                mask = torch.from_numpy(data.encoding.apply(read_mask_raw(pair.mask), pair.mask))
            matrix.update(mask, native_class_map(logit, tuple(mask.shape)))
    return matrix


def _native_confusion_covered(model, normalize, size, data, split, device, autocast) -> ConfusionMatrix:
    """Native scores of a run that keeps the aspect: one whole image at a time (in windows of the training size when
    it is larger than a scoring pass may be: windows.py), never a centre cut."""
    matrix = ConfusionMatrix(data.num_classes)
    model.eval()
    for pair in data.pairs(split):
        resized, _ = cover_box(image_size(pair.image), size)
        picture = torch.from_numpy(np.array(read_image(pair.image, resized).convert("RGB"))).permute(2, 0, 1)
        mask = torch.from_numpy(data.encoding.apply(read_mask_raw(pair.mask), pair.mask))
        logits = bounded_logits(model, normalize(picture[None].to(device)), size, autocast)
        matrix.update(mask, native_class_map(logits[0], tuple(mask.shape)))
    return matrix


@torch.no_grad()
def evaluate_run(
    predictor: Predictor, data: SegmentationData, split: str = "val", batch_size: int = 16, native: bool = False
) -> dict:
    if data.num_classes != len(predictor.classes):
        raise RunError(
            f"the run predicts {len(predictor.classes)} classes ({', '.join(predictor.classes)}) but the dataset has "
            f"{data.num_classes}: evaluate it on data with the same classes"
        )
    images = data.load(split, predictor.framed(data), fit=predictor.fit)
    if native:
        matrix = native_confusion(
            predictor.model,
            predictor.normalize,
            predictor.size,
            data,
            split,
            predictor.device,
            batch_size,
            fit=predictor.fit,
        )
    else:
        matrix = ConfusionMatrix(data.num_classes)
        predictor.model.eval()
        batch_size = scoring_batch(batch_size, *images.images.shape[-2:])
        for start in range(0, len(images), batch_size):
            inputs = predictor.normalize(images.images[start : start + batch_size].to(predictor.device))
            logits = bounded_logits(predictor.model, inputs, predictor.size)
            matrix.update(images.masks[start : start + batch_size], logits.argmax(1))
    metrics = matrix.compute()
    return {
        "run": predictor.run.run_id,
        "data": data.source,
        "split": split,
        "images": len(images),
        "resolution": "native" if native else f"{predictor.size[0]}×{predictor.size[1]} (training size)",
        **metrics,
        "per_class_iou": dict(zip(data.class_names, metrics["per_class_iou"])),
        "miou_note": MIOU_NOTE + ("; " + NATIVE_NOTE if native else ""),
    }
