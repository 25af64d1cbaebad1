"""The side-by-side comparison as a picture: image | ground truth | one column per run (PNG sheets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..base.drawing import error_colour, overlay, unpainted_classes
from ..data.dataset import SegmentationData
from ..data.masks import IGNORE
from .run_views import as_views


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def error_mask(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixels a prediction gets wrong, among the labelled ones (ignored pixels are never errors)."""
    return (prediction != truth) & (truth != IGNORE)


def comparison_tiles(
    runs_or_views,
    data: SegmentationData,
    split: str = "val",
    count: int = 4,
    alpha: float = 0.55,
    show_errors: bool = False,
) -> list[list[np.ndarray]]:
    """Each row: the image, its ground truth painted, then each run's prediction painted (errors in the error colour if asked), from
    the runs' saved validation outputs (run_views.py): no model runs. The Compare page shows these tiles; the PNG
    sheet and the HTML report paste them."""
    views = as_views(runs_or_views, data, split)
    first = views[0]
    images = data.load(split, first.size, fit=first.fit)
    unpainted = unpainted_classes(first.classes)
    tiles = []
    for index in range(min(count, len(images))):
        picture = images.images[index].permute(1, 2, 0).numpy()
        truth = images.masks[index].numpy()
        row = [picture, overlay(picture, truth, first.colours, alpha, unpainted=unpainted)]
        for view in views:
            prediction = view.map(index)
            errors = error_mask(prediction, truth) if show_errors else None
            row.append(overlay(picture, prediction, view.colours, alpha, errors, unpainted))
        tiles.append(row)
    return tiles


def run_mious(runs_or_views, data: SegmentationData, split: str = "val") -> list[float]:
    """Each run's mIoU on the split, from its saved per-image intersections and unions (the same confusion-matrix
    mIoU training reports: classes present in the truth or the prediction)."""
    scores = []
    for view in as_views(runs_or_views, data, split):
        intersection, union = view.outputs.intersection.sum(0), view.outputs.union.sum(0)
        present = union > 0
        scores.append(float((intersection[present] / union[present]).mean()) if present.any() else 0.0)
    return scores


def wrap_to_width(draw: ImageDraw.ImageDraw, text: str, width: int, font, max_lines: int = 3) -> list[str]:
    """Break text into lines no wider than `width` pixels (measured, not guessed); the last line ends in '…'
    when the text needs more than max_lines."""

    def fits(line: str) -> bool:
        return draw.textbbox((0, 0), line, font=font)[2] <= width

    lines, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}".strip()
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while not fits(current):  # a single word wider than the column: cut it
            cut = len(current)
            while cut > 1 and not fits(current[:cut]):
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and not fits(last + "…"):
            last = last[:-1]
        lines[-1] = last + "…"
    return lines


def render_comparison(
    runs_or_views,
    data: SegmentationData,
    split: str = "val",
    count: int = 4,
    alpha: float = 0.55,
    show_errors: bool = False,
) -> Image.Image:
    """The PNG sheet. Column titles are wrapped to their column (measured), full run names sit in a legend
    under the grid; the drawn text boxes are kept in sheet.info["text_boxes"] so overlap can be checked."""
    views = as_views(runs_or_views, data, split)
    tiles = comparison_tiles(views, data, split, count, alpha, show_errors)
    mious = run_mious(views, data, split)
    letters = [chr(ord("A") + i) for i in range(len(views))]
    titles = ["image", "ground truth"] + [
        f"{letter} · {v.strategy} · mIoU {m:.3f}" for letter, v, m in zip(letters, views, mious)
    ]
    height, width = views[0].size
    scale = max(1.0, 240 / width)  # small training sizes are drawn larger, so a printed sheet stays readable
    tile_w, tile_h = round(width * scale), round(height * scale)
    font, line_h, pad = _font(12), 16, 4
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = [wrap_to_width(measure, t, tile_w - 2 * pad, font) for t in titles]
    sheet_w = tile_w * len(titles)
    legend_lines = [
        wrap_to_width(measure, f"{letter}: {v.run.run_id}", sheet_w - 2 * pad, font, max_lines=4)
        for letter, v in zip(letters, views)
    ]
    header_h = pad * 2 + line_h * max(len(lines) for lines in title_lines)
    entries = list(zip(views[0].classes, views[0].colours))
    if show_errors:  # the error colour is part of the picture: say what it means
        name, colour = error_colour(views[0].colours)
        entries.append((f"wrong pixels ({name})", colour))
    class_rows = _legend_rows(measure, entries, sheet_w - 2 * pad, font)
    footer_h = pad * 2 + line_h * (sum(len(lines) for lines in legend_lines) + len(class_rows))
    sheet = Image.new("RGB", (sheet_w, header_h + tile_h * len(tiles) + footer_h), "white")
    draw = ImageDraw.Draw(sheet)
    boxes = []

    def text(xy, value):
        draw.text(xy, value, fill="black", font=font)
        boxes.append(draw.textbbox(xy, value, font=font))

    for c, lines in enumerate(title_lines):
        for i, line in enumerate(lines):
            text((c * tile_w + pad, pad + i * line_h), line)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(
                Image.fromarray(tile).resize((tile_w, tile_h), Image.BILINEAR), (c * tile_w, header_h + r * tile_h)
            )
    y = header_h + tile_h * len(tiles) + pad
    for lines in legend_lines:
        for line in lines:
            text((pad, y), line)
            y += line_h
    for row in class_rows:  # class colours, wrapped like the text
        for x, name, colour in row:
            draw.rectangle((x, y + 2, x + 12, y + 14), fill=tuple(colour))
            text((x + 16, y), name)
        y += line_h
    sheet.info["text_boxes"] = boxes
    return sheet


def _legend_rows(draw, entries, width: int, font) -> list[list[tuple[int, str, tuple]]]:
    """Class swatches laid out left to right, wrapping to a new row where the next one would not fit."""
    rows, row, x = [], [], 4
    for name, colour in entries:
        name = wrap_to_width(draw, name, width - 20, font, max_lines=1)[0]
        entry_w = 16 + draw.textbbox((0, 0), name, font=font)[2] + 14
        if row and x + entry_w > width:
            rows.append(row)
            row, x = [], 4
        row.append((x, name, colour))
        x += entry_w
    return rows + ([row] if row else [])


def save_comparison(run_dirs: list[str | Path], data: SegmentationData, output: str | Path, **kwargs) -> Path:
    sheet = render_comparison(list(run_dirs), data, **kwargs)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    return output


__all__ = ["comparison_tiles", "error_mask", "render_comparison", "run_mious", "save_comparison"]
