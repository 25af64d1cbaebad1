"""Views of a loaded dataset for honest evaluation (bench/quality_protocol.py, tests).

- `protocol_view(data, "tune")`: a seeded tuning split carved from 'train' (default 20 %); the model trains on
  the rest of 'train' and is scored on the tuning part. Defaults are chosen here, never on 'val'.
- `protocol_view(data, "report")`: the dataset as it is ('train' → 'val'); 'val' is only scored, never used to
  choose anything.
- `binary_view(data, ["Car"])`: a two-class task remapped on the fly from a multi-class one (CamVid car vs
  everything else): a natural-image binary task with the dataset's own held-out split, no files written.

Views share nothing decoded with the dataset they come from (each has its own in-memory cache).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import DatasetError
from .dataset import SegmentationData
from .masks import IGNORE, MaskEncoding

TUNING_FRACTION = 0.2
TUNING_SEED = 0  # fixed, and separate from the training seeds: every seed is tuned on the same images
SPLITS = ("tune", "report")


def tuning_indices(
    train_count: int, fraction: float = TUNING_FRACTION, seed: int = TUNING_SEED
) -> tuple[list[int], list[int]]:
    """(training part, tuning part): indices into the dataset's 'train' pairs, disjoint, seeded, both sorted."""
    if train_count < 2:
        raise DatasetError(
            "train",
            f"{train_count} training image(s) cannot be split into a training and a tuning part",
            "use a dataset with at least 2 training images",
        )
    count = min(train_count - 1, max(1, round(train_count * fraction)))
    order = torch.randperm(train_count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[count:]), sorted(order[:count])


def protocol_view(
    data: SegmentationData, split: str, fraction: float = TUNING_FRACTION, seed: int = TUNING_SEED
) -> SegmentationData:
    """The dataset with 'train' and 'val' as the protocol's split names them ('tune' or 'report')."""
    if split == "report":
        return data
    if split != "tune":
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    pairs = data.pairs("train")
    rest, tune = tuning_indices(len(pairs), fraction, seed)
    return replace(
        data,
        splits={"train": [pairs[i] for i in rest], "val": [pairs[i] for i in tune]},
        split_origin=f"tuning split: {len(tune)} of the {len(pairs)} training pairs ({fraction:.0%}, seed "
        f"{seed}) scored, the other {len(rest)} trained on; the dataset's own 'val' untouched",
        _cache={},
    )


@dataclass
class RemappedEncoding(MaskEncoding):
    """The base encoding followed by a class → class lookup (IGNORE stays IGNORE)."""

    base: MaskEncoding | None = None
    table: np.ndarray | None = None  # 256 entries, uint8

    def map_value(self, value) -> int | None:
        index = self.base.map_value(value)
        return None if index is None else int(self.table[index])

    def apply(self, raw: np.ndarray, path) -> np.ndarray:
        return self.table[self.base.apply(raw, path)]

    def describe(self) -> str:
        return self.base.describe() + "; then remapped to a two-class task"


def binary_view(data: SegmentationData, positive: list[str], name: str | None = None) -> SegmentationData:
    """'positive' classes → class 1 (named `name`), every other class → class 0 ('rest'); ignored stays ignored."""
    unknown = [c for c in positive if c not in data.class_names]
    if unknown:
        raise DatasetError(
            data.root, f"no class named {', '.join(unknown)}", f"choose from {', '.join(data.class_names)}"
        )
    table = np.zeros(256, dtype=np.uint8)
    table[IGNORE] = IGNORE
    for index in (data.class_names.index(c) for c in positive):
        table[index] = 1
    encoding = RemappedEncoding(
        kind="index", num_classes=2, ignore_value=data.encoding.ignore_value, base=data.encoding, table=table
    )
    label = name or "+".join(positive)
    return replace(
        data,
        source=f"{data.source} [{label} vs rest]",
        class_names=["rest", label],
        class_colours=[(0, 0, 0), (255, 64, 64)],
        encoding=encoding,
        _cache={},
    )


BINARY_TASKS = {"car": (["Car"], "car"), "person": (["Pedestrian", "Bicyclist"], "person")}
