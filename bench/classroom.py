"""Classroom timing: from a cold start to a finished 4-strategy comparison on the built-in data, through the same
job queue the app's *Train all strategies* button uses — at the app's default settings and with the "quick demo"
preset, one after the other on the same machine in one run.

    python bench/classroom.py                 # both presets
    python bench/classroom.py --presets quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, print_table, write_results


def time_preset(preset: str) -> dict:
    started = time.time()
    cache, runs = tempfile.mkdtemp(prefix="cold-cache-"), tempfile.mkdtemp(prefix="classroom-runs-")
    env = {**os.environ, "SEGCORE_CACHE": cache}  # cold: the built-in data is generated again too
    script = (
        "import sys; from segcore import TrainConfig; from segcore.config import PRESETS;"
        "from segcore.jobs import JobQueue, wait_for; from segcore.planning import queue_all_strategies;"
        f"q = JobQueue({runs!r}, max_running=1);"
        f"runs = queue_all_strategies(q, PRESETS[{preset!r}].apply(TrainConfig()));"
        "[wait_for(r, 1800) for r in runs]; print('|'.join(r.run_id + ':' + r.state for r in runs))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    total = time.time() - started
    if output.returncode != 0:
        raise SystemExit(output.stderr[-3000:])
    sys.path.insert(0, str(ROOT))
    from segcore.runs.run import list_runs

    rows = []
    for run in list_runs(runs):
        summary, status = run.summary(), run.status
        rows.append(
            {
                "preset": preset,
                "data": run.config["data"],  # the source run trains on its own task
                "strategy": run.config["strategy"],
                "state": run.state,
                "miou": summary.get("miou"),
                "train_time_s": summary.get("train_time_s"),
                "process_s": (status.get("updated") or 0) - (status.get("started") or 0),
            }
        )
    return {"preset": preset, "total_s": total, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["standard", "quick"])
    args = parser.parse_args()
    results = [time_preset(preset) for preset in args.presets]
    print(f"Classroom: cold start → 4-strategy comparison on builtin:shapes, per preset — {machine()}")
    print_table(
        [row for result in results for row in result["rows"]],
        ["preset", "data", "strategy", "state", "miou", "train_time_s", "process_s"],
    )
    print()
    for result in results:
        print(f"{result['preset']:>10}: total wall time {result['total_s']:.0f}s ({result['total_s'] / 60:.1f} min)")
    write_results("classroom", {"machine": machine(), "presets": results})


if __name__ == "__main__":
    main()
