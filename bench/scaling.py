"""Scaling on one machine: tiny runs per hour through the local backend and through a local Ray head with 1 and 2
job slots, and one run's training images/s on 1 and 2 DDP processes (gloo, CPU — not a GPU figure).

    python bench/scaling.py [--runs 4]

Needs requirements-cluster.txt (Ray). Starts its own Ray head (segcore.jobs.ray_head.LocalRayHead) and ends exactly
the processes that head started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, print_table, write_results

from segcore.jobs.ray_head import LocalRayHead

TINY = dict(
    data="builtin:shapes",
    strategy="feature",
    epochs=1,
    min_steps=0,
    height=64,
    width=64,
    batch_size=4,
    augment="none",
    max_steps=4,
    train_size=16,
)


def runs_per_hour(backend: str, slots: int, count: int, folder: Path) -> dict:
    """Queue `count` tiny runs at once; time from the first submit until all are done (worker start-up included)."""
    from segcore import TrainConfig
    from segcore.jobs.queue import JobQueue

    os.environ["SEGCORE_BACKEND"] = backend
    queue = JobQueue(folder / "runs", max_running=slots)  # the Ray runs-folder probe happens here, before the clock
    started = time.time()
    runs = [queue.submit(TrainConfig(**TINY, seed=i, run_name=f"tiny-{i}")) for i in range(count)]
    while any(r.state in ("queued", "running") for r in runs):
        queue.pump()
        time.sleep(0.5)
    elapsed = time.time() - started
    states = [r.state for r in runs]
    return {"done": states.count("done"), "runs": count, "seconds": elapsed, "runs_per_hour": 3600 * count / elapsed}


def ddp_images_per_s(processes: int, folder: Path, threads: int = 0) -> dict:
    """One parameter-transfer run, 1 epoch of 32 images at 128×128: training images/s of the epoch (all processes).
    threads 0: the default (the cores shared out between the processes)."""
    command = [
        sys.executable,
        "-m",
        "segcore",
        "--runs-dir",
        str(folder / "runs"),
        "train",
        "--data",
        "builtin:shapes",
        "--train-size",
        "32",
        "--strategy",
        "parameter",
        "--epochs",
        "1",
        "--min-steps",
        "0",
        "--size",
        "128",
        "--batch-size",
        "4",
        "--augment",
        "none",
        "--gpus",
        str(processes if processes > 1 else 0),
        "--threads",
        str(threads),
        "--name",
        f"ddp-{processes}",
        "--quiet",
    ]
    env = {**os.environ, "SEGCORE_DDP_ON_CPU": "1", "SEGCORE_BACKEND": "local"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stdout + result.stderr)
    records = [
        json.loads(line) for line in (folder / "runs" / f"ddp-{processes}" / "metrics.jsonl").read_text().splitlines()
    ]
    epoch = next(r for r in records if r["kind"] == "epoch")
    return {
        "processes": processes,
        "threads_each": threads or max(1, (os.cpu_count() or 1) // processes),
        "images_per_s": epoch["images_per_s"],
        "epoch_s": epoch["epoch_time_s"],
        "miou": epoch["miou"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="tiny runs queued per backend")
    parser.add_argument("--only-ddp", action="store_true", help="skip the runs-per-hour part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scaling-"))
    os.environ.setdefault("SEGCORE_CACHE", str(work / "cache"))
    queue_rows = []
    try:
        for slots in () if args.only_ddp else (1, 2):
            queue_rows.append(
                {
                    "backend": f"local, {slots} at a time",
                    **runs_per_hour("local", slots, args.runs, work / f"local-{slots}"),
                }
            )
        for slots in () if args.only_ddp else (1, 2):
            with LocalRayHead(cpus=slots) as address:
                queue_rows.append(
                    {
                        "backend": f"Ray head, {slots} worker slot(s) (--num-cpus {slots})",
                        **runs_per_hour(f"ray:{address}", slots, args.runs, work / f"ray-{slots}"),
                    }
                )
        # 1 process with 1 thread too: on a busy CPU two threads of one process can be far slower than one each
        ddp_rows = [ddp_images_per_s(n, work / f"ddp-{n}-{t}", t) for n, t in ((1, 0), (1, 1), (2, 0))]
    finally:
        os.environ.pop("SEGCORE_BACKEND", None)
        shutil.rmtree(work, ignore_errors=True)
    if queue_rows:
        print(f"Runs per hour: {args.runs} tiny runs queued at once (feature transfer, 64×64, 4 steps) — {machine()}")
        print_table(queue_rows, ["backend", "done", "runs", "seconds", "runs_per_hour"])
    print(
        f"\nOne run on 1 and 2 DDP processes — CPU (gloo, SEGCORE_DDP_ON_CPU=1), parameter transfer, 32 images "
        f"at 128×128, batch 4 per process — {machine()}"
    )
    print_table(ddp_rows, ["processes", "threads_each", "images_per_s", "epoch_s", "miou"])
    speedup = ddp_rows[2]["images_per_s"] / ddp_rows[1]["images_per_s"]
    print(f"\n2 processes / 1 process at 1 thread each (CPU images/s): {speedup:.2f}×")
    path = write_results(
        "scaling-ddp" if args.only_ddp else "scaling",
        {"machine": machine(), "queue": queue_rows, "ddp_cpu": ddp_rows, "ddp_speedup": speedup},
    )
    print(f"(JSON in {path})")


if __name__ == "__main__":
    main()
