"""The four strategies: which parts of the network start from where, and which parts learn.

Every strategy minimises 1/N Σ L(y_i, f_w(x_i)) + λ R(w), with R = l2 (towards zero) or
l2sp (towards the transferred starting weights w0; Li, Grandvalet & Davoine, ICML 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .errors import RunError
from .models import DEFAULT_DECODER_CHANNELS, SegmentationModel, build


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    title: str
    explanation: str  # two lines for a student
    pretrained_encoder: bool
    encoder_learns: bool


STRATEGIES = {
    "scratch": StrategyInfo(
        "scratch", "From scratch (baseline)",
        "The same network with random weights; everything is learnt from your images alone.\n"
        "The baseline that shows what transfer buys.", False, True,
    ),
    "parameter": StrategyInfo(
        "parameter", "Parameter transfer (fine-tune)",
        "Start the encoder from ImageNet weights, then fine-tune every parameter on your data\n"
        "(the encoder at a smaller learning rate, so it is adjusted rather than overwritten).", True, True,
    ),
    "feature": StrategyInfo(
        "feature", "Feature transfer (frozen encoder)",
        "Use the ImageNet encoder as a fixed feature extractor: it never changes; only the decoder\n"
        "and head learn. Fast, since the features of each image are computed once and reused.", True, False,
    ),
    "structure": StrategyInfo(
        "structure", "Structure transfer (whole network)",
        "Carry over a whole segmentation network (encoder + decoder) trained on another segmentation\n"
        "task; only the final classifier is remade for your classes; then fine-tune everything.", False, True,
    ),
}
def part_roles(strategy: str) -> list[tuple[str, str, bool]]:
    """(part, where it starts from, whether it learns) for encoder, decoder and head: the picture of a strategy."""
    encoder_start = {"scratch": "random", "parameter": "ImageNet", "feature": "ImageNet", "structure": "source run"}
    decoder_start = "source run" if strategy == "structure" else "random"
    return [
        ("encoder", encoder_start[strategy], STRATEGIES[strategy].encoder_learns),
        ("decoder", decoder_start, True),
        ("head", "random (new classes)" if strategy == "structure" else "random", True),
    ]


REGULARIZERS = {
    "l2": "L2 towards zero: R(w) = ½‖w‖² (decoupled weight decay)",
    "l2sp": "L2-SP towards the starting point: R(w) = ½‖w − w₀‖² on transferred weights, ½‖w‖² on new ones",
}


@dataclass
class PreparedModel:
    model: SegmentationModel
    param_groups: list[dict]
    reference: dict[str, torch.Tensor] = field(default_factory=dict)  # w0 of transferred, trainable params
    origin: str = ""
    notes: list[str] = field(default_factory=list)


def _load_source(source_run: str | Path, backbone: str, num_classes: int) -> tuple[SegmentationModel, str]:
    state, meta = load_checkpoint(Path(source_run) / "best")
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
    return model, f"source run {Path(source_run).name} ({meta['num_classes']} classes: {classes}); new {num_classes}-class head"


def prepare(
    strategy: str,
    backbone: str,
    num_classes: int,
    *,
    encoder_lr_factor: float = 0.1,
    lr: float = 1e-3,
    regularizer: str = "l2",
    train_bn: bool = False,
    weights_file=None,
    source_run=None,
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER_CHANNELS,
) -> PreparedModel:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{strategy}': choose one of {sorted(STRATEGIES)}")
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer '{regularizer}': choose one of {sorted(REGULARIZERS)}")
    notes: list[str] = []
    if strategy == "structure":
        if not source_run:
            raise RunError("structure transfer needs a source run: train one on a source task first (e.g. builtin:shapes-source)")
        model, origin = _load_source(source_run, backbone, num_classes)
        transferred = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    else:
        model, origin = build(backbone, num_classes, pretrained=STRATEGIES[strategy].pretrained_encoder,
                              weights_file=weights_file, decoder_channels=decoder_channels)
        transferred = list(model.encoder.parameters()) if strategy != "scratch" else []
    if strategy == "feature":
        model.freeze_encoder(train_bn=train_bn)
    elif strategy != "scratch":
        # transferred encoders keep their BatchNorm statistics unless asked (random ones must learn theirs)
        model.set_encoder_bn_training(train_bn)

    encoder_lr = lr if strategy == "scratch" else lr * encoder_lr_factor
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    other_params = [p for name, p in model.named_parameters() if not name.startswith("encoder.") and p.requires_grad]
    groups = []
    if encoder_params:
        groups.append({"name": "encoder", "params": encoder_params, "lr": encoder_lr})
    groups.append({"name": "decoder+head", "params": other_params, "lr": lr})

    reference: dict[str, torch.Tensor] = {}
    if regularizer == "l2sp":
        trainable_transferred = {id(p) for p in transferred if p.requires_grad}
        reference = {name: p.detach().clone() for name, p in model.named_parameters() if id(p) in trainable_transferred}
        if not reference:
            notes.append("l2sp: no trainable transferred weights here, so R(w) is plain L2 on every weight")
    for group in groups:
        group["initial_lr"] = group["lr"]
    return PreparedModel(model, groups, reference, origin, notes)


class Regularizer:
    """The λR(w) term as a decoupled step after each optimiser step (like AdamW's weight decay):
    w ← w − lr·λ·(w − w0) for transferred weights under L2-SP, w ← w − lr·λ·w for all others."""

    def __init__(self, model: SegmentationModel, groups: list[dict], reference: dict[str, torch.Tensor], weight_decay: float) -> None:
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
