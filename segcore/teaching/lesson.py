"""A lesson a teacher hands out: a dataset, the settings the teacher fixed, the strategies to compare, an optional
source run for structure transfer and short instructions (lesson_files.py saves and opens one).

A lesson turns into runs the same way "Train all strategies" does (planning.comparison_plan), restricted to its
strategies; its settings are a partial TrainConfig, checked by the same TrainConfig.validate as any run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..base.errors import ConfigError, LessonError
from ..data.builtin import BUILTINS
from ..data.downloads import DOWNLOADS
from ..data.roots import roots_problem
from ..jobs.planning import SOURCE_PLACEHOLDER, SWEEP_SIZES, comparison_order, comparison_plan, full_training_images
from ..models.checkpoints import shapes_problem
from ..runs.files import NEEDED_AS_SOURCE
from ..runs.run import Run
from ..settings.config import PRESETS, TrainConfig
from ..settings.strategies import STRATEGIES
from .lesson_archive import FORMAT, FORMAT_VERSION

EMBEDDED = "embedded"
UNPACKED_SOURCE_DIR = "source"  # <unpacked lesson>/source/<run id>/: the embedded source run, ready to use
MAX_TITLE_CHARS = 200
MAX_INSTRUCTIONS_CHARS = 20_000
# settings a lesson may not fix, and why: the lesson gives them itself, or they belong to one machine
NOT_LESSON_SETTINGS = {
    "data": "a lesson names its dataset on its own (--data)",
    "strategy": "a lesson lists the strategies it compares (--strategies)",
    "source_run": "a lesson carries its own source run (--source-run)",
    "run_name": "a lesson's runs are named after the lesson",
    "weights_file": "a weights file path belongs to one machine; every machine uses its own ImageNet weights",
    "device": "each machine picks its own device",
    "threads": "each machine picks its own number of CPU threads",
}
SETTING_NAMES = frozenset(f.name for f in fields(TrainConfig)) - set(NOT_LESSON_SETTINGS)


@dataclass
class Lesson:
    """What a teacher hands out. `settings` holds only the settings the teacher fixed (JSON values); everything else
    stays at the defaults, or at the `base` config a page passes in. `source_run` is a run folder (an embedded one is
    unpacked into the cache and recorded as done)."""

    title: str
    instructions: str
    data_source: str
    settings: dict = field(default_factory=dict)
    strategies: list[str] = field(default_factory=comparison_order)
    sweep: bool = False
    source_run: str | None = None
    preset: str | None = None  # the preset the settings started from: shown to students; `settings` holds its values
    origin: str = ""  # the file it was opened from, or "built-in"
    # the dataset a planned source run trains on when the lesson carries none (None: the one matching data_source)
    source_task: str | None = None
    # also each strategy trained semi-supervised from these unlabelled images ('rest', 'dataset'), beside its
    # labelled-only run: the lesson "what do unlabelled photos add?"
    unlabelled: str | None = None

    @property
    def where(self) -> str:
        return self.origin or f"'{self.title}'"

    @property
    def train_sizes(self) -> tuple:
        return SWEEP_SIZES if self.sweep else (None,)

    def ordered_strategies(self) -> list[str]:
        """The lesson's strategies in queue order (cheapest first; those that need the source run last)."""
        return comparison_order(self.strategies)

    def _merged(self, base: TrainConfig | None, strategy: str) -> TrainConfig:
        """The lesson's settings over `base` (default: the defaults) for one strategy, not yet validated."""
        info = STRATEGIES[strategy]
        values = {
            **(base or TrainConfig()).to_dict(),
            **self.settings,
            "data": self.data_source,
            "strategy": strategy,
            "source_run": self.source_run if info.needs_source_run else None,
            "run_name": None,
        }
        return TrainConfig.from_dict(values)

    def to_config(self, base: TrainConfig | None = None, strategy: str | None = None) -> TrainConfig:
        """The settings a page or a single run starts from: the lesson's settings over `base` (default: the defaults)
        with its first strategy (or `strategy`). ConfigError naming the setting when one is not allowed."""
        self.check_shape()
        return self._merged(base, strategy or self.ordered_strategies()[0]).validate()

    def plan(self, group: str, base: TrainConfig | None = None, data=None) -> list[TrainConfig]:
        """The lesson's runs in queue order (planning.comparison_plan restricted to its strategies, × SWEEP_SIZES
        for a sweep), with the source run first when structure transfer needs one and the lesson carries none.
        A sweep's points train equal optimiser steps when the size of the training split is known (a built-in,
        or `data`, the lesson's dataset loaded). Every planned config is validated (ConfigError naming the setting)."""
        self.check_shape()
        strategies = self.ordered_strategies()
        # the shared settings are judged with a strategy that needs no source run: the plan fills that in
        shared_strategy = next((s for s in strategies if not STRATEGIES[s].needs_source_run), "parameter")
        shared = self._merged(base, shared_strategy)
        plan = comparison_plan(
            shared,
            group,
            self.source_run,
            self.train_sizes,
            strategies,
            self.source_task,
            full_train_images=full_training_images(shared, data),
            unlabelled=self.unlabelled,
        )
        for config in plan:
            config.validate(check_files=config.source_run != SOURCE_PLACEHOLDER)
        return plan

    # -- checks ---------------------------------------------------------------------------------------------
    def check_shape(self) -> Lesson:
        """The lesson's own fields (title, text, strategies, setting names): LessonError naming what is wrong."""
        if not isinstance(self.title, str) or not self.title.strip() or len(self.title) > MAX_TITLE_CHARS:
            raise LessonError(self.where, f"the title must be 1 to {MAX_TITLE_CHARS} characters", "give a short title")
        if not isinstance(self.instructions, str) or len(self.instructions) > MAX_INSTRUCTIONS_CHARS:
            raise LessonError(
                self.where,
                f"the instructions must be text of at most {MAX_INSTRUCTIONS_CHARS:,} characters",
                "keep them to a few lines",
            )
        if not isinstance(self.data_source, str) or not self.data_source.strip():
            raise LessonError(self.where, "no dataset is given", "give builtin:NAME, a folder or a .zip")
        if not isinstance(self.strategies, list) or not self.strategies:
            raise LessonError(self.where, "the lesson compares no strategy", f"list some of {', '.join(STRATEGIES)}")
        unknown = [s for s in self.strategies if not isinstance(s, str) or s not in STRATEGIES]
        if unknown:
            raise LessonError(
                self.where, f"unknown strategy {', '.join(map(repr, unknown))}", f"choose from {', '.join(STRATEGIES)}"
            )
        if len(set(self.strategies)) != len(self.strategies):
            raise LessonError(self.where, "a strategy is listed twice", "list each strategy once")
        if not isinstance(self.sweep, bool):
            raise LessonError(self.where, f"'sweep' is {self.sweep!r}, not true or false")
        if not isinstance(self.settings, dict):
            raise LessonError(self.where, "the settings are not a JSON object of setting: value")
        for name in self.settings:
            if name in NOT_LESSON_SETTINGS:
                raise LessonError(
                    self.where,
                    f"the setting '{name}' cannot be fixed by a lesson: {NOT_LESSON_SETTINGS[name]}",
                    "remove it from the lesson's settings",
                )
            if name not in SETTING_NAMES:
                raise LessonError(
                    self.where,
                    f"'{name}' is not a training setting",
                    f"use the names of TrainConfig: {', '.join(sorted(SETTING_NAMES))}",
                )
        if self.sweep and "train_size" in self.settings:
            raise LessonError(
                self.where,
                "a data-efficiency sweep sets the number of training images itself "
                f"({', '.join(f'{s:.0%}' for s in SWEEP_SIZES)})",
                "remove train_size, or turn the sweep off",
            )
        if self.source_task is not None and (not isinstance(self.source_task, str) or not self.source_task.strip()):
            raise LessonError(
                self.where,
                f"'source_task' is {self.source_task!r}, not a dataset",
                "give builtin:NAME, a folder or a .zip, or leave it out",
            )
        if self.unlabelled is not None and self.unlabelled not in ("rest", "dataset"):
            raise LessonError(
                self.where,
                f"'unlabelled' is {self.unlabelled!r}",
                "give 'rest' (the images the training-set size leaves out) or 'dataset' (its images without masks)",
            )
        if self.preset is not None and self.preset not in PRESETS:
            raise LessonError(self.where, f"unknown preset {self.preset!r}", f"choose from {', '.join(PRESETS)}")
        return self

    def check(self) -> Lesson:
        """Everything: the fields, the dataset is there, the source run is usable with these settings, and every
        planned run's settings are valid. LessonError (or a lesson-named ConfigError message) otherwise."""
        self.check_shape()
        dataset_reference_problem(self.data_source, self.where)
        if self.source_task is not None and self.source_run is None:
            dataset_reference_problem(self.source_task, self.where)
        if self.source_run is not None:
            check_source_run(Path(self.source_run), self.settings_backbone(), self.where)
        try:
            self.plan("check")
        except ConfigError as exc:
            raise LessonError(self.where, f"its settings are not valid: {exc}", "fix that setting") from exc
        return self

    def settings_backbone(self) -> str:
        return self.settings.get("backbone", TrainConfig().backbone)

    # -- the file's lesson.json ------------------------------------------------------------------------------
    def manifest(self, dataset: str, source_run: str | None) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "title": self.title,
            "instructions": self.instructions,
            "preset": self.preset,
            "settings": self.settings,
            "strategies": list(self.strategies),
            "sweep": self.sweep,
            "dataset": dataset,
            "source_run": source_run,
            "source_task": self.source_task,
            "unlabelled": self.unlabelled,
        }


# -- checks on what a lesson refers to --------------------------------------------------------------------------
def dataset_reference_problem(source: str, where: str) -> None:
    """Refuse a dataset reference that cannot work here: an unknown built-in or download, a path that is not there.
    Nothing is generated, downloaded or read."""
    outside = roots_problem(source)
    if outside:
        raise LessonError(where, f"its dataset {source!r} {outside}", "ask for a lesson with the dataset embedded")
    kind, _, name = source.partition(":")
    if kind == "builtin" and name:
        if name not in BUILTINS:
            raise LessonError(
                where,
                f"it uses the built-in dataset '{source}', which this workbench does not have",
                f"built-in datasets here: {', '.join('builtin:' + n for n in BUILTINS)}",
            )
        return
    if kind == "download" and name:
        if name not in DOWNLOADS:
            raise LessonError(
                where,
                f"it uses the download '{source}', which this workbench does not know",
                f"known downloads: {', '.join('download:' + n for n in DOWNLOADS)}",
            )
        return
    path = Path(source).expanduser()
    if not (path.is_dir() or path.is_file() and path.suffix.lower() == ".zip"):
        raise LessonError(
            where,
            f"its dataset {source} is not here (no such folder or .zip)",
            "ask the teacher for a lesson with the dataset embedded, or put the dataset at that path",
        )


def backbone_problem(meta: object, backbone: str, run_name: str) -> str | None:
    """Why a source run's best.json does not fit a lesson whose settings use `backbone`; None when it does."""
    if not isinstance(meta, dict) or not isinstance(meta.get("backbone"), str):
        return f"the source run {run_name}'s best.json names no backbone"
    if meta["backbone"] != backbone:
        return (
            f"the source run {run_name} was trained with backbone '{meta['backbone']}', but the lesson's settings "
            f"use '{backbone}': structure transfer needs the same backbone — set backbone={meta['backbone']}, "
            f"or give a source run trained with {backbone}"
        )
    if not isinstance(meta.get("num_classes"), int) or not isinstance(meta.get("decoder_channels"), list):
        return f"the source run {run_name}'s best.json lacks num_classes or decoder_channels"
    return None


def check_source_run(folder: Path, backbone: str, where: str) -> None:
    """A source run a lesson can carry over: its settings, best checkpoint and sidecar whole, the same backbone."""
    outside = roots_problem(folder)
    if outside:
        raise LessonError(
            where, f"its source run {str(folder)!r} {outside}", "ask for a lesson with the source run embedded"
        )
    run = Run(folder)
    missing = [n for n in NEEDED_AS_SOURCE if not (folder / n).is_file()]
    if missing:
        raise LessonError(
            where,
            f"the source run {folder} lacks {', '.join(missing)}",
            "give a finished run (one with a best checkpoint)",
        )
    problem = run.checkpoint_problem() or run.config_problem()
    if problem:
        raise LessonError(where, f"the source run {folder.name} is damaged: {problem}", "give another finished run")
    meta, problem = run.best_meta()
    if problem:
        raise LessonError(where, f"the source run {folder.name}'s {problem}")
    problem = backbone_problem(meta, backbone, folder.name) or shapes_problem(run.checkpoint, meta)
    if problem:
        raise LessonError(where, problem)
