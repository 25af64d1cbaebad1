"""Taking work home: comparison bundles (export, hostile import), the one-file HTML report, the worst images
of a class. Fast tests use hand-made run folders; tests that need real models share two tiny trained runs."""

from __future__ import annotations

import hashlib
import html
import json
import re
import stat
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save

from segcore import TrainConfig, load_dataset, train
from segcore.base.errors import RunError
from segcore.compare.bundle import BundleError, export_comparison, import_comparison
from segcore.runs.run import Run, list_runs
from segcore.training.predict import Predictor

from .conftest import write_images_masks

HOSTILE_CLASS = "<img src=x onerror=alert(1)>"
TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4, max_steps=2, augment="none")


# -- hand-made run folders (no training: the bundle only moves files) -------------------------------
def fake_run(runs_dir: Path, run_id: str, strategy: str = "scratch", source_run: str | None = None) -> Run:
    path = runs_dir / run_id
    path.mkdir(parents=True)
    config = TrainConfig(data="builtin:shapes", strategy=strategy, source_run=source_run, height=64, width=64).to_dict()
    (path / "config.json").write_text(json.dumps({**config, "created": time.time(), "run_id": run_id}))
    (path / "status.json").write_text(json.dumps({"state": "done", "started": 1000.0, "pid": 1, "host": "elsewhere"}))
    (path / "summary.json").write_text(
        json.dumps({"miou": 0.5, "classes": ["background", "a"], "per_class_iou": [0.9, 0.1]})
    )
    (path / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 1, "miou": 0.5, "time": 1010.0}) + "\n")
    (path / "best.safetensors").write_bytes(save({"weight": torch.arange(4, dtype=torch.float32)}))
    (path / "best.json").write_text(json.dumps({"epoch": 1, "miou": 0.5, "run_id": run_id}))
    (path / "train.log").write_text("trained\n")
    (path / "resume.json").write_text("{}")  # resume state and worker logs must stay behind
    (path / "worker.log").write_text("worker\n")
    return Run(path)


@pytest.fixture
def bundle(tmp_path) -> Path:
    home = tmp_path / "home"
    runs = [fake_run(home, "alpha"), fake_run(home, "beta")]
    return export_comparison(runs, tmp_path / "out" / "comparison.zip", sheet_png=b"\x89PNG fake sheet")


def rewrite_zip(source: Path, target: Path, change) -> Path:
    """A copy of a bundle with entries changed by change(name, data) -> [(name, data, ZipInfo-or-None)]."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            for name, data, custom in change(info.filename, old.read(info)):
                new.writestr(custom or name, data)
    return target


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("bundle.json"))


def with_manifest(manifest: dict):
    def change(name, data):
        return [(name, json.dumps(manifest).encode() if name == "bundle.json" else data, None)]

    return change


def folder_state(folder: Path) -> dict:
    return (
        {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        if folder.exists()
        else {}
    )


def test_export_writes_the_run_files_sheet_and_a_manifest_hashing_each(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("bundle.json"))
        for name, record in manifest["files"].items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == record["sha256"]
    expected = {
        f"runs/{r}/{f}"
        for r in ("alpha", "beta")
        for f in (
            "config.json",
            "metrics.jsonl",
            "status.json",
            "summary.json",
            "best.safetensors",
            "best.json",
            "train.log",
        )
    }
    assert names == expected | {"bundle.json", "comparison.png"}  # no resume.json, no worker.log
    assert set(manifest["files"]) == names - {"bundle.json"}
    assert [r["id"] for r in manifest["runs"]] == ["alpha", "beta"]
    assert manifest["runs"][0]["data"] == "builtin:shapes" and manifest["runs"][0]["dataset"] == "shapes"
    assert manifest["version"] == 1 and manifest["created"] > 0


def test_export_refuses_a_run_that_is_not_finished(tmp_path):
    run = fake_run(tmp_path / "runs", "busy")
    (run.path / "status.json").write_text(json.dumps({"state": "queued"}))
    with pytest.raises(RunError, match="busy is queued: only finished runs"):
        export_comparison([run], tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_import_marks_runs_done_and_imported_and_keeps_their_files(bundle, tmp_path):
    runs = import_comparison(bundle, tmp_path / "runs")
    assert [r.run_id for r in runs] == ["alpha", "beta"]
    original = tmp_path / "home" / "alpha"
    for name in ("summary.json", "best.safetensors", "best.json", "metrics.jsonl", "train.log"):
        assert (runs[0].path / name).read_bytes() == (original / name).read_bytes(), name
    status = runs[0].status
    assert status["state"] == "done" and status["imported"] is True and status["imported_from"] == "alpha"
    assert status["started"] == 1000.0 and "pid" not in status and "host" not in status
    assert not runs[0].broken and runs[0].has_checkpoint()
    assert not list((tmp_path / "runs").glob(".import-*"))  # no staging folder left behind
    assert sorted(r.run_id for r in list_runs(tmp_path / "runs")) == ["alpha", "beta"]


def test_import_never_overwrites_an_existing_run_and_picks_new_ids(bundle, tmp_path):
    runs_dir = tmp_path / "runs"
    existing = fake_run(runs_dir, "alpha")
    before = folder_state(existing.path)
    first = import_comparison(bundle, runs_dir)
    second = import_comparison(bundle, runs_dir)
    assert [r.run_id for r in first] == ["alpha-imported", "beta"]
    assert [r.run_id for r in second] == ["alpha-imported-2", "beta-imported"]
    assert folder_state(existing.path) == before
    assert second[0].config["run_id"] == "alpha-imported-2"


def test_import_points_a_structure_run_at_the_imported_copy_of_its_source(tmp_path):
    home = tmp_path / "home"
    source = fake_run(home, "source")
    target = fake_run(home, "target", strategy="structure", source_run=str(source.path))
    bundle = export_comparison([source, target], tmp_path / "b.zip")
    runs_dir = tmp_path / "runs"
    fake_run(runs_dir, "source")  # taken: the imported source gets a new id
    imported_source, imported_target = import_comparison(bundle, runs_dir)
    assert imported_source.run_id == "source-imported"
    assert imported_target.config["source_run"] == str(imported_source.path.resolve())
    assert not imported_target.broken


def zip_slip(name, data):
    extra = [("../../outside.txt", b"owned", None)] if name == "bundle.json" else []
    return [(name, data, None)] + extra


def absolute_entry(name, data):
    return [(name, data, None)] + ([("/tmp/evil.txt", b"owned", None)] if name == "bundle.json" else [])


def symlink_entry(name, data):
    if name != "runs/alpha/train.log":
        return [(name, data, None)]
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return [(name, b"/etc/passwd", info)]


def unexpected_file(name, data):
    return [(name, data, None)] + ([("runs/alpha/resume.pt", b"pickle", None)] if name == "bundle.json" else [])


def tampered_checkpoint(name, data):
    return [(name, data[:-1] + bytes([data[-1] ^ 1]) if name == "runs/beta/best.safetensors" else data, None)]


def missing_manifest(name, data):
    return [] if name == "bundle.json" else [(name, data, None)]


def duplicate_entry(name, data):
    return [(name, data, None)] * (2 if name == "runs/alpha/summary.json" else 1)


@pytest.mark.parametrize(
    "change, entry, words",
    [
        (zip_slip, "../../outside.txt", "points outside the bundle"),
        (absolute_entry, "/tmp/evil.txt", "points outside the bundle"),
        (symlink_entry, "runs/alpha/train.log", "symbolic link"),
        (unexpected_file, "runs/alpha/resume.pt", "unexpected file"),
        (tampered_checkpoint, "runs/beta/best.safetensors", "does not match its sha256"),
        (missing_manifest, "bundle.json", "no manifest"),
        (duplicate_entry, "runs/alpha/summary.json", "appears twice"),
    ],
    ids=["zip-slip", "absolute", "symlink", "unexpected-file", "hash-mismatch", "no-manifest", "duplicate"],
)
def test_a_hostile_bundle_is_refused_naming_the_entry_and_writes_nothing(bundle, tmp_path, change, entry, words):
    import warnings

    runs_dir = tmp_path / "runs"
    existing = fake_run(runs_dir, "mine")
    before = folder_state(runs_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we write on purpose
        hostile = rewrite_zip(bundle, tmp_path / "hostile.zip", change)
    with pytest.raises(BundleError) as caught:
        import_comparison(hostile, runs_dir)
    assert f"entry '{entry}'" in str(caught.value) and words in str(caught.value)
    assert " — " in str(caught.value)  # and says what to do
    assert folder_state(runs_dir) == before and sorted(p.name for p in runs_dir.iterdir()) == [existing.run_id]
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("bad_id", ["../escape", "/etc", "..", "a/b", "", None])
def test_a_bundle_naming_an_invalid_run_id_is_refused(bundle, tmp_path, bad_id):
    manifest = manifest_of(bundle)
    manifest["runs"][0]["id"] = bad_id
    hostile = rewrite_zip(bundle, tmp_path / "hostile.zip", with_manifest(manifest))
    with pytest.raises(RunError, match="not a valid run name"):
        import_comparison(hostile, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # refused before the runs folder was even made


def test_a_file_the_manifest_lists_but_a_bundle_never_holds_is_refused(bundle, tmp_path):
    manifest = manifest_of(bundle)
    manifest["files"]["runs/alpha/.bashrc"] = {"sha256": "0" * 64, "bytes": 1}
    hostile = rewrite_zip(bundle, tmp_path / "hostile.zip", with_manifest(manifest))
    with pytest.raises(BundleError, match=r"entry 'runs/alpha/\.bashrc'.*does not hold"):
        import_comparison(hostile, tmp_path / "runs")


def test_damaged_settings_in_a_bundle_are_refused(tmp_path):
    run = fake_run(tmp_path / "home", "odd")
    config = json.loads((run.path / "config.json").read_text())
    config["epochs"] = "many"
    (run.path / "config.json").write_text(json.dumps(config))
    # export refuses it too; build the bundle by hand from a healthy export with the config swapped in
    healthy = fake_run(tmp_path / "home2", "odd")
    bundle = export_comparison([healthy], tmp_path / "b.zip")
    manifest = manifest_of(bundle)
    data = (run.path / "config.json").read_bytes()
    manifest["files"]["runs/odd/config.json"]["sha256"] = hashlib.sha256(data).hexdigest()

    def change(name, old):
        if name == "bundle.json":
            return [(name, json.dumps(manifest).encode(), None)]
        return [(name, data if name == "runs/odd/config.json" else old, None)]

    with pytest.raises(BundleError, match=r"entry 'runs/odd/config.json'.*epochs"):
        import_comparison(rewrite_zip(bundle, tmp_path / "h.zip", change), tmp_path / "runs")
    with pytest.raises(RunError, match="config.json"):
        export_comparison([run], tmp_path / "c.zip")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "comparison.zip"
    fake.write_text("not a zip")
    with pytest.raises(BundleError, match="not a zip file"):
        import_comparison(fake, tmp_path / "runs")


# -- real runs --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile_dataset(tmp_path_factory) -> Path:
    """Three classes, one named like an HTML injection, in a folder whose name holds markup too."""
    root = write_images_masks(tmp_path_factory.mktemp("takehome") / "data&<u>co", count=12, class_file=False)
    (root / "classes.txt").write_text(f"background\n{HOSTILE_CLASS}\ndisc\n")
    return root


@pytest.fixture(scope="module")
def two_runs(hostile_dataset, tmp_path_factory) -> list[Run]:
    runs_dir = tmp_path_factory.mktemp("takehome-runs")
    return [
        train(TrainConfig(data=str(hostile_dataset), strategy=s, run_name=f"tiny-{s}", **TINY), runs_dir)
        for s in ("scratch", "parameter")
    ]


@pytest.mark.slow
def test_imported_runs_show_the_same_numbers_and_predict_the_same_pixels(two_runs, hostile_dataset, tmp_path):
    from segcore.compare.stats import summary_row

    bundle = export_comparison(two_runs, tmp_path / "take-home.zip", sheet_png=b"\x89PNG")
    imported = import_comparison(bundle, tmp_path / "empty-runs")
    finished = [
        r for r in list_runs(tmp_path / "empty-runs") if r.state == "done" and r.has_checkpoint() and not r.broken
    ]
    assert sorted(r.run_id for r in finished) == sorted(r.run_id for r in two_runs)  # what Compare lists
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for original, copy in zip(two_runs, imported):
        assert copy.summary() == original.summary()
        assert summary_row(copy) == summary_row(original)  # Compare's table, s to 90 % included
        imported_model, original_model = Predictor(copy, device="cpu"), Predictor(original, device="cpu")
        assert np.array_equal(imported_model.predict(image), original_model.predict(image))
        assert torch.equal(
            imported_model.logits([image]), original_model.logits([image])
        )  # bit for bit, not just argmax


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.slow
def test_the_html_report_is_self_contained_inert_and_complete(two_runs, hostile_dataset, tmp_path):
    from segcore.compare.report_html import comparison_report

    data = load_dataset(str(hostile_dataset))
    rows = len(data.pairs("val"))
    assert rows >= 2
    report = comparison_report(two_runs, data, count=rows + 5)  # asking for more images than there are
    parser = _Collector()
    parser.feed(report)
    parser.close()
    grid = [i for i in parser.images if i["src"].startswith("data:image/png;base64,")]
    assert len(grid) == len(parser.images) == rows * (2 + len(two_runs))
    assert report.count('<img src="data:image/png;base64,') == rows * (2 + len(two_runs))
    for run in two_runs:
        assert f"{run.summary()['miou']:.3f}" in report
        assert f"{run.summary()['pixel_accuracy']:.3f}" in report
    assert "http://" not in report and "https://" not in report
    assert "<script" not in report.lower()
    assert HOSTILE_CLASS not in report and "&lt;img src=x onerror=alert(1)&gt;" in report
    assert "data&<u>co" not in report and "data&amp;&lt;u&gt;co" in report  # title, heading, settings
    assert HOSTILE_CLASS in "".join(parser.text)  # shown to the reader as text
    assert parser.tags.count("svg") == 3 and parser.tags.count("polyline") >= 3
    assert "s to 90 % of best" in report and "IoU per class" in report and "Settings" in report
    assert html.escape(str(hostile_dataset.parent)) not in report  # the dataset by its name, never the server's folder
    epochs_row = re.search(r"<td>epochs</td>(.*?)</tr>", report).group(1)
    assert all(f"<td>{run.summary()['epochs']}</td>" in epochs_row for run in two_runs)  # as trained, as in the table
    (tmp_path / "report.html").write_text(report)


@pytest.mark.slow
def test_the_report_renders_offline_in_chromium(two_runs, hostile_dataset):
    import shutil as which_tool

    chromium = which_tool.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from segcore.compare.report_html import comparison_report

    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page_file = artifacts / "report.html"
    page_file.write_text(comparison_report(two_runs, load_dataset(str(hostile_dataset)), count=3))
    requested = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})

        def block(route):
            requested.append(route.request.url)
            route.abort()

        context.route(re.compile(r"^(?!file:|data:).*"), block)
        page = context.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        curves = page.eval_on_selector_all("svg.chart polyline.curve", "lines => lines.length")
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        browser.close()
    assert widths and all(w > 0 for w in widths)
    assert curves >= 3 and not requested and not dialogs


@pytest.mark.slow
def test_worst_images_are_sorted_by_that_class_iou_and_match_a_hand_count(two_runs, hostile_dataset):
    from segcore.compare.worst_images import worst_images_for_class

    data = load_dataset(str(hostile_dataset))
    predictors = [Predictor(r, device="cpu") for r in two_runs]
    for class_index in (0, 1, 2):
        worst = worst_images_for_class(predictors, data, class_index, count=10)
        means = [entry["mean_iou"] for entry in worst]
        assert means == sorted(means)
        images = data.load("val", predictors[0].size)
        for entry in worst:
            picture = Image.fromarray(images.images[entry["index"]].permute(1, 2, 0).numpy())
            truth = images.masks[entry["index"]].numpy()
            assert entry["name"] == images.names[entry["index"]]
            hand = []
            for predictor in predictors:
                prediction = predictor.predict(picture)
                inter = np.logical_and(prediction == class_index, truth == class_index).sum()
                union = np.logical_or(prediction == class_index, truth == class_index).sum()
                hand.append(None if union == 0 else inter / union)
            assert entry["iou"] == pytest.approx(hand)
            assert entry["mean_iou"] == pytest.approx(np.mean([v for v in hand if v is not None]))
            assert len(entry["tiles"]) == 2 + len(predictors) and entry["tiles"][0].shape == (64, 64, 3)
        shown = {e["index"] for e in worst}  # every image left out had the class nowhere
        for index in set(range(len(images))) - shown:
            picture = Image.fromarray(images.images[index].permute(1, 2, 0).numpy())
            assert not (images.masks[index].numpy() == class_index).any()
            assert all(not (p.predict(picture) == class_index).any() for p in predictors)


@pytest.mark.slow
def test_a_class_absent_from_every_image_gives_no_worst_images(two_runs, hostile_dataset):
    from segcore.compare.worst_images import worst_images_for_class

    # a fourth class no mask holds and no model can predict (their heads have three outputs)
    data = load_dataset(str(hostile_dataset), class_names=["background", HOSTILE_CLASS, "disc", "unicorn"])
    predictors = []
    for run in two_runs:
        predictor = Predictor(run, device="cpu")
        predictor.classes, predictor.colours = [*predictor.classes, "unicorn"], [*predictor.colours, (255, 255, 255)]
        predictors.append(predictor)
    assert worst_images_for_class(predictors, data, 3) == []
    assert worst_images_for_class(predictors, data, 1, count=2)  # the same call finds a present class
    with pytest.raises(RunError, match="does not exist"):
        worst_images_for_class(predictors, data, 99)


@pytest.mark.parametrize("xs, ys", [([1, 12], [1.3, 0.2]), ([0, 45.3], [0.1, 0.7]), ([3, 3], [0.5, 0.5])])
def test_every_curve_point_is_drawn_inside_the_chart(xs, ys):
    from segcore.compare.report_html import svg_chart

    svg = svg_chart("t", "x", "y", [("<A>", "#123456", list(zip(map(float, xs), map(float, ys))))])
    frame = re.search(r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', svg)
    left, top, width, height = map(float, frame.groups())
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    for point in points:
        x, y = map(float, point.split(","))
        assert left <= x <= left + width and top <= y <= top + height, point
    assert "&lt;A&gt;" in svg and "<A>" not in svg
