"""A finished run's validation outputs (files.VAL_OUTPUTS): its best model's class map for every validation image at
the training size, and per image and class the pixels of intersection and union with the truth. Written once (at the
end of training, or the first time Compare needs them for an older or imported run), read by Compare, the HTML
report and the worst-images view, so none of them runs the model again.

Stored as a compressed .npz of plain arrays (never pickles): maps (N, H, W) uint8, intersection and union (N, C)
int64, names (N,) text.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.atomic import atomic_write_bytes
from .files import VAL_OUTPUTS

MAX_BYTES = 512 * 1024**2  # a read never loads more than this


@dataclass(frozen=True)
class ValOutputs:
    maps: np.ndarray  # (N, H, W) uint8 class indices
    intersection: np.ndarray  # (N, C)
    union: np.ndarray  # (N, C)
    names: list[str]

    def class_iou(self, image: int, class_index: int) -> float | None:
        """IoU of one class on one image; None where the class is neither in the truth nor predicted."""
        union = int(self.union[image, class_index])
        return None if union == 0 else int(self.intersection[image, class_index]) / union


def outputs_problem(outputs: ValOutputs, num_classes: int | None = None) -> str | None:
    """Why these arrays are not a run's validation outputs (None when they are)."""
    n = len(outputs.names)
    if outputs.maps.dtype != np.uint8 or outputs.maps.ndim != 3 or outputs.maps.shape[0] != n:
        return f"{VAL_OUTPUTS}: 'maps' is not one class map per image"
    shape = (n, num_classes) if num_classes else outputs.intersection.shape
    for name in ("intersection", "union"):
        array = getattr(outputs, name)
        if array.shape != shape or array.ndim != 2 or not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
            return f"{VAL_OUTPUTS}: '{name}' is not a count per image and class"
    if (outputs.intersection > outputs.union).any():
        return f"{VAL_OUTPUTS}: an intersection is larger than its union"
    return None


def encode(outputs: ValOutputs) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        maps=outputs.maps,
        intersection=outputs.intersection,
        union=outputs.union,
        names=np.asarray(outputs.names, dtype=str),
    )
    return buffer.getvalue()


def decode(data: bytes | Path) -> ValOutputs:
    """ValueError saying what is wrong when the file is not a run's validation outputs."""
    try:
        with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as stored:
            outputs = ValOutputs(
                stored["maps"], stored["intersection"], stored["union"], [str(n) for n in stored["names"]]
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{VAL_OUTPUTS} cannot be read ({type(exc).__name__}: {exc})") from None
    problem = outputs_problem(outputs)
    if problem:
        raise ValueError(problem)
    return outputs


def write_val_outputs(run_path: Path, outputs: ValOutputs) -> None:
    atomic_write_bytes(Path(run_path) / VAL_OUTPUTS, encode(outputs))


def read_val_outputs(run_path: Path) -> ValOutputs | None:
    """The run's saved validation outputs, or None when there are none (or they cannot be used)."""
    path = Path(run_path) / VAL_OUTPUTS
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        return decode(path)
    except (OSError, ValueError):
        return None


def per_image_counts(maps: np.ndarray, truths: np.ndarray, num_classes: int, ignore: int = 255) -> tuple:
    """(intersection, union) per image and class over labelled pixels."""
    n = len(maps)
    intersection = np.zeros((n, num_classes), dtype=np.int64)
    union = np.zeros((n, num_classes), dtype=np.int64)
    for i in range(n):
        labelled = truths[i] != ignore
        truth, prediction = truths[i][labelled].astype(np.int64), maps[i][labelled].astype(np.int64)
        keep = (truth < num_classes) & (prediction < num_classes)
        confusion = np.bincount(truth[keep] * num_classes + prediction[keep], minlength=num_classes**2)
        confusion = confusion.reshape(num_classes, num_classes)
        intersection[i] = np.diag(confusion)
        union[i] = confusion.sum(0) + confusion.sum(1) - intersection[i]
    return intersection, union
