"""Threads and overlap: training images/s at each intra-op / inter-op thread count, and how much of a step
preparing the batch (indexing, flip, normalise, layout) takes, i.e. the most a background thread preparing the
next batch could save.

    python bench/threads.py                          # CamVid 192×256, batch 8, parameter and feature
    python bench/threads.py --images 64 --rounds 2

Each setting runs in its own process (thread pools are fixed at start), interleaved, `--rounds` times;
the best round is kept. Writes bench/results/threads-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CAMVID, ROOT, machine, print_table, write_results


def measure(strategy: str, intra: int, inter: int, args) -> dict:
    import torch

    torch.set_num_interop_threads(inter)
    from segcore import TrainConfig, load_dataset
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import LiveBatches, Trainer, configure_process

    data = load_dataset(args.data, ignore_index=11)
    config = TrainConfig(
        data=args.data,
        strategy=strategy,
        epochs=2,
        min_steps=0,
        batch_size=args.batch,
        height=args.height,
        width=args.width,
        ignore_index=11,
        device="cpu",
        threads=intra,
        train_size=args.images,
    ).validate()
    configure_process(config, torch.device("cpu"))
    writer = RunWriter(Path(tempfile.mkdtemp()) / strategy)
    trainer = Trainer.build(config, data, writer)
    trainer.train_one_epoch(1)
    started = time.perf_counter()
    trainer.train_one_epoch(2)
    images_per_s = len(trainer.train_set) / (time.perf_counter() - started)
    prep_ms = None
    if isinstance(trainer.batches, LiveBatches):  # the batch preparation alone, as the step does it
        batches, order = trainer.batches, list(range(len(trainer.train_set)))
        started = time.perf_counter()
        count = 0
        for start in range(0, len(order), args.batch):
            indices = order[start : start + args.batch]
            images = batches.images.images[indices]
            masks = batches.images.masks[indices]
            from segcore.data.transforms import augment_batch

            images, masks = augment_batch(batches.augmentation, images, masks)
            batches.normalize(images).contiguous(memory_format=torch.channels_last)
            count += 1
        prep_ms = (time.perf_counter() - started) / count * 1e3
    writer.close()
    step_ms = args.batch / images_per_s * 1e3
    return {
        "config": f"{strategy} intra {intra} inter {inter}",
        "strategy": strategy,
        "intra": intra,
        "inter": inter,
        "images_per_s": images_per_s,
        "step_ms": step_ms,
        "prep_ms": prep_ms,
        "prep_share": prep_ms / step_ms if prep_ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(CAMVID))
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=64, help="training images per epoch")
    parser.add_argument("--strategies", nargs="*", default=["parameter", "feature"])
    parser.add_argument("--intra", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--inter", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in args.size.lower().split("x"))
    if args.one:
        strategy, intra, inter = args.one.split(":")
        print(json.dumps(measure(strategy, int(intra), int(inter), args)))
        return
    settings = [(s, a, e) for s in args.strategies for a in args.intra for e in args.inter]
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for strategy, intra, inter in settings:
            command = [
                sys.executable,
                __file__,
                "--one",
                f"{strategy}:{intra}:{inter}",
                "--data",
                args.data,
                "--size",
                args.size,
                "--batch",
                str(args.batch),
                "--images",
                str(args.images),
            ]
            output = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if output.returncode != 0:
                raise RuntimeError(output.stderr[-3000:])
            row = json.loads(output.stdout.strip().splitlines()[-1])
            print(f"  {row['config']}: {row['images_per_s']:.1f} images/s", flush=True)
            if row["config"] not in best or row["images_per_s"] > best[row["config"]]["images_per_s"]:
                best[row["config"]] = row
    rows = list(best.values())
    print(f"\nThreads, {args.size}, batch {args.batch}, {args.images} images — {machine()} ({os.cpu_count()} cores)")
    print_table(rows, ["config", "images_per_s", "step_ms", "prep_ms", "prep_share"])
    path = write_results(
        "threads-cpu", {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "one"}, "rows": rows}
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
