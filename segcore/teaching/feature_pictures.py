"""Why transfer works, made visible: encoder feature maps projected to colour by PCA."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..data.transforms import Normalizer
from ..models import SegmentationModel, build
from ..settings.config import TrainConfig


@torch.no_grad()
def feature_pca_image(
    model: SegmentationModel, image: Image.Image, size: tuple[int, int], level: int = 2
) -> np.ndarray:
    """The first three principal components of one encoder level's features, as an RGB image at `size`.

    Pixels whose features are alike get alike colours: pretrained features already group object parts."""
    height, width = size
    array = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))
    x = torch.from_numpy(array.copy()).permute(2, 0, 1)[None]
    normalize = Normalizer(**model.data_config())
    model.eval()
    features = model.encoder(normalize(x))
    feature = features[min(level, len(features) - 1)][0]  # (C, h, w)
    channels, h, w = feature.shape
    flat = feature.reshape(channels, -1).T.double()
    flat = flat - flat.mean(0, keepdim=True)
    _, _, components = torch.linalg.svd(flat, full_matrices=False)
    projected = flat @ components[:3].T  # (h*w, 3)
    low, high = projected.quantile(0.02, dim=0), projected.quantile(0.98, dim=0)
    scaled = ((projected - low) / (high - low).clamp(min=1e-8)).clamp(0, 1)
    rgb = (scaled.reshape(h, w, 3).numpy() * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


FEATURE_VIEW_SIZE = (TrainConfig.height, TrainConfig.width)  # the training default: what runs see


def encoders_to_compare(
    backbone: str = TrainConfig.backbone, run_model: SegmentationModel | None = None, seed: int = 0
) -> dict[str, SegmentationModel]:
    """ImageNet-pretrained, random, and (if given) a fine-tuned run's network, for side-by-side feature views.
    The backbone is the run's when a run is given, so all three columns show the same architecture."""
    if run_model is not None:
        backbone = run_model.backbone
    pretrained, _ = build(backbone, 2, pretrained=True)
    torch.manual_seed(seed)
    random_init, _ = build(backbone, 2, pretrained=False)
    models = {"ImageNet-pretrained encoder": pretrained, "randomly initialised encoder": random_init}
    if run_model is not None:
        models["fine-tuned encoder (your run)"] = run_model
    return models
