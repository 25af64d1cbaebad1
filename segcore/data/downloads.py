"""Real datasets for users with internet: Oxford-IIIT Pet and Pascal VOC 2012, through torchvision."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image

from ..base.errors import DatasetError
from ..base.paths import cache_dir

DOWNLOADS = {
    "pet": "Oxford-IIIT Pet (pet vs background, ~800 MB)",
    "voc": "Pascal VOC 2012 segmentation (21 classes, ~2 GB)",
}


def _offline_error(name: str, exc: Exception) -> DatasetError:
    return DatasetError(
        f"download:{name}",
        f"the download failed ({type(exc).__name__}: {exc})",
        "this machine may be offline: use a built-in dataset (builtin:shapes) or a folder/zip you have",
    )


def _pet(root):
    from torchvision.datasets import OxfordIIITPet

    target = root / "pet-folder"
    if (target / ".complete").exists():
        return target
    dataset = OxfordIIITPet(root / "pet", split="trainval", target_types="segmentation", download=True)
    # converted beside the target and renamed into place: a conversion killed half-way leaves only a scratch folder,
    # never a target that the next try would trip over
    scratch = Path(tempfile.mkdtemp(prefix=".pet-folder-", dir=root))
    try:
        (scratch / "images").mkdir()
        (scratch / "masks").mkdir()
        for image_path, trimap_path in zip(dataset._images, dataset._segs):
            trimap = np.asarray(Image.open(trimap_path))
            # trimap: 1 pet, 2 background, 3 uncertain border → 1, 0, ignored
            mask = np.select([trimap == 1, trimap == 2], [1, 0], default=255).astype(np.uint8)
            Image.fromarray(mask).save(scratch / "masks" / (image_path.stem + ".png"))
            (scratch / "images" / image_path.name).symlink_to(image_path.resolve())
        (scratch / "classes.txt").write_text("background\npet\n")
        (scratch / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)  # an unfinished folder from before this fix
        scratch.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _voc(root):
    from torchvision.datasets import VOCSegmentation

    VOCSegmentation(root / "voc", year="2012", image_set="trainval", download=True)
    return root / "voc" / "VOCdevkit" / "VOC2012"


def download_dataset(name: str):
    if name not in DOWNLOADS:
        raise DatasetError(f"download:{name}", "no such downloadable dataset", f"choose one of {sorted(DOWNLOADS)}")
    root = cache_dir() / "downloads"
    root.mkdir(parents=True, exist_ok=True)
    try:
        # one download per dataset at a time: two students asking at once get the same folder, not a torn one
        with FileLock(root / f".{name}.lock"):
            return {"pet": _pet, "voc": _voc}[name](root)
    except DatasetError:
        raise
    except Exception as exc:  # network errors come in many types (URLError, socket, HTTP, checksum)
        raise _offline_error(name, exc) from None
