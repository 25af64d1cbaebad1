"""What the engine hands back to people: prediction files that never overwrite each other, comparison sheets
whose text never overlaps, and page text that shows exactly what a dataset or user wrote."""

from __future__ import annotations

import itertools
import re

import pytest
from PIL import Image

from segcore import TrainConfig, load_dataset, train
from segcore.cli import main, output_names

TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4, max_steps=2, augment="none")


@pytest.fixture(scope="module")
def tiny_runs(train_dataset, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    long = "a-really-long-run-name-that-goes-on-{}-xy"  # 40 characters
    made = [
        train(TrainConfig(data=str(train_dataset), strategy=s, run_name=long.format(i), **TINY), runs)
        for i, s in enumerate(["scratch", "parameter", "feature", "scratch"])
    ]
    assert all(len(r.run_id) == 40 for r in made)
    return made


def test_predict_gives_same_stem_inputs_distinct_outputs(tmp_path, tiny_runs):
    for folder, suffix in (("x", ".tif"), ("y", ".gif")):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (64, 64), (200, 10, 10) if folder == "x" else (10, 10, 200)).save(
            tmp_path / folder / f"p0{suffix}"
        )
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(tiny_runs[0].path),
                str(tmp_path / "x/p0.tif"),
                str(tmp_path / "y/p0.gif"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*_overlay.png")) == ["p0-gif_overlay.png", "p0-tif_overlay.png"]
    assert output_names(["a/p.png", "b/p.png", "c/q.png"]) == ["p-png", "p-png-2", "q"]


@pytest.mark.parametrize("count", [2, 3, 4])
def test_comparison_sheet_text_never_overlaps_with_long_run_names(count, tiny_runs, train_dataset):
    from segcore.compare.sheet import render_comparison
    from segcore.training.predict import Predictor

    predictors = [Predictor(run.path, device="cpu") for run in tiny_runs[:count]]
    sheet = render_comparison(predictors, load_dataset(str(train_dataset)), count=2)
    boxes = sheet.info["text_boxes"]
    assert len(boxes) >= 2 + count
    for a, b in itertools.combinations(boxes, 2):
        overlap = min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
        assert not overlap, (a, b)
    for box in boxes:  # and every text stays on the sheet
        assert box[0] >= 0 and box[2] <= sheet.width and box[3] <= sheet.height
    column = sheet.width // (2 + count)
    for index, box in enumerate(boxes[: 2 + count]):  # titles stay inside their own column
        assert box[2] <= column * (box[0] // column + 1), (index, box)


@pytest.mark.parametrize(
    "hostile",
    [
        "<img src=x onerror=alert(1)>",
        "<style>body{display:none}</style>",
        "[click](javascript:alert(1))",
        "![x](http://example.invalid/x.png)",
        ":red[alarm] $x^2$ **bold** _it_",
        "<iframe src='//evil'></iframe>",
    ],
)
def test_page_text_is_inert_in_markdown_and_html(hostile):
    from views._shared import escape_md, html_text

    def rendered(markdown: str) -> str:  # CommonMark: a backslash before punctuation shows the punctuation
        return re.sub(r"\\(.)", r"\1", markdown)

    assert rendered(escape_md(hostile)) == hostile
    for escaped in (escape_md(hostile), html_text(hostile)):
        assert not re.search(
            r"(?<!\\)[<\[\]()*_:$`]",
            escaped.replace("&lt;", "")
            .replace("&gt;", "")
            .replace("&#x27;", "")
            .replace("&quot;", "")
            .replace("&amp;", ""),
        )


def test_sample_captions_are_in_the_order_people_count(tmp_path):
    from segcore.data.preview import sample_overlays
    from tests.conftest import write_images_masks

    folder = write_images_masks(tmp_path / "d", count=30)
    for path in sorted((folder / "images").iterdir()):  # names 0 … 29 without zero padding
        number = int(path.stem.split("_")[1])
        path.rename(path.with_name(f"{number}{path.suffix}"))
        (folder / "masks" / f"{path.stem}.png").rename(folder / "masks" / f"{number}.png")
    names = [name for name, _ in sample_overlays(load_dataset(str(folder)), "train", count=8)]
    assert [int(n) for n in names] == sorted(int(n) for n in names)
