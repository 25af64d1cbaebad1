"""Backbones offered for picking: a CPU-friendly shortlist, each checked to build with features_only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import timm
import torch

from .weights import weights_source

SHORTLIST = (
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    "mobilenetv3_small_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "resnet18",
    "resnet34",
    "resnet50",
    "convnext_atto",
    "regnety_008",
)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    encoder_params: int
    feature_channels: list[int]
    feature_strides: list[int]
    weights: str  # "bundled offline" / "downloadable (timm hub)" / "unavailable"
    usable: bool
    problem: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=None)
def describe_backbone(name: str) -> BackboneInfo:
    try:
        with torch.device("meta"):  # shapes and counts without allocating weights
            encoder = timm.create_model(name, features_only=True, pretrained=False)
        return BackboneInfo(
            name,
            sum(p.numel() for p in encoder.parameters()),
            encoder.feature_info.channels(),
            encoder.feature_info.reduction(),
            weights_source(name),
            True,
        )
    except Exception as exc:  # e.g. a model without features_only support
        return BackboneInfo(name, 0, [], [], "unavailable", False, f"{type(exc).__name__}: {exc}")


def list_backbones(names=SHORTLIST) -> list[BackboneInfo]:
    return [describe_backbone(name) for name in names]


def search_timm(pattern: str, limit: int = 50) -> list[str]:
    """Any timm model name matching a wildcard pattern (e.g. '*mobilenet*')."""
    return timm.list_models(pattern)[:limit]


@lru_cache(maxsize=256)
def backbone_problem(name: str) -> str | None:
    """Why `name` cannot be a backbone here (no such timm model, or one without a feature pyramid); None when it
    can. Checked where a run or a lesson is made, so a typo never waits in the queue to fail."""
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:8]}*")[:5] if name else []
        hint = f" (close: {', '.join(close)})" if close else ""
        return f"there is no timm model of that name{hint}: see 'python -m segcore backbones'"
    info = describe_backbone(name)
    return None if info.usable else f"it cannot serve as an encoder ({info.problem[:160]})"


@lru_cache(maxsize=256)
def size_problem(name: str, height: int, width: int) -> str | None:
    """Why the encoder cannot take images of height × width (a vision transformer built for 224 × 224, say), with
    the sizes it can take; None when it can. A forward pass on the meta device: shapes only, no compute."""
    try:
        with torch.device("meta"):
            encoder = timm.create_model(name, features_only=True, pretrained=False)
            encoder.eval()(torch.empty(1, 3, height, width))
    except Exception as exc:  # timm asserts, or a reshape fails, deep inside the model
        fixed = _fixed_input_size(locals().get("encoder"))
        sizes = f"it takes {fixed[0]}×{fixed[1]} images" if fixed else "pick another size or another backbone"
        return f"{name} cannot take {height}×{width} images ({type(exc).__name__}: {str(exc)[:120]}): {sizes}"
    return None


def _fixed_input_size(encoder) -> tuple[int, int] | None:
    """The one input size a patch-embedding model was built for (timm keeps it on patch_embed.img_size)."""
    for holder in (encoder, getattr(encoder, "model", None)):
        size = getattr(getattr(holder, "patch_embed", None), "img_size", None)
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return int(size[0]), int(size[1])
    return None
