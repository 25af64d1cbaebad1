"""Segmenting new images with a finished run: class maps and coloured overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checkpoints import build_from_checkpoint
from .data.transforms import Normalizer
from .device import pick_device
from .runs import Run


def colorize(class_map: np.ndarray, colours: list) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8 colours; ignored pixels (255) stay black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colours)] = np.asarray(colours, dtype=np.uint8)
    return palette[class_map]


BACKGROUND_NAMES = {"background", "bg", "_background_", "void", "unlabelled", "unlabeled"}


def unpainted_classes(class_names: list[str]) -> tuple[int, ...]:
    """Classes left unpainted in overlays, so objects stand out: a class named 'background' (if first)."""
    return (0,) if class_names and class_names[0].lower() in BACKGROUND_NAMES else ()


def overlay(image: Image.Image | np.ndarray, class_map: np.ndarray, colours: list, alpha: float = 0.5,
            errors: np.ndarray | None = None, unpainted: tuple[int, ...] = ()) -> np.ndarray:
    """Blend class colours over the image (ignored and `unpainted` classes stay clear); optionally paint
    wrong pixels red."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    colour = colorize(class_map, colours).astype(np.float32)
    labelled = (class_map != 255)
    for index in unpainted:
        labelled &= class_map != index
    labelled = labelled[..., None]
    blended = np.where(labelled, base * (1 - alpha) + colour * alpha, base)
    if errors is not None:
        blended[errors] = blended[errors] * 0.3 + np.array([255, 0, 0], dtype=np.float32) * 0.7
    return blended.clip(0, 255).astype(np.uint8)


class Predictor:
    """A run's best model, ready to segment PIL images at the size it was trained for."""

    def __init__(self, run: Run | str | Path, device: str = "auto") -> None:
        run = run if isinstance(run, Run) else Run.from_path(run)
        self.run = run
        self.device = pick_device(device)
        self.model, self.meta = build_from_checkpoint(run.path / "best")
        self.model.to(self.device)
        self.normalize = Normalizer(self.meta["mean"], self.meta["std"], self.device)
        self.size = (self.meta["height"], self.meta["width"])
        self.classes: list[str] = self.meta["classes"]
        self.colours: list = [tuple(c) for c in self.meta["colours"]]

    def to_tensor(self, images: list[Image.Image]) -> torch.Tensor:
        height, width = self.size
        arrays = [np.asarray(im.convert("RGB").resize((width, height), Image.BILINEAR)) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)

    @torch.no_grad()
    def logits(self, images: list[Image.Image]) -> torch.Tensor:
        return self.model(self.normalize(self.to_tensor(images)))

    @torch.no_grad()
    def predict(self, image: Image.Image | list[Image.Image]) -> np.ndarray | list[np.ndarray]:
        """Class maps at each input image's own size."""
        single = isinstance(image, Image.Image)
        images = [image] if single else list(image)
        logits = self.logits(images)
        maps = []
        for im, logit in zip(images, logits):
            resized = F.interpolate(logit[None], size=(im.height, im.width), mode="bilinear", align_corners=False)
            maps.append(resized[0].argmax(0).to(torch.uint8).cpu().numpy())
        return maps[0] if single else maps

    def overlay(self, image: Image.Image, alpha: float = 0.5, class_map: np.ndarray | None = None,
                errors: np.ndarray | None = None) -> np.ndarray:
        class_map = self.predict(image) if class_map is None else class_map
        return overlay(image, class_map, self.colours, alpha, errors, unpainted_classes(self.classes))
