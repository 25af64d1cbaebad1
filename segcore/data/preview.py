"""Pictures of a dataset for people: sample overlays and an augmentation preview (arrays, no drawing library)."""

from __future__ import annotations

import numpy as np
import torch

from ..drawing import overlay, unpainted_classes
from .dataset import SegmentationData
from .transforms import augment_batch, make_augmentation


def sample_overlays(data: SegmentationData, split: str = "train", count: int = 8, alpha: float = 0.5,
                    size: tuple[int, int] = (160, 160)) -> list[tuple[str, np.ndarray]]:
    images = data.load(split, size)
    picks = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    return [
        (images.names[i], overlay(images.images[i].permute(1, 2, 0).numpy(), images.masks[i].numpy(), data.class_colours, alpha,
                 unpainted=unpainted_classes(data.class_names)))
        for i in picks
    ]


def augmentation_preview(data: SegmentationData, kind: str = "full", count: int = 4, index: int = 0,
                         size: tuple[int, int] = (160, 160), seed: int = 0) -> list[np.ndarray]:
    """The same training image drawn through the augmentation `count` times, masks overlaid."""
    images = data.load("train", size)
    transform = make_augmentation(kind, size)
    torch.manual_seed(seed)
    image, mask = images.images[index : index + 1].repeat(count, 1, 1, 1), images.masks[index : index + 1].repeat(count, 1, 1)
    out_images, out_masks = augment_batch(transform, image, mask)
    unpainted = unpainted_classes(data.class_names)
    return [overlay(i.permute(1, 2, 0).numpy(), m.numpy(), data.class_colours, 0.5, unpainted=unpainted)
            for i, m in zip(out_images, out_masks)]
