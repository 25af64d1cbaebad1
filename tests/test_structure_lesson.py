"""The structure-transfer lesson's built-in pair is generated the same way every time, and the lesson's plan trains
its structure run on the matching source task (not the default one)."""

import numpy as np

from segcore import TrainConfig
from segcore.data.builtin import BUILTINS, builtin_dataset_dir, render_sample
from segcore.jobs.planning import SOURCE_PLACEHOLDER, SOURCE_TASK, comparison_plan, matching_source_task
from segcore.settings.config import PRESETS
from segcore.teaching.builtin_lessons import BUILTIN_LESSONS


def test_the_new_pair_renders_identically_from_its_seed_and_labels_related_classes():
    for name in ("shapes-few", "shapes-more"):
        spec = BUILTINS[name]
        first = render_sample(spec, np.random.default_rng(spec.seed))
        again = render_sample(spec, np.random.default_rng(spec.seed))
        assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
        assert first[0].shape == (spec.size, spec.size, 3)
    target, source = BUILTINS["shapes-few"], BUILTINS["shapes-more"]
    assert set(target.classes) < set(source.classes)  # the source labels every target class, and more
    assert target.warm == source.warm  # the same kind of images on both sides
    assert source.train >= 10 * target.train


def test_the_generated_folder_is_the_same_bytes_in_two_fresh_caches(tmp_path, monkeypatch):
    folders = []
    for cache in ("a", "b"):
        monkeypatch.setenv("SEGCORE_CACHE", str(tmp_path / cache))
        folders.append(builtin_dataset_dir("shapes-few"))
    files = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*.png"))
    assert len(files) == 2 * (BUILTINS["shapes-few"].train + BUILTINS["shapes-few"].val)
    assert all((folders[0] / f).read_bytes() == (folders[1] / f).read_bytes() for f in files)


def test_the_structure_lesson_plans_its_source_run_on_the_matching_source_task():
    plan = BUILTIN_LESSONS["when-structure"].plan("g")
    source = next(c for c in plan if c.run_name == "g-source")
    structure = next(c for c in plan if c.strategy == "structure")
    assert source.data == "builtin:shapes-more" != SOURCE_TASK
    assert structure.data == "builtin:shapes-few" and structure.source_run == SOURCE_PLACEHOLDER
    assert plan.index(source) < plan.index(structure)
    # the quick preset shortens the lesson's runs, not the source network it stands on
    assert structure.epochs == PRESETS["quick"].settings["epochs"] < source.epochs == TrainConfig().epochs


def test_a_dataset_declares_its_source_task_once_and_an_explicit_one_wins():
    assert matching_source_task("builtin:shapes-few") == "builtin:shapes-more"
    assert matching_source_task("builtin:shapes") == "builtin:shapes-source"
    assert matching_source_task("/some/folder") == SOURCE_TASK
    plan = comparison_plan(TrainConfig(data="builtin:shapes-few"), "g", strategies=["structure"])
    assert plan[0].data == "builtin:shapes-more"
    plan = comparison_plan(
        TrainConfig(data="builtin:shapes-few"), "g", strategies=["structure"], source_task="builtin:shapes-source"
    )
    assert plan[0].data == "builtin:shapes-source"
