"""Pictures of a dataset for people: sample overlays and an augmentation preview (arrays, no drawing library)."""

from __future__ import annotations

import re

import numpy as np
import torch

from ..base.drawing import overlay, unpainted_classes
from .dataset import ImageSet, SegmentationData
from .transforms import augment_batch, make_augmentation


def _decoded(data: SegmentationData, split: str, indices: list[int], size: tuple[int, int]) -> ImageSet:
    """Just these pairs at `size`: from the split already in memory at that size, else decoded alone —
    showing 8 samples of a 10,000-image upload decodes 8 pairs, not 10,000."""
    cached = data.loaded(split, size)
    if cached is not None:
        return cached.subset(indices)
    pairs = data.pairs(split)
    return data.decode_pairs([pairs[i] for i in indices], size)


def sample_overlays(
    data: SegmentationData, split: str = "train", count: int = 8, alpha: float = 0.5, size: tuple[int, int] = (160, 160)
) -> list[tuple[str, np.ndarray]]:
    total = len(data.pairs(split))
    picks = np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()
    images = _decoded(data, split, picks, size)
    unpainted = unpainted_classes(data.class_names)
    shown = sorted(range(len(images)), key=lambda i: natural_key(images.names[i]))  # 2 before 11, as people count
    return [
        (
            images.names[i],
            overlay(
                images.images[i].permute(1, 2, 0).numpy(),
                images.masks[i].numpy(),
                data.class_colours,
                alpha,
                unpainted=unpainted,
            ),
        )
        for i in shown
    ]


def natural_key(name: str) -> list:
    """'img_11' after 'img_2': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def augmentation_preview(
    data: SegmentationData,
    kind: str = "full",
    count: int = 4,
    index: int = 0,
    size: tuple[int, int] = (160, 160),
    seed: int = 0,
) -> list[np.ndarray]:
    """The same training image drawn through the augmentation `count` times, masks overlaid."""
    one = _decoded(data, "train", [index], size)
    transform = make_augmentation(kind, size)
    torch.manual_seed(seed)
    image, mask = one.images.repeat(count, 1, 1, 1), one.masks.repeat(count, 1, 1)
    out_images, out_masks = augment_batch(transform, image, mask)
    unpainted = unpainted_classes(data.class_names)
    return [
        overlay(i.permute(1, 2, 0).numpy(), m.numpy(), data.class_colours, 0.5, unpainted=unpainted)
        for i, m in zip(out_images, out_masks)
    ]
