"""Adapting a finished run to a new domain without labels, the cheap way: re-estimate its BatchNorm statistics on
images of the new domain (seconds, no training). A network trained on day scenes normalises its features with day
statistics; dusk images shift them, and re-estimating the running mean and variance on dusk images moves them back
(AdaBN, Li et al. 2016). The result is a new run beside the old one, so Compare shows both."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ..base.errors import RunError
from ..data.transforms import Normalizer
from ..models.checkpoints import build_from_checkpoint
from ..runs.run import Run, new_run_id
from ..runs.writer import RunWriter
from .evaluate import evaluate_run
from .predict import Predictor

BATCH = 16


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, images: torch.Tensor, normalize: Normalizer) -> int:
    """Every BatchNorm's running statistics recomputed as the plain average over `images` (uint8 N,3,H,W); the
    weights stay as they are. Returns how many BatchNorm layers were re-estimated."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over every batch, not an exponential one
    model.train()
    for start in range(0, len(images), BATCH):
        model(normalize(images[start : start + BATCH]))
    model.eval()
    return len(layers)


def adapt_run(
    run: Run, images: torch.Tensor, runs_dir: str | Path, data=None, owner: str | None = None, about: str = ""
) -> Run:
    """A new finished run: `run`'s network with BatchNorm re-estimated on `images` (decoded at the run's training
    size), scored on `data`'s validation split when given (the new domain's labelled frames). `about` says where the
    images came from, for the run's log."""
    if not run.has_checkpoint():
        raise RunError(f"run {run.run_id} has no finished checkpoint to adapt")
    if len(images) < 2:
        raise RunError("re-estimating BatchNorm needs at least two images of the new domain")
    started = time.time()
    model, meta = build_from_checkpoint(run.best_stem)
    layers = reestimate_batchnorm(model, images, Normalizer(meta["mean"], meta["std"]))
    runs_dir = Path(runs_dir)
    config = dict(run.config)
    run_id = new_run_id(runs_dir, f"{run.run_id}-bn-adapted", str(config.get("strategy")), config.get("data", ""))
    writer = RunWriter(runs_dir / run_id)
    try:
        writer.write_config(
            {
                **config,
                "run_id": run_id,
                "owner": owner,
                "created": time.time(),
                "adapted_from": run.run_id,
                "group": config.get("group"),
            }
        )
        writer.save_best_checkpoint(model, {**meta, "run_id": run_id})
        summary = {**run.summary(), "adapted_from": run.run_id, "adapted_on": len(images)}
        if data is not None:
            scores = evaluate_run(Predictor(Run(writer.path), device="cpu"), data, "val")
            summary.update(
                miou=scores["miou"],
                pixel_accuracy=scores["pixel_accuracy"],
                mean_dice=scores["mean_dice"],
                per_class_iou=list(scores["per_class_iou"].values()),
                val_images=scores["images"],
            )
        writer.write_summary(summary)
        writer.log(
            f"BatchNorm statistics of {layers} layers re-estimated on {len(images)} images of the new domain "
            f"({about or 'unlabelled'}) in {time.time() - started:.1f}s; weights from {run.run_id}"
        )
        now = time.time()
        writer.set_status("done", started=started, updated=now, adapted_from=run.run_id, miou=summary.get("miou"))
    finally:
        writer.close()
    return Run(writer.path)
