"""Validation mIoU at an equal epoch budget, ours against smp, and the data-efficiency curve.

    python bench/quality.py                         # CamVid, 192×256, 6 epochs, fractions 0.1 0.25 0.5 1.0
    python bench/quality.py --peer-lr 3e-3          # give smp our learning rate too
    python bench/quality.py --data ../shared/data/membrane --ignore-index 255 --size 256 --fractions 1.0

Writes bench/results/quality-<dataset>.json and the curve as bench/results/data-efficiency-<dataset>.png.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import CAMVID, machine, peer_model, print_table, write_results
from segcore.settings.strategies import STRATEGIES

from segcore import TrainConfig, load_dataset, train
from segcore.data.transforms import Normalizer, augment_batch, make_augmentation
from segcore.models.metrics import ConfusionMatrix
from segcore.training.loop import warmup_cosine


def train_peer(data, args, name: str, train_size=None) -> dict:
    """smp's U-Net with our optimiser, schedule, flips and data: only the network differs."""
    torch.manual_seed(args.seed)
    size = (args.height, args.width)
    train_set = data.load("train", size).subset(data.train_indices(train_size, args.seed))
    val = data.load("val", size)
    model = peer_model(data.num_classes, frozen=name == "smp-frozen", pretrained=name != "smp-scratch")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.peer_lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_set) / args.batch)
    total = steps_per_epoch * args.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, max(1, steps_per_epoch // 2)))
    normalize, flip = Normalizer([0.5] * 3, [0.5] * 3), make_augmentation("flip", size)
    started, best = time.time(), 0.0
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_set)).tolist()
        for start in range(0, len(order), args.batch):
            index = order[start : start + args.batch]
            x, y = augment_batch(flip, train_set.images[index], train_set.masks[index])
            loss = F.cross_entropy(model(normalize(x)), y.long(), ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        matrix = ConfusionMatrix(data.num_classes)
        with torch.no_grad():
            for start in range(0, len(val), 16):
                matrix.update(val.masks[start : start + 16], model(normalize(val.images[start : start + 16])).argmax(1))
        best = max(best, matrix.compute()["miou"])
    return {"miou": best, "train_time_s": time.time() - started, "train_images": len(train_set)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(CAMVID))
    parser.add_argument("--ignore-index", type=int, default=11)
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=TrainConfig().lr, help="ours (default: the product default)")
    parser.add_argument("--peer-lr", type=float, default=1e-3, help="smp's learning rate (the reference setting)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--strategies", nargs="*", default=["scratch", "parameter", "feature", "structure"])
    parser.add_argument("--peers", nargs="*", default=["smp-full", "smp-frozen", "smp-scratch"])
    parser.add_argument("--tag", default="", help="suffix for the results file")
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in (args.size.lower().split("x") * 2)[:2])
    torch.set_num_threads(os.cpu_count())
    data = load_dataset(args.data, ignore_index=args.ignore_index)
    runs = tempfile.mkdtemp(prefix="quality-")
    base = TrainConfig(
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch,
        lr=args.lr,
        height=args.height,
        width=args.width,
        ignore_index=args.ignore_index,
        seed=args.seed,
    )
    source = None
    if "structure" in args.strategies:
        source = train(
            TrainConfig(
                **{**base.to_dict(), "data": "builtin:shapes-source", "strategy": "parameter", "ignore_index": 255}
            ),
            runs,
            run_id="source",
        )
    rows = []
    for fraction in sorted(args.fractions, reverse=True):
        size = None if fraction >= 1 else fraction
        for strategy in args.strategies:
            config = TrainConfig(
                **{
                    **base.to_dict(),
                    "strategy": strategy,
                    "train_size": size,
                    "source_run": str(source.path) if STRATEGIES[strategy].needs_source_run else None,
                }
            )
            run = train(config, runs, data=data)
            summary = run.summary()
            rows.append(
                {
                    "config": strategy,
                    "fraction": fraction,
                    "train_images": summary["train_images"],
                    "epochs": summary["epochs"],
                    "miou": summary["miou"],
                    "pixel_accuracy": summary["pixel_accuracy"],
                    "train_time_s": summary["train_time_s"],
                }
            )
            print(
                f"  {strategy:<10} {fraction:>4.0%}  mIoU {summary['miou']:.3f}  ({summary['train_time_s']:.0f}s)",
                flush=True,
            )
        if fraction >= 1:
            for name in args.peers:
                result = train_peer(data, args, name)
                rows.append({"config": name, "fraction": fraction, "epochs": args.epochs, **result})
                print(
                    f"  {name:<10} {fraction:>4.0%}  mIoU {result['miou']:.3f}  ({result['train_time_s']:.0f}s)",
                    flush=True,
                )
    print(
        f"\nValidation mIoU after {args.epochs} epochs (ours: at least {base.min_steps} optimiser steps), "
        f"{args.size}, batch {args.batch} — {machine()}"
    )
    print_table(rows, ["config", "fraction", "train_images", "epochs", "miou", "train_time_s"])
    for fraction in sorted({r["fraction"] for r in rows}):
        mious = {r["config"]: r["miou"] for r in rows if r["fraction"] == fraction}
        if "scratch" in mious:
            gains = ", ".join(
                f"{s} {100 * (mious[s] - mious['scratch']):+.1f}"
                for s in ("parameter", "feature", "structure")
                if s in mious
            )
            print(f"  {fraction:>4.0%} of the images, mIoU points over scratch: {gains}")
    full = {r["config"]: r["miou"] for r in rows if r["fraction"] >= 1}
    comparisons = {}
    for ours, peer in (("parameter", "smp-full"), ("feature", "smp-frozen"), ("scratch", "smp-scratch")):
        if ours in full and peer in full:
            comparisons[f"{ours} − {peer} (mIoU points)"] = 100 * (full[ours] - full[peer])
    for key, value in comparisons.items():
        print(f"  {key:<36} {value:+.1f}")
    name = Path(args.data).name.replace(":", "-")
    write_results(
        f"quality-{name}{args.tag}",
        {"machine": machine(), "args": vars(args), "rows": rows, "comparisons": comparisons},
    )
    if len(args.fractions) > 1:
        plot_curve(rows, name)


def plot_curve(rows: list[dict], name: str) -> None:
    import plotly.graph_objects as go

    colours = {"scratch": "#64748b", "parameter": "#2563eb", "feature": "#16a34a", "structure": "#d97706"}
    figure = go.Figure()
    for strategy, colour in colours.items():
        points = sorted((r["train_images"], r["miou"]) for r in rows if r["config"] == strategy)
        if points:
            figure.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines+markers",
                    name=strategy,
                    line=dict(color=colour, width=3),
                )
            )
    figure.update_layout(
        title=f"Data efficiency on {name}: validation mIoU against training images",
        xaxis_title="training images",
        yaxis_title="mIoU",
        width=900,
        height=520,
        template="plotly_white",
    )
    from common import RESULTS

    html = RESULTS / f"data-efficiency-{name}.html"
    figure.write_html(str(html), include_plotlyjs=True)
    try:  # a PNG through the same Chromium the browser tests use (no kaleido needed)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 920, "height": 540})
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot")
            page.screenshot(path=str(RESULTS / f"data-efficiency-{name}.png"))
            browser.close()
    except Exception as exc:
        print(f"(no PNG: {exc}; open {html})")


if __name__ == "__main__":
    main()
