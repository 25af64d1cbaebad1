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

import re
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..base.errors import DatasetError
from .dataset import SegmentationData
from .masks import IGNORE, MaskEncoding

TUNING_FRACTION = 0.2
TUNING_SEED = 0  # fixed, and separate from the training seeds: every seed is tuned on the same images
SPLITS = ("tune", "report")


def sequence_of(name: str) -> str:
    """The recording a frame or slice belongs to: its name without the trailing frame number
    ('0016E5_07959' → '0016E5', '0006R0_f02430' → '0006R0_f', '17' → '')."""
    return re.sub(r"[-_. ]*\d+$", "", name)


def _frame_order(name: str) -> tuple:
    number = re.search(r"(\d+)$", name)
    return (int(number.group(1)) if number else -1, name)


def tuning_indices(
    names: list[str], fraction: float = TUNING_FRACTION, seed: int = TUNING_SEED
) -> tuple[list[int], list[int]]:
    """(training part, tuning part): indices into the dataset's 'train' pairs (named `names`), disjoint, seeded,
    both sorted. The tuning part is one contiguous run of frames from each recording (video sequence, stack of
    slices), at a seeded place, about `fraction` of it: frames picked one by one would sit a second beside the
    frames trained on, near-copies of them, and reward memorising — a tuning score the untouched split then
    does not repeat (bench/README.md, "The tuning split")."""
    count = len(names)
    if count < 2:
        raise DatasetError(
            "train",
            f"{count} training image(s) cannot be split into a training and a tuning part",
            "use a dataset with at least 2 training images",
        )
    generator = torch.Generator().manual_seed(seed)
    recordings: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        recordings.setdefault(sequence_of(name), []).append(index)
    tune: list[int] = []
    loose: list[int] = []  # recordings too short for a stretch of their own: photos named without frame numbers
    for key in sorted(recordings):
        frames = sorted(recordings[key], key=lambda i: _frame_order(names[i]))
        block = round(len(frames) * fraction)
        if block == 0:
            loose += frames
            continue
        start = int(torch.randint(len(frames) - block + 1, (1,), generator=generator))
        tune += frames[start : start + block]
    picked = torch.randperm(len(loose), generator=generator)[: round(len(loose) * fraction)].tolist()
    tune += [loose[i] for i in picked]
    if not tune:  # at least one image to score
        tune = [int(torch.randint(count, (1,), generator=generator))]
    if len(tune) == count:  # at least one image to train on
        tune = tune[1:]
    held = set(tune)
    return [i for i in range(count) if i not in held], sorted(tune)


def protocol_view(
    data: SegmentationData, split: str, fraction: float = TUNING_FRACTION, seed: int = TUNING_SEED
) -> SegmentationData:
    """The dataset with 'train' and 'val' as the protocol's split names them ('tune' or 'report')."""
    if split == "report":
        return data
    if split != "tune":
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    pairs = data.pairs("train")
    rest, tune = tuning_indices([p.name for p in pairs], fraction, seed)
    return replace(
        data,
        splits={"train": [pairs[i] for i in rest], "val": [pairs[i] for i in tune]},
        split_origin=f"tuning split: {len(tune)} of the {len(pairs)} training pairs (a contiguous {fraction:.0%} of "
        f"each recording, seed {seed}) scored, the other {len(rest)} trained on; the dataset's own 'val' untouched",
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


DUSK = "0001TP"  # CamVid's recording filmed at dusk; the others are by day (its frames' names say which)


def domain_shift_view(
    data: SegmentationData, target: str = DUSK, adapt_fraction: float = 0.5, seed: int = TUNING_SEED
) -> SegmentationData:
    """Adapting to a new domain without its labels: train on the labelled frames of every other recording (the source
    domain), take one contiguous stretch of the `target` recording's frames as unlabelled images (their masks never
    read) and score on the rest of it — never on a frame the adaptation saw. 'train' → the source domain's pairs,
    'val' → the target's scored stretch, `unlabelled` → the target's adaptation stretch."""
    pairs = data.pairs("train")
    target_frames = sorted(
        (i for i, p in enumerate(pairs) if sequence_of(p.name) == target), key=lambda i: pairs[i].name
    )
    if len(target_frames) < 2:
        raise DatasetError(data.root, f"no recording named {target} with two frames or more", "check the dataset")
    names = [pairs[i].name for i in target_frames]
    scored, adapt = tuning_indices(names, adapt_fraction, seed)  # the stretch to adapt on; the rest scored
    source = [p for i, p in enumerate(pairs) if sequence_of(p.name) != target]
    return replace(
        data,
        source=f"{data.source} [{target} as a new domain]",
        splits={"train": source, "val": [pairs[target_frames[i]] for i in scored]},
        split_origin=f"domain shift: trained on the {len(source)} frames of the other recordings, "
        f"{len(adapt)} frames of {target} unlabelled (one contiguous stretch), scored on the other {len(scored)}",
        unlabelled=[pairs[target_frames[i]].image for i in adapt],
        _cache={},
    )
