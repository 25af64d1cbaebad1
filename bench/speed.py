"""Training and inference speed, and peak memory: our four strategies against smp's U-Net, side by side.

    python bench/speed.py                      # CamVid 192×256, batch 8, threads = cores
    python bench/speed.py --epochs 1 --rounds 1
    python bench/speed.py --device cuda --only parameter smp-full feature feature-warm smp-frozen
    python bench/speed.py --train-images 96          # a loaded machine: fewer images per epoch

Each configuration runs in its own process (so peak memory is its own), ours and the peer interleaved.
`feature` starts from an empty feature cache (its first epoch builds it); `feature-warm` runs right after it
with the cache the `feature` run left on disk (a second student's run of the same data, backbone and size).
run_s estimates a whole run of --run-epochs epochs: the first epoch + (run-epochs − 1) × the last one.
Prints a table and the ratios ours/peer, and writes bench/results/speed-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from common import CAMVID, ROOT, machine, peak_rss_gib, peer_model, print_table, write_results

OURS = ("scratch", "parameter", "feature", "feature-warm", "structure")
PEERS = ("smp-full", "smp-frozen")


def steady_rate(times: list[float], batch: int, skip: int = 3) -> float:
    """Images per second between step `skip` and the last step (first batches excluded)."""
    if len(times) <= skip + 1:
        return float("nan")
    return (len(times) - 1 - skip) * batch / (times[-1] - times[skip])


def source_checkpoint(runs: str, args) -> str:
    """A tiny source run for structure transfer (its quality does not matter for speed)."""
    from segcore import TrainConfig, train

    config = TrainConfig(
        data="builtin:shapes-source",
        strategy="scratch",
        epochs=1,
        max_steps=1,
        height=args.height,
        width=args.width,
        batch_size=2,
        device=args.device,
    )
    return str(train(config, runs, run_id="speed-source").path)


def measure_ours(strategy: str, args) -> dict:
    import tempfile

    from segcore import TrainConfig, load_dataset
    from segcore.runs.writer import RunWriter
    from segcore.settings.strategies import STRATEGIES
    from segcore.training.loop import Trainer, configure_process

    runs = tempfile.mkdtemp()
    source = source_checkpoint(runs, args) if STRATEGIES[strategy.removesuffix("-warm")].needs_source_run else None
    data = load_dataset(args.data, ignore_index=11)
    config = TrainConfig(
        data=args.data,
        strategy=strategy.removesuffix("-warm"),
        epochs=args.epochs,
        batch_size=args.batch,
        height=args.height,
        width=args.width,
        ignore_index=11,
        device=args.device,
        threads=args.threads,
        source_run=source,
        train_size=args.train_images,
    )
    writer = RunWriter(__import__("pathlib").Path(runs) / strategy)
    from segcore.models.device import pick_device

    configure_process(config, pick_device(config.device))
    trainer = Trainer.build(config.validate(), data, writer)
    epoch_times, step_times = [], []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        trainer.train_one_epoch(epoch)
        if trainer.on_gpu:
            torch.cuda.synchronize()
        epoch_times.append(time.perf_counter() - started)
    step_times = [r["time"] for r in writer.steps() if r["epoch"] == args.epochs]
    model = trainer.model.eval()
    inference = measure_inference(
        lambda x: model(trainer.normalize(x)), trainer.train_set.images, args, trainer.autocast
    )
    writer.close()
    return {
        "config": strategy,
        "images_per_s": steady_rate(step_times, args.batch),
        "train_images": len(trainer.train_set),
        "first_epoch_s": epoch_times[0],
        "epoch_s": epoch_times[-1],
        "inference_images_per_s": inference,
        "run_s": epoch_times[0] + (args.run_epochs - 1) * epoch_times[-1],
        "cache_built": trainer.cache.built if trainer.cache else None,
        "peak_rss_gib": peak_rss_gib(),
        "trainable_params": trainer.trainable,
        "gpu_peak_gib": torch.cuda.max_memory_allocated() / 1024**3 if trainer.on_gpu else None,
    }


def measure_inference(forward, images, args, autocast) -> float:
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    batches = [images[i : i + args.batch].to(device) for i in range(0, args.batch * 8, args.batch)]
    with torch.no_grad(), autocast():
        for batch in batches[:2]:
            forward(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for batch in batches[2:]:
            forward(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return sum(len(b) for b in batches[2:]) / (time.perf_counter() - started)


def measure_peer(name: str, args) -> dict:
    """smp trained with a plain loop on the same in-memory data, batch, optimiser, threads and flips."""
    from contextlib import nullcontext

    from segcore import load_dataset
    from segcore.data.transforms import Normalizer, augment_batch, make_augmentation

    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    data = load_dataset(args.data, ignore_index=11)
    images = data.load_subset("train", (args.height, args.width), data.train_indices(args.train_images, 0))
    model = peer_model(data.num_classes, frozen=name == "smp-frozen").to(device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    normalize = Normalizer([0.5] * 3, [0.5] * 3, device)
    flip = make_augmentation("flip", (args.height, args.width))
    epoch_times, step_times = [], []
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(images)).tolist()
        step_times = []
        started = time.perf_counter()
        for start in range(0, len(order), args.batch):
            index = order[start : start + args.batch]
            x, y = augment_batch(flip, images.images[index].to(device), images.masks[index].to(device))
            with autocast():
                loss = F.cross_entropy(model(normalize(x)).float(), y.long(), ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.time())
        epoch_times.append(time.perf_counter() - started)
    inference = measure_inference(lambda x: model.eval()(normalize(x)), images.images, args, autocast)
    return {
        "config": name,
        "images_per_s": steady_rate(step_times, args.batch),
        "first_epoch_s": epoch_times[0],
        "epoch_s": epoch_times[-1],
        "run_s": epoch_times[0] + (args.run_epochs - 1) * epoch_times[-1],
        "train_images": len(images),
        "inference_images_per_s": inference,
        "peak_rss_gib": peak_rss_gib(),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "gpu_peak_gib": torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else None,
    }


def run_one(name: str, args, cache: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        name,
        "--data",
        args.data,
        "--size",
        f"{args.height}x{args.width}",
        "--batch",
        str(args.batch),
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--run-epochs",
        str(args.run_epochs),
    ]
    if args.train_images:
        command += ["--train-images", str(args.train_images)]
    output = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "SEGCORE_CACHE": cache}
    )
    if output.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(CAMVID))
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per configuration; the last one is reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the interleaved sequence and keep the best")
    parser.add_argument("--only", nargs="*", help="measure just these configurations")
    parser.add_argument("--train-images", type=int, help="train on this many images (seeded subset; default all)")
    parser.add_argument("--run-epochs", type=int, default=6, help="epochs of the whole run that run_s estimates")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in args.size.lower().split("x"))
    if args.one:
        result = measure_ours(args.one, args) if args.one in OURS else measure_peer(args.one, args)
        print(json.dumps(result))
        return
    order = args.only or ["scratch", "smp-full", "parameter", "smp-frozen", "feature", "feature-warm", "structure"]
    best: dict[str, dict] = {}
    import tempfile

    for _ in range(args.rounds):
        cold = tempfile.mkdtemp(prefix="speed-cache-")  # the feature cache starts empty each round
        for name in order:
            result = run_one(name, args, cold)
            print(
                f"  measured {name}: {result['images_per_s']:.1f} images/s, epoch {result['epoch_s']:.1f}s", flush=True
            )
            if name not in best or result["images_per_s"] > best[name]["images_per_s"]:
                best[name] = result
    rows = [best[n] for n in order if n in best]
    print(f"\nTraining speed, {args.size}, batch {args.batch}, {args.threads} threads — {machine()}")
    print_table(
        rows,
        [
            "config",
            "images_per_s",
            "first_epoch_s",
            "epoch_s",
            "run_s",
            "inference_images_per_s",
            "peak_rss_gib",
            "gpu_peak_gib",
            "trainable_params",
            "cache_built",
        ],
    )
    ratios = {}
    if "smp-full" in best:
        for name in ("scratch", "parameter", "structure"):
            if name in best:
                ratios[f"{name} / smp-full (images/s)"] = best[name]["images_per_s"] / best["smp-full"]["images_per_s"]
        if "parameter" in best:
            ratios["parameter / smp-full (inference)"] = (
                best["parameter"]["inference_images_per_s"] / best["smp-full"]["inference_images_per_s"]
            )
    if "smp-frozen" in best and "feature" in best:
        ratios["smp-frozen epoch / feature epoch"] = best["smp-frozen"]["epoch_s"] / best["feature"]["epoch_s"]
        ratios[f"smp-frozen / feature, {args.run_epochs}-epoch run incl. cache build"] = (
            best["smp-frozen"]["run_s"] / best["feature"]["run_s"]
        )
    if "smp-frozen" in best and "feature-warm" in best:
        ratios[f"smp-frozen / feature-warm, {args.run_epochs}-epoch run (cache on disk)"] = (
            best["smp-frozen"]["run_s"] / best["feature-warm"]["run_s"]
        )
        ratios["feature-warm first epoch / its later epochs"] = (
            best["feature-warm"]["first_epoch_s"] / best["feature-warm"]["epoch_s"]
        )
    if "parameter" in best and "feature" in best:
        ratios["parameter epoch / feature epoch"] = best["parameter"]["epoch_s"] / best["feature"]["epoch_s"]
    print("\nRatios (> 1 means ours is faster)")
    for key, value in ratios.items():
        print(f"  {key:<58} {value:5.2f}×")
    device = "gpu" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    path = write_results(
        f"speed-{device}",
        {
            "machine": machine(),
            "args": {k: v for k, v in vars(args).items() if k != "one"},
            "rows": rows,
            "ratios": ratios,
        },
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
