"""Pure drawing helpers on arrays: class colours, overlays, error painting. No model, no torch.

Both the data previews and the predictor draw with these, so the data side never imports the network side.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

IGNORED_INDEX = 255  # class maps mark ignored pixels with 255 (segcore.data.masks.IGNORE)
ERROR_RED = np.array([255, 0, 0], dtype=np.float32)

BACKGROUND_NAMES = {"background", "bg", "_background_", "void", "unlabelled", "unlabeled"}


def colorize(class_map: np.ndarray, colours: list) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 colours; ignored pixels (255) stay black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colours)] = np.asarray(colours, dtype=np.uint8)
    return palette[class_map]


def unpainted_classes(class_names: list[str]) -> tuple[int, ...]:
    """Classes left unpainted in overlays, so objects stand out: a class named 'background' (if first)."""
    return (0,) if class_names and class_names[0].lower() in BACKGROUND_NAMES else ()


def paint_errors(picture: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Tint the pixels marked in `errors` red (float picture, changed in place and returned)."""
    picture[errors] = picture[errors] * 0.3 + ERROR_RED * 0.7
    return picture


def overlay(
    image: Image.Image | np.ndarray,
    class_map: np.ndarray,
    colours: list,
    alpha: float = 0.5,
    errors: np.ndarray | None = None,
    unpainted: tuple[int, ...] = (),
) -> np.ndarray:
    """Blend class colours over the image (ignored and `unpainted` classes stay clear); optionally paint
    wrong pixels red."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    colour = colorize(class_map, colours).astype(np.float32)
    labelled = class_map != IGNORED_INDEX
    for index in unpainted:
        labelled &= class_map != index
    labelled = labelled[..., None]
    blended = np.where(labelled, base * (1 - alpha) + colour * alpha, base)
    if errors is not None:
        paint_errors(blended, errors)
    return blended.clip(0, 255).astype(np.uint8)
