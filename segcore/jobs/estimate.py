"""How long a run will take on this machine, said before the click.

A run's cost is the images it pushes through training (steps × batch) divided by its speed. Speed starts from
each strategy's reference figure (measured on a 2-core CPU at 160×160) and is replaced by this machine's own
measured speed as soon as it has finished a run of that strategy and backbone, so a loaded or faster machine
gets an honest figure. Speeds are compared per pixel: a run at 128×128 moves 0.64× the pixels of 160×160.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from ..runs.run import Run
from ..settings.config import TrainConfig

REFERENCE_PIXELS = 160 * 160
PROCESS_START_S = 5.0  # a worker process importing torch and reading its data, measured on the 2-core CPU
RECENT_RUNS = 5  # the machine's speed is the median of its last few finished runs of a kind


def images_trained(config: TrainConfig, train_images: int) -> int:
    return config.planned_steps(train_images) * min(config.batch_size, train_images)


def measured_speed(run: Run) -> float | None:
    """A finished run's speed in reference-size images per second (None when it cannot be told)."""
    config, summary = run.config, run.summary()
    try:
        seconds, images = float(summary["train_time_s"]), int(summary["train_images"])
        trained = TrainConfig.from_dict(config)
    except (KeyError, TypeError, ValueError):
        return None
    if seconds <= 0 or images <= 0:
        return None
    pixels = trained.height * trained.width
    return images_trained(trained, images) / seconds * pixels / REFERENCE_PIXELS


def machine_speed(config: TrainConfig, finished: Iterable[Run]) -> tuple[float, str]:
    """(reference-size images per second, where that figure comes from) for this strategy and backbone."""
    speeds = []
    for run in finished:
        settings = run.config
        if settings.get("strategy") == config.strategy and settings.get("backbone") == config.backbone:
            speed = measured_speed(run)
            if speed:
                updated = run.status.get("updated", 0)
                speeds.append((updated if isinstance(updated, (int, float)) else 0, speed))
    if speeds:
        recent = [speed for _, speed in sorted(speeds)[-RECENT_RUNS:]]
        return statistics.median(recent), f"measured on this machine ({len(recent)} finished run(s))"
    return config.strategy_info.reference_images_per_s, "reference 2-core CPU (no finished run of this kind yet)"


def estimate_seconds(config: TrainConfig, train_images: int, finished: Iterable[Run] = ()) -> tuple[float, str]:
    speed, basis = machine_speed(config, list(finished))
    pixels = config.height * config.width
    seconds = images_trained(config, train_images) * pixels / REFERENCE_PIXELS / speed
    return PROCESS_START_S + seconds, basis


def estimate_plan(configs: list[tuple[TrainConfig, int]], finished: Iterable[Run] = ()) -> float:
    """Seconds for several runs one after another (the queue runs one at a time by default)."""
    finished = list(finished)
    return sum(estimate_seconds(config, images, finished)[0] for config, images in configs)
