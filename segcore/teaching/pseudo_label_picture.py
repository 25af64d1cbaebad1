"""What semi-supervised training learns from an unlabelled image, made visible from a student's own run: the image,
the run's pseudo-label (its most likely class per pixel) and the pixels confident enough to count as targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..base.drawing import colorize
from ..data.dataset import load_dataset
from ..data.files import read_image
from ..data.unlabelled import unlabelled_paths
from ..runs.run import Run
from ..training.predict import Predictor
from ..training.semi_supervised import pseudo_labels

NOT_CONFIDENT = (40, 40, 40)  # the pixels that teach nothing: dark grey


@dataclass
class PseudoLabelPicture:
    image: np.ndarray  # (H, W, 3) at the run's training size
    pseudo_label: np.ndarray  # (H, W, 3): the most likely class's colour at every pixel
    confident: np.ndarray  # (H, W, 3): the pseudo-label where it counts, NOT_CONFIDENT elsewhere
    confident_share: float
    threshold: float
    name: str


def unlabelled_images_of(run: Run) -> list[Path]:
    """The unlabelled images a semi-supervised run learnt from (empty for a supervised run)."""
    config = run.train_config
    if not config.unlabelled:
        return []
    return unlabelled_paths(load_dataset(config.data), config.unlabelled, config.train_size, config.seed)


@torch.no_grad()
def pseudo_label_picture(predictor: Predictor, path: Path, threshold: float) -> PseudoLabelPicture:
    height, width = predictor.size
    image = read_image(path, (width, height)).convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    labels, confident = pseudo_labels(torch.stack(list(predictor.logits([image]))), threshold)  # crop runs: a list
    labels, confident = labels[0].cpu().numpy(), confident[0].cpu().numpy()
    coloured = colorize(labels, predictor.colours)
    shown = np.where(confident[..., None], coloured, np.array(NOT_CONFIDENT, dtype=np.uint8))
    return PseudoLabelPicture(
        np.asarray(image), coloured, shown.astype(np.uint8), float(confident.mean()), threshold, path.name
    )
