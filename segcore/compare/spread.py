"""Seed spread for the data-efficiency curve: the same strategy and training size trained with several seeds
becomes one point with a mean and a standard deviation (the Compare page's error bars, the seed sweep)."""

from __future__ import annotations

import math
from collections import defaultdict


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n − 1); sd is None for a single value: one run shows no spread."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _point(run) -> tuple[str, int, float, object] | None:
    """(strategy, training images, mIoU, seed) of a finished Run or of a dict with those keys; None if unfinished."""
    if isinstance(run, dict):
        strategy, images, miou, seed = run.get("strategy"), run.get("train_images"), run.get("miou"), run.get("seed")
    else:
        summary, config = run.summary() or {}, run.config or {}
        strategy, images, miou, seed = (
            config.get("strategy"),
            summary.get("train_images"),
            summary.get("miou"),
            config.get("seed"),
        )
    if strategy is None or images is None or not isinstance(miou, (int, float)) or not math.isfinite(miou):
        return None
    return str(strategy), int(images), float(miou), seed


def data_efficiency_with_spread(runs) -> list[dict]:
    """One point per (strategy, training images): mean and sd of mIoU over the runs there, n runs, their seeds.

    `runs`: Run objects (config strategy/seed, summary train_images/miou) or dicts with strategy,
    train_images, miou (and optionally seed). Unfinished runs are left out. Pass runs that differ only in
    seed (a seed sweep): runs with other settings would be pooled into the same point. Sorted by strategy,
    then training images."""
    groups: dict[tuple[str, int], list] = defaultdict(list)
    for run in runs:
        point = _point(run)
        if point is not None:
            groups[point[:2]].append(point)
    rows = []
    for (strategy, images), points in sorted(groups.items()):
        mean, sd = mean_sd([p[2] for p in points])
        rows.append(
            {
                "strategy": strategy,
                "train_images": images,
                "mean": mean,
                "sd": sd,
                "n": len(points),
                "seeds": [p[3] for p in points],
            }
        )
    return rows


def format_mean_sd(values: list[float], digits: int = 3) -> str:
    """'0.512 ± 0.008 (n=3)', or '0.512 (n=1)' when there is no spread to show."""
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}") + f" (n={len(values)})"
