"""A run's progress as the Training page shows it, read from its metrics file (which may hold anything)."""

from __future__ import annotations

import time

from ..base.values import finite_number
from .run import Run


def run_progress(run: Run, curves: tuple[list[dict], list[dict]] | None = None) -> dict:
    """What a card or the Teacher's table shows of a run. Without `curves` it reads a constant amount, however large
    the run folder: status.json (which the training process keeps the best mIoU in), config.json and the newest step
    record from the end of metrics.jsonl."""
    config, status = run.config, run.status_record
    if curves is None:
        last, epochs = run.latest_step(), []
    else:
        steps, epochs = curves
        last = steps[-1] if steps else {}
    plan = config.get("plan") if isinstance(config.get("plan"), dict) else {}  # recorded at submission
    step = finite_number(last.get("step")) or 0
    total = finite_number(last.get("total_steps")) or finite_number(plan.get("steps")) or 0
    fraction = (step / total) if total > 0 else 0.0
    if status.state == "done":
        fraction = 1.0
    eta = None
    if status.state == "running" and status.started and fraction > 0.02:
        elapsed = time.time() - status.started
        eta = elapsed * (1 - fraction) / fraction
    mious = [m for m in (finite_number(e.get("miou")) for e in epochs) if m is not None]
    mious += [m for m in (finite_number(run.status.get("best_miou")), status.miou) if m is not None]
    epochs_planned = last.get("epochs", plan.get("epochs", config.get("epochs")))
    return {
        "run": run.run_id,
        "strategy": config.get("strategy") if isinstance(config.get("strategy"), str) else None,
        "state": status.state,
        "reason": status.reason,
        "epoch": int(finite_number(last.get("epoch")) or 0),
        "epochs": int(epochs_planned) if finite_number(epochs_planned) is not None else None,
        "step": int(step),
        "total_steps": int(total),
        "fraction": max(0.0, min(1.0, fraction)),
        "images_per_s": finite_number(last.get("images_per_s")),
        "eta_s": eta,
        "best_miou": max(mious, default=None),
        # before the first step: what the run is preparing (decoding its images), "done/total" included
        "preparing": status_text
        if status.state == "running" and not step and isinstance(status_text := run.status.get("preparing"), str)
        else None,
    }
