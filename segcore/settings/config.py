"""Everything needed to reproduce a run, as one dataclass that round-trips through config.json.

Each setting is declared once, here: its default, help text, label, allowed range or choices live in the
field's metadata. The CLI builds its `train` options from these fields, the Model page reads labels, help and
ranges from them, and `validate()` checks a config wherever a run is created (CLI, API, queue, pages).
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from ..base.errors import ConfigError
from ..data.framing import COVER, SQUASH
from ..data.roots import roots_problem


def setting(
    default: Any,
    help: str,
    *,
    label: str | None = None,
    low: float | None = None,
    high: float | None = None,
    choices: Callable[[], list[str]] | None = None,
    cli: str | None = "",
    check: Callable[[Any], str | None] | None = None,
    optional: bool = False,
    via: str | None = None,
) -> Field:
    """A TrainConfig field with what the CLI, the pages and validation need to know about it.

    low/high: inclusive range; choices: a function listing the allowed names (lazy: registries import torch);
    cli: the option name ('' derives --field-name; None keeps the setting off the command line);
    check: extra rule, returns what is wrong or None; optional: None is allowed;
    via: the command-line option that sets it when it has none of its own (height and width: --size)."""
    meta = {
        "help": help,
        "label": label,
        "low": low,
        "high": high,
        "choices": choices,
        "cli": cli,
        "check": check,
        "optional": optional,
        "via": via,
    }
    if isinstance(default, (list, tuple, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def _strategy_names() -> list[str]:
    from .strategies import STRATEGIES

    return list(STRATEGIES)


def _regularizer_names() -> list[str]:
    from .strategies import REGULARIZERS

    return list(REGULARIZERS)


def _augmentation_names() -> list[str]:
    from ..data.transforms import AUGMENTATIONS

    return ["auto", *AUGMENTATIONS]


def _class_weighting_names() -> list[str]:
    from ..models.losses import CLASS_WEIGHTINGS

    return list(CLASS_WEIGHTINGS)


def _bn_modes() -> list[str]:
    return ["auto", "on", "off"]


def _compile_modes() -> list[str]:
    return ["off", "auto", "on"]


def _check_image_side(value: int) -> str | None:
    # any size works (the decoder meets each skip at its own size); a multiple of 32 keeps every level's pixels aligned
    return None if value % 8 == 0 else "must be a multiple of 8 (e.g. 360 for CamVid's native 360×480)"


def _check_device(value: str) -> str | None:
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return "must be auto, cpu, cuda, cuda:N or mps"


def _check_train_size(value: float) -> str | None:
    if value <= 0 or value > 1 and value != int(value):
        return "must be a whole number of images (e.g. 40) or a fraction above 0 and up to 1 (e.g. 0.25)"
    return None


def _check_decoder_channels(value: tuple) -> str | None:
    if not 1 <= len(value) <= 5:
        return "must list 1 to 5 widths, coarsest block first (e.g. 128 64 32 16)"
    if any(isinstance(v, bool) or not isinstance(v, int) or not 4 <= v <= 1024 for v in value):
        return "each width must be a whole number from 4 to 1024"
    return None


def _precisions() -> list[str]:
    return ["auto", "fp32", "bf16"]


def _resize_modes() -> list[str]:
    return ["squash", "crop"]


def _check_unlabelled(value: str) -> str | None:
    if not value.strip():
        return "give 'dataset', 'rest', or a folder / .zip of images"
    return None


def _exists(path: str) -> bool:
    return Path(path).expanduser().exists()


def _check_run_name(value: str) -> str | None:
    return None if len(value) <= 100 and value.strip() else "must be 1 to 100 characters"


@dataclass
class TrainConfig:
    data: str = setting("builtin:shapes", "builtin:NAME, download:pet|voc, a folder, or a .zip", label="Dataset")
    backbone: str = setting("tf_efficientnet_lite0", "a timm model name (see 'backbones')", label="Backbone")
    strategy: str = setting("feature", "the transfer strategy", label="Transfer strategy", choices=_strategy_names)
    epochs: int = setting(6, "passes over the training images", label="Epochs", low=1, high=1000)
    min_steps: int = setting(
        100,
        "small training sets get more epochs, so that they see at least this many optimiser steps (0: off); "
        "30 images at batch 8 are only 4 steps an epoch",
        label="At least N steps",
        low=0,
        high=100_000,
    )
    batch_size: int = setting(8, "images per optimiser step", label="Batch size", low=1, high=1024)
    # lr 1e-2 for decoder and head, encoder × 0.1: chosen on CamVid's tuning split, confirmed on car vs rest and
    # membrane (bench/README.md, "Today's defaults re-checked"); 3e-3 left 276 steps under-trained
    lr: float = setting(1e-2, "base learning rate (decoder and head)", label="Learning rate", low=1e-7, high=10.0)
    encoder_lr_factor: float = setting(
        0.1,
        "encoder learning rate = lr × this, for strategies that fine-tune a transferred encoder",
        label="Encoder learning rate ×",
        low=0.0,
        high=10.0,
    )
    freeze_epochs: int = setting(
        0,
        "epochs with the encoder frozen before it is unfrozen (strategies with a frozen warm-up)",
        label="Warm-up epochs with the encoder frozen",
        low=0,
        high=1000,
    )
    # auto adapts where the encoder learns: at lr 1e-2 that scored higher on CamVid's tuning split and on car vs
    # rest (bench/README.md, "Today's defaults re-checked"); a frozen encoder keeps them, so features can be cached
    train_bn: str = setting(
        "auto",
        "transfer strategies: whether the pretrained encoder's BatchNorm running statistics adapt to your images. "
        "auto: they adapt where the encoder learns (parameter, structure) and stay as transferred where it is frozen "
        "(feature transfer, which can then cache its features); on: always adapt; off: always keep",
        label="Transferred encoder's BatchNorm statistics",
        choices=_bn_modes,
    )
    regularizer: str = setting("l2", "R(w) in the objective", label="Regulariser R(w)", choices=_regularizer_names)
    weight_decay: float = setting(
        1e-4, "λ, the regulariser's weight", label="λ", low=0.0, high=100.0, cli="--weight-decay"
    )
    height: int = setting(
        160,
        "training image height",
        label="Image height",
        low=32,
        high=2048,
        check=_check_image_side,
        cli=None,
        via="--size",
    )
    width: int = setting(
        160,
        "training image width",
        label="Image width",
        low=32,
        high=2048,
        check=_check_image_side,
        cli=None,
        via="--size",
    )
    seed: int = setting(0, "seed for weights, subsets and augmentation", label="Seed", low=0, high=2**32 - 1)
    ignore_index: int | None = setting(
        255, "stored mask value to ignore (CamVid: 11)", label="Ignore index", low=0, high=65535, optional=True
    )
    train_size: float | None = setting(
        None,
        "train on N images, or a fraction (e.g. 0.25) of the training split (seeded subset)",
        label="Training images",
        check=_check_train_size,
        optional=True,
    )
    val_fraction: float = setting(
        0.2,
        "share held out for validation when the dataset has no split of its own",
        label="Validation share",
        low=0.01,
        high=0.9,
    )
    # auto = flip: short runs learn faster without heavy augmentation, and the feature cache stays valid
    augment: str = setting(
        "auto",
        "auto: flip (fast to learn, keeps the feature-transfer cache); full: scale-crop, flip, colour jitter",
        label="Augmentation",
        choices=_augmentation_names,
    )
    dice_weight: float = setting(0.0, "add this × Dice loss to cross-entropy", label="Dice weight", low=0.0, high=100.0)
    # auto (losses.resolved_class_weighting): sqrt gets CamVid's rare classes predicted at all; on two-class tasks
    # plain cross-entropy scores higher (tuning splits of car vs rest and membrane, bench/README.md)
    class_weights: str = setting(
        "auto",
        "auto: none for two classes, sqrt for three or more; balanced: weigh each class's pixels by median "
        "frequency / its frequency (rare classes count more); sqrt: the square root of that, a milder push; "
        "none: plain cross-entropy",
        label="Class weights in the loss",
        choices=_class_weighting_names,
    )
    warmup_epochs: float = setting(
        0.5, "epochs of linear learning-rate warm-up", label="Warm-up epochs", low=0.0, high=1000.0
    )
    device: str = setting("auto", "auto, cpu, cuda, cuda:N, mps", label="Device", check=_check_device)
    threads: int = setting(0, "CPU threads (0: one per core)", label="CPU threads", low=0, high=1024)
    # 1 is kept apart from 0 so that the Ray backend can reserve a GPU explicitly; 2+ starts torchrun (training/distributed.py)
    gpus: int = setting(
        0,
        "GPUs for this one run: 0 = one process on the best device (auto); 1 = one process on one GPU; "
        "N ≥ 2 = N processes, one GPU each, training together (data-parallel, via torchrun)",
        label="GPUs",
        low=0,
        high=64,
    )
    weights_file: str | None = setting(
        None,
        "a local ImageNet weights file for the encoder (.safetensors/.pth)",
        label="Weights file",
        optional=True,
        cli="--weights",
    )
    source_run: str | None = setting(
        None, "structure transfer: the run (id or folder) to carry over", label="Source run", optional=True
    )
    run_name: str | None = setting(
        None,
        "run name (default: dataset-strategy-time)",
        label="Run name",
        check=_check_run_name,
        optional=True,
        cli="--name",
    )
    decoder_channels: tuple[int, ...] = setting(
        (128, 64, 32, 16),
        "U-Net decoder widths, coarsest block first (wider: slower, more capacity)",
        label="Decoder widths",
        check=_check_decoder_channels,
    )
    max_steps: int = setting(
        0,
        "stop after this many optimiser steps in total (0: no limit); a data-efficiency sweep sets it so that "
        "every point trains the same steps; smoke tests",
        label="Step limit",
        low=0,
        high=10**9,
    )
    # off: on this CPU inductor did not pay back within a run (bench/README.md, 'What a compiler buys')
    compile: str = setting(
        "off",
        "torch.compile (inductor) the network: on compiles it (36 s to minutes on a CPU, where no training "
        "speed-up was measured); auto compiles on a CUDA GPU only; off runs eager",
        label="Compile the network",
        choices=_compile_modes,
    )
    precision: str = setting(
        "auto",
        "the training steps' arithmetic: auto (mixed precision on a GPU; on a CPU with native bf16 — AVX512-BF16 or "
        "AMX — for feature transfer's cached features and decoder, fp32 otherwise), bf16 (auto, and the whole "
        "network's steps on such a CPU too: about a quarter less memory, somewhat slower) or fp32 (no reduced "
        "precision anywhere); scoring stays fp32 on a CPU",
        label="Precision",
        choices=_precisions,
    )
    resize: str = setting(
        "squash",
        "how an image meets the training size: squash (resized to it, its aspect lost) or crop (resized keeping its "
        "aspect until it covers the size; training takes random windows of the training size, scoring whole images)",
        label="Resize",
        choices=_resize_modes,
    )
    # semi-supervised training (training/semi_supervised.py): one setting for every strategy, off by default
    unlabelled: str | None = setting(
        None,
        "semi-supervised training from unlabelled images: 'dataset' (the dataset's own images without masks), "
        "'rest' (the training images --train-size leaves out, their masks never read), or a folder / .zip of images",
        label="Unlabelled images",
        optional=True,
        check=_check_unlabelled,
    )
    confidence: float = setting(
        0.95,
        "semi-supervised: a pixel's pseudo-label counts only where the model is at least this sure of it",
        label="Pseudo-label confidence",
        low=0.5,
        high=1.0,
    )
    unlabelled_ratio: int = setting(
        1,
        "semi-supervised: unlabelled images per labelled image in each step",
        label="Unlabelled per labelled",
        low=1,
        high=8,
    )
    unlabelled_rampup: float = setting(
        0.0,
        "semi-supervised: the share of the training steps over which the unlabelled loss's weight grows from 0 "
        "to its full value (the first pseudo-labels come from a network that has barely learnt)",
        label="Unlabelled warm-up",
        low=0.0,
        high=1.0,
    )
    unlabelled_weight: float = setting(
        1.0,
        "semi-supervised: the weight of the consistency loss on unlabelled images beside the supervised loss",
        label="Unlabelled loss weight",
        low=0.0,
        high=100.0,
    )
    teacher_momentum: float = setting(
        0.0,
        "semi-supervised: pseudo-labels from a running average of the network's weights (a mean teacher, steadier "
        "than the network of one step) with this momentum, e.g. 0.99; 0: from the network itself",
        label="Mean-teacher momentum",
        low=0.0,
        high=0.9999,
    )

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def fit(self) -> str:
        """How images are decoded (data/framing.py): squashed to the size, or covering it with their aspect kept."""
        return COVER if self.resize == "crop" else SQUASH

    def steps_per_epoch(self, train_images: int) -> int:
        return max(1, math.ceil(train_images / self.batch_size))

    def planned_epochs(self, train_images: int) -> int:
        """The epoch budget, raised for small training sets so they still get `min_steps` optimiser steps:
        37 images at batch 8 make 5 steps an epoch, and 6 epochs of that leave every strategy untrained."""
        return max(self.epochs, math.ceil(self.min_steps / self.steps_per_epoch(train_images)))

    def planned_steps(self, train_images: int) -> int:
        steps = self.steps_per_epoch(train_images) * self.planned_epochs(train_images)
        return min(steps, self.max_steps) if self.max_steps else steps

    def resolved_augment(self) -> str:
        return "flip" if self.augment == "auto" else self.augment

    def encoder_bn_mode(self) -> str:
        """Which of a transferred encoder's BatchNorm layers adapt their statistics: "all" (train_bn on),
        "learning" (auto: those whose weights learn; a frozen layer keeps its statistics) or "none" (off)."""
        return {"on": "all", "auto": "learning", "off": "none"}[self.train_bn]

    @property
    def strategy_info(self):
        from .strategies import STRATEGIES

        return STRATEGIES[self.strategy]

    def validate(self, check_files: bool = True) -> TrainConfig:
        """Refuse an invalid config where a run is created, naming the setting, the value and what is allowed.
        Returns self, so `TrainConfig(...).validate()` reads naturally. check_files=False judges the settings
        alone (a finished run stays readable after its weights file is moved)."""
        for spec in fields(self):
            problem = _field_problem(spec, getattr(self, spec.name))
            if problem:
                raise ConfigError(spec.name, getattr(self, spec.name), problem, cli_option(spec))
        if check_files:
            for name in ("data", "source_run", "weights_file", "unlabelled"):
                value = getattr(self, name)
                named = name == "unlabelled" and value in ("dataset", "rest")  # not paths
                problem = roots_problem(value) if value and not named else None
                if problem:
                    raise ConfigError(name, value, problem, cli_option(next(f for f in fields(self) if f.name == name)))
        if check_files and self.weights_file and not Path(self.weights_file).is_file():
            raise ConfigError(
                "weights_file",
                self.weights_file,
                "no such file: give the path of a .safetensors or .pth weights file",
                "--weights",
            )
        if check_files:  # the backbone exists and takes this size: asked of timm (torch), so imported here
            from ..models.backbones import backbone_problem, size_problem

            problem = backbone_problem(self.backbone) or size_problem(self.backbone, self.height, self.width)
            if problem:
                raise ConfigError("backbone", self.backbone, problem, "--backbone")
        if check_files and self.unlabelled not in (None, "dataset", "rest") and not _exists(self.unlabelled):
            raise ConfigError(
                "unlabelled",
                self.unlabelled,
                "no such folder or .zip: give a folder (or .zip) of images, 'dataset' or 'rest'",
                "--unlabelled",
            )
        if self.unlabelled == "rest" and self.train_size is None:
            raise ConfigError(
                "unlabelled",
                self.unlabelled,
                "'rest' means the training images --train-size leaves out, and no training-set size is given: set "
                "train_size (e.g. 0.1), or give a folder of unlabelled images",
                "--unlabelled",
            )
        info = self.strategy_info
        if info.needs_source_run and not self.source_run:
            raise ConfigError(
                "source_run",
                self.source_run,
                f"{info.title} needs a source run: train one on a source task first "
                "(e.g. builtin:shapes-source) and name it here",
                "--source-run",
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> TrainConfig:
        if not isinstance(payload, dict):
            raise ConfigError("config", payload, "a run's settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        if (
            isinstance(values.get("train_size"), float)
            and values["train_size"] > 1
            and values["train_size"].is_integer()
        ):
            values["train_size"] = int(values["train_size"])
        if isinstance(values.get("decoder_channels"), list):  # JSON gives a list
            values["decoder_channels"] = tuple(values["decoder_channels"])
        if isinstance(values.get("train_bn"), bool):  # runs and lessons saved before train_bn had "auto"
            values["train_bn"] = "on" if values["train_bn"] else "off"
        return cls(**values)


@dataclass(frozen=True)
class Preset:
    """A named set of settings over the defaults, chosen in one click (Model page, --preset, lessons)."""

    title: str
    purpose: str
    settings: dict

    def apply(self, config: TrainConfig) -> TrainConfig:
        return replace(config, **self.settings)


PRESETS = {
    "standard": Preset("Standard", "the defaults: 160×160 images, 6 epochs, at least 100 steps", {}),
    # measured with bench/classroom.py on a quiet 2-core CPU: the 4-strategy lesson in 54 s (standard: 93 s)
    "quick": Preset(
        "Quick demo",
        "128×128 images, 3 epochs, at least 50 steps: the same lesson, about half the time",
        {"height": 128, "width": 128, "epochs": 3, "min_steps": 50},
    ),
    # for a practitioner's own data: our network trains 2-3× faster than smp's U-Net, so smp's time buys 320×320;
    # CamVid car vs rest at about smp's training time: +2 points over smp full fine-tuning (bench/README.md, "The
    # binary task at equal wall time")
    "detailed": Preset(
        "Detailed",
        "320×320 images: finer outlines and small objects, about 4× the standard's training time",
        {"height": 320, "width": 320},
    ),
    # "Rare classes" (balanced weights) was retired on 2026-11-26: at lr 1e-2 it scored 4 points below the default on
    # CamVid's tuning split and lower on four of the five thin classes (bench/README.md, "Today's defaults re-checked")
}


def _field_type(spec: Field) -> type:
    annotation = str(spec.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str), ("tuple", tuple)):
        if annotation.startswith(name):
            return kind
    return object


def _field_problem(spec: Field, value: Any) -> str | None:
    meta = spec.metadata
    if value is None:
        return None if meta.get("optional") else "must be given"
    kind = _field_type(spec)
    if kind is bool and not isinstance(value, bool):
        return "must be true or false"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be a whole number"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
    if kind is str and not isinstance(value, str):
        return "must be text"
    if kind is tuple and not isinstance(value, (tuple, list)):
        return "must be a list"
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low or high is not None and value > high:
        if low is not None and high is not None:
            return f"must be between {_number(low)} and {_number(high)}"
        return f"must be at least {_number(low)}" if low is not None else f"must be at most {_number(high)}"
    if meta.get("choices") is not None:
        allowed = meta["choices"]()
        if value not in allowed:
            return "must be one of " + ", ".join(allowed)
    if meta.get("check") is not None:
        return meta["check"](value)
    return None


def settings_problem(payload: object) -> str | None:
    """What is wrong with a stored config (config.json's content), in words; None when it makes a valid TrainConfig."""
    if not isinstance(payload, dict):
        return "the settings are not a JSON object"
    try:
        TrainConfig.from_dict(payload).validate(check_files=False)
    except ConfigError as exc:
        return str(exc)
    return None


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def describe(name: str) -> dict:
    """A setting's declaration (help, label, range, choices) for pages and the CLI."""
    spec = next(f for f in fields(TrainConfig) if f.name == name)
    default = spec.default if spec.default is not MISSING else spec.default_factory()
    return {"name": name, "default": default, **spec.metadata}


def cli_option(spec: Field) -> str | None:
    flag = spec.metadata.get("cli", "")
    if flag is None:
        return spec.metadata.get("via")
    return flag or "--" + spec.name.replace("_", "-")
