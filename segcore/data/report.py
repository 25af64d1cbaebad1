"""The dataset report shown before training: layout, counts, sizes, mask values and how they map to classes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .dataset import SegmentationData
from .masks import IGNORE

# a class under this share of the labelled pixels is rare: CamVid's poles, signs, fences, pedestrians and bicyclists
# (0.7-1.6 % of CamVid's pixels) score near 0 without class-balanced weights (bench/README.md, "Thin and rare classes")
RARE_SHARE = 0.02


@dataclass
class DatasetReport:
    source: str
    root: str
    layout: str
    split_origin: str
    pairs_per_split: dict[str, int]
    image_sizes: dict[str, int]  # "W×H" → count
    mask_encoding: str
    mask_values: list  # stored values found (first 64)
    value_to_class: dict[str, str]
    ignore_index: int | None
    classes: list[str]
    class_source: str
    class_colours: list
    pixel_share: dict[str, float]  # class name → share of labelled pixels
    ignored_share: float
    warnings: list[str]
    unlabelled_images: int = 0  # images without masks: used only by semi-supervised training

    @property
    def labelled_images(self) -> int:
        return sum(self.pairs_per_split.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def rare_classes(self) -> dict[str, float]:
        """Classes present but under RARE_SHARE of the labelled pixels, in a task of three classes or more (with
        two, median-frequency weights give the smaller class up to 10× weight, which costs more than it finds)."""
        present = {name: share for name, share in self.pixel_share.items() if share > 0}
        if len(present) < 3:
            return {}
        return {name: share for name, share in present.items() if share < RARE_SHARE}

    def to_text(self) -> str:
        lines = [
            f"dataset      {self.source}",
            f"folder       {self.root}",
            f"layout       {self.layout}",
            "splits       "
            + ", ".join(f"{k}: {v} pairs" for k, v in self.pairs_per_split.items())
            + f"  ({self.split_origin})",
            f"images       {self.labelled_images} labelled, {self.unlabelled_images} unlabelled",
            "image sizes  " + ", ".join(f"{k} ×{v}" for k, v in list(self.image_sizes.items())[:5]),
            f"masks        {self.mask_encoding}",
            "mask values  " + ", ".join(f"{k}→{v}" for k, v in list(self.value_to_class.items())[:32]),
            f"ignore index {self.ignore_index if self.ignore_index is not None else '— (none in these masks)'}",
            f"classes      {len(self.classes)} from {self.class_source}",
        ]
        for name, share in self.pixel_share.items():
            lines.append(f"  {name:<20} {share * 100:6.2f} % of labelled pixels")
        lines.append(f"  {'(ignored)':<20} {self.ignored_share * 100:6.2f} % of all pixels")
        lines += [f"warning      {w}" for w in self.warnings[:20]]
        if len(self.warnings) > 20:
            lines.append(f"warning      … and {len(self.warnings) - 20} more")
        return "\n".join(lines)


def dataset_report(data: SegmentationData) -> DatasetReport:
    counts = {name: 0 for name in data.class_names}
    ignored = 0
    for value, pixels in data.scan.value_counts.items():
        index = data.encoding.map_value(value)
        if index == IGNORE:
            ignored += pixels
        elif index is not None:
            counts[data.class_names[index]] += pixels
    labelled = sum(counts.values()) or 1
    values = sorted(data.scan.value_counts, key=lambda v: (isinstance(v, tuple), v))
    return DatasetReport(
        source=data.source,
        root=str(data.root),
        layout=data.layout,
        split_origin=data.split_origin,
        pairs_per_split={k: len(v) for k, v in data.splits.items()},
        image_sizes={f"{w}×{h}": n for (w, h), n in data.scan.image_sizes.most_common()},
        mask_encoding=data.encoding.describe(),
        mask_values=[list(v) if isinstance(v, tuple) else v for v in values[:64]],
        value_to_class={
            k: (v if v in ("ignored", "⚠ outside classes") else f"{v} {data.class_names[int(v)]}")
            for k, v in data.encoding.value_mapping(values[:64]).items()
        },
        ignore_index=data.ignore_index,
        classes=data.class_names,
        class_source=data.class_source,
        class_colours=[list(c) for c in data.class_colours],
        pixel_share={k: v / labelled for k, v in counts.items()},
        ignored_share=ignored / max(1, sum(data.scan.value_counts.values())),
        warnings=data.warnings,
        unlabelled_images=len(data.unlabelled),
    )
