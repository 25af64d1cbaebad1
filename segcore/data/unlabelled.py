"""Unlabelled images for semi-supervised training: which ones (TrainConfig.unlabelled) and decoded at the training
size. They pass the same checks as any image of a dataset (roots, zip safety, pixel and memory limits)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..base.errors import DatasetError
from .dataset import SegmentationData, check_decoded_memory, check_image_count, resolve_source
from .files import image_size, read_image
from .framing import COVER, SQUASH, cover_box
from .layouts import unlabelled_images

DATASET, REST = "dataset", "rest"  # the dataset's own images without masks; the training images left out


def unlabelled_paths(data: SegmentationData, choice: str | None, train_size=None, seed: int = 0) -> list[Path]:
    """The unlabelled images `choice` names: DATASET, REST (the training split's images that train_size leaves out:
    only their images are ever read, never their masks), or a folder / .zip of images."""
    if not choice:
        return []
    if choice == DATASET:
        paths = list(data.unlabelled)
        if not paths:
            raise DatasetError(
                data.root,
                "semi-supervised training asks for the dataset's unlabelled images, and it has none",
                "put images without masks in an unlabelled/ folder beside images/, or give a folder of them",
            )
        return paths
    if choice == REST:
        kept = set(data.train_indices(train_size, seed))
        rest = [pair.image for i, pair in enumerate(data.pairs("train")) if i not in kept]
        if not rest:
            raise DatasetError(
                data.root, "no training image is left out to use unlabelled", "train on fewer images (--train-size)"
            )
        return rest
    folder = resolve_source(choice)  # the roots rule, and a zip unpacked safely
    warnings: list[str] = []
    paths = unlabelled_images(folder, warnings)
    if not paths:
        raise DatasetError(folder, "holds no image files", "give a folder or .zip of images (png, jpg, …)")
    check_image_count(folder, len(paths))
    return paths


def decode_unlabelled(paths: list[Path], size: tuple[int, int], fit: str = SQUASH, threads: int = 4) -> torch.Tensor:
    """The images decoded straight to size=(H, W), squashed or covering it (framing.py): uint8 (N, 3, H, W)."""
    height, width = size
    check_decoded_memory(paths[0].parent if paths else Path("."), "unlabelled", len(paths), size)
    images = torch.empty((len(paths), 3, height, width), dtype=torch.uint8)

    def fill(index: int) -> None:
        resized, (top, left) = cover_box(image_size(paths[index]), size) if fit == COVER else ((width, height), (0, 0))
        picture = np.array(read_image(paths[index], resized).convert("RGB"))  # PIL sizes are (W, H)
        images[index] = torch.from_numpy(picture[top : top + height, left : left + width]).permute(2, 0, 1)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(len(paths))))
    return images
