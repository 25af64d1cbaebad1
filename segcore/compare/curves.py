"""The curves a comparison draws (loss per step, mIoU and accuracy per epoch, mIoU against wall-clock time),
computed from run folders: one source for the Training and Compare pages, no drawing here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..runs.run import Run, is_run_folder, is_valid_run_id
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
    # the training process's own work by the end of each epoch (ComputeClock): what the strategy cost, whatever the
    # machine's load or the run's place in the queue; empty for runs trained before it was recorded
    compute: list[float] = field(default_factory=list)
    images_seen: list[int] = field(default_factory=list)  # training images seen by the end of each epoch
    step_records: list[dict] = field(default_factory=list)  # as logged, for progress (total steps, speed)
    semi_supervised: bool = False  # also learnt from unlabelled images (its steps hold the loss's two parts)

    def loss_parts(self) -> list[tuple[int, float, float, float]]:
        """(step, supervised loss, unlabelled loss, share of confident pixels) of a semi-supervised run's steps."""
        keys = ("step", "sup_loss", "unsup_loss", "confident")
        return [tuple(s[k] for k in keys) for s in self.step_records if all(k in s for k in keys)]


# a chart draws each run's per-step curves with at most this many points: a page redrawn every second while a run
# trains would otherwise serialise, send and plot every step, a payload that grows with the run (a long run has
# tens of thousands), and a raw per-step loss is mostly noise at that density
CURVE_POINTS = 300


def thinned(points: list[tuple], limit: int = CURVE_POINTS) -> list[tuple]:
    """At most `limit` points of a per-step curve: consecutive steps averaged in equal buckets (so a noisy loss
    reads as its trend, and no step is dropped from the mean), each bucket placed at its last step; the last point
    is always the latest step. Short curves are returned as they are."""
    if len(points) <= limit:
        return list(points)
    size = -(-len(points) // limit)  # ceil: the buckets cover every point
    buckets = [points[i : i + size] for i in range(0, len(points), size)]
    return [
        (bucket[-1][0], *(sum(p[k] for p in bucket) / len(bucket) for k in range(1, len(bucket[0]))))
        for bucket in buckets
    ]


def source_run_paths(runs: list[Run]) -> set[str]:
    return {str(r.config.get("source_run")) for r in runs if r.config.get("source_run")}


def run_curves(run: Run, is_source: bool = False) -> RunCurves:
    config, status = run.config, run.status
    strategy = str(config.get("strategy", "?"))
    info = STRATEGIES.get(strategy)
    label = f"source task: {config.get('data', '?')}" if is_source else (info.label if info else strategy)
    semi = bool(config.get("unlabelled"))
    if semi:
        label += " + unlabelled"
    steps, epochs = _followed(run).curves()  # a run following an identical one shows that run's live curves
    started = _followed(run).status.get("started") if status.get("follows") else status.get("started")
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
        semi_supervised=semi,
    )
    step_at_epoch = {}
    for s in steps:
        step_at_epoch[s.get("epoch")] = s.get("step", 0)
    for record in curves.epochs:
        if isinstance(started, (int, float)) and isinstance(record.get("time"), (int, float)):
            curves.seconds.append(max(0.0, record["time"] - started))
        curves.images_seen.append(step_at_epoch.get(record["epoch"], 0) * batch)
    compute = [record.get("compute_s") for record in curves.epochs]
    if compute and all(isinstance(c, (int, float)) for c in compute):
        curves.compute = [float(c) for c in compute]
    return curves


def time_axis(curves: RunCurves) -> tuple[list[float], str]:
    """The seconds a time-to-accuracy curve is drawn against, and their name: compute time when the run recorded it,
    else wall-clock time since it started."""
    if curves.compute and len(curves.compute) == len(curves.epochs):
        return curves.compute, "compute"
    return curves.seconds, "wall"


def load_slowdown(curves: RunCurves) -> float | None:
    """How much longer the run took on the wall clock than its own compute (2.0: the machine was busy with other work
    half the time); None when the run did not record its compute time."""
    if not curves.compute or len(curves.seconds) != len(curves.compute) or curves.compute[-1] <= 0:
        return None
    return curves.seconds[-1] / curves.compute[-1]


def _followed(run: Run) -> Run:
    leader = run.status.get("follows")
    if isinstance(leader, str) and is_valid_run_id(leader) and is_run_folder(run.path.parent / leader):
        return Run(run.path.parent / leader)
    return run


def comparison_curves(runs: list[Run]) -> list[RunCurves]:
    sources = source_run_paths(runs)
    return [run_curves(run, str(run.path) in sources) for run in runs]


def seconds_to_reach(curves: RunCurves, share: float = 0.9) -> float | None:
    """Seconds of the run's own compute (wall-clock seconds for runs that did not record it) until validation mIoU
    first reached `share` of the run's best; None if unknown."""
    times, _ = time_axis(curves)
    if not curves.epochs or len(times) != len(curves.epochs):
        return None
    best = max(e["miou"] for e in curves.epochs)
    for record, seconds in zip(curves.epochs, times):
        if record["miou"] >= share * best:
            return seconds
    return None
