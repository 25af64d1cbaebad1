"""Page render time while a class trains: 30 simulated students queue runs at once, then every page is
rendered repeatedly (Streamlit AppTest, the same script runs a browser triggers) while the queue works.

    python bench/load.py --students 30 --renders 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

from common import ROOT, machine, print_table, write_results

PAGES = ["data", "model", "training", "compare", "learn"]


def render_times(page: str, renders: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(renders):
        started = time.perf_counter()
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        app.run()
        app.switch_page(f"views/{page}.py").run()
        times.append(time.perf_counter() - started)
        assert not app.exception, [e.value for e in app.exception]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--renders", type=int, default=3)
    parser.add_argument("--max-running", type=int, default=1)
    args = parser.parse_args()
    runs = tempfile.mkdtemp(prefix="load-runs-")
    os.environ["SEGCORE_RUNS"] = runs
    from segcore import TrainConfig
    from segcore.jobs.queue import JobQueue

    idle = {page: render_times(page, args.renders) for page in PAGES}
    queue = JobQueue(runs, max_running=args.max_running)
    accepted, refused = [], []

    def student(number: int) -> None:
        try:
            accepted.append(queue.submit(TrainConfig(seed=number, epochs=2, run_name=f"student-{number:02d}")))
        except Exception as exc:
            refused.append(str(exc))

    started = time.perf_counter()
    threads = [threading.Thread(target=student, args=(n,)) for n in range(args.students)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submit_s = time.perf_counter() - started
    loaded = {page: render_times(page, args.renders) for page in PAGES}
    rows = [
        {
            "page": page,
            "idle_median_s": statistics.median(idle[page]),
            "loaded_median_s": statistics.median(loaded[page]),
            "loaded_max_s": max(loaded[page]),
            "slowdown": statistics.median(loaded[page]) / statistics.median(idle[page]),
        }
        for page in PAGES
    ]
    print(
        f"{args.students} students queued in {submit_s:.2f}s: {len(accepted)} accepted, {len(refused)} refused; "
        f"{len(queue.running())} training, {len(queue.queued())} waiting — {machine()}"
    )
    print_table(rows, ["page", "idle_median_s", "loaded_median_s", "loaded_max_s", "slowdown"])
    for run in queue.runs():
        if run.state in ("queued", "running"):
            queue.cancel(run.run_id, grace_s=2)
    write_results(
        "load",
        {
            "machine": machine(),
            "students": args.students,
            "accepted": len(accepted),
            "refused": len(refused),
            "submit_s": submit_s,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
