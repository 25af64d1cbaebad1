"""Honest quality: the protocol of bench/README.md ("Quality protocol"), in one command.

    # the lead's GPU run (all sections, 3 seeds, CamVid val = report split), about 6-8 minutes on an H200:
    python bench/quality_protocol.py --device cuda --threads 16 --workers 4 --seeds 0 1 2 --split report \
        --out bench/results/quality-protocol-gpu
    # choosing defaults: the same on the tuning split (20 % of CamVid train, seeded; val never read)
    python bench/quality_protocol.py --split tune --sections candidates --candidate-strategies feature --steps 150

Sections (run in this order; each run is independent, a failed run is recorded and the rest go on):
  camvid      every strategy and smp peer at each fraction (default 100 % and 10 %), every seed, the SAME number
              of optimiser steps at every fraction (--steps; printed), scored once at the end of training
              (no best-epoch picking on the scored split), at the training size and at native 360×480
  candidates  settings proposed for thin and rare classes (CANDIDATES below) on --candidate-strategy, 100 %
  binary      CamVid car vs everything else (segcore.data.derived.binary_view): ours and smp, 100 %
  membrane    the EM membrane set (24/6 seeded split; its own tuning part in --split tune): ours and smp, 100 %
Writes <out>.json after every run (partial results survive a crash or a timeout) and <out>.txt at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from common import CAMVID, ROOT, machine, peer_model

from segcore import TrainConfig, load_dataset
from segcore.settings.config import PRESETS
from segcore.data.dataset import ImageSet
from segcore.data.eval_splits import BINARY_TASKS, binary_view, protocol_view
from segcore.data.transforms import Normalizer, augment_batch, make_augmentation
from segcore.data.framing import COVER, SQUASH, framed_size
from segcore.training.evaluate import native_confusion
from segcore.training.windows import bounded_logits, scoring_batch
from segcore.models.metrics import ConfusionMatrix
from segcore.compare.spread import mean_sd
from segcore.training.loop import warmup_cosine

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"
PEER_OF = {"parameter": "smp-full", "feature": "smp-frozen", "scratch": "smp-scratch"}  # same strategy, smp's net
THIN = ["Pole", "SignSymbol", "Fence", "Pedestrian", "Bicyclist"]
# thin/rare-class candidates (bench/README.md, "Thin and rare classes"): settings over the defaults
CANDIDATES = {
    "default": {},
    "balanced": {"class_weights": "balanced"},
    "wide-decoder": {"decoder_channels": (256, 128, 64, 32)},
    "288x384": {"height": 288, "width": 384},
    "quality": {"height": 288, "width": 384, "class_weights": "balanced"},
    "2x-steps": {"steps_factor": 2},  # rare classes may simply be learned late: twice the optimiser steps
    "balanced-2x-steps": {"class_weights": "balanced", "steps_factor": 2},
    "wide-decoder-2x-steps": {"decoder_channels": (256, 128, 64, 32), "steps_factor": 2},
    # today's other defaults, re-checked under the protocol: each candidate undoes one of them
    "lr-1e-3": {"lr": 1e-3},
    "encoder-lr-x1": {"encoder_lr_factor": 1.0},
    "train-bn": {"train_bn": "on"},
    "keep-bn": {"train_bn": "off"},  # the default before 2026-11-26
    # every default before 2026-11-26 at once: "no default loses more than 1 point against the previous default"
    "previous-defaults": {"lr": 3e-3, "class_weights": "sqrt", "train_bn": "off"},
    "no-weights": {"class_weights": "none"},  # plain cross-entropy, as the smp peer trains
    # feature transfer trains the decoder alone: a frozen encoder may take a faster decoder rate or a Dice term
    "lr-3e-3": {"lr": 3e-3},  # the default before 2026-11-26, named: runs of it keep meaning the same
    "lr-6e-3": {"lr": 6e-3},
    "lr-1e-2": {"lr": 1e-2},
    "lr-2e-2": {"lr": 2e-2},
    "dice": {"dice_weight": 1.0},
    # the validation frames come from another stretch of video: scale-crops and colour jitter may carry better
    "full-augment": {"augment": "full"},
    # aspect kept: resized by the short side, trained on random crops of the size, scored on whole images
    "crop": {"resize": "crop"},
    # the whole network's steps in bf16 on a CPU that has it natively (TrainConfig.precision): memory, same speed
    "bf16": {"precision": "bf16"},
    "detailed": PRESETS["detailed"].settings,  # the preset a practitioner picks (segcore/config.py)
}
SECTIONS = ("camvid", "candidates", "binary", "membrane")
ROW_KEYS = ("key", "section", "task", "config", "candidate", "fraction", "seed", "steps", "height", "width", "settings")


# -- one run (in a worker process) ------------------------------------------------------------------------------
_DATA: dict = {}


def task_data(task: str, split: str, pack: str = ""):
    """The dataset view a task is trained and scored on, loaded once per process (from the travel copy
    bench/protocol_data.py writes when `pack` is given: the GPU machine receives no ../shared)."""
    key = (task, split)
    if key not in _DATA:
        if task == "membrane":
            # no split of its own: seeded 80/20, seed 0
            base = load_dataset(Path(pack) / "membrane" if pack else MEMBRANE, ignore_index=255)
        else:
            if pack:
                from protocol_data import load_packed_camvid

                base = load_packed_camvid(Path(pack))
            else:
                base = load_dataset(CAMVID, ignore_index=11)
            if task != "camvid":
                base = binary_view(base, *BINARY_TASKS[task.split("-", 1)[1]])
        _DATA[key] = protocol_view(base, split)
    return _DATA[key]


def score(model, normalize, size, data, device, autocast, max_val: int, native: bool, fit: str = SQUASH) -> dict:
    """Training-size and native-size scores of the model as it is at the end of training. A run that keeps the
    aspect (fit COVER) is scored on whole images at its framed size, as the product scores it."""
    val = data.load("val", framed_size(size, data.typical_size()) if fit == COVER else size, fit=fit)
    if max_val:
        val = val.subset(range(min(max_val, len(val))))
    matrix = ConfusionMatrix(data.num_classes)
    model.eval()
    batch = scoring_batch(32, *val.images.shape[-2:])
    with torch.no_grad():
        for start in range(0, len(val), batch):
            logits = bounded_logits(model, normalize(val.images[start : start + batch].to(device)), size, autocast)
            matrix.update(val.masks[start : start + batch], logits.argmax(1))
    result = matrix.compute()
    out = {
        "miou": result["miou"],
        "per_class_iou": dict(zip(data.class_names, result["per_class_iou"])),
        "val_images": len(val),
    }
    if native:
        view = data
        if max_val:  # smoke runs: the same first images at native size
            from dataclasses import replace

            view = replace(data, splits={**data.splits, "val": data.pairs("val")[:max_val]}, _cache={})
            view._cache[("val", tuple(size))] = val
        nat = native_confusion(model, normalize, size, view, "val", device, 32, autocast, fit=fit).compute()
        out.update(native_miou=nat["miou"], native_per_class_iou=dict(zip(data.class_names, nat["per_class_iou"])))
    return out


def source_run(spec: dict, runs: Path) -> str:
    """Structure transfer's source network (builtin:shapes-source), one per seed, trained by whichever worker
    asks first (a file lock keeps the others waiting for it)."""
    from segcore import train

    folder = runs / f"source-s{spec['seed']}"
    with open(runs / f"source-s{spec['seed']}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "summary.json").is_file():
            config = TrainConfig(
                data="builtin:shapes-source",
                strategy="parameter",
                height=spec["height"],
                width=spec["width"],
                seed=spec["seed"],
                device=spec["device"],
                threads=spec["threads"],
                max_steps=spec["source_steps"],
            )
            train(config, runs, run_id=folder.name)
    return str(folder)


def run_ours(spec: dict, data, runs: Path) -> dict:
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer, configure_process

    settings = dict(spec["settings"])
    if "decoder_channels" in settings:
        settings["decoder_channels"] = tuple(settings["decoder_channels"])
    steps = spec["steps"]
    config = TrainConfig(
        data=str(data.source),
        strategy=spec["config"],
        epochs=1,
        min_steps=steps,
        max_steps=steps,
        batch_size=spec["batch"],
        height=spec["height"],
        width=spec["width"],
        ignore_index=data.ignore_index if data.ignore_index is not None else 255,
        seed=spec["seed"],
        train_size=spec["fraction"] if spec["fraction"] < 1 else None,
        device=spec["device"],
        threads=spec["threads"],
        **settings,
    )
    if config.strategy_info.needs_source_run:
        config.source_run = source_run(spec, runs)
    config.validate()
    writer = RunWriter(Path(tempfile.mkdtemp(prefix="run-", dir=runs)))
    try:
        from segcore.models.device import pick_device

        configure_process(config, pick_device(config.device))
        trainer = Trainer.build(config, data, writer)
        started, epoch = time.perf_counter(), 0
        while trainer.step < steps:  # equal steps: as many epochs as the budget needs, the last one cut short
            epoch += 1
            loss = trainer.train_one_epoch(epoch)
            if not math.isfinite(loss):
                break
        if trainer.on_gpu:
            torch.cuda.synchronize()
        train_s = time.perf_counter() - started
        result = score(
            trainer.model,
            trainer.normalize,
            config.size,
            data,
            trainer.device,
            trainer.autocast,
            spec["max_val"],
            spec["native"],
            config.fit,
        )
        return {
            **result,
            "steps": trainer.step,
            "epochs": epoch,
            "train_images": len(trainer.train_set),
            "train_time_s": train_s,
            "final_loss": loss,
        }
    finally:
        writer.close()


def run_peer(spec: dict, data) -> dict:
    """smp's U-Net with our optimiser, schedule, flips, data and step budget; its reference loss (plain CE)
    and lr (1e-3); bf16 autocast and channels_last on the GPU like ours."""
    from segcore.models.device import pick_device

    device = pick_device(spec["device"])
    torch.set_num_threads(spec["threads"] or os.cpu_count())
    torch.manual_seed(spec["seed"])
    size = (spec["height"], spec["width"])
    fraction = spec["fraction"] if spec["fraction"] < 1 else None
    train_set = data.load_subset("train", size, data.train_indices(fraction, spec["seed"]))
    gpu = device.type == "cuda"
    if gpu:
        train_set = ImageSet(train_set.images.to(device), train_set.masks.to(device), train_set.names)
    name = spec["config"]
    model = peer_model(data.num_classes, frozen=name == "smp-frozen", pretrained=name != "smp-scratch").to(device)
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if gpu else nullcontext
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["peer_lr"], weight_decay=1e-4)
    steps, batch = spec["steps"], spec["batch"]
    per_epoch = math.ceil(len(train_set) / batch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, max(1, per_epoch // 2)))
    normalize, flip = Normalizer([0.5] * 3, [0.5] * 3, device), make_augmentation("flip", size)
    started, step, epoch, loss = time.perf_counter(), 0, 0, torch.tensor(float("nan"))
    while step < steps:
        epoch += 1
        model.train()
        if name == "smp-frozen":
            model.freeze_encoder()  # smp keeps the frozen encoder's norm layers in eval mode
        order = torch.randperm(len(train_set)).tolist()
        for start in range(0, len(order), batch):
            if step >= steps:
                break
            index = order[start : start + batch]
            x, y = augment_batch(flip, train_set.images[index], train_set.masks[index])
            x = normalize(x)
            if gpu:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y.long(), ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
    if gpu:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - started
    result = score(model, normalize, size, data, device, autocast, spec["max_val"], spec["native"])
    return {
        **result,
        "steps": step,
        "epochs": epoch,
        "train_images": len(train_set),
        "train_time_s": train_s,
        "final_loss": float(loss.detach()),
    }


def run_spec(spec: dict) -> dict:
    """One run, never raising: a failure or a spent time budget becomes a row that says so."""
    row = {k: spec[k] for k in ROW_KEYS}
    if time.time() > spec["deadline"]:
        return {**row, "status": "skipped: time budget spent"}
    started = time.time()
    try:
        runs = Path(spec["runs"])
        data = task_data(spec["task"], spec["split"], spec["pack"])
        result = run_peer(spec, data) if spec["config"].startswith("smp-") else run_ours(spec, data, runs)
        return {**row, "status": "ok", **result, "wall_s": time.time() - started}
    except Exception as exc:  # noqa: BLE001 — keep going: one broken run must not cost the others
        return {
            **row,
            "status": f"failed: {type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:],
            "wall_s": time.time() - started,
        }


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


# -- the plan ---------------------------------------------------------------------------------------------------
def plan(args) -> list[dict]:
    common = {
        "split": args.split,
        "batch": args.batch,
        "device": args.device,
        "threads": args.worker_threads,
        "peer_lr": args.peer_lr,
        "max_val": args.max_val,
        "native": not args.no_native,
        "source_steps": args.source_steps,
        "runs": args.runs,
        "pack": str(Path(args.data_pack).resolve()) if args.data_pack else "",
    }
    specs, seen = [], set()

    def add(section, task, config, fraction, seed, steps, size, settings=None, candidate=None):
        settings = settings or {}
        height, width = settings.get("height", size[0]), settings.get("width", size[1])
        rest = {k: v for k, v in settings.items() if k not in ("height", "width")}
        key = json.dumps([task, config, fraction, seed, steps, height, width, sorted(rest.items())], default=list)
        if key in seen:  # a candidate equal to a headline run is measured once and shown in both tables
            return
        seen.add(key)
        specs.append(
            {
                **common,
                "key": key,
                "section": section,
                "task": task,
                "config": config,
                "fraction": fraction,
                "seed": seed,
                "steps": steps,
                "height": height,
                "width": width,
                "settings": rest,
                "candidate": candidate,
            }
        )

    size = (args.height, args.width)
    configs = args.strategies + args.peers
    if "camvid" in args.sections:  # 100 % for every seed first: the headline survives a short budget
        for fraction in sorted(args.fractions, reverse=True):
            for seed in args.seeds:
                for config in configs:
                    add("camvid", "camvid", config, fraction, seed, args.steps, size)

    def candidates(longer: bool) -> None:
        for seed in args.seeds:
            for strategy in args.candidate_strategies:
                for name in args.candidates:
                    settings = dict(CANDIDATES[name])
                    factor = settings.pop("steps_factor", 1)
                    if (factor > 1) == longer:
                        add("candidates", "camvid", strategy, 1.0, seed, args.steps * factor, size, settings, name)

    if "candidates" in args.sections:
        candidates(longer=False)
    confirm = [c for c in configs if c != "structure"]
    if "binary" in args.sections:
        for seed in args.seeds:
            for config in confirm:
                add("binary", f"camvid-{args.binary}", config, 1.0, seed, args.steps, size)
            for name in args.confirm_candidates:  # a candidate default must not hurt the other tasks
                settings = dict(CANDIDATES[name])
                steps = args.steps * settings.pop("steps_factor", 1)
                add(
                    "binary",
                    f"camvid-{args.binary}",
                    args.candidate_strategies[0],
                    1.0,
                    seed,
                    steps,
                    size,
                    settings,
                    name,
                )
    if "membrane" in args.sections:
        for seed in args.seeds:
            for config in confirm:
                add("membrane", "membrane", config, 1.0, seed, args.membrane_steps, (256, 256))
            for name in args.confirm_candidates:
                settings = {k: v for k, v in CANDIDATES[name].items() if k not in ("height", "width")}
                steps = args.membrane_steps * settings.pop("steps_factor", 1)
                add("membrane", "membrane", args.candidate_strategies[0], 1.0, seed, steps, (256, 256), settings, name)
    if "candidates" in args.sections:  # the longest runs last: a short budget loses them, not the confirmations
        candidates(longer=True)
    for spec in specs:
        spec["deadline"] = args.deadline
    return specs


def reusable_peer_rows(args, specs: list[dict]) -> dict[str, dict]:
    """Scored smp peer runs from earlier results of the same protocol (key, split, batch, lr and scoring equal)."""
    same = ("split", "batch", "peer_lr", "max_val", "no_native", "membrane_steps")
    wanted = {s["key"]: s for s in specs if s["config"].startswith("smp-")}
    found: dict[str, dict] = {}
    for path in args.reuse_peers:
        earlier = json.loads(Path(path).read_text())
        if any(earlier["args"].get(name) != getattr(args, name) for name in same):
            continue
        for row in earlier["rows"]:
            if row.get("status") == "ok" and row.get("key") in wanted and row["key"] not in found:
                found[row["key"]] = {**row, "reused_from": str(path)}
    return found


# -- tables -----------------------------------------------------------------------------------------------------
def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    mean, sd = mean_sd(values)
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "") + f" (n={len(values)})"


def tables(rows: list[dict], args) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    lines = []

    def pick(task="camvid", config=None, fraction=1.0, settings=None):
        """Scored runs of one cell; settings=None: the defaults at the protocol's size and step budget."""
        settings = dict(settings or {})
        steps = (args.membrane_steps if task == "membrane" else args.steps) * settings.pop("steps_factor", 1)
        wanted = signature(args, settings)
        return [
            r
            for r in ok
            if r["task"] == task
            and r["config"] == config
            and r["fraction"] == fraction
            and r["steps"] == steps
            and signature(args, r["settings"], r["height"], r["width"]) == wanted
        ]

    scored = (
        "the tuning split (20 % of each task's training images, seeded; val untouched)"
        if args.split == "tune"
        else "the report split (CamVid val; membrane: its seeded 6-image val)"
    )
    lines.append(
        f"Quality protocol — {scored}; {args.height}×{args.width} training size, batch {args.batch}, "
        f"{args.steps} optimiser steps at every fraction (membrane: {args.membrane_steps}); scored once at the "
        f"end of training; mean ± sd over seeds {args.seeds} — {machine()}"
    )
    configs = args.strategies + args.peers
    if "camvid" in args.sections:
        fractions = sorted(args.fractions, reverse=True)
        head = ["config"] + [f"{f:.0%} mIoU" for f in fractions] + ["100 % native mIoU", "train images", "train s/run"]
        body = []
        for config in configs:
            cells = [config]
            for f in fractions:
                cells.append(fmt([r["miou"] for r in pick(config=config, fraction=f)]))
            full = pick(config=config, fraction=1.0)
            cells.append(fmt([r["native_miou"] for r in full if "native_miou" in r]))
            images = sorted({r["train_images"] for f in fractions for r in pick(config=config, fraction=f)})
            cells.append("/".join(map(str, images)) or "—")
            cells.append(f"{sum(r['train_time_s'] for r in full) / len(full):.1f}" if full else "—")
            body.append(cells)
        lines += ["", "CamVid (11 classes): mIoU at the training size; native = at 360×480", *_table(head, body)]
        lines += ["", "ours − smp, same strategy (mIoU points, paired by seed, mean ± sd)"]
        for ours, peer in PEER_OF.items():
            for f in fractions:
                a = {r["seed"]: r["miou"] for r in pick(config=ours, fraction=f)}
                b = {r["seed"]: r["miou"] for r in pick(config=peer, fraction=f)}
                diffs = [100 * (a[s] - b[s]) for s in a if s in b]
                if diffs:
                    mean, sd = mean_sd(diffs)
                    lines.append(
                        f"  {ours} − {peer} at {f:.0%}: {mean:+.1f}"
                        + (f" ± {sd:.1f}" if sd else "")
                        + f" (n={len(diffs)})"
                    )
        for f in fractions:
            if f < 1:
                for ours in ("parameter", "feature", "structure"):
                    a = {r["seed"]: r["miou"] for r in pick(config=ours, fraction=f)}
                    b = {r["seed"]: r["miou"] for r in pick(config="scratch", fraction=f)}
                    diffs = [100 * (a[s] - b[s]) for s in a if s in b]
                    if diffs:
                        mean, sd = mean_sd(diffs)
                        lines.append(
                            f"  {ours} − scratch at {f:.0%}: {mean:+.1f}"
                            + (f" ± {sd:.1f}" if sd else "")
                            + f" (n={len(diffs)})"
                        )
        lines += ["", "per-class IoU at 100 % (mean over seeds; training size / native)"]
        classes = None
        body = []
        for config in configs:
            full = pick(config=config, fraction=1.0)
            if not full:
                continue
            classes = classes or list(full[0]["per_class_iou"])
            cells = [config]
            for c in classes:
                v = [r["per_class_iou"][c] for r in full if r["per_class_iou"].get(c) is not None]
                n = [r["native_per_class_iou"][c] for r in full if r.get("native_per_class_iou", {}).get(c) is not None]
                cells.append((f"{sum(v) / len(v):.2f}" if v else "—") + "/" + (f"{sum(n) / len(n):.2f}" if n else "—"))
            body.append(cells)
        if classes:
            lines += _table(["config", *classes], body)
    for strategy in args.candidate_strategies if "candidates" in args.sections else []:
        head = ["candidate", "settings", "steps", "mIoU", "native mIoU", *THIN, "train s/run"]
        body = []
        for name in args.candidates:
            got = pick(config=strategy, settings=CANDIDATES[name])
            cells = [
                name,
                _describe(CANDIDATES[name]) or "(defaults)",
                str(args.steps * CANDIDATES[name].get("steps_factor", 1)),
                fmt([r["miou"] for r in got]),
                fmt([r["native_miou"] for r in got if "native_miou" in r]),
            ]
            for c in THIN:
                v = [r["per_class_iou"].get(c) or 0.0 for r in got]
                cells.append(f"{sum(v) / len(v):.3f}" if v else "—")
            cells.append(f"{sum(r['train_time_s'] for r in got) / len(got):.1f}" if got else "—")
            body.append(cells)
        title = f"Thin and rare classes: candidates on {strategy} at 100 % (IoU at the training size)"
        lines += ["", title, *_table(head, body)]
    for section, task, title in (
        ("binary", f"camvid-{args.binary}", f"CamVid {args.binary} vs rest (binary)"),
        ("membrane", "membrane", "membrane (EM, binary)"),
    ):
        if section not in args.sections:
            continue
        body = []
        size = {"height": 256, "width": 256} if task == "membrane" else {}
        cells = [(c, c, size) for c in configs if c != "structure"]
        cells += [
            (
                f"{args.candidate_strategies[0]} [{name}]",
                args.candidate_strategies[0],
                {**{k: v for k, v in CANDIDATES[name].items() if not (size and k in ("height", "width"))}, **size},
            )
            for name in args.confirm_candidates
        ]
        for label, config, settings in cells:
            got = pick(task=task, config=config, settings=settings)
            positive = [r["per_class_iou"].get(list(r["per_class_iou"])[1]) or 0.0 for r in got]
            body.append(
                [
                    label,
                    fmt([r["miou"] for r in got]),
                    fmt([r["native_miou"] for r in got if "native_miou" in r]),
                    fmt(positive),
                    "/".join(sorted({str(r["train_images"]) for r in got})) or "—",
                ]
            )
        lines += [
            "",
            f"{title}: confirmation at 100 %",
            *_table(["config", "mIoU", "native mIoU", "class-1 IoU", "train images"], body),
        ]
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        lines += ["", f"{len(bad)} runs not scored:"] + [
            f"  {r['task']} {r['config']} {r['fraction']:.0%} seed "
            f"{r['seed']} {r.get('candidate') or ''}: {r['status']}"
            for r in bad
        ]
    return "\n".join(lines)


def signature(args, settings: dict, height: int | None = None, width: int | None = None) -> str:
    """What makes two runs the same cell: size and the settings over the defaults."""
    rest = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items() if k not in ("height", "width")}
    height = height or settings.get("height", args.height)
    width = width or settings.get("width", args.width)
    return json.dumps([height, width, sorted(rest.items())])


def _describe(settings: dict) -> str:
    return ", ".join(f"{k}={'×'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in settings.items())


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [head, *body]]


# -- main -------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--split",
        choices=["tune", "report"],
        default="tune",
        help="tune: choose defaults (20 %% of CamVid train); report: CamVid val, for the final table",
    )
    parser.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--fractions", type=float, nargs="*", default=[1.0, 0.1])
    parser.add_argument("--strategies", nargs="*", default=["scratch", "parameter", "feature", "structure"])
    parser.add_argument("--peers", nargs="*", default=["smp-full", "smp-frozen", "smp-scratch"])
    # 288x384 / quality need a travel copy made with 288x384 too (too large to travel beside the 192×256 one)
    parser.add_argument(
        "--candidates",
        nargs="*",
        choices=list(CANDIDATES),
        default=["default", "balanced", "wide-decoder", "2x-steps", "wide-decoder-2x-steps"],
    )
    parser.add_argument(
        "--candidate-strategies",
        nargs="*",
        default=["parameter", "feature"],
        help="strategies the candidates run on; the first also runs --confirm-candidates",
    )
    parser.add_argument(
        "--confirm-candidates",
        nargs="*",
        default=["balanced", "wide-decoder"],
        choices=list(CANDIDATES),
        help="candidates also run on the binary and membrane tasks (a default must not hurt them)",
    )
    parser.add_argument("--binary", default="car", choices=list(BINARY_TASKS))
    parser.add_argument(
        "--steps",
        type=int,
        default=276,
        help="optimiser steps per run at every fraction (276 = 6 epochs of CamVid's 367 at batch 8)",
    )
    parser.add_argument(
        "--membrane-steps", type=int, default=100, help="the product's floor (24 images: 3 steps/epoch)"
    )
    parser.add_argument("--source-steps", type=int, default=0, help="structure's source run (0: its default 6 epochs)")
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--peer-lr", type=float, default=1e-3, help="smp's reference learning rate")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads in all (0: one per core)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="runs in parallel processes (0: 4 on a GPU, whose "
        "small-network steps are launch-bound and overlap well; 1 on a CPU)",
    )
    parser.add_argument("--max-val", type=int, default=0, help="smoke tests: score only the first N images (0: all)")
    parser.add_argument("--no-native", action="store_true")
    parser.add_argument(
        "--data-pack",
        default="",
        help="read CamVid and membrane from this travel copy (bench/protocol_data.py) instead of ../shared/data",
    )
    parser.add_argument("--budget-s", type=float, default=0, help="start no run after this many seconds (0: no limit)")
    parser.add_argument(
        "--reuse-peers",
        nargs="*",
        default=[],
        help="earlier results (.json) whose smp peer runs with the same key, split and scoring are taken instead of "
        "rerun: the peers do not change when our defaults do",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan (runs and optimiser steps) and stop")
    parser.add_argument(
        "--out", default="", help="results path without extension (default bench/results/quality-protocol-<split>)"
    )
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in (args.size.lower().split("x") * 2)[:2])
    args.threads = args.threads or os.cpu_count() or 1
    if not args.workers:
        args.workers = (
            4 if args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available()) else 1
        )
    args.worker_threads = max(1, args.threads // max(1, args.workers))
    args.deadline = time.time() + args.budget_s if args.budget_s else float("inf")
    args.runs = tempfile.mkdtemp(prefix="quality-protocol-")
    out = Path(args.out or ROOT / "bench" / "results" / f"quality-protocol-{args.split}")
    out.parent.mkdir(parents=True, exist_ok=True)
    specs = plan(args)
    reused = reusable_peer_rows(args, specs)
    specs = [s for s in specs if s["key"] not in reused]
    print(
        f"{len(specs)} runs; budget: {args.steps} optimiser steps per CamVid run at every fraction "
        f"({args.membrane_steps} on membrane), batch {args.batch}; split: {args.split}; {args.workers} worker(s) × "
        f"{args.worker_threads} threads; {machine()}",
        flush=True,
    )
    if args.dry_run:
        from collections import Counter

        counts = Counter((s["section"], s["height"], s["width"], s["steps"]) for s in specs)
        for (section, height, width, steps), n in counts.items():
            print(f"  {section:<10} {n:>3} runs × {steps} steps at {height}×{width}")
        print(f"  total {sum(s['steps'] for s in specs)} optimiser steps (structure adds one source run per seed)")
        return
    rows, started = [], time.time()
    public = {k: v for k, v in vars(args).items() if k not in ("deadline",)}

    def record(row: dict) -> None:
        rows.append(row)
        size = f" {row.get('height', '')}" if row.get("settings") else ""
        what = (
            f"{row['section']:<10} {row['task']:<11} {row['config']:<11} {row['fraction']:>4.0%} s{row['seed']}"
            f" {row.get('candidate') or ''}{size}"
        )
        if row["status"] == "ok":
            native = f" native {row['native_miou']:.3f}" if "native_miou" in row else ""
            print(
                f"  {what}: mIoU {row['miou']:.3f}{native}  ({row['steps']} steps, {row['train_images']} images, "
                f"{row['train_time_s']:.1f}s train, {row['wall_s']:.1f}s wall; t={time.time() - started:.0f}s)",
                flush=True,
            )
        else:
            print(f"  {what}: {row['status']}", flush=True)
        out.with_suffix(".json").write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "args": public,
                    "partial": True,
                    "elapsed_s": time.time() - started,
                    "rows": rows,
                },
                indent=1,
            )
        )

    for row in reused.values():
        record(row)
    if args.workers <= 1:
        torch.set_num_threads(args.threads)
        for spec in specs:
            record(run_spec(spec))
    else:
        import multiprocessing

        with ProcessPoolExecutor(
            args.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(args.worker_threads,),
        ) as pool:
            futures = {pool.submit(run_spec, spec): spec for spec in specs}
            for future in as_completed(futures):
                spec = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # noqa: BLE001 — a worker process died (e.g. killed): the row says so
                    row = {k: spec[k] for k in ROW_KEYS}
                    row["status"] = f"failed: worker died: {type(exc).__name__}: {exc}"
                record(row)
    text = tables(rows, args) + f"\n\ntotal wall time {time.time() - started:.0f} s"
    print("\n" + text)
    out.with_suffix(".txt").write_text(text + "\n")
    out.with_suffix(".json").write_text(
        json.dumps(
            {"machine": machine(), "args": public, "partial": False, "elapsed_s": time.time() - started, "rows": rows},
            indent=1,
        )
    )
    print(f"\nwritten: {out.with_suffix('.json')}, {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
