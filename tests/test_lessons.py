"""Lessons: a file made on one machine plans exactly the same runs on another; what a lesson refers to is checked;
a hostile lesson file is refused before anything is unpacked; the built-in lessons plan valid runs and train."""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from contextlib import nullcontext
from pathlib import Path

import pytest

from segcore import TrainConfig, load_dataset, train
from segcore.base.errors import ConfigError, LessonError
from segcore.cli import main
from segcore.jobs.planning import SOURCE_PLACEHOLDER, SOURCE_TASK, SWEEP_SIZES
from segcore.runs.run import Run
from segcore.settings.config import PRESETS
from segcore.settings.strategies import STRATEGIES
from segcore.teaching.builtin_lessons import BUILTIN_LESSONS
from segcore.teaching.lesson import Lesson
from segcore.teaching.lesson_files import list_lessons, open_lesson, save_lesson

TINY = dict(epochs=1, min_steps=0, max_steps=2, height=64, width=64)


@pytest.fixture(scope="module")
def tiny_source_run(tmp_path_factory, source_dataset) -> Run:
    """A finished 2-step scratch run on the 2-class source task: a source run a lesson can carry."""
    config = TrainConfig(data=str(source_dataset), strategy="scratch", **TINY)
    run = train(config, tmp_path_factory.mktemp("source-runs"), run_id="source-task")
    assert run.state == "done", run.status
    return run


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """Another machine: an empty cache, so the lesson is unpacked anew."""
    cache = tmp_path / "other-machine-cache"
    monkeypatch.setenv("SEGCORE_CACHE", str(cache))
    return cache


def lesson(**overrides) -> Lesson:
    fields = dict(
        title="Frozen or not?",
        instructions="Train, then compare.\nWhich is better?",
        data_source="builtin:shapes",
        settings={"lr": 0.001, "epochs": 2},
        strategies=["scratch", "feature"],
    )
    return Lesson(**{**fields, **overrides})


def rewrite(
    source: Path,
    target: Path,
    replace_entries: dict[str, bytes | None] | None = None,
    add: list[tuple[zipfile.ZipInfo | str, bytes]] = (),
) -> Path:
    """A copy of a lesson file with entries replaced (None: removed) or added, as someone tampering with it would."""
    replace_entries = replace_entries or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in replace_entries:
                if replace_entries[info.filename] is not None:
                    new.writestr(info.filename, replace_entries[info.filename])
            else:
                new.writestr(info, old.read(info))
        for name, content in add:
            new.writestr(name, content)
    return target


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("lesson.json"))


# -- round trips ------------------------------------------------------------------------------------------------
def test_a_lesson_saved_and_opened_on_another_machine_plans_exactly_the_same_runs(tmp_path, small_dataset, fresh_cache):
    made = lesson(
        data_source=str(small_dataset),
        sweep=True,
        strategies=["structure", "scratch", "partial"],
        settings={
            **PRESETS["quick"].settings,
            "lr": 0.001,
            "decoder_channels": (64, 32, 16, 8),
            "train_bn": "on",
            "regularizer": "l2sp",
            "class_weights": "none",
        },
        preset="quick",
    )
    path = save_lesson(made, tmp_path / "frozen.lesson.zip")
    opened = open_lesson(path)
    assert opened.plan("class-7a") == made.plan("class-7a")
    assert opened.to_config() == made.to_config()
    assert (opened.title, opened.instructions, opened.preset, opened.sweep) == (
        made.title,
        made.instructions,
        "quick",
        True,
    )
    assert not (fresh_cache / "lessons").exists()  # nothing embedded, nothing unpacked


def test_an_embedded_dataset_and_source_run_round_trip(tmp_path, small_dataset, tiny_source_run, fresh_cache):
    made = lesson(
        data_source=str(small_dataset), strategies=["structure", "feature"], settings={"height": 64, "width": 64}
    )
    path = save_lesson(
        made, tmp_path / "carry.segl", dataset_folder=small_dataset, source_run_folder=tiny_source_run.path
    )
    assert manifest_of(path)["dataset"] == "embedded" and manifest_of(path)["source_run"] == "embedded"
    shutil.rmtree(small_dataset)  # the lesson must not need the teacher's folders any more

    opened = open_lesson(path)
    unpacked = Path(opened.data_source).parent
    assert unpacked.parent == fresh_cache / "lessons" and Path(opened.source_run) == unpacked / "source" / "source-task"
    data = load_dataset(opened.data_source)
    assert sum(len(p) for p in data.splits.values()) == 12 and data.class_names == ["background", "square", "disc"]
    source = Run(Path(opened.source_run))
    assert source.state == "done" and source.has_checkpoint() and source.best_info.backbone == made.settings_backbone()
    assert (source.path / "best.safetensors").read_bytes() == tiny_source_run.checkpoint.read_bytes()
    assert "owner" not in source.config and source.config_problem() is None
    plan = opened.plan("g")
    assert [c.strategy for c in plan] == ["feature", "structure"]  # no source run planned: the lesson carries one
    assert plan[1].source_run == opened.source_run and plan[0].data == opened.data_source

    from segcore.training.preparation import prepare

    prepared = prepare(opened.to_config(strategy="structure"), num_classes=3)  # structure transfer can load it
    assert "source run source-task" in prepared.origin
    assert open_lesson(path).source_run == opened.source_run  # unpacked once, then found again
    assert [p.name for p in (fresh_cache / "lessons").iterdir()] == [unpacked.name]  # no staging folder left behind


# -- refusals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"data_source": "builtin:nope"},
            "it uses the built-in dataset 'builtin:nope', which this workbench does not have",
        ),
        ({"data_source": "/no/such/folder"}, "its dataset /no/such/folder is not here"),
        ({"strategies": ["scratch", "transfer-magic"]}, "unknown strategy 'transfer-magic'"),
        ({"strategies": []}, "compares no strategy"),
        ({"settings": {"lr": -1}}, "setting lr (--lr) = -1: must be between"),
        ({"settings": {"height": 100}}, "setting height (--size) = 100: must be a multiple of 8"),
        ({"settings": {"learning_rate": 0.1}}, "'learning_rate' is not a training setting"),
        ({"settings": {"device": "cuda"}}, "the setting 'device' cannot be fixed by a lesson"),
        (
            {"sweep": True, "settings": {"train_size": 0.5}},
            "a data-efficiency sweep sets the number of training images",
        ),
        ({"title": " "}, "the title must be 1 to 200 characters"),
    ],
)
def test_a_lesson_that_cannot_work_is_refused_with_the_reason(tmp_path, change, message):
    with pytest.raises(LessonError, match="^lesson ") as refused:
        save_lesson(lesson(**change), tmp_path / "x.lesson.zip")
    assert message in str(refused.value)
    assert not (tmp_path / "x.lesson.zip").exists()


def test_invalid_settings_raise_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError) as refused:
        lesson(settings={"batch_size": 0}).to_config()
    assert refused.value.setting == "batch_size" and "must be between 1 and 1,024" in str(refused.value)


def test_a_lesson_whose_dataset_folder_is_gone_is_refused_when_opened(tmp_path, small_dataset):
    path = save_lesson(lesson(data_source=str(small_dataset)), tmp_path / "ref.lesson.zip")
    shutil.rmtree(small_dataset)
    with pytest.raises(LessonError, match="is not here .* ask the teacher for a lesson with the dataset embedded"):
        open_lesson(path)


def test_a_source_run_with_another_backbone_is_refused(tmp_path, tiny_source_run, fresh_cache):
    other = shutil.copytree(tiny_source_run.path, tmp_path / "resnet-source")
    meta = json.loads((other / "best.json").read_text())
    (other / "best.json").write_text(json.dumps({**meta, "backbone": "resnet18"}))
    with pytest.raises(
        LessonError,
        match="trained with backbone 'resnet18', but the lesson's settings use "
        "'tf_efficientnet_lite0'.*set backbone=resnet18",
    ):
        save_lesson(lesson(strategies=["structure"]), tmp_path / "x.lesson.zip", source_run_folder=other)

    # the same fault in a file made elsewhere: refused before anything is unpacked
    good = save_lesson(
        lesson(strategies=["structure"]), tmp_path / "good.lesson.zip", source_run_folder=tiny_source_run.path
    )
    manifest = {**manifest_of(good), "settings": {"backbone": "resnet18"}}
    tampered = rewrite(good, tmp_path / "tampered.lesson.zip", {"lesson.json": json.dumps(manifest).encode()})
    with pytest.raises(
        LessonError, match="trained with backbone 'tf_efficientnet_lite0', but the lesson's settings use 'resnet18'"
    ):
        open_lesson(tampered)
    assert not (fresh_cache / "lessons").exists()


def test_a_lesson_from_a_newer_workbench_is_refused(tmp_path):
    good = save_lesson(lesson(), tmp_path / "good.lesson.zip")
    newer = rewrite(
        good,
        tmp_path / "newer.lesson.zip",
        {"lesson.json": json.dumps({**manifest_of(good), "format_version": 99}).encode()},
    )
    with pytest.raises(
        LessonError,
        match=r"made by a newer workbench \(lesson format 99; this one reads up to 1\) "
        "— update the workbench",
    ):
        open_lesson(newer)


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry, message",
    [
        ("../escaped.txt", "the entry '../escaped.txt' points outside the lesson"),
        ("dataset/../../escaped.png", "points outside the lesson"),
        ("/etc/cron.d/job.txt", "is an absolute path"),
        ("dataset\\..\\escaped.png", "has a backslash"),
        ("run.sh", "is not part of the lesson format"),
        ("source_run/train.py", "is not part of the lesson format"),
        ("dataset/images/tool.exe", "is not an image, mask or text file"),
        ("dataset/.hidden.png", "is a hidden file"),
        (_symlink("dataset/images/link.png"), "is a symbolic link"),
        ("lesson.json", "appears twice"),
    ],
)
def test_a_hostile_lesson_file_is_refused_before_anything_is_unpacked(tmp_path, entry, message, fresh_cache):
    good = save_lesson(lesson(), tmp_path / "good.lesson.zip")
    with pytest.warns(UserWarning) if entry == "lesson.json" else nullcontext():  # zipfile warns of the duplicate
        hostile = rewrite(good, tmp_path / "hostile.lesson.zip", add=[(entry, b"payload")])
    with pytest.raises(LessonError, match="do not use it") as refused:
        open_lesson(hostile)
    assert message in str(refused.value)
    assert not (fresh_cache / "lessons").exists() and not (tmp_path / "escaped.txt").exists()


def test_a_lesson_whose_parts_do_not_match_its_lesson_json_is_refused(tmp_path, small_dataset):
    embedded = save_lesson(lesson(), tmp_path / "e.lesson.zip", dataset_folder=small_dataset)
    names = [n for n in zipfile.ZipFile(embedded).namelist() if n.startswith("dataset/")]
    emptied = rewrite(embedded, tmp_path / "emptied.lesson.zip", dict.fromkeys(names))
    with pytest.raises(LessonError, match="its dataset is 'embedded', but the file lacks a dataset/ folder"):
        open_lesson(emptied)
    (tmp_path / "fake.lesson.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(LessonError, match="not a readable zip"):
        open_lesson(tmp_path / "fake.lesson.zip")


# -- built-in lessons, listing, command line -----------------------------------------------------------------------
def test_the_built_in_lessons_plan_valid_runs():
    why, labels = BUILTIN_LESSONS["why-transfer"], BUILTIN_LESSONS["how-many-labels"]
    for shipped in (why, labels):
        shipped.check()
        assert 4 <= len(shipped.instructions.splitlines()) <= 8
        plan = shipped.plan("class")
        # the quick preset; the source run keeps the default epochs (it stands for a well-trained source network)
        # (a sweep's points all train the budget of the run on every image: min_steps = max_steps = that budget)
        assert all(c.height == 128 and c.min_steps == (c.max_steps or 50) for c in plan)
        assert all(c.epochs == (6 if c.run_name.endswith("-source") else 3) for c in plan)
        for config in plan:
            config.validate(check_files=False)

    plan = why.plan("class")
    assert {c.strategy for c in plan if c.data == "builtin:shapes"} == {
        n for n, i in STRATEGIES.items() if i.in_train_all
    }
    source = next(i for i, c in enumerate(plan) if c.data == SOURCE_TASK)
    assert plan[source].run_name == "class-source" and plan[source + 1].strategy == "structure"
    assert plan[source + 1].source_run == SOURCE_PLACEHOLDER

    plan = labels.plan("class")
    for strategy in labels.strategies:
        assert sorted(c.train_size for c in plan if c.strategy == strategy) == sorted(SWEEP_SIZES)


def test_list_lessons_reports_broken_files_and_lists_the_rest(tmp_path):
    folder = tmp_path / "lessons"
    save_lesson(lesson(), folder / "a-good.lesson.zip")
    (folder / "b-garbage.segl").write_bytes(b"not a zip")
    rewrite(folder / "a-good.lesson.zip", folder / "c-slip.lesson.zip", add=[("../x.txt", b"x")])
    (folder / "notes.txt").write_text("not a lesson: not listed")
    listed = list_lessons(folder)
    assert [p.name for p, _ in listed] == ["a-good.lesson.zip", "b-garbage.segl", "c-slip.lesson.zip"]
    assert isinstance(listed[0][1], Lesson) and listed[0][1].title == "Frozen or not?"
    assert "not a readable zip" in str(listed[1][1]) and "points outside the lesson" in str(listed[2][1])
    assert list_lessons(tmp_path / "missing") == []


def test_the_command_line_creates_shows_and_lists_a_lesson(
    tmp_path, small_dataset, tiny_source_run, capsys, fresh_cache
):
    (tmp_path / "steps.md").write_text("1. Click *Train all*.\n2. Watch the curves.\n")
    out = tmp_path / "lessons" / "class.lesson.zip"
    assert (
        main(
            [
                "--runs-dir",
                str(tiny_source_run.path.parent),
                "lesson",
                "create",
                "--title",
                "Shapes, frozen",
                "--instructions",
                str(tmp_path / "steps.md"),
                "--data",
                str(small_dataset),
                "--embed-data",
                "--strategies",
                "feature",
                "structure",
                "--preset",
                "quick",
                "--set",
                "lr=0.001",
                "--set",
                "decoder-channels=[64,32]",
                "--set",
                "augment=full",
                "--source-run",
                "source-task",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    opened = open_lesson(out)
    assert opened.settings == {
        **PRESETS["quick"].settings,
        "lr": 0.001,
        "decoder_channels": [64, 32],
        "augment": "full",
    }
    assert opened.to_config().decoder_channels == (64, 32) and opened.preset == "quick"
    capsys.readouterr()
    assert main(["lesson", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "Shapes, frozen" in shown and "runs        2: lesson-feature, lesson-structure" in shown
    assert "2. Watch the curves." in shown
    assert main(["lesson", "list", "--folder", str(out.parent)]) == 0
    listed = capsys.readouterr().out
    assert "builtin:why-transfer" in listed and f"{out}  Shapes, frozen" in listed

    assert (
        main(
            [
                "lesson",
                "create",
                "--title",
                "x",
                "--data",
                "builtin:shapes",
                "--set",
                "lr=-1",
                "--out",
                str(tmp_path / "bad.lesson.zip"),
            ]
        )
        == 2
    )
    assert "setting lr (--lr) = -1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_why_transfer_lesson_trains_end_to_end_through_the_queue(tmp_path, capsys):
    """The built-in lesson queued from the command line (through JobQueue), 3 steps a run for speed."""
    runs_dir = tmp_path / "runs"
    code = main(
        [
            "lesson",
            "run",
            "builtin:why-transfer",
            "--runs-dir",
            str(runs_dir),
            "--set",
            "max_steps=3",
            "--wait",
            "--timeout",
            "300",
        ]
    )
    run_ids = capsys.readouterr().out.split()
    runs = [Run.open(runs_dir, run_id) for run_id in run_ids]
    assert code == 0, [(r.run_id, r.status) for r in runs]
    assert [r.config["strategy"] for r in runs] == ["feature", "parameter", "scratch", "parameter", "structure"]
    assert all(r.state == "done" and r.config["max_steps"] == 3 and r.config["height"] == 128 for r in runs)
    assert runs[3].config["data"] == SOURCE_TASK and runs[4].config["source_run"] == str(runs[3].path)
    assert "source run" in runs[4].summary()["encoder_origin"]
