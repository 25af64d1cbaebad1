"""A run's JSON files as typed records the rest of the code may trust: every field has its type or is None."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base.values import finite_number, json_kind, positive_int
from ..settings.config import settings_problem
from .files import CONFIG

STATES = ("queued", "running", "done", "failed", "cancelled", "lost")


@dataclass(frozen=True)
class RunStatus:
    """status.json as the rest of the code may trust it: every field has its type or is None."""

    state: str
    reason: str = ""
    pid: int | None = None
    pid_started: float | None = None
    host: str | None = None
    started: float | None = None
    updated: float | None = None
    heartbeat: float | None = None
    queued: float | None = None
    resume: bool = False
    previous: str | None = None
    miou: float | None = None

    @classmethod
    def from_dict(cls, status: dict) -> RunStatus:
        text = lambda key: status.get(key) if isinstance(status.get(key), str) else None  # noqa: E731
        return cls(
            state=status.get("state") if status.get("state") in STATES else "failed",
            reason=text("reason") or "",
            pid=positive_int(status.get("pid")),
            pid_started=finite_number(status.get("pid_started")),
            host=text("host"),
            started=finite_number(status.get("started")),
            updated=finite_number(status.get("updated")),
            heartbeat=finite_number(status.get("heartbeat")),
            queued=finite_number(status.get("queued")),
            resume=status.get("resume") is True,
            previous=text("previous"),
            miou=finite_number(status.get("miou")),
        )


@dataclass(frozen=True)
class RunSummary:
    """summary.json of a finished run; None fields where the file lacks them or holds the wrong type."""

    miou: float | None = None
    best_epoch: int | None = None
    pixel_accuracy: float | None = None
    mean_dice: float | None = None
    strategy: str | None = None
    backbone: str | None = None
    train_time_s: float | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, summary: dict) -> RunSummary:
        text = lambda key: summary.get(key) if isinstance(summary.get(key), str) else None  # noqa: E731
        return cls(
            miou=finite_number(summary.get("miou")),
            best_epoch=positive_int(summary.get("best_epoch")),
            pixel_accuracy=finite_number(summary.get("pixel_accuracy")),
            mean_dice=finite_number(summary.get("mean_dice")),
            strategy=text("strategy"),
            backbone=text("backbone"),
            train_time_s=finite_number(summary.get("train_time_s")),
            raw=summary,
        )


@dataclass(frozen=True)
class BestInfo:
    """best.json: which epoch the best checkpoint holds and how to rebuild its model."""

    epoch: int | None
    miou: float | None
    backbone: str | None
    num_classes: int | None
    classes: list[str]

    @classmethod
    def from_dict(cls, meta: dict) -> BestInfo:
        classes = meta.get("classes")
        return cls(
            epoch=positive_int(meta.get("epoch")),
            miou=finite_number(meta.get("miou")),
            backbone=meta.get("backbone") if isinstance(meta.get("backbone"), str) else None,
            num_classes=positive_int(meta.get("num_classes")),
            classes=[c for c in classes if isinstance(c, str)] if isinstance(classes, list) else [],
        )


def config_problem(payload) -> str | None:
    """What is wrong with a config.json's content, in words; None when TrainConfig can be built from it."""
    if not isinstance(payload, dict):
        return f"{CONFIG} holds {json_kind(payload)}, not an object of settings"
    created = payload.get("created")
    if created is not None and finite_number(created) is None:
        return f"{CONFIG}: 'created' is {created!r}, not a time in seconds"
    problem = settings_problem(payload)  # the same rules that refuse a new run's settings
    return f"{CONFIG}: {problem}" if problem else None


# -- the rules a run's files must keep, here or imported: numbers are numbers, colours are colours ---------------
def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers(record: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in record and record[key] is not None and finite_number(record[key]) is None:
            return f"'{key}' is {record[key]!r:.40}, not a number"
    return None


STEP_NUMBERS = ("loss", "lr", "images_per_s", "time", "sup_loss", "unsup_loss", "confident")
EPOCH_NUMBERS = (
    "train_loss",
    "miou",
    "pixel_accuracy",
    "mean_dice",
    "epoch_time_s",
    "images_per_s",
    "eta_s",
    "time",
    "compute_s",
)


def metric_record_problem(record: dict) -> str | None:
    """What is wrong with one metrics.jsonl record (None when training or Compare may use it)."""
    kind = record.get("kind")
    if kind == "step":
        for key in ("step", "epoch", "total_steps", "epochs"):
            if key in record and not _is_count(record[key]):
                return f"'{key}' is {record[key]!r:.40}, not a count"
        if not _is_count(record.get("step")):
            return "a step record without its step number"
        return _numbers(record, STEP_NUMBERS)
    if kind == "epoch":
        for key in ("epoch", "epochs"):
            if key in record and not _is_count(record[key]):
                return f"'{key}' is {record[key]!r:.40}, not a count"
        if not _is_count(record.get("epoch")):
            return "an epoch record without its epoch number"
        return _numbers(record, EPOCH_NUMBERS)
    return None  # other kinds are for people (and future versions): left alone


def colours_problem(colours: object, count: int) -> str | None:
    if not isinstance(colours, list) or len(colours) < count:
        return f"'colours' must list {count} colours"
    for colour in colours[:count]:
        if not (
            isinstance(colour, list)
            and len(colour) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)
        ):
            return f"'colours' holds {colour!r:.40}, not a colour [red, green, blue] of 0–255"
    return None


def best_meta_problem(meta: dict) -> str | None:
    """What is wrong with the fields best.json carries (None when they keep the rules a run made here keeps)."""
    count = meta.get("num_classes")
    if "num_classes" in meta and not (isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 1024):
        return f"'num_classes' is {count!r:.40}, not a number of classes"
    if "backbone" in meta and not isinstance(meta["backbone"], str):
        return "'backbone' is not a model name"
    classes = meta.get("classes")
    if "classes" in meta and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        return "'classes' is not a list of class names"
    wanted = count if isinstance(count, int) else len(classes) if isinstance(classes, list) else 0
    if isinstance(classes, list) and isinstance(count, int) and len(classes) != count:
        return f"'classes' lists {len(classes)} names for {count} classes"
    if "colours" in meta:
        problem = colours_problem(meta["colours"], wanted)
        if problem:
            return problem
    for key in ("height", "width", "epoch"):
        if key in meta and not (_is_count(meta[key]) and meta[key] <= 8192):
            return f"'{key}' is {meta[key]!r:.40}, not a whole number"
    channels = meta.get("decoder_channels")
    if "decoder_channels" in meta and not (
        isinstance(channels, list) and channels and all(_is_count(c) and c > 0 for c in channels)
    ):
        return "'decoder_channels' is not a list of widths"
    for key in ("mean", "std"):
        values = meta.get(key)
        if key in meta and not (
            isinstance(values, list) and len(values) == 3 and all(finite_number(v) is not None for v in values)
        ):
            return f"'{key}' is not three numbers"
    return _numbers(meta, ("miou",))


def summary_problem(summary: dict) -> str | None:
    """What is wrong with summary.json (None when Compare and the report may show it)."""
    problem = _numbers(summary, ("miou", "pixel_accuracy", "mean_dice", "train_time_s"))
    if problem:
        return problem
    for key in ("epochs", "steps", "train_images", "val_images", "trainable_params", "total_params"):
        if key in summary and summary[key] is not None and not _is_count(summary[key]):
            return f"'{key}' is {summary[key]!r:.40}, not a count"
    classes, scores = summary.get("classes"), summary.get("per_class_iou")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        return "'classes' is not a list of class names"
    if scores is not None and not (
        isinstance(scores, list) and all(s is None or finite_number(s) is not None for s in scores)
    ):
        return "'per_class_iou' is not a list of numbers"
    return None
