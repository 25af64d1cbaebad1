"""What a compiler buys: torch.compile (inductor) against eager, on the training step and on inference.

    python bench/compile.py                         # CPU, CamVid-sized random batches 192×256, batch 8
    python bench/compile.py --device cuda
    python bench/compile.py --strategies parameter --steps 20

Each (strategy, mode) runs in its own process so one compilation cannot warm the next (inductor's on-disk
cache in /tmp/torchinductor_$USER still can: clear it for a cold figure). The speedup compares the compiled
step with the eager step alternated in the same process (a shared machine's load drifts between processes;
eager_images_per_s, from its own process, is shown beside it). Compile seconds = the first compiled call minus
an eager step (what a run pays once); break-even = the steps after which the
compiled run has caught up: compile_s / (eager step s − compiled step s). Prints a table and writes
bench/results/compile-<device>.json. If inductor fails here (no C compiler, an unsupported op), the error is
printed in the table instead of figures.
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

from common import ROOT, machine, print_table, write_results


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(strategy: str, mode: str, compiled: bool, args) -> dict:
    from segcore import TrainConfig
    from segcore.training.preparation import prepare
    from segcore.training.loop import autocast_for

    device = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    height, width = args.height, args.width
    config = TrainConfig(data="compile", strategy=strategy, height=height, width=width)
    prepared = prepare(config, args.classes)
    model = prepared.model.to(device).to(memory_format=torch.channels_last)
    autocast = autocast_for(device)
    optimizer = torch.optim.AdamW(
        prepared.param_groups, weight_decay=0.0, **({"fused": True} if device.type in ("cpu", "cuda") else {})
    )
    x = torch.randn(args.batch, 3, height, width, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch, height, width), device=device)
    if strategy == "feature":  # the steady state: decoder and head on cached features
        with torch.inference_mode():
            features = [f.clone() for f in model.encoder.eval()(x)]
        features = [f.clone() for f in features]
        forward = lambda: model.decode(features, (height, width))  # noqa: E731
        net = model.decode
    else:
        forward = lambda: model(x)  # noqa: E731
        net = model
    eager_forward = forward
    if compiled:
        compiled_net = torch.compile(net, backend="inductor", dynamic=False)
        forward = (
            (lambda: compiled_net(features, (height, width))) if strategy == "feature" else (lambda: compiled_net(x))
        )

    def train_step():
        model.train()
        with autocast():
            loss = F.cross_entropy(forward().float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def infer_step():
        model.eval()
        with torch.inference_mode(), autocast():
            forward()

    step = train_step if mode == "train" else infer_step

    def eager_step():
        nonlocal forward
        forward, compiled_forward = eager_forward, forward
        try:
            step()
        finally:
            forward = compiled_forward

    started = time.perf_counter()
    try:
        step()
        sync(device)
    except Exception as exc:  # inductor could not compile here: report why
        return {
            "strategy": strategy,
            "mode": mode,
            "compiled": compiled,
            "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}",
        }
    first = time.perf_counter() - started

    def timed(fn) -> float:
        started = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - started

    for _ in range(2):
        step()
    sync(device)
    times, eager_times = [], []
    for _ in range(args.steps):
        times.append(timed(step))
        if compiled:  # the same step eager, alternated in this process: load drift hits both alike
            eager_times.append(timed(eager_step))
    median = sorted(times)[len(times) // 2]
    result = {
        "strategy": strategy,
        "mode": mode,
        "compiled": compiled,
        "first_call_s": first,
        "step_s": median,
        "images_per_s": args.batch / median,
    }
    if eager_times:
        result["paired_eager_step_s"] = sorted(eager_times)[len(eager_times) // 2]
    return result


def run_one(strategy: str, mode: str, compiled: bool, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--one",
        f"{strategy}:{mode}:{int(compiled)}",
        "--size",
        f"{args.height}x{args.width}",
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--steps",
        str(args.steps),
        "--classes",
        str(args.classes),
    ]
    output = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = output.stdout.strip().splitlines()
    if output.returncode != 0 or not lines:
        tail = (output.stderr.strip().splitlines() or ["no output"])[-1]
        return {"strategy": strategy, "mode": mode, "compiled": compiled, "error": tail[:300]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after the warm-up")
    parser.add_argument("--strategies", nargs="*", default=["parameter", "feature"])
    parser.add_argument("--modes", nargs="*", default=["train", "inference"])
    parser.add_argument("--run-steps", type=int, default=6 * 46, help="a typical run's steps (CamVid: 6 epochs × 46)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.height, args.width = (int(v) for v in args.size.lower().split("x"))
    if args.one:
        strategy, mode, compiled = args.one.split(":")
        print(json.dumps(measure(strategy, mode, compiled == "1", args)))
        return
    rows = []
    for strategy in args.strategies:
        for mode in args.modes:
            eager = run_one(strategy, mode, False, args)
            compiled = run_one(strategy, mode, True, args)
            row = {
                "config": f"{strategy} {mode}",
                "eager_images_per_s": eager.get("images_per_s"),
                "compiled_images_per_s": compiled.get("images_per_s"),
            }
            if "error" in eager or "error" in compiled:
                row["error"] = compiled.get("error") or eager.get("error")
            else:
                eager_step_s = compiled.get("paired_eager_step_s", eager["step_s"])  # same process, alternated
                row["paired_eager_images_per_s"] = args.batch / eager_step_s
                row["speedup"] = eager_step_s / compiled["step_s"]
                row["compile_s"] = max(0.0, compiled["first_call_s"] - eager_step_s)
                saved = eager_step_s - compiled["step_s"]
                row["break_even_steps"] = row["compile_s"] / saved if saved > 0 else float("inf")
                row["pays_back_in_run"] = saved > 0 and row["break_even_steps"] < args.run_steps
            rows.append(row)
            print(f"  {row['config']}: {json.dumps({k: v for k, v in row.items() if k != 'config'})}", flush=True)
    print(
        f"\ntorch.compile (inductor), {args.height}×{args.width}, batch {args.batch}, {args.threads} threads — {machine()}"
    )
    print_table(
        rows,
        [
            "config",
            "eager_images_per_s",
            "paired_eager_images_per_s",
            "compiled_images_per_s",
            "speedup",
            "compile_s",
            "break_even_steps",
            "pays_back_in_run",
            "error",
        ],
    )
    path = write_results(
        f"compile-{'gpu' if args.device.startswith('cuda') else 'cpu'}",
        {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "one"}, "rows": rows},
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
