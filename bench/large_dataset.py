"""A practitioner's large dataset (issue 25): thousands of full-size photos trained without holding them in memory.

    python bench/large_dataset.py generate --pairs 10000          # 1024×768 JPEG photos + PNG masks (~2 GB, once)
    python bench/large_dataset.py train --size 256 --steps 40     # fresh process: first-pass decode, steps, scoring
    python bench/large_dataset.py train --size 512 --steps 20
    python bench/large_dataset.py speed --pairs 400 --size 256    # in memory vs disk cache, same images, interleaved

`train` runs in a fresh process and reports its own peak resident memory (ru_maxrss), the first-pass decode rate
(images/s with the decode threads the dataset uses) and the training speed; `speed` trains one network on one split
held both ways, switching source every few steps, and times the steps and the batch reads of each.
Results: bench/results/large-dataset.json (one entry per command, appended).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import statistics
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from common import RESULTS, machine
from PIL import Image, ImageDraw

DATA = Path(os.environ.get("LARGE_DATASET_DIR", "/tmp/segcore-large-dataset"))
CLASSES = ["background", "road", "car", "sign"]


def _photo(index: int) -> None:
    """One 1024×768 street-like picture: sky, road, boxes for cars, a sign; noise so JPEG has work to do."""
    split = "val" if index % 50 == 0 else "train"
    image_path = DATA / "images" / split / f"frame_{index:05d}.jpg"
    if image_path.exists():
        return
    rng = np.random.default_rng(index)
    width, height = 1024, 768
    pixels = rng.integers(0, 40, (height, width, 3), dtype=np.uint8) + np.array([90, 130, 170], dtype=np.uint8)
    mask = np.zeros((height, width), dtype=np.uint8)
    horizon = int(rng.integers(300, 450))
    pixels[horizon:] = rng.integers(60, 90, (height - horizon, width, 3), dtype=np.uint8)
    mask[horizon:] = 1
    image, drawing = Image.fromarray(pixels), None
    mask_image = Image.fromarray(mask)
    drawing, mask_drawing = ImageDraw.Draw(image), ImageDraw.Draw(mask_image)
    for _ in range(int(rng.integers(1, 5))):
        x, y = int(rng.integers(0, width - 200)), int(rng.integers(horizon - 40, height - 120))
        w, h = int(rng.integers(80, 200)), int(rng.integers(50, 110))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        drawing.rectangle([x, y, x + w, y + h], fill=colour)
        mask_drawing.rectangle([x, y, x + w, y + h], fill=2)
    x = int(rng.integers(0, width - 40))
    drawing.ellipse([x, horizon - 160, x + 40, horizon - 120], fill=(200, 20, 20))
    mask_drawing.ellipse([x, horizon - 160, x + 40, horizon - 120], fill=3)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path = DATA / "masks" / split / f"frame_{index:05d}.png"
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask_image.save(mask_path)
    image.save(image_path, quality=90)


def generate(args) -> dict:
    started = time.time()
    with Pool(os.cpu_count()) as pool:
        pool.map(_photo, range(args.pairs), chunksize=32)
    (DATA / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    size = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file())
    return {"pairs": args.pairs, "seconds": time.time() - started, "bytes": size}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def configured(args, **settings):
    """The bench's settings (one epoch of the chosen strategy at --size and --batch), this process set up for them."""
    from segcore import TrainConfig
    from segcore.models.device import pick_device
    from segcore.training.loop import configure_process

    config = TrainConfig(
        data=str(DATA),
        strategy=args.strategy,
        epochs=1,
        min_steps=0,
        batch_size=args.batch,
        height=args.size,
        width=args.size,
        precision=args.precision,
        **settings,
    ).validate(check_files=False)
    configure_process(config, pick_device("cpu"))
    return config


def train(args) -> dict:
    """First-pass decode, `steps` optimiser steps and one scoring of the validation split, in this process."""
    from segcore import load_dataset
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    started = time.perf_counter()
    data = load_dataset(DATA)
    scanned = time.perf_counter() - started
    rss_after_scan = peak_rss_mib()
    config = configured(
        args,
        max_steps=args.steps,
        train_size=args.pairs if args.pairs < len(data.pairs("train")) else None,  # smaller: the memory path
    )
    writer = RunWriter(Path(tempfile.mkdtemp(prefix="large-")))
    started = time.perf_counter()
    trainer = Trainer.build(config, data, writer)
    prepared = time.perf_counter() - started
    train_pairs = len(trainer.train_set)
    rss_after_decode = peak_rss_mib()
    started = time.perf_counter()
    trainer.train_one_epoch(1)
    trained = time.perf_counter() - started
    rss_after_training = peak_rss_mib()
    started = time.perf_counter()
    metrics = trainer.evaluate()
    scored = time.perf_counter() - started
    writer.close()
    return {
        "pairs": train_pairs + len(trainer.val_set),
        "size": args.size,
        "on_disk": trainer.train_set.on_disk,
        "scan_s": scanned,
        "decode_and_build_s": prepared,
        "decode_images_per_s": (train_pairs + len(trainer.val_set)) / prepared,
        "decode_threads": data._decode_threads(),
        "steps": trainer.step,
        "train_images_per_s": trainer.step * args.batch / trained,
        "val_images": len(trainer.val_set),
        "score_s": scored,
        "miou": metrics["miou"],
        "peak_rss_mib_after_scan": rss_after_scan,
        "peak_rss_mib_after_decode": rss_after_decode,
        "peak_rss_mib_after_training": rss_after_training,
        "batch": args.batch,
        "precision": args.precision,
        "peak_rss_mib": peak_rss_mib(),
    }


def speed(args) -> dict:
    """One network trained on one split, its batches taken alternately from memory and from the disk cache."""
    import torch

    from segcore import load_dataset
    from segcore.data import record_store
    from segcore.data.dataset import ImageSet
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    data = load_dataset(DATA)
    size = (args.size, args.size)
    pairs = data.pairs("train")[: args.pairs]
    data.splits = {"train": pairs, "val": data.pairs("val")[:8]}
    in_memory = data.decode_pairs(pairs, size)
    images, masks, names = record_store.decoded_on_disk(
        pairs, size, data.decoding_key(), lambda pair: data._decode_pair(pair, size), data._decode_threads()
    )
    on_disk = ImageSet(images, masks, names)
    assert torch.equal(on_disk.images[:16], in_memory.images[:16])
    config = configured(args, augment="flip")
    writer = RunWriter(Path(tempfile.mkdtemp(prefix="speed-")))
    data._cache[("train", size)] = in_memory
    trainer = Trainer.build(config, data, writer)
    sources = {"memory": in_memory, "disk": on_disk}
    step_s = {name: [] for name in sources}
    read_s = {name: [] for name in sources}
    order = torch.randperm(len(in_memory)).tolist()
    trainer.model.train()
    from segcore.models.losses import segmentation_loss

    for step in range(3):  # warm-up, not timed: the first steps pay for allocations and kernel choice
        logits, target = trainer.batches.forward(trainer.net, order[step * args.batch : (step + 1) * args.batch])
        trainer._optimise(segmentation_loss(logits, target, 0.0, trainer.class_weights))
    for block in range(args.blocks):
        name = ("memory", "disk")[block % 2]
        trainer.batches.images = sources[name]
        for step in range(args.block_steps):
            start = (block * args.block_steps + step) * args.batch % (len(order) - args.batch)
            indices = order[start : start + args.batch]
            began = time.perf_counter()
            sources[name].images[indices], sources[name].masks[indices]
            read_s[name].append(time.perf_counter() - began)
            began = time.perf_counter()
            logits, target = trainer.batches.forward(trainer.net, indices)
            loss = segmentation_loss(logits, target, 0.0, trainer.class_weights)
            trainer._optimise(loss)
            step_s[name].append(time.perf_counter() - began)
    writer.close()
    result = {"pairs": len(pairs), "size": args.size, "batch": args.batch, "steps_each": len(step_s["memory"])}
    for name in sources:  # medians: a step disturbed by something else on the machine does not decide it
        result[f"{name}_train_images_per_s"] = args.batch / statistics.median(step_s[name])
        result[f"{name}_read_images_per_s"] = args.batch / statistics.median(read_s[name])
    result["disk_vs_memory_training"] = result["disk_train_images_per_s"] / result["memory_train_images_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["generate", "train", "speed"])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--strategy", default="parameter")
    parser.add_argument("--precision", default="auto", help="TrainConfig.precision: auto, fp32 or bf16")
    parser.add_argument("--blocks", type=int, default=8, help="speed: alternations of memory and disk")
    parser.add_argument("--block-steps", type=int, default=5)
    args = parser.parse_args()
    result = {"generate": generate, "train": train, "speed": speed}[args.command](args)
    result = {
        "command": " ".join(sys.argv[1:]),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        **result,
    }
    print(json.dumps(result, indent=1))
    path = RESULTS / "large-dataset.json"
    earlier = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([*earlier, result], indent=1) + "\n")


if __name__ == "__main__":
    main()
