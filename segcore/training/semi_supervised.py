"""Semi-supervised training from unlabelled images: weak-to-strong consistency (FixMatch; UniMatch, CVPR 2023).

Each step also takes a batch of unlabelled images. The network's confident prediction on a weakly changed view
(a flip) is the pseudo-label; a strongly changed view of the same images (colour jitter, blur, CutMix between them)
must predict it, pixel by pixel, where the confidence is at least TrainConfig.confidence. The loss is the supervised
one plus TrainConfig.unlabelled_weight × that consistency loss, averaged over every unlabelled pixel (so it grows as
more pixels become confident).

The pseudo-label comes from the network in evaluation mode, or with TrainConfig.teacher_momentum > 0 from a mean teacher
(Tarvainen & Valpola, 2017: an exponential moving average of the network's weights, torch.optim.swa_utils), which
changes less from one step to the next than the network it averages (BatchNorm's running statistics, no dropout: the best guess
it can make now), and the strong view's forward leaves BatchNorm's running statistics as they are (they stay those of
the labelled images, which evaluation uses): measured on CamVid's tuning split, strongly changed colours in the running
statistics cost more than the unlabelled images gave (bench/README.md, "Unlabelled images").

Feature transfer keeps its cache: its frozen encoder's features of the unlabelled images are computed once like the
labelled ones, and the strong view is a perturbation of those features (dropout, UniMatch's feature perturbation)
instead of the images. Which of the two a strategy takes is its record's `caches_features`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..data.dataset import ImageSet
from ..data.masks import IGNORE

FEATURE_DROPOUT = 0.5  # UniMatch's feature perturbation: half the channels of each level dropped, the rest rescaled
CUTMIX_SHARE = (0.25, 0.5)  # the area of the box pasted from another unlabelled image


def strong_view(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Colour jitter, grey now and then, and blur, each image its own draw: uint8 (N,3,H,W) in, uint8 out."""
    jitter = v2.Compose(
        [
            v2.RandomApply([v2.ColorJitter(0.5, 0.5, 0.5, 0.25)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))], p=0.5),
        ]
    )
    return torch.stack([jitter(image) for image in images])


def cutmix(
    images: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste a random box of another image of the batch into each image, with its pseudo-labels and confidence."""
    n, _, height, width = images.shape
    if n < 2:
        return images, labels, keep
    images, labels, keep = images.clone(), labels.clone(), keep.clone()
    partner = torch.roll(torch.arange(n), 1)
    for i in range(n):
        share = float(torch.empty(1).uniform_(*CUTMIX_SHARE))
        box_h, box_w = max(1, int(height * math.sqrt(share))), max(1, int(width * math.sqrt(share)))
        top, left = int(torch.randint(0, height - box_h + 1, (1,))), int(torch.randint(0, width - box_w + 1, (1,)))
        j = int(partner[i])
        area = (slice(top, top + box_h), slice(left, left + box_w))
        images[i][:, area[0], area[1]] = images[j][:, area[0], area[1]]
        labels[i][area] = labels[j][area]
        keep[i][area] = keep[j][area]
    return images, labels, keep


def pseudo_labels(logits: torch.Tensor, confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, confident) of a weak view's logits: the most likely class, and where it is at least `confidence`."""
    probabilities = logits.detach().float().softmax(1)
    best, labels = probabilities.max(1)
    return labels, best >= confidence


def consistency_loss(
    strong_logits: torch.Tensor,
    labels: torch.Tensor,
    confident: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the strong view against the pseudo-labels where they are confident, averaged over every
    pixel of the unlabelled batch (unconfident pixels count as zero). The run's class weights apply as in the
    supervised loss: confident pixels are mostly the common classes (road, sky), and unweighted they pulled the
    network towards them (CamVid tuning split: bench/README.md, "Unlabelled images")."""
    target = torch.where(confident, labels, torch.full_like(labels, IGNORE))
    per_pixel = F.cross_entropy(
        strong_logits.float(), target.long(), weight=class_weights, ignore_index=IGNORE, reduction="none"
    )
    return per_pixel.sum() / max(1, target.numel())


@contextmanager
def as_teacher(model: torch.nn.Module):
    """The network in evaluation mode and without gradients, for the weak view's pseudo-labels; back as it was after
    (SegmentationModel.train keeps its BatchNorm settings)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@contextmanager
def running_statistics_kept(model: torch.nn.Module):
    """BatchNorm normalises with the batch's statistics as in any training forward, but its running statistics (what
    evaluation uses) do not take the strongly changed images in: momentum 0 for the duration."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield model
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def mean_teacher(model: torch.nn.Module, momentum: float):
    """A running average of the model's weights and BatchNorm statistics, updated after each optimiser step
    (`update_parameters(model)`), or None for momentum 0 (the network is its own teacher)."""
    if momentum <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    teacher = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(momentum), use_buffers=True)
    return teacher.eval().requires_grad_(False)


def unlabelled_weight_at(config, step: int, total_steps: int) -> float:
    """The unlabelled loss's weight at a step: grown linearly from 0 over the first `unlabelled_rampup` share of the
    steps (the first pseudo-labels come from a network that has barely learnt), then TrainConfig.unlabelled_weight."""
    ramp = config.unlabelled_rampup * total_steps
    return config.unlabelled_weight * (1.0 if ramp <= 0 else min(1.0, step / ramp))


def perturb_features(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """The strong view of cached features: channel dropout on every level (the encoder is frozen, the images are
    gone: the perturbation happens where the decoder reads)."""
    return [F.dropout2d(level, p=FEATURE_DROPOUT, training=True) for level in features]


class UnlabelledImages:
    """The unlabelled images of a run, decoded at the training size, drawn in seeded random batches. `set` is them as
    an ImageSet (masks all ignored: none is ever read), the shape the feature cache and the batches take."""

    def __init__(self, images: torch.Tensor, seed: int, names: list[str] | None = None) -> None:
        placeholder = torch.full((len(images), *images.shape[-2:]), IGNORE, dtype=torch.uint8)
        self.set = ImageSet(images, placeholder, names or [f"unlabelled-{i}" for i in range(len(images))])
        self.generator = torch.Generator().manual_seed(seed + 7919)  # its own stream: the labelled order is unchanged
        self._order: list[int] = []

    def __len__(self) -> int:
        return len(self.set)

    def next_indices(self, count: int) -> list[int]:
        picked = []
        while len(picked) < count:
            if not self._order:
                self._order = torch.randperm(len(self.set), generator=self.generator).tolist()
            picked.append(self._order.pop())
        return picked
