"""A run's progress as the Training page shows it, read from its metrics file."""

from __future__ import annotations

import time

from .runs import Run


def run_progress(run: Run, curves: tuple[list[dict], list[dict]] | None = None) -> dict:
    config, status = run.config, run.status
    steps, epochs = curves or run.curves()
    last = steps[-1] if steps else {}
    total = last.get("total_steps") or 0
    fraction = (last.get("step", 0) / total) if total else 0.0
    if status.get("state") == "done":
        fraction = 1.0
    eta = None
    started = status.get("started")
    if status.get("state") == "running" and started and fraction > 0.02:
        elapsed = time.time() - started
        eta = elapsed * (1 - fraction) / fraction
    return {
        "run": run.run_id, "strategy": config.get("strategy"), "state": status.get("state"),
        "reason": status.get("reason", ""), "epoch": last.get("epoch", 0), "epochs": last.get("epochs", config.get("epochs")),
        "step": last.get("step", 0), "total_steps": total, "fraction": min(1.0, fraction),
        "images_per_s": last.get("images_per_s"), "eta_s": eta,
        "best_miou": max((e["miou"] for e in epochs), default=None),
    }
