"""A travel copy of the protocol's data for the GPU machine, which receives only the repository (64 MiB at most,
wheels included): CamVid (122 MB of PNG) does not fit. Its images travel as LOSSLESS WebP already decoded at the
training sizes asked for, its masks as the original 360×480 PNGs, the membrane set as it is. Every input and
mask the protocol reads from the copy is bit-identical to what it reads from the originals.

    python bench/protocol_data.py bench/protocol-data                    # 192×256 only: about 35 MiB
    python bench/protocol_data.py bench/protocol-data 192x256 288x384    # + the high-resolution candidates (~90 MiB)
    python bench/quality_protocol.py --data-pack bench/protocol-data ...  # on the GPU machine
A size the copy does not hold is refused with a message (the run is recorded as failed, the others go on).
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
from segcore.base.errors import DatasetError

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"


class PackedData(SegmentationData):
    """CamVid read from the travel copy: images decoded already at the size asked for, masks from the originals."""

    def _decode_pair(self, pair: Pair, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        height, width = size
        path = pair.image.parent.parent / f"{pair.image.parent.name.split('_')[0]}_{height}x{width}" / pair.image.name
        if not path.is_file():
            held = sorted(p.name for p in pair.image.parent.parent.glob("*_*x*"))
            raise DatasetError(
                path,
                f"the travel copy holds no {height}×{width} images (it holds {', '.join(held)})",
                f"make it with: python bench/protocol_data.py OUT {height}x{width}",
            )
        image = np.array(Image.open(path).convert("RGB"), dtype=np.uint8)
        raw, _ = read_mask(pair.mask, (width, height))
        return image, self.encoding.apply(raw, pair.mask)


def load_packed_camvid(folder: Path) -> PackedData:
    camvid = Path(folder) / "camvid"
    names = (camvid / "classes.txt").read_text().split()
    splits = {}
    for split in ("train", "val"):
        first = sorted(camvid.glob(f"{split}_*x*"))[0]  # pairs named by any size held; the size picks the file
        splits[split] = [
            Pair(p.stem, p, camvid / f"{split}annot" / f"{p.stem}.png") for p in sorted(first.glob("*.webp"))
        ]
    count = sum(len(v) for v in splits.values())
    return PackedData(
        source=f"{camvid} (travel copy)",
        root=camvid,
        layout="CamVid travel copy",
        splits=splits,
        split_origin="the dataset's own split",
        class_names=names,
        class_colours=default_palette(len(names)),
        class_source="classes.txt",
        encoding=MaskEncoding("index", len(names), 11),
        ignore_index=11,
        scan=MaskScan(Counter(), False, Counter({(480, 360): count})),
    )


def main(out: str, sizes: list[tuple[int, int]]) -> None:
    out = Path(out)
    camvid = out / "camvid"
    data = load_dataset(CAMVID, ignore_index=11)
    for split in ("train", "val"):
        (camvid / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for pair in data.pairs(split):
            shutil.copyfile(pair.mask, camvid / f"{split}annot" / f"{pair.name}.png")
        for height, width in sizes:
            folder = camvid / f"{split}_{height}x{width}"
            folder.mkdir(parents=True, exist_ok=True)
            images = data.load(split, (height, width))
            for pair, image in zip(data.pairs(split), images.images):
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(
                    folder / f"{pair.name}.webp", lossless=True, quality=100, method=4
                )
    shutil.copyfile(CAMVID / "classes.txt", camvid / "classes.txt")
    shutil.copytree(MEMBRANE, out / "membrane", dirs_exist_ok=True)
    packed = load_packed_camvid(out)
    for size in sizes:  # lossless, or the numbers would not be the ones the originals give
        assert (packed.load("val", size).images == data.load("val", size).images).all()
        assert (packed.load("val", size).masks == data.load("val", size).masks).all()
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {total / 2**20:.1f} MiB; sizes {sizes}; val checked bit-identical to the originals")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    target = arguments[0] if arguments else str(ROOT / "bench" / "protocol-data")
    main(target, [tuple(int(v) for v in a.split("x")) for a in arguments[1:]] or [(192, 256)])
