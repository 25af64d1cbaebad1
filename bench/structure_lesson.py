"""When does structure transfer win? Each strategy's validation mIoU over several seeds on two built-in pairs, trained
exactly as the built-in lessons plan them (the quick preset, the source run trained first with the same seed):

- when-structure: 256 outlined images (shapes-outlines) → 8 labelled images of the same kind (shapes-few)
- why-transfer: ellipses/rings/crosses in warm colours (shapes-source) → circles/squares/triangles (shapes)

    python bench/structure_lesson.py --seeds 0 1 2 --threads 1 --out bench/results/structure_lesson.txt

On a shared CPU the lessons can train in two processes and be summarised afterwards:

    python bench/structure_lesson.py --lessons when-structure --threads 1 &
    python bench/structure_lesson.py --lessons why-transfer --threads 1 &
    wait; python bench/structure_lesson.py --summarise --out bench/results/structure_lesson.txt

--threads only sets the CPU threads per training process (1 is several times faster than 2 when other processes
already hold the cores); every learning setting is the lesson's.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stdout
from dataclasses import replace

from common import RESULTS, machine, print_table, write_results

from segcore import TrainConfig, train
from segcore.settings.config import PRESETS
from segcore.teaching.builtin_lessons import BUILTIN_LESSONS
from segcore.jobs.planning import SOURCE_PLACEHOLDER

LESSONS = ("when-structure", "why-transfer")


def run_lesson(
    key: str, seed: int, runs_dir: str, threads: int = 0, preset: str | None = None, lr: float | None = None
) -> list[dict]:
    """Train one lesson's whole plan with this seed, in queue order; one row per run. preset: train the plan at
    another preset's settings instead of the lesson's own (the quick preset), keeping the lesson's learning rate;
    lr: train at this learning rate instead of the lesson's."""
    lesson = BUILTIN_LESSONS[key]
    if preset is not None:
        kept = {k: v for k, v in lesson.settings.items() if k == "lr"}
        lesson = replace(lesson, settings={**PRESETS[preset].settings, **kept}, preset=preset)
    if lr is not None:
        lesson = replace(lesson, settings={**lesson.settings, "lr": lr})
    rows, source_path = [], None
    for config in lesson.plan(f"{key}-s{seed}", TrainConfig(seed=seed, threads=threads)):
        if config.source_run == SOURCE_PLACEHOLDER:
            config = replace(config, source_run=source_path)
        started = time.time()
        run = train(config, runs_dir=runs_dir)
        is_source = config.run_name.endswith("-source")
        if is_source:
            source_path = str(run.path)
        summary = run.summary()
        rows.append(
            {
                "lesson": key,
                "seed": seed,
                "data": config.data,
                "strategy": "source" if is_source else config.strategy,
                "miou": summary.get("miou"),
                "train_s": summary.get("train_time_s"),
                "wall_s": time.time() - started,
            }
        )
        print(
            f"  {key} seed {seed} {rows[-1]['strategy']:<9} mIoU {rows[-1]['miou']:.3f}  {rows[-1]['wall_s']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Mean ± sd per lesson and strategy, and structure − parameter per lesson (its sd taken over the seeds'
    paired differences, the spread that decides whether the gap is more than seed noise)."""
    table, verdicts = [], []
    for key in [k for k in LESSONS if any(r["lesson"] == k for r in rows)]:
        mine = [r for r in rows if r["lesson"] == key]
        by_strategy: dict[str, list[dict]] = {}
        for row in mine:
            by_strategy.setdefault(row["strategy"], []).append(row)
        for strategy, runs in by_strategy.items():
            scores = [r["miou"] for r in runs]
            table.append(
                {
                    "lesson": key,
                    "target": runs[0]["data"],
                    "strategy": strategy,
                    "mIoU mean ± sd": f"{statistics.mean(scores):.3f} ± {spread(scores):.3f}",
                    "per seed": " ".join(f"{s:.3f}" for s in scores),
                    "train s (mean)": statistics.mean(r["train_s"] for r in runs),
                }
            )
        seeds = sorted({r["seed"] for r in mine})
        score = {(r["strategy"], r["seed"]): r["miou"] for r in mine}
        gaps = [score["structure", s] - score["parameter", s] for s in seeds]
        sds = [spread([score[n, s] for s in seeds]) for n in ("structure", "parameter")]
        margin = statistics.mean(gaps)
        # the paired spread removes what a seed does to every strategy alike (a hard seed is hard for all of them)
        verdicts.append(
            {
                "lesson": key,
                "structure − parameter": f"{margin:+.3f}",
                "per seed": " ".join(f"{g:+.3f}" for g in gaps),
                "seeds won": f"{sum(g > 0 for g in gaps)}/{len(gaps)}",
                "sd of paired gaps": f"{spread(gaps):.3f}",
                "sd structure / parameter": f"{sds[0]:.3f} / {sds[1]:.3f}",
                "beyond paired sd": "yes" if margin > spread(gaps) else "no",
                "beyond each strategy's sd": "yes" if margin > max(sds) else "no",
            }
        )
    return table, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lessons", nargs="+", default=list(LESSONS), choices=LESSONS)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: one per core)")
    parser.add_argument(
        "--part",
        default="",
        help="suffix of this process's rows file, so that seeds can train in "
        "parallel processes (--summarise reads every part)",
    )
    parser.add_argument("--preset", choices=list(PRESETS), help="train at this preset instead of the lessons' own")
    parser.add_argument("--lr", type=float, help="train at this learning rate instead of the lessons' own")
    parser.add_argument("--summarise", action="store_true", help="only print the tables from the saved rows")
    parser.add_argument("--out", help="also write the printed tables to this file")
    args = parser.parse_args()
    suffix = (f"-{args.preset}" if args.preset else "") + (f"-lr{args.lr:g}" if args.lr is not None else "")
    if args.summarise:
        rows = [row for key in LESSONS for row in saved_rows(key, suffix)]
    else:
        runs_dir = tempfile.mkdtemp(prefix="structure-lesson-runs-")
        rows = []
        for key in args.lessons:  # lesson by lesson: an interrupted run still has every seed of the first lesson
            mine = []
            for seed in args.seeds:
                mine += run_lesson(key, seed, runs_dir, args.threads, args.preset, args.lr)
                write_results(
                    f"structure_lesson-{key}{suffix}{args.part}",
                    {"machine": machine(), "threads": args.threads, "seeds": args.seeds, "rows": mine},
                )
            rows += mine
    table, verdicts = summarise(rows)
    text = io.StringIO()
    with redirect_stdout(text):
        seeds = sorted({r["seed"] for r in rows})
        preset = PRESETS[args.preset or "quick"]
        print(
            f"Structure lesson: seeds {seeds} × the built-in lessons' plans ({preset.title} preset: {preset.purpose}"
            f"{f'; lr {args.lr:g}' if args.lr is not None else ''}) — {machine()}; the seconds depend on the "
            "machine's load"
        )
        print_table(table, ["lesson", "target", "strategy", "mIoU mean ± sd", "per seed", "train s (mean)"])
        print()
        print_table(
            verdicts,
            [
                "lesson",
                "structure − parameter",
                "per seed",
                "seeds won",
                "sd of paired gaps",
                "sd structure / parameter",
                "beyond paired sd",
                "beyond each strategy's sd",
            ],
        )
    print(text.getvalue(), end="")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text.getvalue())
    write_results(
        f"structure_lesson{suffix}", {"machine": machine(), "rows": rows, "table": table, "verdicts": verdicts}
    )


def saved_rows(key: str, suffix: str = "") -> list[dict]:
    """Every saved row of a lesson at one preset (suffix), from all parts, one per (seed, run): a seed trained
    twice counts once."""
    rows = {}
    others = tuple(f"-{name}" for name in PRESETS if f"-{name}" != suffix)
    for path in sorted(RESULTS.glob(f"structure_lesson-{key}{suffix}*.json")):
        if path.stem.removeprefix(f"structure_lesson-{key}{suffix}").startswith(others):
            continue
        for row in json.loads(path.read_text())["rows"]:
            if row["lesson"] == key and row["data"] in {c.data for c in BUILTIN_LESSONS[key].plan("g")}:
                rows[row["seed"], row["strategy"]] = row
    return sorted(rows.values(), key=lambda r: (r["seed"], r["strategy"]))


if __name__ == "__main__":
    main()
