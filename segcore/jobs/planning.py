"""Turning one set of settings into the runs a comparison needs (what 'Train all strategies' queues)."""

from __future__ import annotations

import math
from dataclasses import replace

from ..base.errors import RunError
from ..runs.naming import default_group_name
from ..runs.run import Run
from ..settings.config import TrainConfig
from ..settings.strategies import STRATEGIES
from .queue import JobQueue

SOURCE_TASK = "builtin:shapes-source"  # the source task of a dataset that declares no matching one of its own
SWEEP_SIZES = (0.1, 0.25, 0.5, 1.0)


def training_ignore_index(data) -> int | None:
    """The ignore index a run on `data` trains with: index masks keep the dataset's own, other encodings
    (binary, colour, palette) map unlabelled pixels to 255."""
    return data.ignore_index if data.encoding.kind == "index" else 255


def smallest_training_share(train_images: int, step: int = 5) -> int:
    """The smallest percentage (a multiple of `step`) of a training split that still holds one image."""
    return min(100, max(step, math.ceil(100 / max(train_images, 1) / step) * step))


SOURCE_MIN_EPOCHS = TrainConfig().epochs  # the default's: see source_config
SOURCE_PLACEHOLDER = "<the source run queued with this comparison>"


def matching_source_task(data_source: str) -> str:
    """The source task whose network structure transfer should carry over to `data_source`: the one a built-in
    target declares (BuiltinSpec.source_task: same kind of images, related classes), else SOURCE_TASK."""
    from ..data.builtin import BUILTINS

    kind, _, name = data_source.partition(":")
    spec = BUILTINS.get(name) if kind == "builtin" else None
    return f"builtin:{spec.source_task}" if spec is not None and spec.source_task else SOURCE_TASK


def source_config(config: TrainConfig, group: str, source_task: str = SOURCE_TASK) -> TrainConfig:
    """The source-task run that structure transfer carries over: same backbone, a different task.

    It trains at least the default number of epochs whatever the preset: it stands for a network trained on a large
    labelled dataset, and a source cut short by the quick preset made structure transfer a lottery of its seed
    (shapes-more at 3 epochs: source mIoU 0.60–0.70, structure 0.593 ± 0.095; at 6: 0.750 ± 0.008 and
    0.661 ± 0.056; bench/README.md)."""
    return replace(
        config,
        data=source_task,
        strategy="parameter",
        source_run=None,
        train_size=None,
        ignore_index=255,
        epochs=max(config.epochs, SOURCE_MIN_EPOCHS),
        run_name=f"{group}-source",
    )


def comparison_order(strategies=None) -> list[str]:
    """The strategies "Train all" queues (or the given ones: a lesson's), cheapest first so that a class sees a
    finished run early (feature transfer is done in a fraction of the time); those that need the source run go last."""
    names = list(strategies) if strategies is not None else [n for n, info in STRATEGIES.items() if info.in_train_all]
    return sorted(names, key=lambda n: (STRATEGIES[n].needs_source_run, -STRATEGIES[n].reference_images_per_s))


def full_training_images(config: TrainConfig, data=None) -> int | None:
    """How many training images the whole training split of config.data holds: from the loaded dataset, or from
    a built-in's declaration; None when neither is at hand."""
    from ..data.builtin import BUILTINS

    if data is not None:
        return len(data.pairs("train"))
    kind, _, name = config.data.partition(":")
    return BUILTINS[name].train if kind == "builtin" and name in BUILTINS else None


def sweep_step_budget(config: TrainConfig, full_train_images: int | None) -> int | None:
    """The optimiser steps every point of a data-efficiency sweep trains: those of the run on all the images.
    Points at equal steps compare what the data buys, not how long each run trained (with the same epochs, the
    10 % point would get a tenth of the steps)."""
    return None if full_train_images is None else config.planned_steps(full_train_images)


def comparison_plan(
    config: TrainConfig,
    group: str,
    source_run: str | None = None,
    train_sizes=(None,),
    strategies=None,
    source_task: str | None = None,
    seeds: int = 1,
    full_train_images: int | None = None,
    unlabelled: str | None = None,
) -> list[TrainConfig]:
    """The runs of a comparison, in queue order: one per strategy (× training-set size × seed) with identical
    settings; the source run, when one is needed, just before the first run that carries it over.
    strategies: the names to compare (default: those of "Train all"); source_task: the dataset the source run
    trains on (default: the one matching config.data, see matching_source_task); seeds: runs per point, with seeds
    config.seed, config.seed + 1, … (the spread of each point); full_train_images: the size of the whole training
    split, which gives every point of a sweep (several train_sizes) the same optimiser steps (sweep_step_budget);
    unlabelled: also each strategy trained semi-supervised from these unlabelled images, beside its labelled-only run
    (what unlabelled images add, with everything else equal)."""
    source_task = source_task or matching_source_task(config.data)
    budget = sweep_step_budget(config, full_train_images) if len(train_sizes) > 1 else None
    if budget is not None and config.max_steps:  # a step limit asked for (a smoke test) still holds
        budget = min(budget, config.max_steps)
    plan = []
    for size in train_sizes:
        for offset in range(seeds):
            suffix = ("" if size is None else f"-n{size:g}") + (f"-s{config.seed + offset}" if seeds > 1 else "")
            for strategy in comparison_order(strategies):
                info = STRATEGIES[strategy]
                if info.needs_source_run and not source_run:
                    plan.append(source_config(config, group, source_task))
                    source_run = SOURCE_PLACEHOLDER
                for extra in (None, unlabelled) if unlabelled else (config.unlabelled,):
                    run = replace(
                        config,
                        strategy=strategy,
                        train_size=size if size is not None else config.train_size,
                        seed=config.seed + offset,
                        run_name=f"{group}-{strategy}{suffix}" + ("-semi" if extra and unlabelled else ""),
                        source_run=source_run if info.needs_source_run else None,
                        unlabelled=extra,
                    )
                    if budget is not None:
                        run = replace(run, min_steps=budget, max_steps=budget)
                    plan.append(run)
    return plan


def plan_train_images(plan: list[TrainConfig], data) -> list[int]:
    """How many training images each planned run will use (a built-in source task has its own count)."""
    from ..data.builtin import BUILTINS

    counts = []
    for config in plan:
        kind, _, name = config.data.partition(":")
        if config.data != data.source and kind == "builtin" and name in BUILTINS:
            counts.append(BUILTINS[name].train)
        else:
            counts.append(len(data.train_indices(config.train_size, config.seed)))
    return counts


def queue_plan(
    queue: JobQueue,
    plan: list[TrainConfig],
    group: str,
    owner: str | None = None,
    train_images: list[int] | None = None,
) -> list[Run]:
    if len(plan) > 1 and (problem := queue.room_problem(owner, len(plan))):
        raise RunError(f"{problem}; this plan is {len(plan)} runs (fewer seeds or strategies make it smaller)")
    runs, source_path = [], None
    for config, images in zip(plan, train_images or [None] * len(plan)):
        if config.source_run == SOURCE_PLACEHOLDER:
            config = replace(config, source_run=source_path)
        is_source = config.run_name == f"{group}-source"
        run = queue.submit(config, group=group, owner=owner, train_images=images, role="source" if is_source else None)
        if is_source:
            source_path = str(run.path)
        runs.append(run)
    return runs


def queue_all_strategies(
    queue: JobQueue,
    config: TrainConfig,
    source_run: str | None = None,
    train_sizes=(None,),
    group: str | None = None,
    owner: str | None = None,
    data=None,
    strategies=None,
    source_task: str | None = None,
    seeds: int = 1,
) -> list[Run]:
    """Queue a whole comparison (see comparison_plan); with the dataset at hand, each run records its planned
    epochs and steps from the start."""
    group = group or default_group_name(config.data)
    plan = comparison_plan(
        config, group, source_run, train_sizes, strategies, source_task, seeds, full_training_images(config, data)
    )
    return queue_plan(queue, plan, group, owner, plan_train_images(plan, data) if data is not None else None)
