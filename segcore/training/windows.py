"""Scoring images no larger in memory than training: whole when they fit the scoring budget, else in overlapping
windows of the training size whose logits are averaged where they overlap.

A run that keeps the aspect (resize 'crop') trains on crops and scores each whole image at its covering size:
one forward pass over the whole image sees the most context, so it is the default. A panorama, or a large image
scored at a large training size, can hold more pixels than a scoring pass is allowed (EVAL_BATCH_PIXELS, the same
bound that sizes scoring batches); it is then scored window by window, a third of a window overlapping the next, so
memory stays that of training's own batches whatever the image.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

# scoring passes hold at most this many pixels (16 images of 256×256): at 512×512 or a photo's native size a fixed
# 16 images made the validation pass, not training, a run's memory peak; below it, batch size barely changes speed
EVAL_BATCH_PIXELS = 16 * 256 * 256
WINDOW_OVERLAP = 1 / 3  # of a window: enough that no pixel is scored only at a window's border


def scoring_batch(requested: int, height: int, width: int) -> int:
    """Images per scoring batch: the requested number, fewer for large images (EVAL_BATCH_PIXELS)."""
    return max(1, min(requested, EVAL_BATCH_PIXELS // max(1, height * width)))


def window_starts(length: int, window: int, overlap: float = WINDOW_OVERLAP) -> list[int]:
    """Where windows of `window` pixels start along a side of `length` pixels: evenly stepped, the last one flush
    with the far edge, one window at 0 when it covers the side."""
    if window >= length:
        return [0]
    stride = max(1, int(window * (1 - overlap)))
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def needs_windows(height: int, width: int, window: tuple[int, int]) -> bool:
    """Whether an image of height×width is scored in windows: larger than a window and than the scoring budget."""
    covered = height <= window[0] and width <= window[1]
    return not covered and height * width > EVAL_BATCH_PIXELS


@torch.no_grad()
def sliding_window_logits(
    model: torch.nn.Module, inputs: torch.Tensor, window: tuple[int, int], autocast=nullcontext
) -> torch.Tensor:
    """Logits (C, H, W) of one normalised image (3, H, W), from windows of window=(h, w) averaged where they
    overlap. A window that covers the image gives the image's own single pass, exactly."""
    height, width = inputs.shape[-2:]
    rows, cols = window_starts(height, window[0]), window_starts(width, window[1])
    win_h, win_w = min(window[0], height), min(window[1], width)
    boxes = [(top, left) for top in rows for left in cols]
    per_pass = scoring_batch(len(boxes), win_h, win_w)
    total = counts = None
    for first in range(0, len(boxes), per_pass):
        chunk = boxes[first : first + per_pass]
        batch = torch.stack([inputs[:, top : top + win_h, left : left + win_w] for top, left in chunk])
        with autocast():
            logits = model(batch).float()
        if total is None:
            total = logits.new_zeros((logits.shape[1], height, width))
            counts = logits.new_zeros((1, height, width))
        for (top, left), logit in zip(chunk, logits):
            total[:, top : top + win_h, left : left + win_w] += logit
            counts[:, top : top + win_h, left : left + win_w] += 1
    if len(boxes) == 1:
        return total
    return total / counts


@torch.no_grad()
def bounded_logits(
    model: torch.nn.Module, inputs: torch.Tensor, window: tuple[int, int], autocast=nullcontext
) -> torch.Tensor:
    """Logits (N, C, H, W) of a normalised batch (N, 3, H, W) sized by scoring_batch: one pass when its images fit a
    window or the scoring budget, else image by image in sliding windows."""
    height, width = inputs.shape[-2:]
    if not needs_windows(height, width, window):
        with autocast():
            return model(inputs)
    return torch.stack([sliding_window_logits(model, image, window, autocast) for image in inputs])
