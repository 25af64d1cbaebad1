"""How many images a training-set size keeps: one rule for training and for plans made before any image is read."""

from __future__ import annotations


def subset_count(total: int, train_size: int | float | None) -> int:
    """How many training images a training-set size keeps of `total` (a share of a small split keeps at least one:
    10 % of 6 images is 1 image, not none)."""
    if train_size is None:
        return total
    if isinstance(train_size, float) and train_size <= 1:
        return max(1, round(train_size * total))
    return min(int(train_size), total)
