"""A lesson in a real class: N students start the same built-in lesson at once, through the job queue the app uses
(one slot, worker processes), and the wall time to the last student's finished comparison is compared with one
student alone. With identical runs shared (the default) a class costs about one student's compute.

Then the estimates: K students start the lesson with different seeds (so their runs really queue behind each other,
a loaded server), and each student's forecast made at the click (segcore.jobs.estimate.forecast) is compared with
when their comparison was actually done.

    python bench/classroom.py --students 30 --distinct 3
    python bench/classroom.py --students 3 --no-share     # the same without sharing: what it would cost
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import machine, print_table, write_results

LESSON = "why-transfer"


def start_class(runs: Path, prefix: str, students: int, seeds: list[int], share: bool) -> tuple[dict, dict, float]:
    """Queue the lesson for every student in one go; returns ({student: [run ids]}, {student: forecast end}, t0)."""
    from segcore.jobs.estimate import forecast
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import list_runs
    from segcore.teaching.builtin_lessons import BUILTIN_LESSONS
    from segcore.teaching.lesson_files import queue_lesson

    os.environ["SEGCORE_SHARE_IDENTICAL"] = "1" if share else "0"
    queue = JobQueue(runs, max_running=1)
    lesson = BUILTIN_LESSONS[LESSON]
    started = time.time()
    queued = {}
    for n in range(students):
        name = f"{prefix}{n:02d}"
        seeded = replace(lesson, settings={**lesson.settings, "seed": seeds[n % len(seeds)]})
        queued[name] = [r.run_id for r in queue_lesson(queue, seeded, group=f"{name}-{LESSON}", owner=name)]
    everyone = list_runs(runs)
    waiting = queue.queued(everyone)
    running = [r for r in everyone if r.state == "running"]
    done = [r for r in list_runs(runs) if r.state == "done"]
    expected = forecast(waiting, running, done, queue.max_running)
    ends = {name: max(expected[r].end for r in ids if r in expected) for name, ids in queued.items()}
    return queued, ends, started


def wait_until_done(runs: Path, queued: dict, timeout_s: float = 7200) -> dict:
    """{student: when their last run ended}; pumps the queue as the app's scheduler does."""
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import Run

    queue = JobQueue(runs, max_running=1)
    ended: dict = {}
    deadline = time.time() + timeout_s
    while len(ended) < len(queued) and time.time() < deadline:
        queue.pump()
        for name, ids in queued.items():
            if name not in ended and all(Run.open(runs, i).state not in ("queued", "running") for i in ids):
                ended[name] = time.time()
        time.sleep(1.0)
    return ended


def one_class(runs: Path, prefix: str, students: int, seeds: list[int], share: bool) -> dict:
    """One class starting the lesson at once in `runs` (the server's runs folder, earlier classes' runs in it: the
    server's measured speed, as in a school in use)."""
    from segcore.runs.run import Run

    queued, forecast_ends, started = start_class(runs, prefix, students, seeds, share)
    ended = wait_until_done(runs, queued)
    mine = [Run.open(runs, i) for ids in queued.values() for i in ids]
    trained = [r for r in mine if not r.status.get("linked_to")]
    errors = [(ended[n] - started) / max(1.0, forecast_ends[n] - started) - 1 for n in ended if n in forecast_ends]
    return {
        "students": students,
        "seeds": len(set(seeds[:students])),
        "share": share,
        "wall_s": max(ended.values()) - started if ended else None,
        "runs": len(mine),
        "trained": len(trained),
        "done": sum(r.state == "done" for r in mine),
        "estimate_error_median": statistics.median(errors) if errors else None,
        "estimate_error_worst": max(errors, key=abs) if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=3, help="students with their own seed, for the estimates")
    parser.add_argument("--no-share", action="store_true", help="train every student's runs (sharing off)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="classroom-"))
    os.environ["SEGCORE_CACHE"] = str(work / "cache")
    runs, share, rows = work / "runs", not args.no_share, []
    try:
        rows.append(one_class(runs, "alone", 1, [100], share))  # one student alone (seed 100: shared with nobody)
        rows.append(one_class(runs, "class", args.students, [0], share))  # the class, all on the lesson's seed
        if args.distinct > 1:  # a loaded server: students on their own seeds queue behind each other
            rows.append(one_class(runs, "seeded", args.distinct, list(range(1, args.distinct + 1)), share))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    alone = rows[0]["wall_s"]
    for row in rows:
        row["vs_one_student"] = row["wall_s"] / alone if alone and row["wall_s"] else None
    print(f"The '{LESSON}' lesson started by whole classes at once, one slot — {machine()}")
    columns = ["students", "seeds", "share", "runs", "trained", "done", "wall_s", "vs_one_student"]
    print_table(rows, columns + ["estimate_error_median", "estimate_error_worst"])
    write_results(
        f"classroom-{args.students}{'-no-share' if args.no_share else ''}", {"machine": machine(), "rows": rows}
    )


if __name__ == "__main__":
    main()
