"""Run folders on a shared server are untrusted input: damaged files never break listing, status, progress or the
queue; the run reads broken with the file and the fault; a healthy queued run next to it still starts."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from segcore import RunError, TrainConfig
from segcore.base.errors import DatasetError
from segcore.jobs.queue import JobQueue
from segcore.runs.progress import run_progress
from segcore.runs.run import Run, list_runs
from segcore.runs.run_data import load_run_dataset

SEGCORE = Path(__file__).resolve().parents[1] / "segcore"
POSIX_ONLY = {"fcntl", "resource", "termios", "pwd", "grp"}


def make_run(runs: Path, run_id: str, state: str = "done", created: float | None = None, **config) -> Path:
    """A complete, healthy run folder written by hand: config, status, two metrics lines, a best checkpoint."""
    path = runs / run_id
    path.mkdir(parents=True)
    settings = TrainConfig(data="builtin:shapes", epochs=1, **config).to_dict()
    (path / "config.json").write_text(json.dumps({**settings, "created": created or time.time(), "run_id": run_id}))
    (path / "status.json").write_text(json.dumps({"state": state, "queued": created or time.time()}))
    (path / "metrics.jsonl").write_text(
        json.dumps({"kind": "step", "epoch": 1, "epochs": 1, "step": 1, "total_steps": 2, "loss": 1.0})
        + "\n"
        + json.dumps({"kind": "epoch", "epoch": 1, "epochs": 1, "miou": 0.5})
        + "\n"
    )
    (path / "best.safetensors").write_bytes(save({"weight": torch.zeros(4, 4)}))
    (path / "best.json").write_text(
        json.dumps(
            {"epoch": 1, "miou": 0.5, "backbone": "tf_efficientnet_lite0", "num_classes": 3, "classes": ["a", "b", "c"]}
        )
    )
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


# (name, how to damage the folder, the file the problem must name, whether the run can no longer be started)
MALFORMATIONS = [
    ("binary config", lambda p: (p / "config.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), "config.json", True),
    ("config is a list", lambda p: (p / "config.json").write_text("[]"), "config.json", True),
    ("config is null", lambda p: (p / "config.json").write_text("null"), "config.json", True),
    (
        "created is a word",
        lambda p: (p / "config.json").write_text(
            json.dumps({**json.loads((p / "config.json").read_text()), "created": "yesterday"})
        ),
        "config.json",
        True,
    ),
    (
        "a setting of the wrong type",
        lambda p: (p / "config.json").write_text(
            json.dumps({**json.loads((p / "config.json").read_text()), "epochs": "many"})
        ),
        "config.json",
        True,
    ),
    ("status is a list", lambda p: (p / "status.json").write_text('["queued"]'), "status.json", True),
    (
        "status names no known state",
        lambda p: (p / "status.json").write_text('{"state": "sleeping"}'),
        "status.json",
        True,
    ),
    ("metrics line is a list", lambda p: (p / "metrics.jsonl").open("a").write("[1]\n"), "metrics.jsonl", False),
    ("metrics line is a string", lambda p: (p / "metrics.jsonl").open("a").write('"x"\n'), "metrics.jsonl", False),
    ("truncated best checkpoint", lambda p: truncate(p / "best.safetensors"), "best.safetensors", False),
]


@pytest.mark.parametrize("name, damage, file, unstartable", MALFORMATIONS, ids=[m[0] for m in MALFORMATIONS])
def test_a_damaged_run_folder_breaks_nothing_and_says_what_is_wrong(
    tmp_path, monkeypatch, name, damage, file, unstartable
):
    runs = tmp_path / "runs"
    broken = make_run(runs, "broken", state="queued", created=time.time() - 60)
    damage(broken)
    make_run(runs, "healthy", state="queued")
    make_run(runs, "old-and-done", state="done", created=1.0)

    listed = list_runs(runs)
    assert sorted(r.run_id for r in listed) == ["broken", "healthy", "old-and-done"]
    run = Run(broken)
    assert run.broken and file in run.problem and "run broken" in run.problem
    assert not Run(runs / "healthy").broken and Run(runs / "healthy").problem is None
    assert isinstance(run.config, dict) and isinstance(run.status, dict) and isinstance(run.summary(), dict)
    assert all(isinstance(r, dict) for r in run.metrics())
    progress = run_progress(run)
    assert progress["run"] == "broken" and 0.0 <= progress["fraction"] <= 1.0
    if file == "best.safetensors":
        assert not run.has_checkpoint() and run.best_info is None
    else:
        assert run.has_checkpoint()

    started_runs = []
    monkeypatch.setattr(JobQueue, "_start", lambda queue, r: started_runs.append(r.run_id))
    queue = JobQueue(runs, max_running=1 if unstartable else 2)
    queue.pump()
    assert "healthy" in started_runs  # the healthy run is not held up by the damaged one
    if unstartable:
        assert started_runs == ["healthy"]
        assert run.state == "failed" and file in run.status["reason"]
        on_disk = json.loads((broken / "status.json").read_text())  # settled on disk, as a readable status
        assert on_disk["state"] == "failed" and file in on_disk["reason"]
        queue.pump()  # and again: nothing raises on the second pass either


def test_list_runs_sorts_oldest_first_even_with_bad_created_values(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "newer", created=2000.0)
    make_run(runs, "older", created=1000.0)
    odd = make_run(runs, "odd", created=1500.0)
    (odd / "config.json").write_text(json.dumps({"created": "yesterday"}))
    (runs / "not-a-run").mkdir()  # no config.json: not listed
    assert [r.run_id for r in list_runs(runs)] == ["odd", "older", "newer"]
    assert list_runs(tmp_path / "nowhere") == []


def test_typed_records_of_a_healthy_run(tmp_path):
    path = make_run(tmp_path, "fine", ignore_index=11, seed=4)
    (path / "summary.json").write_text(json.dumps({"miou": 0.5, "best_epoch": 1, "strategy": "feature"}))
    run = Run(path)
    assert run.train_config.ignore_index == 11 and run.train_config.seed == 4
    assert run.status_record.state == "done" and run.summary_record.miou == 0.5 and run.summary_record.best_epoch == 1
    assert run.best_info.epoch == 1 and run.best_info.classes == ["a", "b", "c"]


def test_a_damaged_config_cannot_be_trained_or_resumed_and_says_why(tmp_path):
    runs = tmp_path / "runs"
    path = make_run(runs, "bad", state="failed")
    (path / "config.json").write_text("null")
    with pytest.raises(RunError, match="config.json holds null, not an object of settings"):
        Run(path).train_config
    with pytest.raises(RunError, match="cannot be resumed: config.json holds null"):
        JobQueue(runs).resume("bad")


def test_a_status_of_the_wrong_shape_reads_failed_not_queued_or_running(tmp_path):
    path = make_run(tmp_path, "odd", state="running")
    (path / "status.json").write_text(json.dumps({"state": "running", "pid": "abc", "started": "yesterday"}))
    run = Run(path)
    assert run.state == "failed" and "names no training process" in run.status["reason"]
    assert run.status_record.pid is None and run.status_record.started is None


def test_a_metrics_line_still_being_written_is_not_a_problem(tmp_path):
    path = make_run(tmp_path, "live", state="running")
    with open(path / "metrics.jsonl", "a") as stream:
        stream.write('{"kind": "step", "ste')  # the writer has not finished this line yet
    run = Run(path)
    assert len(run.metrics()) == 2 and run.problem is None


def test_load_run_dataset_uses_the_runs_own_settings(tmp_path, small_dataset):
    path = make_run(tmp_path, "trained", ignore_index=7, val_fraction=0.5, seed=3)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "data": str(small_dataset)}))
    data = load_run_dataset(Run(path), split="val")
    assert data.ignore_index == 7 and len(data.pairs("val")) == 6  # 12 pairs, half for validation
    other_seed = load_run_dataset(Run(path))
    assert [p.name for p in other_seed.pairs("val")] == [p.name for p in data.pairs("val")]
    with pytest.raises(DatasetError, match="no 'test' split"):
        load_run_dataset(Run(path), split="test")


def test_no_segcore_module_imports_a_posix_only_module_at_the_top():
    offenders = []
    for module in sorted(SEGCORE.rglob("*.py")):
        for node in ast.parse(module.read_text()).body:  # module level only: a guarded local import is fine
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{module.relative_to(SEGCORE.parent)}: {n}" for n in names if n.split(".")[0] in POSIX_ONLY]
    assert not offenders, "POSIX-only imports at module level (breaks Windows): " + ", ".join(offenders)
