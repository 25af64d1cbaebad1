"""A strategy made real: the network it starts from (ImageNet encoder, random, or a source run's whole network),
which parts are frozen, the parameter groups and their learning rates, and the regulariser R(w)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..base.errors import RunError
from ..models import SegmentationModel, build, count_parameters
from ..models.checkpoints import load_checkpoint
from ..runs.run import Run
from ..settings.config import TrainConfig


@dataclass
class PreparedModel:
    model: SegmentationModel
    param_groups: list[dict]
    reference: dict[str, torch.Tensor] = field(default_factory=dict)  # w0 of transferred, trainable params
    origin: str = ""
    notes: list[str] = field(default_factory=list)


def _load_source(source_run: str | Path, backbone: str, num_classes: int) -> tuple[SegmentationModel, str]:
    state, meta = load_checkpoint(Run(Path(source_run)).best_stem)
    if meta["backbone"] != backbone:
        raise RunError(
            f"the source run {Path(source_run).name} was trained with backbone '{meta['backbone']}', "
            f"but this run asks for '{backbone}': structure transfer needs the same backbone — pick that backbone "
            "or another source run"
        )
    model = SegmentationModel(backbone, meta["num_classes"], tuple(meta["decoder_channels"]))
    model.load_state_dict(state)
    model.replace_head(num_classes)
    classes = ", ".join(meta.get("classes", []))
    return (
        model,
        f"source run {Path(source_run).name} ({meta['num_classes']} classes: {classes}); new {num_classes}-class head",
    )


def prepare(config: TrainConfig, num_classes: int) -> PreparedModel:
    """The network a strategy starts from, its parameter groups (encoder at lr × factor when transferred)
    and, under L2-SP, the starting weights w0 of the transferred parameters that learn."""
    info = config.strategy_info
    notes: list[str] = []
    if info.needs_source_run:
        model, origin = _load_source(config.source_run, config.backbone, num_classes)
        transferred = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    else:
        model, origin = build(
            config.backbone,
            num_classes,
            pretrained=info.pretrained_encoder,
            weights_file=config.weights_file,
            decoder_channels=tuple(config.decoder_channels),
        )
        transferred = list(model.encoder.parameters()) if info.transfers_encoder else []
    if info.frozen_encoder_levels == "all":
        model.freeze_encoder(config.encoder_bn_mode())
    elif info.transfers_encoder:
        # transferred encoders adapt their BatchNorm statistics as train_bn says (random ones must learn theirs)
        model.set_encoder_bn_training(config.encoder_bn_mode())
        if info.frozen_encoder_levels:
            frozen = model.freeze_encoder_levels(info.frozen_encoder_levels)
            notes.append(f"encoder: {frozen} frozen, the later stages learn")

    encoder_lr = config.lr * config.encoder_lr_factor if info.tunes_encoder_rate else config.lr
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    other_params = [p for name, p in model.named_parameters() if not name.startswith("encoder.") and p.requires_grad]
    groups = []
    if encoder_params:
        groups.append({"name": "encoder", "params": encoder_params, "lr": encoder_lr})
    groups.append({"name": "decoder+head", "params": other_params, "lr": config.lr})

    reference: dict[str, torch.Tensor] = {}
    if config.regularizer == "l2sp":
        trainable_transferred = {id(p) for p in transferred if p.requires_grad}
        reference = {name: p.detach().clone() for name, p in model.named_parameters() if id(p) in trainable_transferred}
        if not reference:
            notes.append("l2sp: no trainable transferred weights here, so R(w) is plain L2 on every weight")
    for group in groups:
        group["initial_lr"] = group["lr"]
    return PreparedModel(model, groups, reference, origin, notes)


def trainable_parameters(config: TrainConfig, num_classes: int) -> tuple[int, int]:
    """(trainable, total) parameters of a strategy's network, counted without weights (meta device)."""
    with torch.device("meta"):
        model = SegmentationModel(config.backbone, num_classes, tuple(config.decoder_channels))
    info = config.strategy_info
    if info.frozen_encoder_levels == "all":
        model.freeze_encoder()
    elif info.frozen_encoder_levels:
        model.freeze_encoder_levels(info.frozen_encoder_levels)
    return count_parameters(model, trainable_only=True), count_parameters(model)


class Regularizer:
    """The λR(w) term as a decoupled step after each optimiser step (like AdamW's weight decay):
    w ← w − lr·λ·(w − w0) for transferred weights under L2-SP, w ← w − lr·λ·w for all others."""

    def __init__(
        self, model: SegmentationModel, groups: list[dict], reference: dict[str, torch.Tensor], weight_decay: float
    ) -> None:
        self.weight_decay = weight_decay
        # built after the model is on its device, so anchors live beside their weights
        anchors = {id(p): reference[n].to(p.device) if n in reference else None for n, p in model.named_parameters()}
        self.entries = [(group, p, anchors[id(p)]) for group in groups for p in group["params"]]

    @torch.no_grad()
    def step(self) -> None:
        if self.weight_decay <= 0:
            return
        for group, parameter, anchor in self.entries:
            if not parameter.requires_grad:  # frozen for now (warm-up epochs): leave it alone
                continue
            rate = group["lr"] * self.weight_decay
            if anchor is None:
                parameter.mul_(1 - rate)
            else:
                parameter.sub_(rate * (parameter - anchor))

    def distance_to_reference(self) -> float:
        """‖w − w0‖ over the transferred weights (0 when there are none)."""
        total = sum(float((p.detach() - a).pow(2).sum()) for _, p, a in self.entries if a is not None)
        return total**0.5
