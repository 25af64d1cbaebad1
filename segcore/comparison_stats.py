"""What the Compare page tabulates and plots, computed from run folders (no drawing here)."""

from __future__ import annotations

from .runs import Run


def summary_row(run: Run) -> dict:
    summary, config = run.summary(), run.config
    return {
        "run": run.run_id, "strategy": config.get("strategy"), "backbone": config.get("backbone"),
        "mIoU": summary.get("miou"), "pixel accuracy": summary.get("pixel_accuracy"),
        "training time (s)": summary.get("train_time_s"), "trainable parameters": summary.get("trainable_params"),
        "training images": summary.get("train_images"), "epochs": summary.get("epochs", config.get("epochs")),
        "regulariser": config.get("regularizer"), "class weights": config.get("class_weights", "none"),
    }


def per_class_iou_rows(runs: list[Run]) -> list[dict]:
    rows = []
    for run in runs:
        summary = run.summary()
        for name, iou in zip(summary.get("classes", []), summary.get("per_class_iou") or []):
            rows.append({"run": run.run_id, "strategy": run.config.get("strategy"), "class": name,
                         "IoU": iou if iou is not None else 0.0})
    return rows


def data_efficiency_points(runs: list[Run]) -> list[dict]:
    """(strategy, training images, mIoU) for finished runs; the curve needs two sizes or more."""
    return sorted(
        ({"strategy": r.config.get("strategy"), "training images": r.summary().get("train_images"),
          "mIoU": r.summary().get("miou"), "run": r.run_id} for r in runs if r.summary()),
        key=lambda p: (p["strategy"], p["training images"]),
    )


def differs_in_training_size(runs: list[Run]) -> bool:
    return len({r.summary().get("train_images") for r in runs if r.summary()}) > 1
