"""Classroom timing: from a cold start to a finished 4-strategy comparison on the built-in data, at the app's
default settings, through the same job queue the app's *Train all strategies* button uses.

    python bench/classroom.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from common import ROOT, machine, print_table, write_results


def main() -> None:
    started = time.time()
    cache, runs = tempfile.mkdtemp(prefix="cold-cache-"), tempfile.mkdtemp(prefix="classroom-runs-")
    env = {**os.environ, "SEGCORE_CACHE": cache}  # cold: the built-in data is generated again too
    script = (
        "import sys; from segcore import TrainConfig; from segcore.jobs import JobQueue, wait_for;"
        "from segcore.planning import queue_all_strategies;"
        f"q = JobQueue({runs!r}, max_running=1); runs = queue_all_strategies(q, TrainConfig());"
        "[wait_for(r, 1800) for r in runs]; print('|'.join(r.run_id + ':' + r.state for r in runs))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    total = time.time() - started
    if output.returncode != 0:
        raise SystemExit(output.stderr[-3000:])
    sys.path.insert(0, str(ROOT))
    from segcore.runs import list_runs

    rows = []
    for run in list_runs(runs):
        summary, status = run.summary(), run.status
        rows.append({"run": run.run_id.split("-", 3)[-1], "strategy": run.config["strategy"], "state": run.state,
                     "miou": summary.get("miou"), "train_time_s": summary.get("train_time_s"),
                     "process_s": status.get("updated", 0) - status.get("started", 0)})
    print(f"Classroom: cold start → 4-strategy comparison on builtin:shapes at the app defaults — {machine()}")
    print_table(rows, ["run", "strategy", "state", "miou", "train_time_s", "process_s"])
    print(f"\ntotal wall time {total:.0f}s ({total / 60:.1f} min; target ≤ 5 min)")
    write_results("classroom", {"machine": machine(), "total_s": total, "rows": rows})


if __name__ == "__main__":
    main()
