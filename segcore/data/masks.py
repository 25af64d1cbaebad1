"""How a dataset's stored mask values become class indices, decided once for the whole dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError

IGNORE = 255  # internal index of pixels that count in neither loss nor metrics


@dataclass
class MaskEncoding:
    """The rule that maps stored mask values to class indices (IGNORE for ignored pixels)."""

    kind: str  # "index", "binary", or "colour"
    num_classes: int
    ignore_value: int | None  # stored value that marks ignored pixels (index masks)
    colours: list[tuple[int, int, int]] = field(default_factory=list)  # for "colour" masks

    def describe(self) -> str:
        if self.kind == "binary":
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
            mapping[str(value)] = "ignored" if index == IGNORE else ("⚠ outside classes" if index is None else str(index))
        return mapping

    def map_value(self, value) -> int | None:
        if self.kind == "colour":
            colour = tuple(value)
            return self.colours.index(colour) if colour in self.colours else None
        value = int(value)
        if self.kind == "binary":
            return {0: 0, 255: 1}.get(value)
        if self.ignore_value is not None and value == self.ignore_value:
            return IGNORE
        return value if 0 <= value < self.num_classes else None

    def apply(self, raw: np.ndarray, path) -> np.ndarray:
        """Stored mask → uint8 class indices; values that fit no class raise a DatasetError naming them."""
        if self.kind == "colour":
            if raw.ndim != 3:
                raise DatasetError(path, "this mask is greyscale but the labelmap describes colour masks", "")
            packed = (raw[..., 0] << 16) | (raw[..., 1] << 8) | raw[..., 2]
            out = np.full(packed.shape, 254, dtype=np.uint8)
            for index, (r, g, b) in enumerate(self.colours):
                out[packed == (r << 16 | g << 8 | b)] = index
            if (out == 254).any():
                unknown = np.unique(raw[out == 254].reshape(-1, 3), axis=0)[:5]
                raise DatasetError(
                    path,
                    f"the mask has colours not in labelmap.txt: {[tuple(int(v) for v in c) for c in unknown]}",
                    "add those colours to labelmap.txt or repaint the mask",
                )
            return out
        if raw.ndim == 3:
            raise DatasetError(
                path, "this is a colour mask but the dataset has no labelmap.txt saying which colour is which class",
                "add labelmap.txt (lines 'name:r,g,b::') or save masks as class indices",
            )
        if self.kind == "binary":
            out = np.where(raw == 255, 1, 0).astype(np.uint8)
            bad = ~np.isin(raw, (0, 255))
        else:
            out = raw.astype(np.int64)
            bad = (out < 0) | (out >= self.num_classes)
            if self.ignore_value is not None:
                is_ignored = raw == self.ignore_value
                bad &= ~is_ignored
                out = np.where(is_ignored, IGNORE, out)
            out = out.astype(np.uint8)
        if bad.any():
            values = sorted(int(v) for v in np.unique(raw[bad]))[:10]
            hint = f"the dataset has {self.num_classes} classes (0…{self.num_classes - 1})"
            if self.kind == "index" and len(values) == 1:
                hint += f"; if {values[0]} marks unlabelled pixels, set the ignore index to {values[0]}"
            else:
                hint += "; fix the class list or the masks"
            raise DatasetError(path, f"mask values {values} are outside the classes", hint)
        return out


def infer_encoding(
    unique_values: set,
    is_colour: bool,
    class_names: list[str] | None,
    class_colours: list[tuple[int, int, int]] | None,
    ignore_index: int | None,
) -> MaskEncoding:
    """Decide the mask rule from the values seen across the dataset and the class file (if any)."""
    if is_colour:
        if not class_colours:
            return MaskEncoding("index", len(class_names or []) or 1, ignore_index)  # apply() explains the problem
        return MaskEncoding("colour", len(class_colours), None, list(class_colours))
    values = {int(v) for v in unique_values}
    if values and values <= {0, 255} and 255 in values and (class_names is None or len(class_names) == 2):
        return MaskEncoding("binary", 2, None)
    if class_names is not None:
        num_classes = len(class_names)
    else:
        labelled = [v for v in values if v != ignore_index]
        num_classes = max(labelled) + 1 if labelled else 1
        num_classes = max(num_classes, 2)
    return MaskEncoding("index", num_classes, ignore_index)
