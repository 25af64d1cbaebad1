"""A segmentation dataset: its pairs per split, its classes, how its masks are read, and in-memory tensors."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..base.atomic import build_folder_once
from ..base.errors import DatasetError
from ..base.paths import cache_dir
from .archives import safe_extract_zip
from .classes import VOC_CLASSES, check_class_count, default_palette, find_class_file
from .files import check_readable, image_size, mask_array, read_image, read_mask, read_mask_image, read_mask_raw
from .framing import COVER, SQUASH, cover_box
from .layouts import Pair, scan_layout
from .limits import limits
from .masks import IGNORE, MaskEncoding, infer_encoding
from .record_store import Progress, RecordArray, decoded_on_disk, split_bytes
from .roots import check_within_roots
from .subsets import subset_count
from .uploads import mark_used

# each worker holds one decoded file at a time: more threads than cores only multiplies peak memory
_THREADS = max(1, min(4, os.cpu_count() or 1))
_MAX_DISTINCT_HIGH_VALUES = 8  # values above 255 kept per mask: more than one (an ignore value) is refused anyway
_MAX_DISTINCT_COLOURS = 256  # a class mask with more colours than classes can exist is not a class mask
_LARGE_IMAGE_PIXELS = 8_000_000
_COUNT_CHUNK = 1 << 22  # pixels counted at once when scanning a mask's values


@dataclass
class ImageSet:
    """Decoded, resized pairs: uint8 images (N,3,H,W) and uint8 class maps (N,H,W), as tensors in memory or as
    RecordArrays on disk (indexed the same way; a whole-split pass reads them in chunks)."""

    images: torch.Tensor | RecordArray
    masks: torch.Tensor | RecordArray
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices) -> ImageSet:
        indices = list(indices)
        if isinstance(self.images, RecordArray):  # on disk: a view, nothing read
            return ImageSet(self.images.view(indices), self.masks.view(indices), [self.names[i] for i in indices])
        return ImageSet(self.images[indices], self.masks[indices], [self.names[i] for i in indices])

    @property
    def on_disk(self) -> bool:
        return isinstance(self.images, RecordArray)


def _cache_key(split: str, size: tuple[int, int], fit: str) -> tuple:
    return (split, tuple(size)) if fit == SQUASH else (split, tuple(size), fit)


@dataclass
class MaskScan:
    """What a streamed pass over every mask found: the values present (with pixel counts), their type,
    a file holding each value (for messages), and the masks saved in a lossy format."""

    value_counts: Counter
    is_colour: bool
    image_sizes: Counter
    where: dict = field(default_factory=dict)
    lossy_masks: list[Path] = field(default_factory=list)


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
    unlabelled: list[Path] = field(default_factory=list)  # images without masks (semi-supervised training)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def pairs(self, split: str) -> list[Pair]:
        if split not in self.splits:
            raise DatasetError(self.root, f"the dataset has no '{split}' split", f"use one of {sorted(self.splits)}")
        return self.splits[split]

    def load(
        self,
        split: str,
        size: tuple[int, int],
        progress: Progress | None = None,
        fit: str = SQUASH,
        memory_budget: int | None = None,
    ) -> ImageSet:
        """Every pair of a split decoded once at size=(H, W), kept for later epochs: in memory when it fits
        `memory_budget` bytes (default SEGCORE_MAX_DECODED_MB), else in the disk cache (record_store.py) and read a
        batch at a time. `fit`: SQUASH resizes each image to the size; COVER keeps its aspect (framing.py)."""
        key = _cache_key(split, size, fit)
        if key not in self._cache:
            self._cache[key] = self.decode_pairs(self.pairs(split), size, progress, fit, memory_budget)
        return self._cache[key]

    def load_subset(
        self,
        split: str,
        size: tuple[int, int],
        indices: list[int],
        progress: Progress | None = None,
        fit: str = SQUASH,
        memory_budget: int | None = None,
    ) -> ImageSet:
        """Only these pairs of a split decoded (a 10 % training subset decodes 10 % of the images), unless the
        whole split is decoded already."""
        whole = self.loaded(split, size, fit)
        if whole is not None:
            return whole.subset(indices)
        pairs = self.pairs(split)
        return self.decode_pairs([pairs[i] for i in indices], size, progress, fit, memory_budget)

    def loaded(self, split: str, size: tuple[int, int], fit: str = SQUASH) -> ImageSet | None:
        """The split if it is already decoded at this size, else None (nothing is decoded)."""
        return self._cache.get(_cache_key(split, size, fit))

    def typical_size(self) -> tuple[int, int]:
        """(width, height) most of the images have: what an aspect-keeping training size is framed on."""
        return self.scan.image_sizes.most_common(1)[0][0] if self.scan.image_sizes else (1, 1)

    def decoding_key(self) -> str:
        """What decides a pair's decoded bytes besides its files and the size: the reader and the mask rule."""
        return f"{type(self).__name__}:{hashlib.blake2b(pickle.dumps(self.encoding), digest_size=16).hexdigest()}"

    def decode_pairs(
        self,
        pairs: list[Pair],
        size: tuple[int, int],
        progress: Progress | None = None,
        fit: str = SQUASH,
        memory_budget: int | None = None,
    ) -> ImageSet:
        """These pairs decoded straight to size=(H, W): into preallocated tensors (no second copy) when they fit the
        memory budget (default SEGCORE_MAX_DECODED_MB), else into the disk cache, read back a batch at a time."""
        budget = limits().max_decoded_bytes if memory_budget is None else memory_budget
        if split_bytes(len(pairs), size) > budget:
            images, masks, names = decoded_on_disk(
                pairs,
                size,
                self.decoding_key() + ("" if fit == SQUASH else f":{fit}"),
                lambda pair: self._decode_pair(pair, size, fit),
                self._decode_threads(),
                progress,
            )
            return ImageSet(images, masks, names)
        height, width = size
        images = torch.empty((len(pairs), 3, height, width), dtype=torch.uint8)
        masks = torch.empty((len(pairs), height, width), dtype=torch.uint8)

        def fill(index: int) -> None:
            image, mask = self._decode_pair(pairs[index], size, fit)
            images[index] = torch.from_numpy(image).permute(2, 0, 1)
            masks[index] = torch.from_numpy(mask)

        with ThreadPoolExecutor(self._decode_threads()) as pool:
            for done, _ in enumerate(pool.map(fill, range(len(pairs))), 1):
                if progress is not None:
                    progress(done, len(pairs))
        return ImageSet(images, masks, [pair.name for pair in pairs])

    def _decode_threads(self) -> int:
        """One decoder for huge images (each holds its full-size pixels while it works), more for small ones."""
        largest = max((w * h for w, h in self.scan.image_sizes), default=0)
        return 1 if largest > _LARGE_IMAGE_PIXELS else _THREADS

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

    def _decode_pair(self, pair: Pair, size: tuple[int, int], fit: str = SQUASH) -> tuple[np.ndarray, np.ndarray]:
        """Both files decoded and resized at once: the image smoothly, the mask nearest-neighbour before its
        values become classes (the scan has already checked that the sizes agree). COVER: resized keeping the
        aspect until it covers the size, then the middle cut out (framing.py)."""
        height, width = size
        resized, box = (width, height), None
        if fit == COVER:
            resized, box = cover_box(image_size(pair.image), size)
        image = read_image(pair.image, resized)
        raw, _ = read_mask(pair.mask, resized)
        image, mask = np.array(image, dtype=np.uint8), self.encoding.apply(raw, pair.mask)  # a writable copy for torch
        if box is not None:
            top, left = box
            image, mask = image[top : top + height, left : left + width], mask[top : top + height, left : left + width]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def train_indices(self, train_size: int | float | None, seed: int = 0) -> list[int]:
        """Indices of a seeded training subset: N images, or a fraction (0, 1]; nested as the size grows."""
        total = len(self.pairs("train"))
        if train_size is None:
            return list(range(total))
        count = subset_count(total, train_size)
        if count < 1:
            raise DatasetError(self.root, f"a training-set size of {train_size} leaves no image", "ask for at least 1")
        order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
        return sorted(order[: min(count, total)])


def check_decoded_memory(root: Path, split: str, count: int, size: tuple[int, int]) -> None:
    """Refuse to decode a split whose tensors (uint8 RGB + class map) would pass the memory limit."""
    height, width = size
    needed, allowed = count * height * width * 4, limits().max_decoded_bytes
    if needed > allowed:
        raise DatasetError(
            root,
            f"decoding the {count} '{split}' pairs at {width}×{height} needs {needed / 1024**2:.0f} MiB, over the "
            f"limit of {allowed / 1024**2:.0f} MiB (SEGCORE_MAX_DECODED_MB)",
            "choose a smaller image size or fewer training images, or ask whoever runs the server to raise SEGCORE_MAX_DECODED_MB",
        )


def _count_values(raw: np.ndarray, path: Path) -> Counter:
    """Pixel count per stored value, in memory bounded by 256 entries (never by the largest value)."""
    if raw.ndim == 3:
        colours, counts = np.unique(_packed(raw), return_counts=True)
        if len(colours) > _MAX_DISTINCT_COLOURS:
            raise DatasetError(
                path,
                f"the colour mask holds {len(colours)} different colours, more than a class mask can have",
                "save masks with one flat colour per class, as PNG (JPEG and smoothed edges add colours)",
            )
        return Counter({(int(c) >> 16 & 255, int(c) >> 8 & 255, int(c) & 255): int(n) for c, n in zip(colours, counts)})
    flat = raw.ravel()
    histogram = np.zeros(256, dtype=np.int64)
    outside = 0
    for start in range(0, flat.size, _COUNT_CHUNK):  # bincount widens to 8 bytes a pixel: a chunk at a time
        chunk = flat[start : start + _COUNT_CHUNK]
        if raw.dtype != np.uint8:
            in_byte = (chunk >= 0) & (chunk <= 255)
            outside += chunk.size - int(np.count_nonzero(in_byte))
            chunk = chunk[in_byte]
        histogram += np.bincount(chunk, minlength=256)
    counts = Counter({value: int(n) for value, n in enumerate(histogram) if n})
    if outside:
        high, high_counts = np.unique(raw[(raw < 0) | (raw > 255)], return_counts=True)
        if len(high) > _MAX_DISTINCT_HIGH_VALUES:
            raise DatasetError(
                path,
                f"the mask holds {len(high)} different values outside 0…255 (e.g. {[int(v) for v in high[:3]]})",
                "index masks number their classes 0…254: renumber the classes and save the masks again",
            )
        counts.update({int(v): int(n) for v, n in zip(high, high_counts)})
    return counts


def _packed(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _scan_pair(pair: Pair) -> tuple[Counter, bool, tuple[int, int], bool]:
    size = image_size(pair.image)
    check_readable(pair.image)
    mask, lossy = read_mask_image(pair.mask)
    if mask.size != size:
        raise DatasetError(
            pair.mask,
            f"the mask is {mask.width}×{mask.height} but its image is {size[0]}×{size[1]}",
            "masks must have exactly the size of their image",
        )
    if mask.mode in ("L", "P"):  # PIL counts 8-bit values itself, without an array copy of the mask
        return Counter({v: n for v, n in enumerate(mask.histogram()) if n}), False, size, lossy
    raw = mask_array(mask, pair.mask)
    return _count_values(raw, pair.mask), raw.ndim == 3, size, lossy


def _scan_pair_or_problem(pair: Pair):
    try:
        return _scan_pair(pair)
    except DatasetError as problem:
        return problem


def scan_masks(pairs: list[Pair], root: Path) -> MaskScan:
    """One streamed pass over every pair: every file is opened and checked, all problems are reported
    together, and only a bounded count of values per mask is kept (the report is computed from it)."""
    value_counts: Counter = Counter()
    sizes: Counter = Counter()
    where: dict = {}
    lossy: list[Path] = []
    colour = False
    problems: list[DatasetError] = []
    with ThreadPoolExecutor(_THREADS) as pool:
        for pair, result in zip(pairs, pool.map(_scan_pair_or_problem, pairs)):
            if isinstance(result, DatasetError):
                problems.append(result)
                continue
            counts, is_colour, size, is_lossy = result
            value_counts.update(counts)
            for value in counts:
                where.setdefault(value, pair.mask)
            sizes[size] += 1
            colour |= is_colour
            if is_lossy:
                lossy.append(pair.mask)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise DatasetError(
            root, f"{len(problems)} files have problems", "fix or remove them, then load again", problems
        )
    if colour:  # a dataset mixing grey and colour masks: grey values become grey colours
        grey = lambda k: k if isinstance(k, tuple) else (k, k, k)  # noqa: E731
        value_counts = Counter({grey(k): n for k, n in value_counts.items()})
        where = {grey(k): p for k, p in where.items()}
    return MaskScan(value_counts, colour, sizes, where, lossy)


def check_image_count(root: Path, count: int) -> None:
    allowed = limits().max_images
    if count > allowed:
        raise DatasetError(
            root,
            f"the dataset holds {count} image/mask pairs, over the limit of {allowed} (SEGCORE_MAX_IMAGES)",
            "use a subset of the images, or ask whoever runs the server to raise SEGCORE_MAX_IMAGES",
        )


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
    check_within_roots(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise DatasetError(
            path, "no such file or folder", "check the path, or use builtin:shapes for the built-in data"
        )
    if path.resolve().is_relative_to(cache_dir().resolve()):  # an upload: most recently used, last removed
        mark_used(path if path.is_dir() else path.parent)
    if path.is_file():
        if path.suffix.lower() != ".zip":
            raise DatasetError(path, "a dataset must be a folder or a .zip of one", "zip the dataset folder")
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        # unpacked privately and renamed into place: sessions opening the same zip at once never see
        # each other's half-written files, and a failure leaves nothing behind
        unpacked = build_folder_once(
            cache_dir() / "unzipped" / digest.hexdigest()[:16], lambda staging: safe_extract_zip(path, staging)
        )
        mark_used(unpacked)
        return unpacked
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
        if scan.unlabelled:  # images but not one mask: a forgotten masks folder, not a semi-supervised dataset
            first = scan.unlabelled[0]
            raise DatasetError(
                first,
                f"no image has a mask ({len(scan.unlabelled)} image(s) without one, {first.name} first)",
                "add a mask for each labelled image (same file name, in the masks folder)",
            )
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

    check_image_count(scan.root, len({p.image for p in all_pairs}))
    names, colours, class_source = find_class_file(scan.root)
    mask_scan = scan_masks(all_pairs, scan.root)
    if class_names:
        check_class_count("the class names given", len(class_names))
        names, class_source = list(class_names), "given by the user"
    if names is None and scan.layout.startswith("Pascal VOC"):
        labelled = [v for v in mask_scan.value_counts if v != ignore_index]
        if labelled and max(labelled) < len(VOC_CLASSES):
            names, class_source = list(VOC_CLASSES), "Pascal VOC's 21 classes"
    encoding = infer_encoding(
        mask_scan.value_counts, mask_scan.is_colour, names, colours, ignore_index, mask_scan.where
    )
    _check_lossy_masks(mask_scan, encoding, warnings)
    if names is None:
        names = (
            ["background", "foreground"]
            if encoding.kind == "binary"
            else [f"class_{i}" for i in range(encoding.num_classes)]
        )
        class_source = "numbered (no classes.txt or labelmap.txt found)"
    if colours is None or len(colours) != len(names):
        colours = default_palette(len(names))
    bad = [v for v in mask_scan.value_counts if encoding.map_value(v) is None]
    if bad:
        # name a file that holds the first bad value (the scan remembers one), so the user knows where to look
        offender = mask_scan.where[bad[0]]
        encoding.apply(read_mask_raw(offender), offender)
    return SegmentationData(
        source=str(source),
        root=scan.root,
        layout=scan.layout,
        splits=splits,
        split_origin=split_origin,
        class_names=names,
        class_colours=colours,
        class_source=class_source or "",
        encoding=encoding,
        ignore_index=ignore_index if encoding.kind == "index" else None,
        scan=mask_scan,
        warnings=warnings,
        unlabelled=list(scan.unlabelled),
    )


def _check_lossy_masks(scan: MaskScan, encoding: MaskEncoding, warnings: list[str]) -> None:
    """Binary masks with lossy or soft edges are snapped (and said so); lossy class masks are refused,
    since JPEG changes class values along every edge and no rule can undo that."""
    if encoding.kind == "binary" and encoding.snapped:
        values = len(scan.value_counts)
        warnings.insert(
            0,
            (
                f"the masks look binary but hold {values} different values (lossy JPEG or soft edges): values below "
                f"128 became class 0, the rest class 1 — save masks as PNG with exactly two values to avoid this"
            ),
        )
        return
    exact_binary = encoding.kind == "binary"
    if scan.lossy_masks and not exact_binary:
        raise DatasetError(
            scan.lossy_masks[0],
            f"this mask is saved as JPEG ({len(scan.lossy_masks)} masks are), whose lossy compression changes "
            f"class values along every edge",
            "save the masks as PNG (lossless) and load again",
        )


__all__ = ["IGNORE", "ImageSet", "SegmentationData", "load_dataset", "resolve_source"]
