"""Which strategy to try first, and the comparison that would test that advice.

The rules, in order (each fired rule adds a sentence a student can read to `Advice.reasons`):

1. **A matching source run exists** (a finished segmentation run on a related task, same backbone) and the data is
   not plentiful → *structure transfer*: the encoder *and* decoder already solve a segmentation task of this kind
   (the built-in lesson "When does structure transfer win?" measures it).
2. **Plenty of data (≥ PLENTY_IMAGES) on a GPU, far from ImageNet** → *from scratch* is competitive: enough labels
   to learn features of their own, a device fast enough for the extra epochs, and little for ImageNet to give.
3. **Few images (< FEW_IMAGES), domain not far** → *feature transfer*: ImageNet features fit the images, and with so
   few labels a frozen encoder cannot overfit; it is also the fastest.
4. **Otherwise** (a moderate amount of data, or a far domain) → *parameter transfer*: fine-tuning lets the encoder
   adapt to images ImageNet did not show it, at a rate that keeps what it knew.
5. **Time budget.** When the advised run is estimated (segcore.estimate, this machine's measured speed) to take
   longer than the budget, the fastest strategy that fits is advised instead, saying so; when none fits, the
   fastest, with the advice to shrink the images or use the quick preset.

"Far" is DomainDistance.is_far(): further from ImageNet than halfway between the street-scene and microscopy
reference points. Without a measured distance, rule 3 treats the domain as near and says that it was not measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..jobs.planning import comparison_order
from ..settings.config import TrainConfig
from ..settings.strategies import STRATEGIES, advised_in, train_all_names
from .domain import DomainDistance

FEW_IMAGES = 50  # a handful to a few dozen: what a frozen encoder plus a small decoder can use without overfitting
MANY_UNLABELLED = 20  # enough unlabelled images (and more than the labelled ones) for the advice to name them
PLENTY_IMAGES = 1000  # enough labels for a randomly initialised network to learn features of its own


@dataclass(frozen=True)
class SuggestedComparison:
    """The runs that would test the advice: these strategies with identical settings (planning.comparison_plan)."""

    title: str
    strategies: list[str]
    why: str


@dataclass(frozen=True)
class Advice:
    strategy: str
    reasons: list[str]
    comparison_to_run: SuggestedComparison
    seconds: dict[str, float] = field(default_factory=dict)  # estimated seconds of one run per strategy


def is_gpu(device: str) -> bool:
    return device.startswith(("cuda", "mps"))


def estimated_seconds(train_images: int, base: TrainConfig | None = None, finished: Iterable = ()) -> dict[str, float]:
    """Seconds one run of each strategy would take here (segcore.estimate: this machine's measured speed)."""
    from ..jobs.estimate import estimate_seconds

    base, finished = base or TrainConfig(), list(finished)
    return {
        name: estimate_seconds(replace(base, strategy=name), train_images, finished)[0] for name in train_all_names()
    }


def _cached_strategy() -> str:
    """The strategy that trains on cached features: the fastest on a CPU."""
    return next(name for name, info in STRATEGIES.items() if info.caches_features and info.in_train_all)


def _domain_words(domain: DomainDistance | None) -> tuple[bool | None, str]:
    if domain is None:
        return None, "The domain distance was not measured (Data page), so the images are assumed to look like photos."
    far = domain.is_far()
    if far is None:
        return None, (
            f"The domain distance is {domain.value:.2f}, but without the street-scene and microscopy "
            "reference points it cannot be called near or far."
        )
    if far:
        return True, (
            f"Your images are far from ImageNet (distance {domain.value:.2f}, past halfway from street "
            "scenes to microscopy): frozen ImageNet features fit them less well."
        )
    return False, (
        f"Your images are close to ImageNet (distance {domain.value:.2f}, nearer street scenes than "
        "microscopy): ImageNet features fit them well."
    )


def _situation(train_images: int, far: bool | None, device: str, source_run_available: bool) -> str:
    """Rules 1–4 as the situation they recognise (StrategyInfo.advised_for names the strategy for each)."""
    if source_run_available and train_images < PLENTY_IMAGES:
        return "source run"
    if train_images >= PLENTY_IMAGES and is_gpu(device) and far:
        return "plenty far"
    if train_images < FEW_IMAGES and not far:
        return "few near"
    return "far" if far else "default"


def _why(situation: str, train_images: int) -> str:
    """The sentence that says why, for a student."""
    return {
        "source run": "A finished run on a related segmentation task is available: structure transfer starts "
        "from an encoder and a decoder that already segment this kind of image, and only the "
        "classifier is new (see the lesson 'When does structure transfer win?').",
        "plenty far": f"With {train_images} labelled images on a GPU and images unlike ImageNet's, training from "
        "scratch is competitive: enough labels to learn features of their own, and the device "
        "makes the extra epochs cheap.",
        "few near": f"With only {train_images} labelled images, a frozen ImageNet encoder cannot overfit them, "
        "and only the small decoder has to learn; it is also the fastest strategy.",
        "far": "Far from ImageNet, the encoder should adapt: parameter transfer fine-tunes it slowly, "
        "keeping what ImageNet taught while learning what your images need.",
        "default": f"With {train_images} labelled images there is enough to fine-tune the encoder: parameter "
        "transfer usually ends highest (bench/README.md: on CamVid it led at every training-set size).",
    }[situation]


def _comparison(strategy: str, far: bool | None, source_run_available: bool) -> SuggestedComparison:
    rivals = {advised_in("default"), advised_in("plenty far" if far else "few near")}
    if source_run_available:
        rivals.add(advised_in("source run"))
    wanted = comparison_order(sorted({strategy} | rivals))
    if set(wanted) == set(train_all_names()):
        return SuggestedComparison("Train all strategies", wanted, "every strategy with the same settings")
    labels = " vs ".join(STRATEGIES[n].label for n in wanted)
    return SuggestedComparison(
        f"Compare {labels}", wanted, "the advised strategy against the ones the rules ruled out, with the same settings"
    )


def advise(
    train_images: int,
    domain: DomainDistance | None,
    seconds_budget: float | None,
    device: str,
    speeds: Mapping[str, float] | None = None,
    *,
    source_run_available: bool = False,
    base: TrainConfig | None = None,
    finished: Iterable = (),
    unlabelled_images: int = 0,
) -> Advice:
    """The strategy to try first for `train_images` labelled images, the domain distance (or None), a time budget
    in seconds (or None) and the device ('cpu', 'cuda', 'mps'). speeds: estimated seconds per strategy for one
    run (default: segcore.estimate with `base` settings and the `finished` runs of this machine). unlabelled_images:
    the dataset's images without masks; when they outnumber the labelled ones, the advice names semi-supervised
    training."""
    seconds = dict(speeds) if speeds is not None else estimated_seconds(train_images, base, finished)
    far, domain_reason = _domain_words(domain)
    situation = _situation(train_images, far, device, source_run_available)
    strategy = advised_in(situation)
    reasons = [domain_reason, _why(situation, train_images)]
    if seconds_budget is not None and seconds.get(strategy, 0) > seconds_budget:
        candidates = [
            n
            for n in train_all_names()
            if n in seconds and (not STRATEGIES[n].needs_source_run or source_run_available)
        ]
        fitting = [n for n in candidates if seconds[n] <= seconds_budget]
        fastest = min(fitting or candidates, key=seconds.get)
        if fitting:
            reasons.append(
                f"But {STRATEGIES[strategy].label} would take about {seconds[strategy]:.0f} s here, over "
                f"your budget of {seconds_budget:.0f} s; {STRATEGIES[fastest].label} fits "
                f"(about {seconds[fastest]:.0f} s)."
            )
        else:
            reasons.append(
                f"No strategy fits your budget of {seconds_budget:.0f} s on this machine; the fastest, "
                f"{STRATEGIES[fastest].label}, takes about {seconds[fastest]:.0f} s — use the quick "
                "preset or smaller images."
            )
        strategy = fastest
    elif (
        not is_gpu(device)
        and (cached := _cached_strategy()) != strategy
        and cached in seconds
        and seconds.get(strategy)
    ):
        ratio = seconds[strategy] / max(seconds[cached], 1e-9)
        if ratio > 1.5:
            reasons.append(
                f"On this CPU, {STRATEGIES[cached].label} would finish about {ratio:.1f}× sooner "
                f"({seconds[cached]:.0f} s instead of {seconds[strategy]:.0f} s) if time matters."
            )
    if unlabelled_images >= max(MANY_UNLABELLED, train_images):
        reasons.append(
            f"This dataset also has {unlabelled_images} unlabelled images beside its {train_images} labelled ones: "
            "semi-supervised training learns from them too (Unlabelled images, in the settings below; each step "
            "then costs about twice as much). The lesson 'Labels are expensive' measures what they add."
        )
    return Advice(strategy, reasons, _comparison(strategy, far, source_run_available), seconds)
