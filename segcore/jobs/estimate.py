"""How long runs will take on this server, said before the click and kept true while they wait and train.

A run's cost is the images it pushes through training (steps × batch) divided by this server's speed: the median of
its last few finished runs of the same strategy and backbone, each timed from launch to done (worker start, data,
training, evaluation: what a student waits for), under whatever load the server had. Until such a run exists, each
strategy's reference figure (a quiet 2-core CPU at 160×160) stands in. Speeds are compared per pixel: a run at
128×128 moves 0.64× the pixels of 160×160.

`forecast` then plays the queue forward: the runs training finish as their own progress says, the waiting ones take
the slots in the fair order, a run following an identical one ends with it (no compute), a structure run waits for
its source run. That gives each run, and a comparison about to be queued, the time it should be done.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..runs.run import Run
from ..settings.config import TrainConfig

REFERENCE_PIXELS = 160 * 160
PROCESS_START_S = 5.0  # a worker process importing torch and reading its data, on a quiet 2-core CPU
RECENT_RUNS = 5  # the server's speed is the median of its last few finished runs of a kind


def images_trained(config: TrainConfig, train_images: int) -> int:
    return config.planned_steps(train_images) * min(config.batch_size, train_images)


def measured_speed(run: Run) -> float | None:
    """A finished run's speed in reference-size images per second of its whole process (launch to done), or None when
    it cannot be told (a run linked to an identical one, or imported, trained nothing here)."""
    config, summary, status = run.config, run.summary(), run.status
    if status.get("linked_to") or status.get("imported"):
        return None
    try:
        trained = TrainConfig.from_dict(config)
        images = int(summary["train_images"])
        steps = summary.get("steps")
        work = (
            (int(steps) * min(trained.batch_size, images))
            if isinstance(steps, int)
            else images_trained(trained, images)
        )
        started, updated = status.get("started"), status.get("updated")
        if isinstance(started, (int, float)) and isinstance(updated, (int, float)) and updated > started:
            seconds = updated - started
        else:
            seconds = float(summary["train_time_s"]) + PROCESS_START_S
    except (KeyError, TypeError, ValueError):
        return None
    if seconds <= 0 or images <= 0 or work <= 0:
        return None
    return work / seconds * trained.height * trained.width / REFERENCE_PIXELS


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
        return statistics.median(recent), f"measured on this machine ({len(recent)} recent run(s) of this kind)"
    return config.strategy_info.reference_images_per_s, "reference 2-core CPU (no finished run of this kind yet)"


def estimate_seconds(config: TrainConfig, train_images: int, finished: Iterable[Run] = ()) -> tuple[float, str]:
    """(seconds from launch to done, where the speed comes from) for one run on this server."""
    speed, basis = machine_speed(config, list(finished))
    pixels = config.height * config.width
    seconds = images_trained(config, train_images) * pixels / REFERENCE_PIXELS / speed
    measured = basis.startswith("measured")  # a measured speed includes the worker's start already
    return seconds + (0.0 if measured else PROCESS_START_S), basis


def estimate_plan(configs: list[tuple[TrainConfig, int]], finished: Iterable[Run] = ()) -> float:
    """Seconds for several runs one after another (the queue runs one at a time by default)."""
    finished = list(finished)
    return sum(estimate_seconds(config, images, finished)[0] for config, images in configs)


# -- the queue played forward ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Forecast:
    start: float  # when it should start (a time, time.time()'s clock)
    end: float  # when it should be done


def planned_images(run: Run) -> int:
    """Images a queued run will push through training: its plan (recorded at submission) or, without one, the
    least its settings allow (min_steps or epochs, whichever is more, of full batches)."""
    config = run.config
    plan = config.get("plan") if isinstance(config.get("plan"), dict) else {}
    batch = config.get("batch_size") if isinstance(config.get("batch_size"), int) else 8
    steps = plan.get("steps")
    if isinstance(steps, int) and steps > 0:
        return steps * batch
    epochs, least = config.get("epochs"), config.get("min_steps")
    guess = max(least if isinstance(least, int) else 0, epochs if isinstance(epochs, int) else 1)
    return guess * batch


def run_seconds(run: Run, finished: list[Run]) -> float:
    """The whole process time one run should take on this server."""
    try:
        config = TrainConfig.from_dict(run.config)
    except (TypeError, ValueError):
        return PROCESS_START_S
    speed, basis = machine_speed(config, finished)
    seconds = planned_images(run) * config.height * config.width / REFERENCE_PIXELS / speed
    return seconds + (0.0 if basis.startswith("measured") else PROCESS_START_S)


def forecast(
    waiting: list[Run], running: list[Run], finished: list[Run], slots: int, now: float | None = None
) -> dict[str, Forecast]:
    """When each running and waiting run should be done: the running ones as their own progress says, the waiting
    ones (in the order they will start) on the first slot free, after the source run they carry over; a run that
    follows an identical one ends with it and takes no slot."""
    from ..runs.progress import run_progress

    now = time.time() if now is None else now
    result: dict[str, Forecast] = {}
    free = []
    for run in running:
        progress = run_progress(run)
        remaining = progress["eta_s"]
        if remaining is None:
            started = run.status_record.started or now
            remaining = max(0.0, run_seconds(run, finished) - (now - started))
        result[run.run_id] = Forecast(run.status_record.started or now, now + remaining)
        free.append(now + remaining)
    free = sorted(free)[: max(slots, 1)] + [now] * max(0, slots - len(free))
    heapq.heapify(free)
    for run in waiting:
        leader = run.status.get("follows")
        if isinstance(leader, str) and leader in result:
            result[run.run_id] = Forecast(result[leader].start, result[leader].end)
            continue
        slot = heapq.heappop(free) if free else now
        source = str(run.config.get("source_run") or "")
        after = max((f.end for rid, f in result.items() if source.endswith("/" + rid) or source == rid), default=now)
        start = max(slot, after)
        end = start + run_seconds(run, finished)
        result[run.run_id] = Forecast(start, end)
        heapq.heappush(free, end)
    return result


def queue_wait_s(forecasts: dict[str, Forecast], slots: int, now: float | None = None) -> float:
    """Seconds until a run queued now behind everything already waiting would start (the work ahead spread over the
    slots)."""
    now = time.time() if now is None else now
    remaining = sum(max(0.0, f.end - max(now, f.start)) for f in forecasts.values())
    return remaining / max(1, slots)
