"""How a dataset's stored mask values become class indices, decided once for the whole dataset.

One rule object (MaskEncoding) answers both "which class is stored value v?" (the report) and "turn this
mask into class indices" (training): apply() is built from map_value(), so the two can never disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..base.errors import DatasetError
from .limits import MAX_INDEX_CLASSES

IGNORE = 255  # internal index of pixels that count in neither loss nor metrics; no class can be 255
_UNKNOWN = -1

# Binary masks saved lossily (JPEG) or with soft edges: values cluster near 0 and 255.
SNAP_THRESHOLD = 128
_NEAR_LOW, _NEAR_HIGH = 63, 192
_NEAR_BINARY_SHARE = 0.9


@dataclass
class MaskEncoding:
    """The rule that maps stored mask values to class indices (IGNORE for ignored pixels)."""

    kind: str  # "index", "binary", or "colour"
    num_classes: int
    ignore_value: int | None  # stored value that marks ignored pixels (index masks)
    colours: list[tuple[int, int, int]] = field(default_factory=list)  # for "colour" masks
    snapped: bool = False  # binary masks with lossy/soft edges: < 128 → 0, ≥ 128 → 1

    def describe(self) -> str:
        if self.kind == "binary":
            if self.snapped:
                return f"binary masks with lossy or soft edges: values below {SNAP_THRESHOLD} → class 0, the rest → class 1"
            return "binary masks: 0 → class 0, 255 → class 1"
        if self.kind == "colour":
            return "colour masks: each labelmap colour → its class"
        text = f"class-index masks: value v → class v (0…{self.num_classes - 1})"
        if self.ignore_value is not None:
            text += f"; value {self.ignore_value} → ignored"
        return text

    def value_mapping(self, values: list) -> dict[str, str]:
        """A readable 'stored value → class' table for the values actually present."""
        mapping = {}
        for value in values:
            index = self.map_value(value)
            mapping[str(value)] = (
                "ignored" if index == IGNORE else ("⚠ outside classes" if index is None else str(index))
            )
        return mapping

    def map_value(self, value) -> int | None:
        """The class of one stored value (IGNORE, or None when it fits no class). The single source of truth."""
        if self.kind == "colour":
            return self._colour_classes().get(tuple(int(v) for v in value))
        value = int(value)
        if self.kind == "binary":
            if self.snapped:
                return (1 if value >= SNAP_THRESHOLD else 0) if 0 <= value <= 255 else None
            return {0: 0, 255: 1}.get(value)
        if self.ignore_value is not None and value == self.ignore_value:
            return IGNORE
        return value if 0 <= value < self.num_classes else None

    def _colour_classes(self) -> dict[tuple[int, int, int], int]:
        return {tuple(colour): index for index, colour in enumerate(self.colours)}

    def _grey_table(self) -> np.ndarray:
        """map_value for every stored value 0…255, as a lookup table (_UNKNOWN where it fits no class)."""
        table = np.full(256, _UNKNOWN, dtype=np.int16)
        for value in range(256):
            index = self.map_value(value)
            if index is not None:
                table[value] = index
        return table

    def apply(self, raw: np.ndarray, path) -> np.ndarray:
        """Stored mask → uint8 class indices; values that fit no class raise a DatasetError naming them.
        Values are looked up, never cast: 256 or 300 cannot wrap around to 0 or 44."""
        if self.kind == "colour":
            if raw.ndim != 3:
                raise DatasetError(path, "this mask is greyscale but the labelmap describes colour masks", "")
            return self._apply_colour(raw, path)
        if raw.ndim == 3:
            raise DatasetError(
                path,
                "this is a colour mask but the dataset has no labelmap.txt saying which colour is which class",
                "add labelmap.txt (lines 'name:r,g,b::') or save masks as class indices",
            )
        raw = raw.astype(np.int64, copy=False) if raw.dtype.kind not in "iu" else raw
        out = self._grey_table()[np.clip(raw, 0, 255)]
        outside = (raw < 0) | (raw > 255)
        if outside.any():
            out[outside] = _UNKNOWN
            if self.kind == "index" and self.ignore_value is not None:
                out[raw == self.ignore_value] = IGNORE  # e.g. 65535 marks void in a 16-bit mask
        bad = out == _UNKNOWN
        if bad.any():
            values = [int(v) for v in np.unique(raw[bad])[:10]]
            hint = f"the dataset has {self.num_classes} classes (0…{self.num_classes - 1})"
            if self.kind == "index" and len(values) == 1:
                hint += f"; if {values[0]} marks unlabelled pixels, set the ignore index to {values[0]}"
            else:
                hint += "; fix the class list or the masks"
            raise DatasetError(path, f"mask values {values} are outside the classes", hint)
        return out.astype(np.uint8)

    def _apply_colour(self, raw: np.ndarray, path) -> np.ndarray:
        packed = _pack(raw)
        classes = self._colour_classes()
        keys = np.array(sorted(_pack(np.array(c)) for c in classes), dtype=np.int64)
        lut = np.array([classes[_unpack(k)] for k in keys], dtype=np.uint8)
        slot = np.searchsorted(keys, packed).clip(0, len(keys) - 1)
        known = keys[slot] == packed
        if not known.all():
            unknown = [_unpack(int(k)) for k in np.unique(packed[~known])[:5]]
            raise DatasetError(
                path,
                f"the mask has colours not in labelmap.txt: {unknown}",
                "add those colours to labelmap.txt or repaint the mask",
            )
        return lut[slot]


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(packed: int) -> tuple[int, int, int]:
    packed = int(packed)
    return (packed >> 16 & 255, packed >> 8 & 255, packed & 255)


def looks_near_binary(value_counts: Counter) -> bool:
    """Binary masks after JPEG or anti-aliasing: almost every pixel near 0 or 255, with noise values near
    255 (255 alone is a plain binary mask, or VOC's border next to class indices)."""
    grey = {v: n for v, n in value_counts.items() if not isinstance(v, tuple)}
    total = sum(grey.values())
    if not total or any(v < 0 or v > 255 for v in grey):
        return False
    low = sum(n for v, n in grey.items() if v <= _NEAR_LOW)
    high = sum(n for v, n in grey.items() if v >= _NEAR_HIGH)
    noisy_high = any(_NEAR_HIGH <= v < 255 for v in grey)
    return bool(low and high and noisy_high and (low + high) / total >= _NEAR_BINARY_SHARE)


def infer_encoding(
    value_counts: Counter | set,
    is_colour: bool,
    class_names: list[str] | None,
    class_colours: list[tuple[int, int, int]] | None,
    ignore_index: int | None,
    where: dict | None = None,
) -> MaskEncoding:
    """Decide the mask rule from the values seen across the dataset and the class file (if any).
    `where` maps a value to a file holding it, so refusals can name one."""
    where = where or {}
    if class_names is not None and len(class_names) > MAX_INDEX_CLASSES:
        raise DatasetError(
            "classes",
            f"{len(class_names)} classes are listed, more than the limit of {MAX_INDEX_CLASSES}",
            "merge or drop classes: masks here hold at most 255 classes (0…254)",
        )
    if is_colour:
        if not class_colours:
            return MaskEncoding("index", len(class_names or []) or 1, ignore_index)  # apply() explains the problem
        return MaskEncoding("colour", len(class_colours), None, list(class_colours))
    counts = value_counts if isinstance(value_counts, Counter) else Counter({v: 1 for v in value_counts})
    values = {int(v) for v in counts}
    if values and values <= {0, 255} and 255 in values and (class_names is None or len(class_names) == 2):
        return MaskEncoding("binary", 2, None)
    if (class_names is None or len(class_names) == 2) and looks_near_binary(counts):
        return MaskEncoding("binary", 2, None, snapped=True)
    if class_names is not None:
        return MaskEncoding("index", len(class_names), ignore_index)
    labelled = [v for v in values if v != ignore_index]
    top = max(labelled) if labelled else 0
    if top >= MAX_INDEX_CLASSES or min(labelled, default=0) < 0:
        bad = top if top >= MAX_INDEX_CLASSES else min(labelled)
        hint = f"if {bad} marks unlabelled pixels, set the ignore index to {bad}; otherwise number the classes 0…254"
        raise DatasetError(
            where.get(bad, "masks"),
            f"the mask value {bad} cannot be a class: index masks hold at most {MAX_INDEX_CLASSES} classes (values 0…254)",
            hint,
        )
    return MaskEncoding("index", max(top + 1, 2), ignore_index)
