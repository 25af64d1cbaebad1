"""The teacher's overview of the class: the best finished run per dataset and strategy, and each student's best."""

from __future__ import annotations

from ..jobs.classroom import student_of
from ..runs.run import Run

SOURCE_ROLE = "source"  # a lesson's or comparison's source run (planning.queue_plan records it in config.json)


def maker(run: Run) -> str:
    """Who trained a run: an imported run's maker (marked so), else its owner."""
    made_by = run.config.get("made_by")
    if isinstance(made_by, str):
        return f"{student_of(made_by)} (imported by {student_of(run.owner)})"
    return student_of(run.owner)


def counts_for_the_class(run: Run) -> bool:
    """A student's own result: not a source task's run (it stands for a network trained elsewhere), not an imported
    copy (its maker's run is counted where it was made)."""
    return run.config.get("role") != SOURCE_ROLE and not run.status.get("imported")


def leaderboard(runs: list[Run]) -> list[dict]:
    """Best finished run per dataset and strategy across the class: who, mIoU, training time. Students level at
    the precision the page shows (3 decimals) share the place — a class on the same defaults and seed often ties —
    and the run shown is the first of theirs to get there."""
    best: dict[tuple, dict] = {}
    for run in runs:  # oldest first (list_runs)
        summary = run.summary()
        miou = summary.get("miou")
        if run.state != "done" or not isinstance(miou, (int, float)) or not counts_for_the_class(run):
            continue
        key = (str(run.config.get("data")), str(run.config.get("strategy")))
        student = student_of(run.owner)
        leader = best.get(key)
        if leader and round(miou, 3) == round(leader["mIoU"], 3):
            leader["students"].add(student)
        elif leader is None or miou > leader["mIoU"]:
            best[key] = {
                "dataset": key[0],
                "strategy": key[1],
                "mIoU": miou,
                "students": {student},
                "training time (s)": summary.get("train_time_s"),
                "run": run.run_id,
            }
    rows = [{**row, "students": ", ".join(sorted(row["students"]))} for row in best.values()]
    return sorted(rows, key=lambda row: (row["dataset"], -row["mIoU"]))


def best_per_student(runs: list[Run], data: str) -> list[dict]:
    """For one dataset: each student's best mIoU per strategy (the class comparison)."""
    best: dict[tuple, float] = {}
    for run in runs:
        miou = run.summary().get("miou")
        if (
            run.state == "done"
            and run.config.get("data") == data
            and isinstance(miou, (int, float))
            and counts_for_the_class(run)
        ):
            key = (student_of(run.owner), str(run.config.get("strategy")))
            best[key] = max(best.get(key, -1.0), miou)
    return [{"student": s, "strategy": k, "mIoU": v} for (s, k), v in sorted(best.items())]
