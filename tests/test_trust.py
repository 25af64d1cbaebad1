"""A name is not a key: sign-in, owner checks in the engine, the PIN's limits, the roots rule on every path, bounded
reads of run files, damaged imported fields, quotas and a rostered class's fair share."""

from __future__ import annotations

import json
import time
import tracemalloc
import zipfile
from pathlib import Path

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from segcore import TrainConfig
from segcore.base.errors import ConfigError, DatasetError, LessonError, RunError
from segcore.jobs import accounts as accounts_module
from segcore.jobs import classroom
from segcore.jobs.accounts import Accounts, SignInError
from segcore.jobs.names import WorkspaceError
from segcore.jobs.queue import JobQueue
from segcore.runs.liveness import judge_running
from segcore.runs.progress import run_progress
from segcore.runs.run import Run, list_runs

from .test_app import ROOT, open_page

TINY = dict(epochs=1, min_steps=0, height=64, width=64, batch_size=4)


@pytest.fixture(autouse=True)
def fresh_limits():
    for limiter in (
        accounts_module.GUESSES,
        accounts_module.SERVER_GUESSES,
        classroom.PIN_GUESSES,
        classroom.SERVER_PIN_GUESSES,
    ):
        limiter.forget_all()


# -- 1. sign-in ------------------------------------------------------------------------------------------------
def test_a_second_session_that_only_knows_a_name_cannot_see_or_act_on_that_students_runs(runs_dir, train_dataset):
    alice = open_page("model", "Alice")
    run = JobQueue(runs_dir, max_running=0).submit(TrainConfig(data=str(train_dataset), **TINY), owner="Alice")
    assert alice.session_state["owner"] == "Alice"
    stranger = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    stranger.query_params["student"] = "Alice"  # the old way in: typing her name into the address
    stranger.run()
    stranger.switch_page("views/training.py").run()
    assert "Welcome" in stranger.title[0].value and "owner" not in stranger.session_state
    assert not any(run.run_id in str(m.value) for m in stranger.markdown)
    stranger.text_input(key="signin_name").set_value("alice")  # same person, any case
    stranger.button[0].click().run()
    stranger.text_input(key="signin_secret").set_value("a guess")
    stranger.button[0].click().run()
    assert stranger.error and "owner" not in stranger.session_state
    with pytest.raises(RunError, match="belongs to another session, another student"):
        JobQueue(runs_dir).cancel(run.run_id, owner="Mallory")


def test_a_returning_student_signs_in_with_the_passphrase_and_a_wrong_one_is_refused(runs_dir):
    accounts = Accounts(runs_dir)
    first = accounts.register("Ada Lovelace", None, "analytical engine")
    assert accounts.session(first).owner == "Ada Lovelace"
    with pytest.raises(SignInError, match="do not match"):
        accounts.sign_in("ada lovelace", None, "difference engine")
    again = accounts.sign_in("ADA LOVELACE", None, "analytical engine")
    assert accounts.session(again).owner == "Ada Lovelace"  # the name as first typed
    accounts.end_session(again)
    assert accounts.session(again) is None
    stored = (runs_dir / ".accounts.json").read_text()
    assert "analytical engine" not in stored and again not in stored  # only hashes


@pytest.mark.parametrize(
    "look_alike, refusal",
    [
        ("аlice", "mixes letters of the Cyrillic and Latin alphabets"),  # Cyrillic а
        ("ａｌｉｃｅ", "is taken"),  # full-width: the same name
        ("ALICE", "is taken"),
        ("Alice\u200b", "control or invisible"),
    ],
)
def test_look_alike_names_cannot_stand_beside_each_other(runs_dir, look_alike, refusal):
    accounts = Accounts(runs_dir)
    accounts.register("Alice", None, "alices secret")
    with pytest.raises(WorkspaceError, match=refusal):
        accounts.register(look_alike, None, "another secret")
    assert [a.owner for a in accounts.all()] == ["Alice"]


def test_a_class_not_on_the_server_is_refused(runs_dir, monkeypatch):
    monkeypatch.setenv("SEGCORE_CLASSES", "5A,5B")
    assert classroom.workspace_id("Alice", "5A") == "5A/Alice"
    with pytest.raises(WorkspaceError, match="not a class on this server"):
        classroom.workspace_id("Alice", "9Z")
    with pytest.raises(WorkspaceError, match="choose your class"):
        classroom.workspace_id("Alice", None)


def test_a_teachers_code_resets_a_forgotten_passphrase_and_ends_the_old_sessions(runs_dir):
    accounts = Accounts(runs_dir)
    old = accounts.register("Bob", None, "bobs secret")
    code = accounts.reset(accounts.get("Bob").key)
    assert accounts.session(old) is None  # whoever held the old session is out
    with pytest.raises(SignInError):
        accounts.sign_in("Bob", None, "bobs secret")
    with pytest.raises(SignInError, match="not the code"):
        accounts.redeem_code("Bob", None, "WRONG1", "new secret")
    token = accounts.redeem_code("Bob", None, code.lower(), "a new secret")
    assert accounts.session(token).owner == "Bob"
    accounts.remove(accounts.get("Bob").key)
    assert accounts.session(token) is None and accounts.get("Bob") is None


# -- 2. owner checks in the engine ----------------------------------------------------------------------------
def test_rename_cancel_resume_delete_and_export_of_a_classmates_work_are_refused_in_segcore(runs_dir, train_dataset):
    from segcore.compare.bundle import export_comparison
    from segcore.jobs.workspace import delete_workspace

    queue = JobQueue(runs_dir, max_running=0)
    run = queue.submit(TrainConfig(data=str(train_dataset), **TINY), group="alices", owner="Alice", start=False)
    for attempt in (
        lambda: queue.rename("runs", run.run_id, "<b>mine now</b>", owner="Bob"),
        lambda: queue.rename("comparisons", "alices", "mine", owner="Bob"),
        lambda: queue.cancel(run.run_id, owner="Bob"),
        lambda: queue.resume(run.run_id, owner="Bob"),
        lambda: export_comparison([run], runs_dir.parent / "b.zip", owner="Bob"),
    ):
        with pytest.raises(RunError, match="another student"):
            attempt()
    assert delete_workspace(runs_dir, "Bob", list_runs(runs_dir)) == [] and run.path.is_dir()
    assert queue.rename("comparisons", "alices", "Alice's first", owner="Alice") == "Alice's first"
    assert queue.cancel(run.run_id, teacher=True) == "cancelled"  # the teacher may act on any run


# -- 3. the PIN ----------------------------------------------------------------------------------------------
def test_the_sixth_wrong_pin_waits_and_the_generated_pin_has_six_digits(monkeypatch):
    monkeypatch.setenv("SEGCORE_TEACHER_PIN", "246813")
    for _ in range(5):
        assert classroom.pin_matches("000000", "session-1") is False
    with pytest.raises(SignInError, match="too many wrong PINs: wait"):
        classroom.pin_matches("246813", "session-1")  # even the right one waits now
    assert classroom.pin_matches("246813", "session-2") is True  # another session is not locked out
    monkeypatch.delenv("SEGCORE_TEACHER_PIN")
    assert len(classroom.teacher_pin()) >= 6 and classroom.teacher_pin().isdigit()


def test_a_flood_of_sessions_guessing_the_pin_is_slowed_across_the_server(monkeypatch):
    monkeypatch.setenv("SEGCORE_TEACHER_PIN", "246813")
    for session in range(20):
        classroom.pin_matches("111111", f"guesser-{session}")
    with pytest.raises(SignInError, match="wait"):
        classroom.pin_matches("111111", "guesser-new")


# -- 4. one roots rule ---------------------------------------------------------------------------------------
def test_paths_outside_the_roots_are_refused_from_lessons_runs_and_the_cli(tmp_path, monkeypatch, small_dataset):
    from segcore.cli import main
    from segcore.teaching.lesson import Lesson

    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("SEGCORE_DATA_ROOTS", str(shared))
    lesson = Lesson(title="Elsewhere", instructions="", data_source=str(small_dataset), strategies=["feature"])
    with pytest.raises(LessonError, match="SEGCORE_DATA_ROOTS"):
        lesson.check()
    with pytest.raises(ConfigError, match="SEGCORE_DATA_ROOTS"):
        TrainConfig(data=str(small_dataset), **TINY).validate()
    with pytest.raises(ConfigError, match="SEGCORE_DATA_ROOTS"):
        TrainConfig(strategy="structure", source_run="/etc", **TINY).validate()
    from segcore import load_dataset

    with pytest.raises(DatasetError, match="SEGCORE_DATA_ROOTS"):
        load_dataset(small_dataset)
    runs = tmp_path / "runs"
    code = main(["--runs-dir", str(runs), "datasets", str(small_dataset)])
    assert code == 2
    assert main(["--runs-dir", str(runs), "datasets", "builtin:shapes"]) == 0  # the server's own data


def test_control_characters_in_a_path_are_refused_with_a_message():
    from segcore import load_dataset

    with pytest.raises(DatasetError, match="control character"):
        load_dataset("/data/camvid\0/../etc")
    with pytest.raises(ConfigError, match="control character"):
        TrainConfig(data="/data/cam\nvid", **TINY).validate()


# -- 5. bounded reads, damaged fields -------------------------------------------------------------------------
def test_a_300_mb_metrics_file_leaves_a_progress_read_fast_and_small(tmp_path):
    run = tmp_path / "huge"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**TrainConfig(**TINY).to_dict(), "created": time.time()}))
    (run / "status.json").write_text(json.dumps({"state": "done", "miou": 0.5}))
    line = json.dumps({"kind": "step", "epoch": 1, "step": 1, "loss": 0.5, "padding": "x" * 900}) + "\n"
    with open(run / "metrics.jsonl", "w") as stream:
        chunk = line * 1000
        for _ in range(300 * 1024**2 // len(chunk) + 1):
            stream.write(chunk)
    assert (run / "metrics.jsonl").stat().st_size >= 300 * 1024**2
    reading = psutil.Process().io_counters()
    tracemalloc.start()
    progress = run_progress(Run(run))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    read = psutil.Process().io_counters().read_chars - reading.read_chars
    assert progress["state"] == "done" and progress["best_miou"] == 0.5
    # a constant amount read (the time follows from it: bench/README.md, not a timing assert here)
    assert read < 1024**2, read
    assert peak < 50 * 1024**2, peak


def test_a_damaged_imported_field_is_refused_by_name_and_a_damaged_run_still_reports(tmp_path, small_dataset):
    from segcore import train
    from segcore.compare.bundle import export_comparison, import_comparison
    from segcore.compare.report_html import comparison_report
    from segcore.runs.run_data import load_run_dataset

    config = TrainConfig(data=str(small_dataset), backbone="test_efficientnet", strategy="scratch", **TINY)
    run = train(config, tmp_path / "home")
    bundle = export_comparison([run], tmp_path / "b.zip")
    for entry, change, words in [
        ("metrics.jsonl", lambda t: t.replace('"step": 1,', '"step": "one",', 1), "'step' is 'one', not a count"),
        ("best.json", lambda t: json.dumps({**json.loads(t), "colours": [["red", 0, 0]] * 3}), "not a colour"),
    ]:
        hostile = tmp_path / f"hostile-{entry}.zip"
        _rewrite(bundle, hostile, f"runs/{run.run_id}/{entry}", change)
        with pytest.raises(RunError, match=f"{entry}.*{words}"):
            import_comparison(hostile, tmp_path / "runs")
    # a run damaged after the fact: named on the page and in the report, which still renders
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace('"step": 1,', '"step": "one",')
    (run.path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    meta = json.loads((run.path / "best.json").read_text())
    meta["colours"][0] = ["red", 0, 0]
    (run.path / "best.json").write_text(json.dumps(meta))
    assert "metrics.jsonl line 1" in run.problem
    report = comparison_report([run], load_run_dataset(run, "val"), count=1)
    assert "<h2>Problems</h2>" in report and "metrics.jsonl line 1" in report


def _rewrite(source: Path, target: Path, name: str, change) -> None:
    """A bundle whose entry `name` was changed, its manifest's hash updated to match (a careful forger)."""
    import hashlib

    with zipfile.ZipFile(source) as old:
        entries = {info.filename: old.read(info) for info in old.infolist()}
    entries[name] = change(entries[name].decode()).encode()
    manifest = json.loads(entries["bundle.json"])
    manifest["files"][name] = {"sha256": hashlib.sha256(entries[name]).hexdigest(), "bytes": len(entries[name])}
    entries["bundle.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w") as new:
        for entry, data in entries.items():
            new.writestr(entry, data)


# -- 6. quotas -----------------------------------------------------------------------------------------------
def test_an_upload_over_the_quota_is_refused_with_used_and_allowed(runs_dir, monkeypatch, tmp_path):
    from segcore.jobs.quotas import check_upload

    monkeypatch.setenv("SEGCORE_QUOTA_MB", "1")
    small = [("a/images/x.png", b"x" * 1000)]
    check_upload("Alice", runs_dir, [], small)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ds/images/big.png", b"\0" * (3 * 1024**2))  # 3 MiB unpacked from a few KiB
    with pytest.raises(DatasetError, match=r"needs 3 MiB \(unpacked\) and you have used 0 MiB of 1 MiB"):
        check_upload("Alice", runs_dir, [], [("bomb.zip", archive.read_bytes())])


# -- 7. fairness per person ----------------------------------------------------------------------------------
def test_an_imposter_with_ten_names_cannot_pass_a_rostered_classmate(runs_dir, monkeypatch, tmp_path, train_dataset):
    roster = tmp_path / "roster.txt"
    roster.write_text("Mallory\nBob\n")
    monkeypatch.setenv("SEGCORE_ROSTER", str(roster))
    accounts = Accounts(runs_dir)
    accounts.register("Mallory", None, "mallorys secret")
    accounts.register("bob", None, "bobs secret")
    for n in range(10):
        with pytest.raises(SignInError, match="not on this class's list"):
            accounts.register(f"Mallory{n}", None, "mallorys secret")
    owners = [a.owner for a in accounts.all()]
    queue = JobQueue(runs_dir, max_running=0)
    config = TrainConfig(data=str(train_dataset), **TINY)
    for n in range(5):
        queue.submit(TrainConfig(**{**config.to_dict(), "seed": n}), owner=owners[1], start=False)  # Mallory
    bobs = queue.submit(config, owner=owners[0], start=False)
    assert [r.owner for r in queue.queued()].index("bob") <= 1 and bobs.owner == "bob"


# -- 8. the smaller ones -------------------------------------------------------------------------------------
def test_a_heartbeat_from_the_future_or_a_record_without_one_cannot_block_the_slot_forever(monkeypatch):
    monkeypatch.setenv("SEGCORE_HEARTBEAT_LIMIT_S", "60")
    now = 10_000.0
    forged = {"state": "running", "host": "another-machine", "heartbeat": now + 10**9}
    assert judge_running(forged, now, written=now - 30)[0] == "running"
    assert judge_running(forged, now, written=now - 600)[0] == "lost"  # the file stopped changing long ago
    init = {"state": "running", "pid": 1}  # pid 1 always exists; no start time, no heartbeat
    assert judge_running(init, now, written=now - 600)[0] == "lost"


def test_a_backbone_that_cannot_take_the_size_is_refused_with_the_sizes_it_takes(tmp_path):
    with pytest.raises(ConfigError, match="cannot take 32×32 images.*it takes 224×224"):
        TrainConfig(backbone="vit_tiny_patch16_224", height=32, width=32).validate()
    with pytest.raises(ConfigError, match="no timm model of that name"):
        TrainConfig(backbone="resnet9000").validate()


def test_ray_jobs_name_the_interpreter_they_run(monkeypatch):
    import sys

    from segcore.jobs.launchers import ray_python

    assert ray_python() == sys.executable
    monkeypatch.setenv("SEGCORE_RAY_PYTHON", "/opt/venv/bin/python")
    assert ray_python() == "/opt/venv/bin/python"
