"""Find the image/mask pairs of a dataset folder in one of the layouts we read, and say which it was."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import DatasetError
from .files import is_image_file

SPLIT_NAMES = ("train", "val", "test")
IMAGE_DIRS = ("images", "imgs", "image")
MASK_DIRS = ("masks", "labels", "annotations", "mask", "label")
UNLABELLED_DIRS = ("unlabelled", "unlabeled")  # images without masks, for semi-supervised training


@dataclass(frozen=True)
class Pair:
    name: str
    image: Path
    mask: Path


@dataclass
class LayoutScan:
    layout: str  # human-readable name of the layout found
    root: Path
    splits: dict[str, list[Pair]]  # empty dict for "no split of its own"
    unsplit: list[Pair]
    warnings: list[str]
    unlabelled: list[Path] = field(default_factory=list)  # images with no mask: never labelled, never dropped


def _files_by_stem(folder: Path, warnings: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if not is_image_file(path):
            warnings.append(f"skipped {path.relative_to(folder.parent)}: not an image file")
            continue
        stem = str(path.relative_to(folder).with_suffix(""))
        if stem in found:
            raise DatasetError(
                path,
                f"two files share the name '{stem}' ({found[stem].name} and {path.name})",
                "keep one of them, so each image has exactly one mask",
            )
        found[stem] = path
    return found


def _pair_folders(
    image_dir: Path, mask_dir: Path, warnings: list[str], unlabelled: list[Path] | None = None
) -> list[Pair]:
    """The image/mask pairs of two folders. An image with no mask is an unlabelled image (added to `unlabelled` and
    said in the warnings, so a forgotten mask is noticed), never a labelled one; a mask with no image is skipped."""
    images = _files_by_stem(image_dir, warnings)
    masks = _files_by_stem(mask_dir, warnings)
    pairs, maskless = [], []
    for stem, image in images.items():
        mask = masks.get(stem)
        if mask is None:
            # common conventions: 'x.png' ↔ 'x_mask.png' or 'x_label.png'
            mask = masks.get(stem + "_mask") or masks.get(stem + "_label") or masks.get(stem + "_L")
        if mask is None:
            maskless.append(image)
            continue
        pairs.append(Pair(stem, image, mask))
    if maskless:
        if unlabelled is None:
            raise DatasetError(
                maskless[0],
                f"this image has no mask in {mask_dir.name}/",
                f"add {mask_dir.name}/{maskless[0].stem}.png or remove the image",
            )
        unlabelled.extend(maskless)
        shown = ", ".join(p.name for p in maskless[:5]) + (" …" if len(maskless) > 5 else "")
        warnings.append(
            f"{len(maskless)} image(s) in {image_dir.name}/ have no mask in {mask_dir.name}/ ({shown}): they are "
            "unlabelled images, used only by semi-supervised training"
        )
    paired = {pair.mask for pair in pairs}
    for stem, mask in masks.items():
        if mask not in paired:
            warnings.append(f"skipped {mask_dir.name}/{mask.name}: a mask with no image")
    return pairs


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / name.capitalize(), root / name.upper()):
            if candidate.is_dir():
                return candidate
    return None


def _scan_voc(root: Path, warnings: list[str]) -> LayoutScan:
    image_dir, mask_dir = root / "JPEGImages", root / "SegmentationClass"
    images = {p.stem: p for p in image_dir.iterdir() if is_image_file(p)}
    masks = {p.stem: p for p in mask_dir.iterdir() if is_image_file(p)}
    sets_dir = root / "ImageSets" / "Segmentation"
    splits: dict[str, list[Pair]] = {}
    if sets_dir.is_dir():
        for split in SPLIT_NAMES:
            list_file = sets_dir / f"{split}.txt"
            if not list_file.is_file():
                continue
            pairs = []
            for stem in list_file.read_text().split():
                if stem not in images or stem not in masks:
                    warnings.append(f"skipped '{stem}' from {list_file.name}: image or mask missing")
                    continue
                pairs.append(Pair(stem, images[stem], masks[stem]))
            splits[split] = pairs
    unsplit = [] if splits else [Pair(s, images[s], masks[s]) for s in sorted(masks) if s in images]
    maskless = [images[s] for s in sorted(images) if s not in masks]  # VOC's detection-only images
    return LayoutScan("Pascal VOC (JPEGImages/ + SegmentationClass/)", root, splits, unsplit, warnings, maskless)


def _dataset_root(root: Path) -> Path:
    """Step into a lone top folder (how zips of a folder usually look) or into VOCdevkit/VOC20xx."""
    for _ in range(3):
        entries = [p for p in root.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and not any(p.is_file() and is_image_file(p) for p in entries):
            known = {d.lower() for d in (*IMAGE_DIRS, *MASK_DIRS, *SPLIT_NAMES, "jpegimages")}
            if dirs[0].name.lower() in known:
                break
            root = dirs[0]
        else:
            break
    return root


def unlabelled_images(folder: Path, warnings: list[str]) -> list[Path]:
    """Every image file under a folder of unlabelled images (an unlabelled/ folder, or one given on its own)."""
    return list(_files_by_stem(folder, warnings).values())


def scan_layout(root: Path) -> LayoutScan:
    if not root.is_dir():
        raise DatasetError(root, "no such folder", "check the path")
    root = _dataset_root(root)
    warnings: list[str] = []
    scan = _scan_labelled(root, warnings)
    extra = _first_dir(scan.root, UNLABELLED_DIRS)
    if extra is not None:
        scan.unlabelled.extend(unlabelled_images(extra, warnings))
    return scan


def _scan_labelled(root: Path, warnings: list[str]) -> LayoutScan:
    if (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir():
        return _scan_voc(root, warnings)
    if (root / "train").is_dir() and (root / "trainannot").is_dir():
        splits, unlabelled = {}, []
        for split in SPLIT_NAMES:
            if (root / split).is_dir() and (root / f"{split}annot").is_dir():
                found = unlabelled if split == "train" else None  # a val/test image without a mask stays an error
                splits[split] = _pair_folders(root / split, root / f"{split}annot", warnings, found)
        return LayoutScan(
            "SegNet/CamVid (train/ + trainannot/, val/ + valannot/)", root, splits, [], warnings, unlabelled
        )
    image_dir, mask_dir = _first_dir(root, IMAGE_DIRS), _first_dir(root, MASK_DIRS)
    if image_dir and mask_dir:
        split_dirs = [s for s in SPLIT_NAMES if (image_dir / s).is_dir() and (mask_dir / s).is_dir()]
        unlabelled: list[Path] = []
        if "train" in split_dirs:
            splits = {
                s: _pair_folders(image_dir / s, mask_dir / s, warnings, unlabelled if s == "train" else None)
                for s in split_dirs
            }
            layout = f"{image_dir.name}/ + {mask_dir.name}/ with split folders"
            return LayoutScan(layout, root, splits, [], warnings, unlabelled)
        pairs = _pair_folders(image_dir, mask_dir, warnings, unlabelled)
        layout = f"{image_dir.name}/ + {mask_dir.name}/ paired by file name"
        return LayoutScan(layout, root, {}, pairs, warnings, unlabelled)
    raise DatasetError(
        root,
        "no dataset layout recognised",
        "use images/ + masks/ (paired by file name), train/ + trainannot/ (SegNet/CamVid), "
        "or JPEGImages/ + SegmentationClass/ (Pascal VOC)",
    )
