"""What the Compare page tabulates and plots, computed from run folders (no drawing here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..runs.naming import dataset_name
from ..runs.run import Run
from .curves import run_curves, seconds_to_reach


@dataclass(frozen=True)
class SummaryColumn:
    """One column of a comparison's summary table: the Compare page, its CSV and the HTML report all read these."""

    label: str  # the column's title (and the key of summary_row)
    value: Callable[[Run, dict, dict], object]  # (run, its summary, its config) → the value
    digits: int | None = None  # decimals when shown; None: text
    help: str = ""
    on_page: bool = True  # shown in the Compare page's table (the CSV has every column)
    in_report: bool = True  # shown in the HTML report's table


SECONDS_TO_90_HELP = (
    "compute seconds (the training process's own CPU time per thread, so a busy server or a long wait in the queue "
    "does not count) until validation mIoU first reached 90 % of the run's best"
)
SUMMARY_COLUMNS = (
    SummaryColumn("run", lambda run, summary, config: run.run_id),
    SummaryColumn("strategy", lambda run, summary, config: config.get("strategy")),
    SummaryColumn(
        "unlabelled images",
        lambda run, summary, config: config.get("unlabelled") or "—",
        help="Semi-supervised runs also learn from images without masks: 'rest' = the training images left out, "
        "'dataset' = the dataset's own unlabelled images, else their folder",
    ),
    SummaryColumn("backbone", lambda run, summary, config: config.get("backbone"), on_page=False),
    SummaryColumn("mIoU", lambda run, summary, config: summary.get("miou"), 3),
    SummaryColumn("pixel accuracy", lambda run, summary, config: summary.get("pixel_accuracy"), 3),
    SummaryColumn("training time (s)", lambda run, summary, config: summary.get("train_time_s"), 0),
    SummaryColumn(
        "s to 90 % of best",
        lambda run, summary, config: seconds_to_reach(run_curves(run)),
        0,
        help=SECONDS_TO_90_HELP[0].upper() + SECONDS_TO_90_HELP[1:],
    ),
    SummaryColumn(
        "trainable parameters",
        lambda run, summary, config: summary.get("trainable_params"),
        0,
        on_page=False,
        in_report=False,
    ),
    SummaryColumn("training images", lambda run, summary, config: summary.get("train_images"), 0),
    SummaryColumn("epochs", lambda run, summary, config: summary.get("epochs", config.get("epochs")), 0),
    SummaryColumn(
        "regulariser", lambda run, summary, config: config.get("regularizer"), on_page=False, in_report=False
    ),
    SummaryColumn("class weights", lambda run, summary, config: config.get("class_weights", "none"), in_report=False),
)


def summary_row(run: Run) -> dict:
    """Every summary column of one run, keyed by column label (the CSV's row)."""
    summary, config = run.summary(), run.config
    return {column.label: column.value(run, summary, config) for column in SUMMARY_COLUMNS}


def dataset_key(run: Run) -> tuple[str, tuple[str, ...]]:
    """What a run was scored on: its dataset and the class list of that dataset."""
    return str(run.config.get("data", "?")), tuple(run.summary().get("classes") or ())


def dataset_title(run: Run) -> str:
    summary = run.summary()
    images = summary.get("train_images")
    return dataset_name(run.config.get("data", "?")) + (f", {images} training images" if images else "")


def mixing_problem(runs: list[Run]) -> str | None:
    """Why these runs cannot share one grid, per-class chart or curve (None when they can)."""
    keys = {dataset_key(r) for r in runs}
    if len(keys) <= 1:
        return None
    sources = sorted({k[0] for k in keys})
    if len(sources) > 1:
        return (
            "these runs were trained on different datasets ("
            + ", ".join(dataset_name(s) for s in sources)
            + "): their scores, classes and pictures do not compare — pick runs of one dataset"
        )
    return "these runs use different class lists for the same data: pick runs trained with the same classes"


def default_selection(runs: list[Run], current_source: str | None, limit: int = 4) -> list[Run]:
    """The latest finished run of each strategy on the current dataset (runs are oldest first); else the
    latest comparison's runs."""
    on_current = [r for r in runs if r.config.get("data") == current_source]
    latest: dict[tuple, Run] = {}
    for run in on_current:  # a strategy's semi-supervised run is a kind of its own, beside its labelled-only one
        latest[(run.config.get("strategy"), bool(run.config.get("unlabelled")))] = run
    if latest:
        return sorted(latest.values(), key=lambda r: r.created)[-limit:]
    if not runs:
        return []
    group, data = runs[-1].config.get("group"), runs[-1].config.get("data")
    return [r for r in runs if group and r.config.get("group") == group and r.config.get("data") == data][
        -limit:
    ] or runs[-limit:]


def per_class_iou_rows(runs: list[Run]) -> list[dict]:
    rows = []
    for run in runs:
        summary = run.summary()
        for name, iou in zip(summary.get("classes", []), summary.get("per_class_iou") or []):
            rows.append(
                {
                    "run": run.run_id,
                    "strategy": run.config.get("strategy"),
                    "class": name,
                    "IoU": iou if iou is not None else 0.0,
                }
            )
    return rows


def trained_steps(run: Run) -> int | None:
    """The optimiser steps a finished run trained (summary.json; runs from before it was recorded: their plan)."""
    steps = run.summary().get("steps")
    if not isinstance(steps, int):
        plan = run.config.get("plan") if isinstance(run.config, dict) else None
        steps = plan.get("steps") if isinstance(plan, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def step_budget_note(runs: list[Run]) -> str:
    """One sentence on the optimiser steps behind a data-efficiency curve: equal budgets, or not (then a point with
    fewer images also trained fewer steps, and the curve mixes data with training time)."""
    steps = {trained_steps(r) for r in runs if r.summary()}
    if steps == {None} or not steps:
        return "The runs do not record their optimiser steps."
    known = sorted(s for s in steps if s is not None)
    if len(steps) == 1:
        return f"Every point trained the same {known[0]:,} optimiser steps: the points differ in the data alone."
    return (
        f"These runs trained between {known[0]:,} and {known[-1]:,} optimiser steps: a point with fewer images also "
        "trained less. The 📉 sweep on the Model page gives every point the same budget."
    )


# what may differ between runs that share one point of a data-efficiency curve (or one strategy's line of it)
_PER_POINT = {
    "strategy",
    "seed",
    "train_size",
    "run_name",
    "run_id",
    "group",
    "created",
    "fingerprint",
    "owner",
    "plan",
    "source_run",
    "min_steps",
    "max_steps",
    "result_key",
    "role",
    "made_by",
}


def same_recipe(runs: list[Run], like: Run) -> list[Run]:
    """The runs trained like `like` apart from strategy, seed and training-set size: pooled into mean ± sd, runs
    with other settings (epochs, image size, class weights…) would pass for seed spread."""

    def recipe(run: Run) -> dict:
        config = run.config if isinstance(run.config, dict) else {}
        return {k: v for k, v in config.items() if k not in _PER_POINT}

    wanted = recipe(like)
    return [r for r in runs if recipe(r) == wanted]


def differs_in_training_size(runs: list[Run]) -> bool:
    return len({r.summary().get("train_images") for r in runs if r.summary()}) > 1
