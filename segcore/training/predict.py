"""Segmenting new images with a finished run: class maps and coloured overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# re-exported: pages and the CLI import the drawing helpers from here
from ..base.drawing import BACKGROUND_NAMES, colorize, overlay, unpainted_classes  # noqa: F401
from ..base.errors import RunError
from ..data.classes import default_palette
from ..data.framing import COVER, SQUASH, cover_box, framed_size
from ..data.transforms import Normalizer
from ..models.checkpoints import build_from_checkpoint
from ..models.device import pick_device
from ..runs.files import BEST_WEIGHTS
from ..runs.records import best_meta_problem, colours_problem
from ..runs.run import Run
from .windows import bounded_logits


def native_class_map(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One image's logits (C, h, w) → its class map (H, W) at size=(H, W): logits upsampled bilinearly, then
    argmax (never argmax first: upsampling a class map turns thin structures into blocks). Prediction for
    export and overlays and `evaluate_run(native=True)` both go through here, so they cannot disagree."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
    return logits.argmax(0).to(torch.uint8)


class Predictor:
    """A run's best model, ready to segment PIL images at the size it was trained for."""

    def __init__(self, run: Run | str | Path, device: str = "auto") -> None:
        run = run if isinstance(run, Run) else Run.from_path(run)
        self.run = run
        self.device = pick_device(device)
        meta, problem = run.best_meta()
        structural = problem or best_meta_problem({k: v for k, v in meta.items() if k not in ("classes", "colours")})
        if structural or not run.has_checkpoint() and (run.checkpoint_problem() or "").startswith(BEST_WEIGHTS):
            raise RunError(
                f"run {run.run_id}: its best checkpoint cannot be used ({structural or run.checkpoint_problem()})"
            )
        self.model, self.meta = build_from_checkpoint(run.best_stem)
        self.model.to(self.device)
        self.normalize = Normalizer(self.meta["mean"], self.meta["std"], self.device)
        self.size = (self.meta["height"], self.meta["width"])
        # resize 'crop' runs see images with their aspect kept (data/framing.py): each image at its own covering size
        self.fit = COVER if self.meta.get("resize") == "crop" else SQUASH
        count = self.meta["num_classes"]
        # names and colours only draw: damaged ones are replaced (and the run says what is wrong), the model still works
        classes = self.meta.get("classes")
        self.classes: list[str] = (
            classes
            if best_meta_problem({"num_classes": count, "classes": classes}) is None
            else [f"class {i}" for i in range(count)]
        )
        colours = self.meta.get("colours")
        usable = colours_problem(colours, count) is None
        self.colours: list = [tuple(c) for c in colours] if usable else default_palette(count)

    def framed(self, data) -> tuple[int, int]:
        """The size a dataset's split is scored at with this run: its training size, or for resize 'crop' that size
        grown to the dataset's typical aspect (as training stored it)."""
        return framed_size(self.size, data.typical_size()) if self.fit == COVER else self.size

    def input_size(self, image: Image.Image) -> tuple[int, int]:
        """(W, H) an image is resized to before the network: the training size, or covering it, aspect kept."""
        if self.fit == COVER:
            return cover_box((image.width, image.height), self.size)[0]
        return (self.size[1], self.size[0])

    def to_tensor(self, images: list[Image.Image]) -> torch.Tensor:
        """Images of one input size (all of them, squashed; one at a time for resize 'crop') as a batch."""
        arrays = [np.asarray(im.convert("RGB").resize(self.input_size(im), Image.BILINEAR)) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)

    @torch.no_grad()
    def logits(self, images: list[Image.Image]) -> torch.Tensor | list[torch.Tensor]:
        """One batch of logits; for resize 'crop', a list (each image has its own size)."""
        if self.fit == COVER:
            return [
                bounded_logits(self.model, self.normalize(self.to_tensor([image])), self.size)[0] for image in images
            ]
        return self.model(self.normalize(self.to_tensor(images)))

    @torch.no_grad()
    def predict(self, image: Image.Image | list[Image.Image], native: bool = True) -> np.ndarray | list[np.ndarray]:
        """Class maps at each input image's own size (native, the default and what export and overlays use),
        or at the size the network saw it (native=False: the grid the training-size mIoU is scored on)."""
        single = isinstance(image, Image.Image)
        images = [image] if single else list(image)
        logits = self.logits(images)
        maps = [
            native_class_map(logit, (im.height, im.width) if native else tuple(logit.shape[-2:])).cpu().numpy()
            for im, logit in zip(images, logits)
        ]
        return maps[0] if single else maps

    def overlay(
        self,
        image: Image.Image,
        alpha: float = 0.5,
        class_map: np.ndarray | None = None,
        errors: np.ndarray | None = None,
    ) -> np.ndarray:
        class_map = self.predict(image) if class_map is None else class_map
        return overlay(image, class_map, self.colours, alpha, errors, unpainted_classes(self.classes))
