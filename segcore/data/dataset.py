"""A segmentation dataset: its pairs per split, its classes, how its masks are read, and in-memory tensors."""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError
from ..paths import cache_dir
from .classes import VOC_CLASSES, default_palette, find_class_file
from .files import _open, read_image, read_mask_raw, safe_extract_zip
from .layouts import Pair, scan_layout
from .masks import IGNORE, MaskEncoding, infer_encoding

_EXIF_SWAPS_AXES = {5, 6, 7, 8}
_THREADS = 4


@dataclass
class ImageSet:
    """Decoded, resized pairs kept in memory: uint8 images (N,3,H,W) and uint8 class maps (N,H,W)."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices) -> ImageSet:
        indices = list(indices)
        return ImageSet(self.images[indices], self.masks[indices], [self.names[i] for i in indices])


@dataclass
class MaskScan:
    """What a pass over every mask found: the values present (with pixel counts) and their type."""

    value_counts: Counter
    is_colour: bool
    image_sizes: Counter


@dataclass
class SegmentationData:
    source: str
    root: Path
    layout: str
    splits: dict[str, list[Pair]]
    split_origin: str  # "the dataset's own split" or "a seeded split (...)"
    class_names: list[str]
    class_colours: list[tuple[int, int, int]]
    class_source: str
    encoding: MaskEncoding
    ignore_index: int | None
    scan: MaskScan
    warnings: list[str] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def pairs(self, split: str) -> list[Pair]:
        if split not in self.splits:
            raise DatasetError(self.root, f"the dataset has no '{split}' split", f"use one of {sorted(self.splits)}")
        return self.splits[split]

    def load(self, split: str, size: tuple[int, int]) -> ImageSet:
        """Every pair of a split decoded once, resized to size=(H, W), kept in memory for later epochs."""
        key = (split, tuple(size))
        if key not in self._cache:
            pairs = self.pairs(split)
            with ThreadPoolExecutor(_THREADS) as pool:
                decoded = list(pool.map(lambda pair: self._decode_pair(pair, size), pairs))
            images = torch.from_numpy(np.stack([d[0] for d in decoded])).permute(0, 3, 1, 2).contiguous()
            masks = torch.from_numpy(np.stack([d[1] for d in decoded]))
            self._cache[key] = ImageSet(images, masks, [pair.name for pair in pairs])
        return self._cache[key]

    def load_pair(self, pair: Pair) -> tuple[Image.Image, np.ndarray]:
        """One pair at its own size: RGB image and uint8 class map (IGNORE where ignored)."""
        image = read_image(pair.image)
        mask = self.encoding.apply(read_mask_raw(pair.mask), pair.mask)
        if mask.shape != (image.height, image.width):
            raise DatasetError(
                pair.mask,
                f"the mask is {mask.shape[1]}×{mask.shape[0]} but its image is {image.width}×{image.height}",
                "masks must have exactly the size of their image",
            )
        return image, mask

    def _decode_pair(self, pair: Pair, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.load_pair(pair)
        height, width = size
        image = image.resize((width, height), Image.BILINEAR, reducing_gap=None)
        mask_image = Image.fromarray(mask).resize((width, height), Image.NEAREST)
        return np.asarray(image, dtype=np.uint8), np.asarray(mask_image, dtype=np.uint8)

    def train_indices(self, train_size: int | float | None, seed: int = 0) -> list[int]:
        """Indices of a seeded training subset: N images, or a fraction (0, 1]; nested as the size grows."""
        total = len(self.pairs("train"))
        if train_size is None:
            return list(range(total))
        count = round(train_size * total) if isinstance(train_size, float) and train_size <= 1 else int(train_size)
        if count < 1:
            raise DatasetError(self.root, f"a training-set size of {train_size} leaves no image", "ask for at least 1")
        order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
        return sorted(order[: min(count, total)])


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF rotation, read from the header only."""
    with _open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in _EXIF_SWAPS_AXES else (width, height)


def _scan_pair(pair: Pair) -> tuple[Counter, bool, tuple[int, int]]:
    image_size = _image_size(pair.image)
    raw = read_mask_raw(pair.mask)
    if (raw.shape[1], raw.shape[0]) != image_size:
        raise DatasetError(
            pair.mask,
            f"the mask is {raw.shape[1]}×{raw.shape[0]} but its image is {image_size[0]}×{image_size[1]}",
            "masks must have exactly the size of their image",
        )
    if raw.ndim == 3:
        colours, counts = np.unique(raw.reshape(-1, 3), axis=0, return_counts=True)
        return Counter({tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts)}), True, image_size
    values, counts = np.unique(raw, return_counts=True)
    return Counter({int(v): int(n) for v, n in zip(values, counts)}), False, image_size


def _scan_pair_or_problem(pair: Pair):
    try:
        return _scan_pair(pair)
    except DatasetError as problem:
        return problem


def scan_masks(pairs: list[Pair], root: Path) -> MaskScan:
    """One pass over every pair: every file is opened and checked, and all problems are reported together."""
    value_counts: Counter = Counter()
    sizes: Counter = Counter()
    colour = False
    problems: list[DatasetError] = []
    with ThreadPoolExecutor(_THREADS) as pool:
        for result in pool.map(_scan_pair_or_problem, pairs):
            if isinstance(result, DatasetError):
                problems.append(result)
                continue
            counts, is_colour, size = result
            value_counts.update(counts)
            sizes[size] += 1
            colour |= is_colour
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise DatasetError(root, f"{len(problems)} files have problems", "fix or remove them, then load again", problems)
    if colour:  # a dataset mixing grey and colour masks: grey values become grey colours
        value_counts = Counter({(k if isinstance(k, tuple) else (k, k, k)): n for k, n in value_counts.items()})
    return MaskScan(value_counts, colour, sizes)


def _split_off(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    val_count = max(1, round(len(pairs) * val_fraction))
    val = sorted(order[:val_count])
    train = sorted(order[val_count:])
    return [pairs[i] for i in train], [pairs[i] for i in val]


def resolve_source(source: str | Path) -> Path:
    """A folder for any source we accept: a folder, a .zip, 'builtin:NAME', or 'download:pet|voc'."""
    text = str(source)
    if text.startswith("builtin:"):
        from .builtin import builtin_dataset_dir

        return builtin_dataset_dir(text.split(":", 1)[1])
    if text.startswith("download:"):
        from .downloads import download_dataset

        return download_dataset(text.split(":", 1)[1])
    path = Path(text).expanduser()
    if not path.exists():
        raise DatasetError(path, "no such file or folder", "check the path, or use builtin:shapes for the built-in data")
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise DatasetError(path, "a dataset must be a folder or a .zip of one", "zip the dataset folder")
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        destination = cache_dir() / "unzipped" / digest.hexdigest()[:16]
        marker = destination / ".complete"
        if not marker.exists():
            safe_extract_zip(path, destination)
            marker.touch()
        return destination
    return path


def load_dataset(
    source: str | Path,
    ignore_index: int | None = 255,
    class_names: list[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> SegmentationData:
    """Read a dataset's layout, classes and mask encoding; check every pair; decode nothing yet but masks."""
    root = resolve_source(source)
    scan = scan_layout(root)
    warnings = list(scan.warnings)
    splits = {name: pairs for name, pairs in scan.splits.items() if pairs}
    all_pairs = [p for pairs in splits.values() for p in pairs] or scan.unsplit
    if not all_pairs:
        raise DatasetError(scan.root, "the dataset holds no image/mask pairs", "add images with their masks")
    if "train" in splits and "val" in splits:
        split_origin = "the dataset's own split"
    else:
        pool = splits.get("train", scan.unsplit)
        if len(pool) == 1:
            warnings.append("only one image: it is used for both training and validation")
            splits.update(train=pool, val=pool)
        else:
            splits["train"], splits["val"] = _split_off(pool, val_fraction, seed)
        split_origin = f"a seeded split ({val_fraction:.0%} for validation, seed {seed})"

    names, colours, class_source = find_class_file(scan.root)
    mask_scan = scan_masks(all_pairs, scan.root)
    if class_names:
        names, class_source = list(class_names), "given by the user"
    if names is None and scan.layout.startswith("Pascal VOC"):
        labelled = [v for v in mask_scan.value_counts if v != ignore_index]
        if labelled and max(labelled) < len(VOC_CLASSES):
            names, class_source = list(VOC_CLASSES), "Pascal VOC's 21 classes"
    encoding = infer_encoding(set(mask_scan.value_counts), mask_scan.is_colour, names, colours, ignore_index)
    if names is None:
        names = ["background", "foreground"] if encoding.kind == "binary" else [
            f"class_{i}" for i in range(encoding.num_classes)
        ]
        class_source = "numbered (no classes.txt or labelmap.txt found)"
    if colours is None or len(colours) != len(names):
        colours = default_palette(len(names))
    bad = [v for v in mask_scan.value_counts if encoding.map_value(v) is None]
    if bad:
        # name a file that holds the first bad value, so the user knows where to look
        offender = next(p for p in all_pairs if _holds_value(p, bad[0]))
        encoding.apply(read_mask_raw(offender.mask), offender.mask)
    return SegmentationData(
        source=str(source), root=scan.root, layout=scan.layout, splits=splits, split_origin=split_origin,
        class_names=names, class_colours=colours, class_source=class_source or "", encoding=encoding,
        ignore_index=ignore_index if encoding.kind == "index" else None, scan=mask_scan, warnings=warnings,
    )


def _holds_value(pair: Pair, value) -> bool:
    raw = read_mask_raw(pair.mask)
    if isinstance(value, tuple):
        return raw.ndim == 3 and bool((raw.reshape(-1, 3) == np.array(value)).all(axis=1).any())
    return raw.ndim == 2 and bool((raw == value).any())


__all__ = ["IGNORE", "ImageSet", "SegmentationData", "load_dataset", "resolve_source"]
