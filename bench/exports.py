"""Take-home exports of a 4-run comparison, timed as the Compare page makes them (issue 23: "under 10 s each").

    python bench/exports.py                       # the four strategies on the built-in shapes, quick preset
    python bench/exports.py --data PATH --count 8

Trains the four strategies once (a source run for structure transfer), then times each export twice, in turn:
the PNG sheet (render_comparison), the HTML report (comparison_report) and the bundle (export_comparison_bytes, its
sheet included), with the page's default of 4 images. Results: bench/results/exports.json.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from common import machine, print_table, write_results

from segcore import TrainConfig, load_dataset, train
from segcore.compare.bundle import export_comparison_bytes
from segcore.compare.report_html import comparison_report
from segcore.compare.run_views import as_views
from segcore.compare.sheet import render_comparison


def timed(make) -> tuple[float, int]:
    began = time.perf_counter()
    made = make()
    return time.perf_counter() - began, len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="builtin:shapes")
    parser.add_argument("--source", default="builtin:shapes-source")
    parser.add_argument("--count", type=int, default=4, help="images per run in the sheet and the report")
    args = parser.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="exports-"))
    quick = dict(height=128, width=128, epochs=3, min_steps=50)
    source = train(TrainConfig(data=args.source, strategy="parameter", **quick), runs)
    chosen = [
        train(TrainConfig(data=args.data, strategy=strategy, source_run=str(source.path), **quick), runs)
        if strategy == "structure"
        else train(TrainConfig(data=args.data, strategy=strategy, **quick), runs)
        for strategy in ("scratch", "parameter", "feature", "structure")
    ]
    data = load_dataset(args.data)
    views = as_views(chosen, data, "val")

    def sheet() -> bytes:
        buffer = io.BytesIO()
        render_comparison(views, data, count=args.count).save(buffer, format="PNG")
        return buffer.getvalue()

    rows = []
    for attempt in (1, 2):
        for name, make in (
            ("PNG sheet", sheet),
            ("HTML report", lambda: comparison_report(chosen, data, count=args.count, views=views).encode()),
            ("bundle (zip)", lambda: export_comparison_bytes(chosen, sheet())),
        ):
            seconds, size = timed(make)
            rows.append({"export": name, "attempt": attempt, "seconds": round(seconds, 2), "MiB": size / 1024**2})
    print(f"Exports of a 4-run comparison on {args.data}, {args.count} images — {machine()}")
    print_table(rows, ["export", "attempt", "seconds", "MiB"])
    write_results("exports", {"machine": machine(), "data": args.data, "rows": rows})


if __name__ == "__main__":
    main()
