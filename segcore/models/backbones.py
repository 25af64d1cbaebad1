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
