"""A comparison as one self-contained HTML file: settings, scores, per-class IoU, curves and the side-by-side
grid, readable offline and safe to open.

Self-contained: images are data: URIs, curves are inline SVG drawn here, styles are inline; nothing is
fetched. Safe: every text that comes from a run, a dataset or a bundle goes through html.escape, numbers are
formatted from numbers only, there is no script at all, and a Content-Security-Policy forbids scripts and
network loads in case a browser is ever handed something unescaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from dataclasses import fields

import numpy as np
from PIL import Image

from ..base.drawing import error_colour
from ..base.errors import RunError
from ..data.dataset import SegmentationData
from ..models.metrics import MIOU_NOTE
from ..runs.naming import dataset_name
from ..runs.run import Run
from ..settings.config import TrainConfig
from ..settings.strategies import STRATEGIES
from .curves import comparison_curves, thinned, time_axis
from .run_views import RunView, as_views
from .sheet import comparison_tiles
from .stats import SECONDS_TO_90_HELP, SUMMARY_COLUMNS, mixing_problem, summary_row

# Okabe–Ito: distinguishable with common colour-vision deficiencies; used when two runs share a strategy colour
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#1f2937}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;font-size:.9em;margin:8px 0} th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb} td.n{text-align:right;font-variant-numeric:tabular-nums} tr.differs td{background:#fffbeb}
.muted{color:#6b7280;font-size:.9em} .charts{display:flex;flex-wrap:wrap;gap:16px} figure{margin:0}
figcaption{font-size:.85em;color:#374151} .grid img{width:160px;height:auto;image-rendering:pixelated;display:block}
.grid td,.grid th{padding:2px;text-align:center;font-size:.8em;max-width:164px;overflow-wrap:anywhere}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #9ca3af;margin:0 4px 0 10px;vertical-align:middle}
.key{display:inline-block;width:18px;height:4px;vertical-align:middle;margin-right:6px}
"""


def comparison_report(
    runs: list[Run],
    data: SegmentationData,
    count: int = 4,
    views: list[RunView] | None = None,
    split: str = "val",
    alpha: float = 0.55,
    show_errors: bool = False,
) -> str:
    """The report as one HTML string. `data`: the runs' dataset (segcore.run_data.load_run_dataset);
    `views`: the runs' RunViews when the caller holds them already (else read here): no model runs."""
    if not runs:
        raise RunError("choose at least one finished run to report on")
    problem = mixing_problem(runs)
    if problem:
        raise RunError(f"no report: {problem}")
    views = views or as_views(runs, data, split)
    letters = [chr(ord("A") + i) for i in range(len(runs))]
    colours = run_colours(runs)
    source = str(runs[0].config.get("data", "?"))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>Comparison · {_text(dataset_name(source))}</title><style>{STYLE}</style></head><body>",
        f"<h1>Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''} on {_text(dataset_name(source))}</h1>",
        f'<p class="muted">Dataset: {_text(dataset_name(source))} · written {_text(time.strftime("%Y-%m-%d %H:%M"))} by the '
        "Segmentation Transfer Workbench</p>",
        _legend(runs, letters, colours, views[0]),
        _problems(runs, letters),
        "<h2>Summary</h2>",
        _summary_table(runs, letters),
        "<h2>Curves</h2>",
        _charts(runs, letters, colours),
        "<h2>IoU per class</h2>",
        _per_class_table(runs, letters),
        "<h2>Side by side</h2>",
        _grid(runs, views, data, letters, split, count, alpha, show_errors),
        "<h2>Settings</h2>",
        _settings_table(runs, letters),
        "</body></html>",
    ]
    return "\n".join(parts)


# -- text and numbers -------------------------------------------------------------------------------
def _text(value) -> str:
    """Any text from a run, dataset or bundle, made inert."""
    return html.escape("—" if value is None else str(value), quote=True)


def _number(value, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def run_colours(runs: list[Run]) -> list[str]:
    """Each run's strategy colour, as on the pages, unless two runs would share one; then a palette colour each."""
    by_strategy = [STRATEGIES[s].colour if s in STRATEGIES else None for s in (r.config.get("strategy") for r in runs)]
    if None not in by_strategy and len(set(by_strategy)) == len(by_strategy):
        return by_strategy
    return [PALETTE[i % len(PALETTE)] for i in range(len(runs))]


def _rgb(colour) -> str:
    """A class colour from best.json as CSS; anything that is not three numbers becomes grey."""
    try:
        red, green, blue = (min(255, max(0, int(c))) for c in colour)
    except (TypeError, ValueError):
        red = green = blue = 128
    return f"rgb({red},{green},{blue})"


def _strategy(run: Run) -> str:
    strategy = run.config.get("strategy")
    return STRATEGIES[strategy].label if strategy in STRATEGIES else str(strategy)


# -- sections ---------------------------------------------------------------------------------------
def _problems(runs, letters) -> str:
    """Damaged files of the runs, by name: what the report had to leave out or replace."""
    items = "".join(
        f"<li><b>{letter}</b>: {_text(run.problem)}</li>" for letter, run in zip(letters, runs) if run.problem
    )
    return f'<h2>Problems</h2><ul class="problems">{items}</ul>' if items else ""


def _legend(runs, letters, colours, view: RunView) -> str:
    error_name, error_rgb = error_colour(view.colours)
    items = "".join(
        f'<li><span class="key" style="background:{colour}"></span><b>{letter}</b>: {_text(run.run_id)} '
        f"({_text(_strategy(run))})</li>"
        for letter, run, colour in zip(letters, runs, colours)
    )
    swatches = "".join(
        f'<span class="swatch" style="background:{_rgb(colour)}"></span>{_text(name)}'
        for name, colour in zip(view.classes, view.colours)
    )
    return (
        f"<h2>Legend</h2><ul>{items}</ul><p>Classes:{swatches}</p>"
        f'<p class="muted">{_text(MIOU_NOTE)}. "s to 90 % of best": {_text(SECONDS_TO_90_HELP)}. In the grid, each '
        "run's column shows its prediction painted over the image, classes coloured as above; pixels in "
        f'{_text(error_name)} <span class="swatch" style="background:{_rgb(error_rgb)}"></span>, where shown, are '
        "wrong.</p>"
    )


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """header and rows hold finished HTML (already escaped)."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join(
        f'<tr class="{cls}">' + "".join(rows_cell for rows_cell in row) + "</tr>"
        for row, cls in zip(rows, row_classes or [""] * len(rows))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(runs, letters) -> str:
    columns = [column for column in SUMMARY_COLUMNS if column.in_report]
    rows = []
    for letter, run in zip(letters, runs):
        row = summary_row(run)
        cells = [f"<td><b>{letter}</b></td>"]
        for column in columns:
            if column.label == "strategy":
                cells.append(f"<td>{_text(_strategy(run))}</td>")
            elif column.digits is None:
                cells.append(f"<td>{_text(row[column.label])}</td>")
            else:
                cells.append(f'<td class="n">{_number(row[column.label], column.digits)}</td>')
        rows.append(cells)
    return _table(["", *(column.label for column in columns)], rows)


def _per_class_table(runs, letters) -> str:
    classes = runs[0].summary().get("classes")
    classes = classes if isinstance(classes, list) else []
    scores = []
    for run in runs:
        values = run.summary().get("per_class_iou")
        scores.append(values if isinstance(values, list) else [])
    rows = [
        [f"<td>{_text(name)}</td>"] + [f'<td class="n">{_number(s[i] if i < len(s) else None)}</td>' for s in scores]
        for i, name in enumerate(classes)
    ]
    return _table(["class"] + [f"{letter}: {_text(run.run_id)}" for letter, run in zip(letters, runs)], rows)


def _settings_table(runs, letters) -> str:
    configs = [run.config for run in runs]
    settings = {f.name for f in fields(TrainConfig)}  # the training settings, not the queue's bookkeeping
    keys = [k for k in dict.fromkeys(k for config in configs for k in config) if k in settings]
    rows, marks = [], []
    for key in keys:
        values = [_setting_text(_shown_setting(run, key)) for run in runs]
        rows.append([f"<td>{_text(key)}</td>"] + [f"<td>{_text(v)}</td>" for v in values])
        marks.append("differs" if len(set(values)) > 1 else "")
    return (
        _table(["setting"] + [f"{letter}: {_text(run.run_id)}" for letter, run in zip(letters, runs)], rows, marks)
        + '<p class="muted">Highlighted rows differ between the runs.</p>'
    )


def _shown_setting(run, key: str):
    """A setting as the reader needs it: the dataset by its name (never the server's folder), the epochs as trained
    (the step floor may have added some), the same figure as the scores table."""
    if key == "data":
        return dataset_name(run.config.get("data"))
    if key == "epochs":
        return run.summary().get("epochs", run.config.get("epochs"))
    return run.config.get(key)


def _setting_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "—" if value is None else str(value)


def _grid(runs, views, data, letters, split, count, alpha, show_errors) -> str:
    tiles = comparison_tiles(views, data, split, count, alpha, show_errors)
    titles = ["image", "ground truth"] + [
        f"{letter} · {_text(_strategy(run))} · mIoU {_number(run.summary().get('miou'))}"
        for letter, run in zip(letters, runs)
    ]
    head = "".join(f"<th>{title}</th>" for title in titles)
    body = ""
    for index, row in enumerate(tiles):
        alts = ["image", "ground truth"] + [f"prediction of {run.run_id}" for run in runs]
        body += (
            "<tr>"
            + "".join(
                f'<td><img src="{png_data_uri(tile)}" alt="{_text(alt)} {index + 1}"></td>'
                for tile, alt in zip(row, alts)
            )
            + "</tr>"
        )
    wrong = f", wrong pixels in {_text(error_colour(views[0].colours)[0])}" if show_errors and views else ""
    note = f"the first {len(tiles)} {_text(split)} images{wrong}"
    return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><p class="muted">{note}</p>'


def png_data_uri(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- charts -----------------------------------------------------------------------------------------
def _charts(runs, letters, colours) -> str:
    curves = comparison_curves(runs)
    loss = [
        (letter, colour, [(float(s), float(v)) for s, v in thinned(c.steps)])
        for letter, colour, c in zip(letters, colours, curves)
    ]
    miou = [
        (letter, colour, [(float(e["epoch"]), float(e["miou"])) for e in c.epochs])
        for letter, colour, c in zip(letters, colours, curves)
    ]
    timed = [
        (letter, colour, [(float(t), float(e["miou"])) for t, e in zip(time_axis(c)[0], c.epochs)])
        for letter, colour, c in zip(letters, colours, curves)
    ]
    return (
        '<div class="charts">'
        + svg_chart("Training loss per step", "step", "loss", loss)
        + svg_chart("Validation mIoU per epoch", "epoch", "mIoU", miou, y_range=(0.0, 1.0))
        + svg_chart(
            "Validation mIoU against compute time",
            "compute seconds (the training process's own work)",
            "mIoU",
            timed,
            y_range=(0.0, 1.0),
        )
        + "</div>"
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < high - step * 1e-9:  # the last tick is at or past high, so every point is inside the axis
        ticks.append(round(start + len(ticks) * step, 10))
    return ticks


def svg_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: list[tuple[str, str, list[tuple[float, float]]]],
    y_range: tuple[float, float] | None = None,
    width: int = 380,
    height: int = 250,
) -> str:
    """A line chart as inline SVG: one polyline (and point markers) per (name, colour, points) series."""
    points = [(x, y) for _, _, pts in series for x, y in pts if math.isfinite(x) and math.isfinite(y)]
    left, right, top, bottom = 48, 12, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<figure><svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(title)}"><title>{_text(title)}</title>',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">{_text(title)}</text>',
    ]
    if not points:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="12" fill="#6b7280">'
            "no data recorded</text></svg></figure>"
        )
        return "".join(parts)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(min(0.0, min(xs)), max(xs))
    y_ticks = nice_ticks(*y_range) if y_range else nice_ticks(min(0.0, min(ys)), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    for tick in y_ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:g}</text>'
        )
    for tick in x_ticks:
        parts.append(
            f'<line x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="#6b7280"/>'
            f'<text x="{sx(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="10">{tick:g}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#6b7280"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle" font-size="11">{_text(x_label)}</text>'
        f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">{_text(y_label)}</text>'
    )
    keys = []
    for name, colour, pts in series:
        pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        if not pts:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline class="curve" points="{coords}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{_text(name)}</title></polyline>"
        )
        if len(pts) <= 60:  # markers show single epochs; on long step curves they would only blur the line
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts)
        keys.append(f'<span class="key" style="background:{colour}"></span>{_text(name)}')
    parts.append("</svg>")
    return "".join(parts) + f"<figcaption>{' &nbsp; '.join(keys)}</figcaption></figure>"


__all__ = ["comparison_report", "nice_ticks", "png_data_uri", "run_colours", "svg_chart"]
