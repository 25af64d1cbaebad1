"""One door to the networks: build(backbone, num_classes, pretrained=...)."""

from __future__ import annotations

from .backbones import SHORTLIST, BackboneInfo, describe_backbone, list_backbones
from .unet import DEFAULT_DECODER_CHANNELS, SegmentationModel, count_parameters
from .weights import load_encoder_weights, pretrained_state_dict, weights_source


def build(
    backbone: str,
    num_classes: int,
    pretrained: bool = False,
    weights_file=None,
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
) -> tuple[SegmentationModel, str]:
    """A segmentation network and a line saying where its encoder weights came from."""
    model = SegmentationModel(backbone, num_classes, tuple(decoder_channels))
    origin = load_encoder_weights(model.encoder, backbone, weights_file) if pretrained else "random initialisation"
    return model, origin


__all__ = [
    "SHORTLIST",
    "BackboneInfo",
    "DEFAULT_DECODER_CHANNELS",
    "SegmentationModel",
    "build",
    "count_parameters",
    "describe_backbone",
    "list_backbones",
    "load_encoder_weights",
    "pretrained_state_dict",
    "weights_source",
]
