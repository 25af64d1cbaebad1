"""Everything needed to reproduce a run, as one dataclass that round-trips through config.json."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


@dataclass
class TrainConfig:
    data: str = "builtin:shapes"
    backbone: str = "tf_efficientnet_lite0"
    strategy: str = "feature"
    epochs: int = 6
    min_steps: int = 100  # small training sets get more epochs, so that they see at least this many optimiser steps
    batch_size: int = 8
    lr: float = 3e-3  # decoder and head; the encoder gets lr × encoder_lr_factor (CamVid, membrane, shapes: see bench)
    encoder_lr_factor: float = 0.1
    freeze_epochs: int = 0  # parameter transfer: epochs with the encoder frozen before it is unfrozen
    train_bn: bool = False  # transfer strategies: let the pretrained encoder's BatchNorm statistics adapt
    regularizer: str = "l2"
    weight_decay: float = 1e-4  # λ in the objective
    height: int = 160
    width: int = 160
    seed: int = 0
    ignore_index: int | None = 255
    train_size: float | None = None  # N images, or a fraction (≤ 1) of the training split
    val_fraction: float = 0.2
    augment: str = "auto"  # auto: 'flip' — short runs learn faster without heavy augmentation, and the
    # feature-transfer cache stays valid; 'full' adds scale-crop and colour jitter
    dice_weight: float = 0.0
    class_weights: str = "sqrt"  # balanced: median-frequency weights in the cross-entropy; sqrt: their square root
    # (CamVid 10 %: rare classes get predicted at all; on the binary membrane set full balancing costs 3 points, sqrt none)
    warmup_epochs: float = 0.5
    device: str = "auto"
    threads: int = 0  # 0: one per core
    weights_file: str | None = None
    source_run: str | None = None
    run_name: str | None = None
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16)  # U-Net decoder widths, coarsest block first
    max_steps: int = 0  # stop after this many steps in total (0: no limit); for smoke tests and demos

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    def steps_per_epoch(self, train_images: int) -> int:
        return max(1, math.ceil(train_images / self.batch_size))

    def planned_epochs(self, train_images: int) -> int:
        """The epoch budget, raised for small training sets so they still get `min_steps` optimiser steps:
        37 images at batch 8 make 5 steps an epoch, and 6 epochs of that leave every strategy untrained."""
        return max(self.epochs, math.ceil(self.min_steps / self.steps_per_epoch(train_images)))

    def resolved_augment(self) -> str:
        return "flip" if self.augment == "auto" else self.augment

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        if "decoder_channels" in values:  # JSON gives a list
            values["decoder_channels"] = tuple(values["decoder_channels"])
        return cls(**values)
