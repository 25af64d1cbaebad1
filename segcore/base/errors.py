"""Typed errors for users: raised deep in the engine, shown shallow (CLI message, page st.error)."""

from __future__ import annotations


class SegcoreError(Exception):
    """An error whose message is meant for the person using the tool."""


class DatasetError(SegcoreError):
    """A problem with a dataset: which file, what is wrong, what to do about it."""

    def __init__(self, path: object, problem: str, hint: str = "", problems: list[DatasetError] | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        self.problems = problems or []  # one entry per file, when several files are at fault
        message = f"{self.path}: {problem}"
        if hint:
            message += f" — {hint}"
        for each in self.problems[:10]:
            message += f"\n  • {each}"
        if len(self.problems) > 10:
            message += f"\n  • … and {len(self.problems) - 10} more"
        super().__init__(message)


class WeightsError(SegcoreError):
    """Pretrained weights were asked for but cannot be had."""


class RunError(SegcoreError):
    """A run folder is missing, unreadable or does not fit what was asked."""


class TrainingFailed(SegcoreError):
    """Training stopped for a reason the user should see (NaN loss, out of memory, ...)."""


class ConfigError(SegcoreError, ValueError):
    """A setting with a value that is not allowed: which setting, the value, and what is allowed."""

    def __init__(self, setting: str, value: object, problem: str, flag: str | None = None) -> None:
        self.setting, self.value, self.problem = setting, value, problem
        named = f"{setting} ({flag})" if flag else setting
        super().__init__(f"setting {named} = {value!r}: {problem}")


class LessonError(SegcoreError):
    """A lesson file that cannot be used: which file (and entry), what is wrong, what to do about it."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        self.path, self.problem, self.hint = str(path), problem, hint
        super().__init__(f"lesson {self.path}: {problem}" + (f" — {hint}" if hint else ""))
