"""A finished run as Compare, the report and the worst-images view draw it: its classes and colours (best.json) and
its validation outputs (runs/val_outputs.py), which training saved. No model is loaded and no forward pass made;
a run from before the outputs were saved (or imported without them) gets them computed once and saved."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..base.errors import RunError
from ..data.classes import default_palette
from ..data.dataset import SegmentationData
from ..data.framing import COVER, SQUASH, framed_size
from ..runs.records import best_meta_problem, colours_problem
from ..runs.run import Run
from ..runs.val_outputs import ValOutputs, outputs_problem, per_image_counts, read_val_outputs, write_val_outputs
from ..training.predict import Predictor
from ..training.windows import bounded_logits, scoring_batch

PREDICTION_BATCH = 16


@dataclass(frozen=True)
class RunView:
    run: Run
    classes: list[str]
    colours: list[tuple]
    size: tuple[int, int]  # (height, width) the validation images were scored at (its training size, or framed)
    strategy: str
    outputs: ValOutputs
    fit: str = SQUASH  # how the images were decoded (data/framing.py)

    def map(self, index: int) -> np.ndarray:
        return self.outputs.maps[index]


def drawing_meta(run: Run) -> tuple[list[str], list[tuple], tuple[int, int]]:
    """(class names, colours, training size) from best.json; names and colours that do not keep the rules are
    replaced (the run's `problem` says so), since they only draw."""
    meta, problem = run.best_meta()
    structural = problem or best_meta_problem({k: v for k, v in meta.items() if k not in ("classes", "colours")})
    if structural or not isinstance(meta.get("num_classes"), int) or not isinstance(meta.get("height"), int):
        raise RunError(f"run {run.run_id}: its best checkpoint's sidecar cannot be used ({structural or 'incomplete'})")
    count = meta["num_classes"]
    classes = meta.get("classes")
    if best_meta_problem({"num_classes": count, "classes": classes}) or not isinstance(classes, list):
        classes = [f"class {i}" for i in range(count)]
    colours = meta.get("colours")
    colours = [tuple(c) for c in colours] if colours_problem(colours, count) is None else default_palette(count)
    return classes, colours, (meta["height"], meta["width"])


def run_view(run: Run, data: SegmentationData, split: str = "val") -> RunView:
    """The run's view on `data` (the dataset it was trained on, read with its own settings). Outputs are read from
    the run folder; missing (an older or imported run), they are computed once with the model and saved."""
    classes, colours, trained = drawing_meta(run)
    fit = COVER if run.best_meta()[0].get("resize") == "crop" else SQUASH
    size = framed_size(trained, data.typical_size()) if fit == COVER else trained
    if data.num_classes != len(classes):
        raise RunError(
            f"run {run.run_id} predicts {len(classes)} classes but the dataset has {data.num_classes}: "
            "use the dataset the run was trained on"
        )
    outputs = read_val_outputs(run.path) if split == "val" else None
    images = data.load(split, size, fit=fit)
    if outputs is None or len(outputs.names) != len(images) or outputs.maps.shape[1:] != tuple(size):
        outputs = compute_outputs(run, data, split, size, fit=fit)
        if split == "val":
            write_val_outputs(run.path, outputs)
    if outputs_problem(outputs, len(classes)):
        raise RunError(f"run {run.run_id}: {outputs_problem(outputs, len(classes))}")
    return RunView(run, classes, colours, size, str(run.config.get("strategy", "?")), outputs, fit)


def compute_outputs(
    run: Run,
    data: SegmentationData,
    split: str,
    size: tuple[int, int],
    predictor: Predictor | None = None,
    fit: str = SQUASH,
) -> ValOutputs:
    """The run's model over the split, once: the one forward pass Compare makes, for runs saved without outputs
    (or a model the caller hands in)."""
    predictor = predictor or Predictor(run, device="cpu")
    images = data.load(split, size, fit=fit)
    maps = []
    per_pass = scoring_batch(PREDICTION_BATCH, *images.images.shape[-2:])
    with torch.inference_mode():
        for start in range(0, len(images), per_pass):
            batch = predictor.normalize(images.images[start : start + per_pass].to(predictor.device))
            logits = bounded_logits(predictor.model, batch, predictor.size)
            maps.append(logits.argmax(1).to("cpu", torch.uint8))
    maps = torch.cat(maps).numpy() if maps else np.zeros((0, *size), dtype=np.uint8)
    intersection, union = per_image_counts(maps, images.masks[:].numpy(), data.num_classes)
    return ValOutputs(maps, intersection, union, list(images.names))


def as_views(items, data: SegmentationData, split: str = "val") -> list[RunView]:
    """RunViews from runs, run folders, RunViews or Predictors (a Predictor's own model, classes and colours are used:
    the caller chose that model; runs read what training saved)."""
    views = []
    for item in items:
        if isinstance(item, RunView):
            views.append(item)
        elif isinstance(item, Predictor):
            size = item.framed(data)
            outputs = compute_outputs(item.run, data, split, size, item, item.fit)
            strategy = str(item.run.config.get("strategy", "?"))
            views.append(RunView(item.run, list(item.classes), list(item.colours), size, strategy, outputs, item.fit))
        else:
            views.append(run_view(item if isinstance(item, Run) else Run.from_path(item), data, split))
    return views
