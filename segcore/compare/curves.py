"""The curves a comparison draws (loss per step, mIoU and accuracy per epoch, mIoU against wall-clock time),
computed from run folders: one source for the Training and Compare pages, no drawing here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runs.run import Run
from ..settings.strategies import STRATEGIES


@dataclass
class RunCurves:
    run_id: str
    strategy: str
    label: str  # legend text: what the run is
    colour: str
    is_source: bool  # the source task a structure transfer carries over: another dataset, drawn apart
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    epochs: list[dict] = field(default_factory=list)  # epoch records (miou, pixel_accuracy, …)
    seconds: list[float] = field(default_factory=list)  # wall-clock seconds since the run started, per epoch
    images_seen: list[int] = field(default_factory=list)  # training images seen by the end of each epoch
    step_records: list[dict] = field(default_factory=list)  # as logged, for progress (total steps, speed)


def source_run_paths(runs: list[Run]) -> set[str]:
    return {str(r.config.get("source_run")) for r in runs if r.config.get("source_run")}


def run_curves(run: Run, is_source: bool = False) -> RunCurves:
    config, status = run.config, run.status
    strategy = str(config.get("strategy", "?"))
    info = STRATEGIES.get(strategy)
    label = f"source task: {config.get('data', '?')}" if is_source else (info.label if info else strategy)
    steps, epochs = run.curves()
    started = status.get("started")
    batch = config.get("batch_size") or 1
    curves = RunCurves(
        run.run_id,
        strategy,
        f"{label} · {run.run_id}",
        "#94a3b8" if is_source else (info.colour if info else "#888888"),
        is_source,
        steps=[(s["step"], s["loss"]) for s in steps if "step" in s and "loss" in s],
        epochs=[e for e in epochs if "epoch" in e and "miou" in e],
        step_records=steps,
    )
    step_at_epoch = {}
    for s in steps:
        step_at_epoch[s.get("epoch")] = s.get("step", 0)
    for record in curves.epochs:
        if isinstance(started, (int, float)) and isinstance(record.get("time"), (int, float)):
            curves.seconds.append(max(0.0, record["time"] - started))
        curves.images_seen.append(step_at_epoch.get(record["epoch"], 0) * batch)
    return curves


def comparison_curves(runs: list[Run]) -> list[RunCurves]:
    sources = source_run_paths(runs)
    return [run_curves(run, str(run.path) in sources) for run in runs]


def seconds_to_reach(curves: RunCurves, share: float = 0.9) -> float | None:
    """Wall-clock seconds until validation mIoU first reached `share` of the run's best (None if unknown)."""
    if not curves.epochs or len(curves.seconds) != len(curves.epochs):
        return None
    best = max(e["miou"] for e in curves.epochs)
    for record, seconds in zip(curves.epochs, curves.seconds):
        if record["miou"] >= share * best:
            return seconds
    return None
