"""What unlabelled images add (issue 24), under the quality protocol (bench/README.md, "Quality protocol").

Three parts, each its own command:

    # choose the threshold, ratio and weight on the TUNING split (10 % of its training part labelled, the other 90 %
    # unlabelled, their masks never read); CamVid val is not decoded
    python bench/semi_supervised.py --part choose --seeds 0
    # report once on CamVid val (10 % of train labelled, 90 % unlabelled), with the chosen settings, 3 seeds
    python bench/semi_supervised.py --part report --seeds 0 1 2 --confidence 0.95 --ratio 1 --weight 1
    # day → dusk: labelled day frames only, the same network with BatchNorm re-estimated on a dusk stretch, and
    # semi-supervised training with that dusk stretch unlabelled; scored on the other dusk stretch
    python bench/semi_supervised.py --part dusk --seeds 0 1 2

Every run: 192×256, batch 8, the same optimiser steps (276: 6 epochs of CamVid's 367 at batch 8) labelled-only or
semi-supervised, scored once at the end. Each row records the training wall time, so the cost per step of each
option is in the table. Results: bench/results/semi-<part>.{json,txt}.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from common import CAMVID, RESULTS, machine
from quality_protocol import score, task_data

from segcore import TrainConfig, load_dataset
from segcore.compare.spread import mean_sd
from segcore.data.eval_splits import domain_shift_view
from segcore.data.unlabelled import decode_unlabelled
from segcore.models.device import pick_device
from segcore.runs.writer import RunWriter
from segcore.training.adapt import reestimate_batchnorm
from segcore.training.loop import Trainer, configure_process

# the candidates tried on the tuning split: each changes one setting of the default (0.95, 1, 1.0)
CHOICES = {
    "labelled only": None,
    "semi c0.95 r1 w1": (0.95, 1, 1.0),
    "semi c0.8 r1 w1": (0.8, 1, 1.0),
    "semi c0.95 r2 w1": (0.95, 2, 1.0),
    "semi c0.95 r1 w0.5": (0.95, 1, 0.5),
    # the weight grown over the first 30 % of the steps (early pseudo-labels come from a network that barely learnt)
    "semi c0.95 r1 w1 ramp0.3": (0.95, 1, 1.0, 0.3),
    "semi c0.95 r1 w2 ramp0.3": (0.95, 1, 2.0, 0.3),
    # pseudo-labels from a mean teacher (the weights' running average): steadier than the network of one step
    "semi c0.95 r1 w1 ema0.99": (0.95, 1, 1.0, 0.0, 0.99),
    "semi c0.95 r1 w1 ema0.999": (0.95, 1, 1.0, 0.0, 0.999),
}


def train_one(data, strategy: str, seed: int, args, fraction: float | None, semi: tuple | None, unlabelled: str):
    """One run at equal steps: (trainer, seconds of training)."""
    settings = {}
    if semi is not None:
        confidence, ratio, weight, rampup, momentum = (*semi, 0.0, 0.0)[:5]
        settings = dict(
            unlabelled=unlabelled,
            confidence=confidence,
            unlabelled_ratio=ratio,
            unlabelled_weight=weight,
            unlabelled_rampup=rampup,
            teacher_momentum=momentum,
        )
    config = TrainConfig(
        data=str(data.source),
        strategy=strategy,
        epochs=1,
        min_steps=args.steps,
        max_steps=args.steps,
        batch_size=args.batch,
        height=args.height,
        width=args.width,
        ignore_index=data.ignore_index if data.ignore_index is not None else 255,
        seed=seed,
        train_size=fraction,
        threads=args.threads,
        **settings,
    ).validate(check_files=False)
    writer = RunWriter(Path(tempfile.mkdtemp(prefix="semi-", dir=args.runs)))
    try:
        configure_process(config, pick_device(config.device))
        trainer = Trainer.build(config, data, writer)
        started, epoch = time.perf_counter(), 0
        while trainer.step < args.steps:
            epoch += 1
            if not math.isfinite(trainer.train_one_epoch(epoch)):
                break
        return trainer, time.perf_counter() - started
    finally:
        writer.close()


def scored(trainer, data, args) -> dict:
    result = score(
        trainer.model, trainer.normalize, (args.height, args.width), data, trainer.device, trainer.autocast, 0, False
    )
    return {"miou": result["miou"], "per_class_iou": result["per_class_iou"]}


def plan(args) -> list[tuple]:
    """(strategy, seed, choice name, (confidence, ratio, weight) or None) of each run."""
    if args.part == "diagnose":
        return [(s, seed, "labelled only", None) for seed in args.seeds for s in args.strategies]
    if args.part == "choose":
        chosen = {name: semi for name, semi in CHOICES.items() if not args.only or name in args.only}
        return [(s, seed, name, semi) for seed in args.seeds for s in args.strategies for name, semi in chosen.items()]
    chosen = (args.confidence, args.ratio, args.weight, args.rampup, args.teacher_momentum)
    return [
        (s, seed, name, semi)
        for seed in args.seeds
        for s in args.strategies
        for name, semi in (("labelled only", None), ("semi-supervised", chosen))
    ]


@torch.no_grad()
def pseudo_label_quality(trainer, data, args) -> dict:
    """Diagnosis only (never in training): how good would the labelled-only network's pseudo-labels on the images
    `--unlabelled rest` leaves out be? Their masks are read here to tell: the confident share, how often a confident
    pixel is right, how often the network is right anyway, and how many of its mistakes it is confident about."""
    from segcore.data.masks import IGNORE

    labelled = set(data.train_indices(args.fraction, trainer.config.seed))
    rest = [i for i in range(len(data.pairs("train"))) if i not in labelled]
    images = data.load_subset("train", (args.height, args.width), rest)
    trainer.model.eval()
    totals = dict(pixels=0, confident=0, confident_right=0, right=0, wrong=0, wrong_confident=0)
    for start in range(0, len(images), 16):
        logits = trainer.model(trainer.normalize(images.images[start : start + 16].to(trainer.device)))
        best, labels = logits.float().softmax(1).max(1)
        masks = images.masks[start : start + 16].to(trainer.device).long()
        known = masks != IGNORE
        sure, right = (best >= args.confidence) & known, (labels == masks) & known
        totals["pixels"] += int(known.sum())
        totals["confident"] += int(sure.sum())
        totals["confident_right"] += int((sure & right).sum())
        totals["right"] += int(right.sum())
        totals["wrong"] += int((known & ~right).sum())
        totals["wrong_confident"] += int((sure & ~right).sum())
    return {
        "rest_images": len(rest),
        "confident_share": totals["confident"] / totals["pixels"],
        "confident_precision": totals["confident_right"] / max(1, totals["confident"]),
        "accuracy": totals["right"] / totals["pixels"],
        "mistakes_confident": totals["wrong_confident"] / max(1, totals["wrong"]),
    }


def run_part(args) -> list[dict]:
    if args.part == "dusk":
        data = domain_shift_view(load_dataset(CAMVID, ignore_index=11))
        fraction, unlabelled = None, "dataset"
    else:
        data = task_data("camvid", "report" if args.part == "report" else "tune")
        fraction, unlabelled = args.fraction, "rest"
    print(f"{data.split_origin if args.part == 'dusk' else data.source}; {machine()}", flush=True)
    rows = []
    for strategy, seed, name, semi in plan(args):
        trainer, seconds = train_one(data, strategy, seed, args, fraction, semi, unlabelled)
        row = {
            "strategy": strategy,
            "seed": seed,
            "choice": name,
            "semi": semi,
            "steps": trainer.step,
            "train_images": len(trainer.train_set),
            "unlabelled_images": len(trainer.unlabelled) if trainer.unlabelled is not None else 0,
            "train_s": seconds,
            "s_per_step": seconds / max(1, trainer.step),
            **scored(trainer, data, args),
        }
        if args.part == "diagnose":
            row.update(pseudo_label_quality(trainer, data, args))
        rows.append(row)
        print(
            f"{strategy:<10} seed {seed} {name:<20} mIoU {row['miou']:.3f}  {row['s_per_step']:.2f} s/step", flush=True
        )
        if args.part == "diagnose":
            print(
                f"  on the {row['rest_images']} images left unlabelled: {row['confident_share']:.1%} of pixels "
                f"confident (≥ {args.confidence}), {row['confident_precision']:.1%} of those right; the network right "
                f"on {row['accuracy']:.1%} of all pixels; {row['mistakes_confident']:.1%} of its mistakes confident",
                flush=True,
            )
        if args.part == "dusk":  # the same network, BatchNorm re-estimated on the dusk stretch (seconds, no labels)
            started = time.perf_counter()
            images = decode_unlabelled(data.unlabelled, (args.height, args.width))
            reestimate_batchnorm(trainer.model, images.to(trainer.device), trainer.normalize)
            adapted = {
                **row,
                "choice": name + " + BN re-estimated",
                "adapt_s": time.perf_counter() - started,
                **scored(trainer, data, args),
            }
            rows.append(adapted)
            print(f"{strategy:<10} seed {seed} {adapted['choice']:<20} mIoU {adapted['miou']:.3f}", flush=True)
    return rows


def table(rows: list[dict], args) -> str:
    def fmt(values):
        mean, sd = mean_sd(values)
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "") + f" (n={len(values)})"

    lines = [
        f"semi-supervised, part {args.part}: {args.height}×{args.width}, batch {args.batch}, {args.steps} optimiser "
        f"steps per run; seeds {args.seeds}; {machine()}",
        "| strategy | run | mIoU | gain over labelled only (points, paired by seed) | s per step |",
        "|---|---|---|---|---|",
    ]
    for strategy in args.strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        base = {r["seed"]: r["miou"] for r in mine if r["choice"] == "labelled only"}
        for choice in dict.fromkeys(r["choice"] for r in mine):
            cell = [r for r in mine if r["choice"] == choice]
            gains = [100 * (r["miou"] - base[r["seed"]]) for r in cell if r["seed"] in base]
            gain = "—" if choice == "labelled only" or not gains else fmt(gains).replace(" (n=", " pts (n=")
            per_step = sum(r["s_per_step"] for r in cell) / len(cell)
            lines.append(f"| {strategy} | {choice} | {fmt([r['miou'] for r in cell])} | {gain} | {per_step:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["choose", "report", "dusk", "diagnose"], required=True)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--strategies", nargs="*", default=["parameter", "feature"])
    parser.add_argument("--fraction", type=float, default=0.1, help="labelled share of the training images")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--ratio", type=int, default=1)
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--rampup", type=float, default=0.0)
    parser.add_argument("--teacher-momentum", type=float, default=0.0, help="mean teacher (0: the network itself)")
    parser.add_argument("--only", nargs="*", default=[], help="choose: only these candidates (names in CHOICES)")
    parser.add_argument("--steps", type=int, default=276)
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in (args.size.lower().split("x") * 2)[:2])
    args.threads = args.threads or torch.get_num_threads()
    args.runs = tempfile.mkdtemp(prefix="semi-bench-")
    rows = run_part(args)
    out = Path(args.out or RESULTS / f"semi-{args.part}")
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=str))
    text = table(rows, args)
    out.with_suffix(".txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
