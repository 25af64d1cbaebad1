"""Pure drawing helpers on arrays: class colours, overlays, error painting. No model, no torch.

Both the data previews and the predictor draw with these, so the data side never imports the network side.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

IGNORED_INDEX = 255  # class maps mark ignored pixels with 255 (segcore.data.masks.IGNORE)
# colours wrong pixels may be painted in: the one farthest from every class colour of the run is used, so errors stand
# out on a projector whatever the palette (red on an orange class was hard to tell apart)
ERROR_COLOURS = {
    "red": (255, 0, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "yellow": (255, 255, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}

BACKGROUND_NAMES = {"background", "bg", "_background_", "void", "unlabelled", "unlabeled"}


def colorize(class_map: np.ndarray, colours: list) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 colours; ignored pixels (255) stay black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colours)] = np.asarray(colours, dtype=np.uint8)
    return palette[class_map]


def unpainted_classes(class_names: list[str]) -> tuple[int, ...]:
    """Classes left unpainted in overlays, so objects stand out: a class named 'background' (if first)."""
    return (0,) if class_names and class_names[0].lower() in BACKGROUND_NAMES else ()


def error_colour(colours: list) -> tuple[str, tuple[int, int, int]]:
    """(name, RGB) of the error colour farthest from every class colour (the smallest distance is largest)."""
    palette = np.asarray(colours, dtype=np.float32).reshape(-1, 3)

    def nearest(rgb) -> float:
        return float(np.min(np.linalg.norm(palette - np.asarray(rgb, dtype=np.float32), axis=1))) if len(palette) else 0

    name = max(ERROR_COLOURS, key=lambda n: nearest(ERROR_COLOURS[n]))
    return name, ERROR_COLOURS[name]


def paint_errors(picture: np.ndarray, errors: np.ndarray, colour: tuple = ERROR_COLOURS["red"]) -> np.ndarray:
    """Paint the pixels marked in `errors` in `colour` (float picture, changed in place and returned)."""
    picture[errors] = picture[errors] * 0.15 + np.asarray(colour, dtype=np.float32) * 0.85
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
    wrong pixels in the error colour that stands out most from these class colours (error_colour)."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    colour = colorize(class_map, colours).astype(np.float32)
    labelled = class_map != IGNORED_INDEX
    for index in unpainted:
        labelled &= class_map != index
    labelled = labelled[..., None]
    blended = np.where(labelled, base * (1 - alpha) + colour * alpha, base)
    if errors is not None:
        paint_errors(blended, errors, error_colour(colours)[1])
    return blended.clip(0, 255).astype(np.uint8)
