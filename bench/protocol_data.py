"""A travel copy of the protocol's data for the GPU machine, which receives only the repository (64 MiB at most):
CamVid (122 MB as PNG) does not fit, so its images travel as LOSSLESS WebP already resized to 288×384 (the
largest training size the protocol uses, ~45 MB), its masks as the original 360×480 PNGs (native scores stay
exact), and the membrane set as it is.

    python bench/protocol_data.py bench/protocol-data        # here; then on the GPU machine:
    python bench/quality_protocol.py --data-pack bench/protocol-data ...

Decoding from the pack: 288×384 inputs are bit-identical to decoding the originals; 192×256 inputs are resized
from the 288×384 copy (bilinear, one more resampling step: a little softer than from 480×360, the same for ours
and smp); masks at every size are read from the original files exactly as the dataset reads them.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from common import CAMVID, ROOT
from PIL import Image

from segcore import load_dataset
from segcore.data.classes import default_palette
from segcore.data.dataset import MaskScan, SegmentationData
from segcore.data.files import read_mask
from segcore.data.layouts import Pair
from segcore.data.masks import MaskEncoding

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"
PACK_SIZE = (288, 384)


class PackedData(SegmentationData):
    """CamVid read from the travel copy: images from the 288×384 WebP, masks from the original PNGs."""

    def _decode_pair(self, pair: Pair, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        height, width = size
        image = Image.open(pair.image).convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR, reducing_gap=3.0)
        raw, _ = read_mask(pair.mask, (width, height))
        return np.array(image, dtype=np.uint8), self.encoding.apply(raw, pair.mask)


def load_packed_camvid(folder: Path) -> PackedData:
    camvid = Path(folder) / "camvid"
    names = (camvid / "classes.txt").read_text().split()
    splits = {split: [Pair(p.stem, p, camvid / f"{split}annot" / f"{p.stem}.png")
                      for p in sorted((camvid / split).glob("*.webp"))] for split in ("train", "val")}
    count = sum(len(v) for v in splits.values())
    return PackedData(source=f"{camvid} (travel copy)", root=camvid, layout="CamVid travel copy", splits=splits,
                      split_origin="the dataset's own split", class_names=names, class_colours=default_palette(len(names)),
                      class_source="classes.txt", encoding=MaskEncoding("index", len(names), 11), ignore_index=11,
                      scan=MaskScan(Counter(), False, Counter({(480, 360): count})))


def main(out: str) -> None:
    out = Path(out)
    camvid = out / "camvid"
    data = load_dataset(CAMVID, ignore_index=11)
    for split in ("train", "val"):
        (camvid / split).mkdir(parents=True, exist_ok=True)
        (camvid / f"{split}annot").mkdir(parents=True, exist_ok=True)
        images = data.load(split, PACK_SIZE)
        for pair, image in zip(data.pairs(split), images.images):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(camvid / split / f"{pair.name}.webp", lossless=True,
                                                                  quality=100, method=4)
            shutil.copyfile(pair.mask, camvid / f"{split}annot" / f"{pair.name}.png")
    shutil.copyfile(CAMVID / "classes.txt", camvid / "classes.txt")
    shutil.copytree(MEMBRANE, out / "membrane", dirs_exist_ok=True)
    packed = load_packed_camvid(out)
    check = packed.load("val", PACK_SIZE)
    assert (check.images == data.load("val", PACK_SIZE).images).all(), "the travel copy must be lossless"
    assert (check.masks == data.load("val", PACK_SIZE).masks).all()
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {size / 2**20:.1f} MiB (lossless: 288×384 inputs identical to the originals')")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "bench" / "protocol-data"))
