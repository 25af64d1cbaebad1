"""The ceiling: FLOPs per image of each configuration, the machine's measured peaks, the share achieved,
and where one training step spends its time.

    python bench/roofline.py                          # CPU, threads = cores, CamVid 192×256, batch 8
    python bench/roofline.py --device cuda
    python bench/roofline.py --speed bench/results/speed-cpu.json   # achieved share from a speed.py run

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode (convolutions and matrix products, forward and
backward as each configuration runs them, with the depthwise backward counted right; BatchNorm, activations, interpolation and the loss are not FLOPs
there). Peaks: a large fp32 matrix product (the compute ceiling), a depthwise 3×3 convolution at the
encoder's early-stage shape (what such layers can reach), and a copy (memory bandwidth), at the same thread
count. Achieved FLOP/s = FLOPs per image × images/s from speed.py. Writes bench/results/roofline-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from common import CAMVID, RESULTS, machine, peer_model, print_table, write_results


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, device: torch.device, repeats: int = 5, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return min(times)


# -- FLOPs -------------------------------------------------------------------------------------------
def conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape=None,
    **_,
) -> int:
    """convolution_backward counted per output it computes, each as much as the forward. torch's own formula
    (torch 2.14) ignores `groups` and counts a depthwise convolution's backward `groups` times too high."""
    from math import prod

    spatial = x_shape[2:] if transposed else grad_out_shape[2:]
    forward = 2 * grad_out_shape[0] * prod(w_shape) * prod(spatial)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count(fn) -> int:
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        fn()
    return counter.get_total_flops()


def our_model(strategy: str, classes: int, size, device):
    from segcore import TrainConfig
    from segcore.training.preparation import prepare

    config = TrainConfig(data="flops", strategy=strategy, height=size[0], width=size[1])
    return prepare(config, classes).model.to(device)


def flops_per_image(args, device) -> list[dict]:
    batch, (height, width) = args.batch, args.size
    x = torch.randn(batch, 3, height, width, device=device)
    y = torch.randint(0, args.classes, (batch, height, width), device=device)

    def train_step(forward, model):
        def step():
            model.train()
            loss = F.cross_entropy(forward(), y)
            loss.backward()

        return step

    rows = []
    ours = our_model("parameter", args.classes, args.size, device)
    rows.append(
        {
            "config": "parameter (scratch, structure)",
            "train": count(train_step(lambda: ours(x), ours)),
            "inference": count(lambda: ours.eval()(x)),
        }
    )
    frozen = our_model("feature", args.classes, args.size, device)
    with torch.no_grad():
        features = [f.detach() for f in frozen.encoder.eval()(x)]
    encoder = count(lambda: frozen.encoder.eval()(x))
    decoder = count(train_step(lambda: frozen.decode(features, (height, width)), frozen))
    rows.append(
        {
            "config": "feature (steady: decoder on cached features)",
            "train": decoder,
            "inference": count(lambda: frozen.eval()(x)),
        }
    )
    rows.append(
        {"config": "feature cache build (encoder, per image and orientation)", "train": encoder, "inference": encoder}
    )
    for name, is_frozen in (("smp-full", False), ("smp-frozen", True)):
        peer = peer_model(args.classes, frozen=is_frozen).to(device)
        rows.append(
            {
                "config": name,
                "train": count(train_step(lambda: peer(x), peer)),
                "inference": count(lambda: peer.eval()(x)),
            }
        )
    for row in rows:
        row["train_gflop_per_image"] = row.pop("train") / batch / 1e9
        row["inference_gflop_per_image"] = row.pop("inference") / batch / 1e9
    return rows


# -- peaks -------------------------------------------------------------------------------------------
def peaks(args, device) -> dict:
    result = {}
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    for dtype in dtypes:
        n = 4096 if device.type == "cuda" else 1024
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        seconds = best_time(lambda: a @ b, device)
        result[f"matmul_{str(dtype).split('.')[-1]}_gflops"] = 2 * n**3 / seconds / 1e9
    # the encoder's early depthwise 3×3 (efficientnet-lite0 stage 2 at 192×256: 96 channels at 96×128)
    n, c, h, w = args.batch, 96, args.size[0] // 2, args.size[1] // 2
    weight = torch.randn(c, 1, 3, 3, device=device)
    for layout in ("contiguous", "channels_last"):
        x = torch.randn(n, c, h, w, device=device)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        seconds = best_time(lambda: F.conv2d(x, weight, padding=1, groups=c), device)
        result[f"depthwise3x3_{layout}_gflops"] = 2 * 9 * n * c * h * w / seconds / 1e9
        result[f"depthwise3x3_{layout}_gbytes_s"] = 2 * 4 * n * c * h * w / seconds / 1e9  # read + write fp32
    source = torch.randn(64 * 1024**2 // 4, device=device)
    target = torch.empty_like(source)
    seconds = best_time(lambda: target.copy_(source), device)
    result["copy_gbytes_s"] = 2 * source.numel() * 4 / seconds / 1e9
    return result


# -- where a training step's time goes ---------------------------------------------------------------
CATEGORIES = [  # (category, pattern on the op name); the first match wins; convolutions are split by shape
    ("batch norm", r"batch_norm|native_batch_norm"),
    ("interpolation", r"upsample|interpolate|grid_sampler"),
    ("loss", r"nll_loss|log_softmax|cross_entropy|_softmax"),
    ("optimiser", r"adam|_foreach|lerp|addcdiv|addcmul|sqrt"),
    (
        "elementwise / activation",
        r"relu|hardtanh|hardswish|sigmoid|silu|threshold|clamp|add|mul|div|sub|neg|where|fill|zero",
    ),
    (
        "copies / layout / indexing",
        r"copy|clone|contiguous|to$|_to_copy|cat|index|flip|stack|empty|as_strided|view|slice|select|permute",
    ),
]


def conv_kind(shapes: list) -> str:
    weight = next((s for s in shapes if isinstance(s, list) and len(s) == 4 and s and s[1] == 1 and s[2] > 1), None)
    if weight is not None:
        return "depthwise conv"
    if any(isinstance(s, list) and len(s) == 4 and s[2:] == [1, 1] for s in shapes):
        return "pointwise (1×1) conv"
    return "dense (k×k) conv"


def categorise(name: str, shapes: list) -> str:
    if "conv" in name:
        return conv_kind(shapes)
    for category, pattern in CATEGORIES:
        if re.search(pattern, name):
            return category
    return "other"


def profile_step(args, device, strategy: str) -> dict:
    """One real training epoch of 2 steps through segcore's Trainer (16 CamVid images), profiled after a warm-up epoch."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    from segcore import TrainConfig, load_dataset
    from segcore.runs.writer import RunWriter
    from segcore.training.loop import Trainer

    data = load_dataset(args.data, ignore_index=11)
    config = TrainConfig(
        data=args.data,
        strategy=strategy,
        epochs=3,
        min_steps=0,
        batch_size=args.batch,
        height=args.size[0],
        width=args.size[1],
        ignore_index=11,
        device=args.device,
        threads=args.threads,
        train_size=2 * args.batch,
    ).validate()
    writer = RunWriter(Path(tempfile.mkdtemp()) / strategy)
    trainer = Trainer.build(config, data, writer)
    trainer.train_one_epoch(1)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        trainer.train_one_epoch(2)
        sync(device)
    writer.close()
    steps = 2
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages(group_by_input_shape=True) if getattr(e, attr, 0) > 0]
    total = sum(getattr(e, attr) for e in events)
    by_category: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for event in events:
        if not event.key.startswith("aten::"):
            continue
        kind = categorise(event.key, event.input_shapes or [])
        value = getattr(event, attr)
        by_category[kind] = by_category.get(kind, 0.0) + value
        label = f"{event.key} [{kind}]" if "conv" in event.key else event.key
        by_op[label] = by_op.get(label, 0.0) + value
    aten_total = sum(by_category.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[: args.top]
    return {
        "strategy": strategy,
        "ms_per_step": total / 1e3 / steps,
        "aten_ms_per_step": aten_total / 1e3 / steps,
        "categories": [
            {"category": k, "ms_per_step": v / 1e3 / steps, "share": v / aten_total}
            for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])
        ],
        "top_ops": [{"op": k, "ms_per_step": v / 1e3 / steps, "share": v / aten_total} for k, v in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(CAMVID))
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=11, help="CamVid without void")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--speed", help="a speed.py result (default: bench/results/speed-<device>.json if present)")
    parser.add_argument("--profile", nargs="*", default=["parameter", "feature"], help="strategies to profile")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    device = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    print(f"Roofline, {args.size[0]}×{args.size[1]}, batch {args.batch}, {args.threads} threads — {machine()}\n")
    rows = flops_per_image(args, device)
    peak = peaks(args, device)
    print("Measured peaks")
    for key, value in peak.items():
        print(f"  {key:<36} {value:8.1f}")
    top_peak = max(v for k, v in peak.items() if k.startswith("matmul"))
    speed_path = Path(args.speed) if args.speed else RESULTS / f"speed-{'gpu' if device.type == 'cuda' else 'cpu'}.json"
    speed = {}
    if speed_path.is_file():
        speed = {r["config"]: r for r in json.loads(speed_path.read_text())["rows"]}
        print(f"\nAchieved share from {speed_path} (FLOPs/image × images/s ÷ matmul peak {top_peak:.0f} GFLOP/s)")
    names = {
        "parameter (scratch, structure)": "parameter",
        "feature (steady: decoder on cached features)": "feature",
        "smp-full": "smp-full",
        "smp-frozen": "smp-frozen",
    }
    for row in rows:
        measured = speed.get(names.get(row["config"], ""))
        if measured:
            row["train_images_per_s"] = measured["images_per_s"]
            row["train_gflops"] = row["train_gflop_per_image"] * measured["images_per_s"]
            row["train_share"] = row["train_gflops"] / top_peak
            row["inference_images_per_s"] = measured["inference_images_per_s"]
            row["inference_gflops"] = row["inference_gflop_per_image"] * measured["inference_images_per_s"]
            row["inference_share"] = row["inference_gflops"] / top_peak
    print()
    print_table(
        rows,
        [
            "config",
            "train_gflop_per_image",
            "inference_gflop_per_image",
            "train_images_per_s",
            "train_gflops",
            "train_share",
            "inference_images_per_s",
            "inference_gflops",
            "inference_share",
        ],
    )
    profiles = []
    if args.profile and Path(args.data).is_dir():
        for strategy in args.profile:
            result = profile_step(args, device, strategy)
            profiles.append(result)
            print(
                f"\nOne training step, {strategy}: {result['ms_per_step']:.0f} ms ({result['aten_ms_per_step']:.0f} ms in aten ops)"
            )
            print_table(result["categories"], ["category", "ms_per_step", "share"])
            print()
            print_table(result["top_ops"], ["op", "ms_per_step", "share"])
    path = write_results(
        f"roofline-{device.type}",
        {
            "machine": machine(),
            "args": {**vars(args), "size": list(args.size)},
            "peaks": peak,
            "rows": rows,
            "profiles": profiles,
            "speed_source": str(speed_path) if speed else None,
        },
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
