"""The built-in lesson "Labels are expensive" as a class runs it: its own plan (each strategy on 10 % of the labelled
images, once alone and once with the other 90 % unlabelled), at the lesson's preset, over several seeds. Reports what
the app shows (the best validation mIoU of each run) and the semi-supervised gain per seed.

    python bench/semi_lesson.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from common import RESULTS, machine

from segcore import train
from segcore.compare.spread import mean_sd
from segcore.teaching.builtin_lessons import BUILTIN_LESSONS

LESSON = "labels-expensive"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(RESULTS / "semi-lesson"))
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="semi-lesson-"))
    rows = []
    for seed in args.seeds:
        lesson = BUILTIN_LESSONS[LESSON]
        lesson = replace(lesson, settings={**lesson.settings, "seed": seed})
        for config in lesson.plan(f"s{seed}"):
            run = train(config, runs)
            summary = run.summary()
            rows.append(
                {
                    "seed": seed,
                    "strategy": config.strategy,
                    "semi": bool(config.unlabelled),
                    "miou": summary.get("miou"),
                    "train_images": summary.get("train_images"),
                    "train_time_s": summary.get("train_time_s"),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        f"lesson '{LESSON}' at its own plan and preset, seeds {args.seeds}, best validation mIoU (as the app shows it) "
        f"— {machine()}",
        "| strategy | labelled only | + unlabelled | gain per seed (points) | mean gain | seeds won |",
        "|---|---|---|---|---|---|",
    ]
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        plain = {r["seed"]: r["miou"] for r in rows if r["strategy"] == strategy and not r["semi"]}
        semi = {r["seed"]: r["miou"] for r in rows if r["strategy"] == strategy and r["semi"]}
        gains = [100 * (semi[s] - plain[s]) for s in args.seeds if s in plain and s in semi]

        def fmt(values):
            mean, sd = mean_sd(list(values))
            return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

        lines.append(
            f"| {strategy} | {fmt(plain.values())} | {fmt(semi.values())} | "
            + " / ".join(f"{g:+.1f}" for g in gains)
            + f" | {mean_sd(gains)[0]:+.1f} | {sum(g > 0 for g in gains)}/{len(gains)} |"
        )
    text = "\n".join(lines)
    print(text)
    Path(args.out).with_suffix(".txt").write_text(text + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
