"""The four strategies: which parts of the network start from where, and which parts learn.

Every strategy minimises 1/N Σ L(y_i, f_w(x_i)) + λ R(w), with R = l2 (towards zero) or
l2sp (towards the transferred starting weights w0; Li, Grandvalet & Davoine, ICML 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .config import TrainConfig
from .errors import RunError
from .models import SegmentationModel, build, count_parameters


@dataclass(frozen=True)
class StrategyInfo:
    """What a strategy is, as data: where each part starts, what learns, and how the pages show it.
    Training, planning and the pages read these fields; none of them names a strategy."""

    name: str
    title: str
    label: str  # short, for legends and cards
    colour: str
    explanation: str  # two lines for a student
    lesson: str  # when it pays off, one line
    encoder_start: str  # "random" | "ImageNet" | "source run"
    frozen_encoder_levels: int | str = 0  # 0: all learn; "all": frozen; N: the first N feature levels frozen
    frozen_warmup: bool = False  # may train a few epochs with the encoder frozen first (freeze_epochs)
    in_train_all: bool = True  # part of "Train all strategies"
    # training images per second on the reference 2-core CPU at 160×160 with the default backbone, whole run
    # included (evaluation, feature cache): bench/results/classroom.txt. Estimates start here, then learn this
    # machine's own speed from its finished runs (segcore/estimate.py).
    reference_images_per_s: float = 20.0

    @property
    def pretrained_encoder(self) -> bool:
        return self.encoder_start == "ImageNet"

    @property
    def needs_source_run(self) -> bool:
        return self.encoder_start == "source run"

    @property
    def transfers_encoder(self) -> bool:
        return self.encoder_start != "random"

    @property
    def encoder_learns(self) -> bool:
        return self.frozen_encoder_levels != "all"

    @property
    def caches_features(self) -> bool:
        """A fully frozen encoder gives the same features every epoch, so they are computed once."""
        return self.frozen_encoder_levels == "all"

    @property
    def tunes_encoder_rate(self) -> bool:
        """A transferred encoder that learns is adjusted at lr × encoder_lr_factor rather than overwritten."""
        return self.transfers_encoder and self.encoder_learns

    def part_roles(self) -> list[tuple[str, str, str]]:
        """(part, where it starts from, how it learns) for encoder, decoder and head: the picture of a strategy."""
        if self.frozen_encoder_levels == "all":
            encoder_learns = "frozen"
        elif self.frozen_encoder_levels:
            encoder_learns = f"first {self.frozen_encoder_levels} levels frozen, later ones learn"
        else:
            encoder_learns = "learns"
        from_source = self.needs_source_run
        return [
            ("encoder", self.encoder_start, encoder_learns),
            ("decoder", "source run" if from_source else "random", "learns"),
            ("head", "random (new classes)" if from_source else "random", "learns"),
        ]


STRATEGIES = {
    "scratch": StrategyInfo(
        "scratch",
        "From scratch (baseline)",
        "scratch",
        "#64748b",
        "The same network with random weights; everything is learnt from your images alone.\n"
        "The baseline that shows what transfer buys.",
        "lots of data, or data unlike anything seen before",
        encoder_start="random",
        reference_images_per_s=20.1,
    ),
    "parameter": StrategyInfo(
        "parameter",
        "Parameter transfer (fine-tune)",
        "parameter transfer",
        "#2563eb",
        "Start the encoder from ImageNet weights, then fine-tune every parameter on your data\n"
        "(the encoder at a smaller learning rate, so it is adjusted rather than overwritten).",
        "moderate data, photos like ImageNet's",
        encoder_start="ImageNet",
        frozen_warmup=True,
        reference_images_per_s=20.4,
    ),
    "feature": StrategyInfo(
        "feature",
        "Feature transfer (frozen encoder)",
        "feature transfer",
        "#16a34a",
        "Use the ImageNet encoder as a fixed feature extractor: it never changes; only the decoder\n"
        "and head learn. Fast, since the features of each image are computed once and reused.",
        "very little data, a CPU, or a quick first result",
        encoder_start="ImageNet",
        frozen_encoder_levels="all",
        reference_images_per_s=59.0,
    ),
    "structure": StrategyInfo(
        "structure",
        "Structure transfer (whole network)",
        "structure transfer",
        "#d97706",
        "Carry over a whole segmentation network (encoder + decoder) trained on another segmentation\n"
        "task; only the final classifier is remade for your classes; then fine-tune everything.",
        "a related segmentation task was already solved",
        encoder_start="source run",
        reference_images_per_s=21.0,
    ),
    "partial": StrategyInfo(
        "partial",
        "Partial fine-tune (late stages)",
        "partial fine-tune",
        "#9333ea",
        "Start from ImageNet, keep the early encoder stages (edges, textures) frozen, and fine-tune only\n"
        "the late stages with the decoder and head: general features stay, task-specific ones adapt.",
        "little data that still differs from ImageNet in its objects, not its edges",
        encoder_start="ImageNet",
        frozen_encoder_levels=4,
        in_train_all=False,
        reference_images_per_s=24.0,
    ),
}


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
