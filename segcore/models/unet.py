"""The segmentation network in three named parts: timm encoder → U-Net decoder → 1×1 classifier head."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_DECODER_CHANNELS = (128, 64, 32, 16)


class DecoderBlock(nn.Module):
    """Upsample to the skip's size, concatenate it, one 3×3 conv-BN-ReLU: lean enough for CPU epochs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Walks the encoder's pyramid from coarsest to finest, one block per skip connection."""

    def __init__(
        self, encoder_channels: list[int], decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    ) -> None:
        super().__init__()
        skips = list(reversed(encoder_channels[:-1]))
        channels = list(decoder_channels)[: len(skips)]
        channels += [channels[-1]] * (len(skips) - len(channels))
        inputs = [encoder_channels[-1], *channels[:-1]]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(inputs, skips, channels))
        self.out_channels = channels[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            x = block(x, skip)
        return x


class SegmentationModel(nn.Module):
    def __init__(
        self, backbone: str, num_classes: int, decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoder = timm.create_model(backbone, features_only=True, pretrained=False)
        self.decoder = UNetDecoder(self.encoder.feature_info.channels(), decoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=1)
        self.encoder_frozen = False
        # which encoder BatchNorm layers update their running statistics in training mode:
        # "all", "learning" (those whose weights learn: frozen means frozen) or "none"
        self.encoder_bn_mode = "all"

    @property
    def num_classes(self) -> int:
        return self.head.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoder(x), x.shape[-2:])

    def decode(self, features: list[torch.Tensor], size) -> torch.Tensor:
        logits = self.head(self.decoder(features))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def freeze_encoder(self, bn_mode: str = "none") -> None:
        """No gradients for the encoder; its BatchNorm statistics stay fixed too unless bn_mode is "all"."""
        self.encoder_frozen, self.encoder_bn_mode = True, bn_mode
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.train(self.training)

    def freeze_encoder_levels(self, levels: int) -> str:
        """Freeze the encoder up to and including the module that yields feature level `levels` (1-based):
        early stages (edges, textures) stay as transferred while later ones learn. Returns what was frozen."""
        modules = self.encoder.feature_info.module_name()
        last_frozen = modules[min(levels, len(modules)) - 1]
        frozen, passed_cut = [], False
        for name, parameter in self.encoder.named_parameters():
            inside_cut = name.startswith(last_frozen + ".")
            if passed_cut and not inside_cut:
                break
            passed_cut = passed_cut or inside_cut
            parameter.requires_grad_(False)
            frozen.append(name)
        return f"{len(frozen)} tensors up to {last_frozen}"

    def unfreeze_encoder(self) -> None:
        """Gradients flow into the encoder again; its BatchNorm statistics keep their setting."""
        self.encoder_frozen = False
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(True)
        self.train(self.training)

    def set_encoder_bn_training(self, bn_mode: str) -> None:
        """Which encoder BatchNorm layers update their running statistics in training mode ("all", "learning",
        "none"). Kept fixed, pretrained statistics survive small batches of unfamiliar images."""
        self.encoder_bn_mode = bn_mode
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode or self.encoder_bn_mode == "all":
            return self
        if self.encoder_frozen:  # "none" or "learning": nothing of it learns, so nothing of it drifts either
            self.encoder.eval()
            return self
        for module in self.encoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                learns = not self.encoder_frozen and any(p.requires_grad for p in module.parameters(recurse=False))
                if self.encoder_bn_mode == "none" or not learns:
                    module.eval()
        return self

    def replace_head(self, num_classes: int) -> None:
        """New classifier for another class count: the only part structure transfer remakes."""
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, kernel_size=1).to(self.head.weight.device)

    def decoder_channels(self) -> list[int]:
        return [block.conv[0].out_channels for block in self.decoder.blocks]

    def data_config(self) -> dict:
        config = timm.data.resolve_data_config(model=self.encoder)
        return {"mean": list(config["mean"]), "std": list(config["std"])}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
