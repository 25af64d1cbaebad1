"""Side-by-side comparison figure: image, ground truth, one column per run, mIoU in each title."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data.dataset import SegmentationData
from .predict import Predictor, overlay, unpainted_classes

TITLE_HEIGHT = 22


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def comparison_rows(predictors: list[Predictor], data: SegmentationData, split: str = "val", count: int = 4):
    """For the first `count` images of a split: (image, ground-truth map, [prediction maps]) at run size."""
    size = predictors[0].size
    images = data.load(split, size)
    rows = []
    for index in range(min(count, len(images))):
        image = Image.fromarray(images.images[index].permute(1, 2, 0).numpy())
        truth = images.masks[index].numpy()
        rows.append((image, truth, [p.predict(image) for p in predictors]))
    return rows


def run_mious(predictors: list[Predictor], data: SegmentationData, split: str = "val") -> list[float]:
    from .evaluate import evaluate_run

    return [evaluate_run(p, data, split)["miou"] for p in predictors]


def render_comparison(predictors: list[Predictor], data: SegmentationData, split: str = "val", count: int = 4,
                      alpha: float = 0.55, show_errors: bool = False) -> Image.Image:
    rows = comparison_rows(predictors, data, split, count)
    mious = run_mious(predictors, data, split)
    titles = ["image", "ground truth"] + [
        f"{p.meta.get('strategy', '?')} · {p.run.run_id[:18]} · mIoU {m:.3f}" for p, m in zip(predictors, mious)
    ]
    height, width = predictors[0].size
    scale = max(1.0, 240 / width)  # small training sizes are drawn larger, so a printed sheet stays readable
    tile_w, tile_h = round(width * scale), round(height * scale)
    legend = list(zip(predictors[0].classes, predictors[0].colours))
    sheet = Image.new("RGB", (tile_w * len(titles), TITLE_HEIGHT * 2 + tile_h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(titles):
        draw.text((c * tile_w + 4, 4), title, fill="black", font=_font(12))
    x = 4
    for name, colour in legend:  # class legend on the second title line
        draw.rectangle((x, TITLE_HEIGHT + 5, x + 12, TITLE_HEIGHT + 17), fill=tuple(colour))
        draw.text((x + 16, TITLE_HEIGHT + 4), name, fill="black", font=_font(12))
        x += 30 + 7 * len(name)
    unpainted = unpainted_classes(predictors[0].classes)
    for r, (image, truth, predictions) in enumerate(rows):
        top = TITLE_HEIGHT * 2 + r * tile_h
        tiles = [np.asarray(image), overlay(image, truth, predictors[0].colours, alpha, unpainted=unpainted)]
        for predictor, prediction in zip(predictors, predictions):
            errors = (prediction != truth) & (truth != 255) if show_errors else None
            tiles.append(predictor.overlay(image, alpha, prediction, errors))
        for c, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((tile_w, tile_h), Image.BILINEAR), (c * tile_w, top))
    return sheet


def save_comparison(run_dirs: list[str | Path], data: SegmentationData, output: str | Path, **kwargs) -> Path:
    predictors = [Predictor(path) for path in run_dirs]
    sheet = render_comparison(predictors, data, **kwargs)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output)
    return output


__all__ = ["comparison_rows", "render_comparison", "run_mious", "save_comparison"]
