"""The strategy catalogue: what each strategy is, as data (where each part starts, what learns, how the pages show
it). Torch-free; training/preparation.py turns a record into a network.

Every strategy minimises 1/N Σ L(y_i, f_w(x_i)) + λ R(w), with R = l2 (towards zero) or
l2sp (towards the transferred starting weights w0; Li, Grandvalet & Davoine, ICML 2018).
A new strategy is one StrategyInfo entry in STRATEGIES; training, planning, advice and the pages read its fields.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # the situations in which teaching/advice.py advises it first: "source run" (a related finished run exists),
    # "plenty far" (many labels, a GPU, a far domain), "few near" (few labels, a near domain), "far", "default"
    advised_for: tuple[str, ...] = ()
    measured_against: str | None = None  # the rival whose score the lesson's evidence compares it with
    # training images per second on the reference 2-core CPU at 160×160 with the default backbone, whole run
    # included (evaluation, feature cache): bench/results/classroom.txt. Estimates start here, then learn this
    # machine's own speed from its finished runs (segcore/jobs/estimate.py).
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
        advised_for=("plenty far",),
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
        advised_for=("far", "default"),
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
        advised_for=("few near",),
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
        advised_for=("source run",),
        measured_against="parameter",
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


def advised_in(situation: str) -> str:
    """The strategy advised first in `situation` (see StrategyInfo.advised_for)."""
    return next(name for name, info in STRATEGIES.items() if situation in info.advised_for)


def train_all_names() -> list[str]:
    """The strategies "Train all strategies" compares."""
    return [name for name, info in STRATEGIES.items() if info.in_train_all]


REGULARIZERS = {
    "l2": "L2 towards zero: R(w) = ½‖w‖² (decoupled weight decay)",
    "l2sp": "L2-SP towards the starting point: R(w) = ½‖w − w₀‖² on transferred weights, ½‖w‖² on new ones",
}
