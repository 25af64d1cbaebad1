"""Domain distance (segcore/teaching/domain.py): each reference dataset's distance from the encoder's ImageNet
statistics, and that of five natural photos (tests/fixtures/photos, not a reference: what a user brings), for two
backbones (and lite0 at a second size), with the seconds it costs for up to 100 images, from an empty cache.

    python bench/domain.py --threads 1 --out bench/results/domain.txt
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

os.environ["SEGCORE_CACHE"] = tempfile.mkdtemp(prefix="domain-cache-")  # cold: nothing is read from a cache

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import ROOT, machine, print_table, write_results  # noqa: E402
from PIL import Image  # noqa: E402

from segcore import load_dataset  # noqa: E402
from segcore.teaching.domain import REFERENCES, dataset_value, load_reference, pretrained_encoder  # noqa: E402

PHOTOS = "natural photos (fixture)"


def photos_dataset():
    """The five fixture photos with a placeholder two-class mask each, all in the training split."""
    folder = Path(tempfile.mkdtemp(prefix="photos-"))
    photos = sorted((ROOT / "tests" / "fixtures" / "photos").glob("*.jpg"))
    for split, chosen in (("train", photos), ("val", photos[:1])):  # CamVid's layout; val is never read here
        (folder / split).mkdir()
        (folder / f"{split}annot").mkdir()
        for photo in chosen:
            image = Image.open(photo).convert("RGB")
            mask = np.zeros((image.height, image.width), np.uint8)
            mask[:, : image.width // 2] = 1
            image.save(folder / split / f"{photo.stem}.png")
            Image.fromarray(mask).save(folder / f"{split}annot" / f"{photo.stem}.png")
    return load_dataset(folder)


SETTINGS = (("tf_efficientnet_lite0", 160), ("tf_efficientnet_lite1", 160), ("tf_efficientnet_lite0", 128))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--max-images", type=int, default=100)
    parser.add_argument("--out", help="also write the printed table to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = {}
    for reference in REFERENCES:
        started = time.perf_counter()
        datasets[reference.name] = (load_reference(reference), time.perf_counter() - started)
    started = time.perf_counter()
    datasets[PHOTOS] = (photos_dataset(), time.perf_counter() - started)
    rows, orders = [], {}
    for backbone, size in SETTINGS:
        started = time.perf_counter()
        pretrained_encoder(backbone)
        build_s = time.perf_counter() - started
        values = {}
        for name, (data, load_s) in datasets.items():
            if data is None:
                rows.append({"dataset": name, "backbone": backbone, "size": size, "distance": None})
                continue
            value, images, seconds, cached = dataset_value(data, backbone, size, args.max_images)
            assert not cached
            values[name] = value
            rows.append(
                {
                    "dataset": name,
                    "backbone": backbone,
                    "size": size,
                    "images": images,
                    "distance": value,
                    "seconds": seconds,
                    "load_dataset_s": load_s,
                    "encoder_build_s": build_s,
                }
            )
        orders[f"{backbone} @ {size}"] = " < ".join(sorted(values, key=values.get))
    text = io.StringIO()
    with redirect_stdout(text):
        print(
            f"Domain distance from ImageNet (every BatchNorm layer's statistics), up to {args.max_images} training images, "
            f"cold cache — {machine()}, torch threads {torch.get_num_threads()}; load average "
            f"{os.getloadavg()[0]:.1f} on a shared machine: seconds are noisy"
        )
        print_table(
            rows, ["dataset", "backbone", "size", "images", "distance", "seconds", "load_dataset_s", "encoder_build_s"]
        )
        print()
        for setting, order in orders.items():
            print(f"order ({setting}): {order}")
        print("same order for every setting:", "yes" if len(set(orders.values())) == 1 else "NO")
    print(text.getvalue(), end="")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text.getvalue())
    write_results("domain", {"machine": machine(), "rows": rows, "orders": orders})


if __name__ == "__main__":
    main()
