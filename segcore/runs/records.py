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
