"""The command line as a scripted user runs it, and run folders as another process sees them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from segcore import Predictor, Run
from segcore.base.atomic import atomic_write_json
from segcore.runs.writer import write_judged_status

pytestmark = pytest.mark.slow  # every test here runs the CLI in its own process or trains through it

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, runs_dir, check=True, **kwargs):
    result = subprocess.run(
        [sys.executable, "-m", "segcore", "--runs-dir", str(runs_dir), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_dataset):
    runs = tmp_path_factory.mktemp("cli-runs")
    for strategy in ("feature", "scratch"):
        cli(
            "train",
            "--data",
            train_dataset,
            "--strategy",
            strategy,
            "--epochs",
            2,
            "--min-steps",
            0,
            "--size",
            64,
            "--batch-size",
            4,
            "--name",
            f"cli-{strategy}",
            runs_dir=runs,
        )
    return runs


def test_train_prints_epoch_metrics_and_writes_a_complete_run_folder(trained):
    run = Run.open(trained, "cli-feature")
    assert run.state == "done"
    for name in (
        "config.json",
        "metrics.jsonl",
        "status.json",
        "best.safetensors",
        "best.json",
        "train.log",
        "summary.json",
    ):
        assert (run.path / name).is_file(), name
    assert run.config["strategy"] == "feature" and run.config["height"] == 64
    meta = json.loads((run.path / "best.json").read_text())
    assert meta["backbone"] == "tf_efficientnet_lite0" and meta["classes"] == ["background", "square", "disc"]
    assert meta["mean"] == [0.5, 0.5, 0.5]


def test_eval_writes_per_class_metrics_as_json(trained, tmp_path):
    out = tmp_path / "metrics.json"
    result = cli("eval", "cli-feature", "--json", out, runs_dir=trained)
    assert "mIoU" in result.stdout and "mean IoU over the classes present" in result.stdout
    metrics = json.loads(out.read_text())
    assert set(metrics["per_class_iou"]) == {"background", "square", "disc"}
    assert metrics["miou"] == pytest.approx(Run.open(trained, "cli-feature").summary()["miou"], abs=1e-6)


def test_predict_writes_class_maps_and_overlays_at_the_image_size(trained, tmp_path, train_dataset):
    image = train_dataset / "images" / "img_000.png"
    big = tmp_path / "big photo.png"
    Image.open(image).resize((100, 80)).save(big)
    cli("predict", "cli-feature", big, "--out", tmp_path / "pred", runs_dir=trained)
    class_map = np.asarray(Image.open(tmp_path / "pred" / "big photo_classes.png"))
    assert class_map.shape == (80, 100) and class_map.max() < 3
    assert (tmp_path / "pred" / "big photo_overlay.png").is_file()


def test_compare_renders_one_column_per_run(trained, tmp_path):
    out = tmp_path / "cmp.png"
    cli("compare", "cli-feature", "cli-scratch", "--count", 3, "--out", out, runs_dir=trained)
    sheet = Image.open(out)
    assert sheet.height > 3 * 64 and sheet.width >= 4 * 64


def test_export_writes_onnx_that_reproduces_pytorch(trained, tmp_path):
    result = cli("export", "cli-scratch", "--out", tmp_path / "export", runs_dir=trained)
    assert "onnx_max_abs_diff" in result.stdout
    predictor = Predictor(Run.open(trained, "cli-scratch"))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    session = onnxruntime.InferenceSession(
        str(tmp_path / "export" / "cli-scratch.onnx"), providers=["CPUExecutionProvider"]
    )
    import torch

    with torch.no_grad():
        expected = predictor.model(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"image": x})[0] - expected).max() < 1e-3


def test_bad_dataset_gives_a_message_and_exit_code_2(tmp_path):
    result = cli("train", "--data", tmp_path / "nowhere", runs_dir=tmp_path / "runs", check=False)
    assert result.returncode == 2
    assert "nowhere: no such file or folder" in result.stderr and "Traceback" not in result.stderr


def test_run_names_cannot_escape_the_runs_folder(trained):
    result = cli("eval", "../../etc", runs_dir=trained, check=False)
    assert result.returncode == 2 and "not a valid run name" in result.stderr


def test_backbones_and_datasets_list(tmp_path):
    backbones = cli("backbones", runs_dir=tmp_path).stdout
    assert "tf_efficientnet_lite0" in backbones and "bundled offline" in backbones
    report = cli("datasets", "builtin:shapes", runs_dir=tmp_path).stdout
    assert "layout" in report and "circle" in report and "ignore index" in report


def test_help_documents_every_training_option(tmp_path):
    text = cli("train", "--help", runs_dir=tmp_path).stdout
    for option in (
        "--size",
        "--batch-size",
        "--epochs",
        "--lr",
        "--seed",
        "--ignore-index",
        "--train-size",
        "--name",
        "--strategy",
        "--regularizer",
        "--source-run",
        "--train-bn",
        "--freeze-epochs",
    ):
        assert option in text


def test_a_run_folder_is_readable_while_training_and_after_a_kill(tmp_path, train_dataset):
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segcore",
            "--runs-dir",
            str(runs),
            "train",
            "--data",
            str(train_dataset),
            "--strategy",
            "scratch",
            "--epochs",
            "200",
            "--size",
            "64",
            "--batch-size",
            "2",
            "--name",
            "long",
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            # an epoch's line is written just before its checkpoint: wait for both (a loaded machine is slow)
            if (runs / "long" / "metrics.jsonl").exists() and len(Run(runs / "long").epochs()) >= 1:
                if Run(runs / "long").has_checkpoint():
                    break
            time.sleep(0.3)
        run = Run.open(runs, "long")
        assert run.state == "running" and run.config["epochs"] == 200
        assert run.steps() and run.epochs()[0]["epoch"] == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run = Run.open(runs, "long")
    assert run.state == "failed" and "ended without finishing" in run.status["reason"]
    write_judged_status(run)
    assert json.loads((run.path / "status.json").read_text())["state"] == "failed"
    for line in (run.path / "metrics.jsonl").read_text().splitlines()[:-1]:
        json.loads(line)  # every complete line parses
    assert run.has_checkpoint()
    assert Predictor(run).meta["epoch"] >= 1


def test_atomic_json_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"state": "done"})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"state": "running"})
    assert json.loads(path.read_text()) == {"state": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
