"""The roots rule: on a shared server, datasets are read only from the folders the admin shares
(SEGCORE_DATA_ROOTS, separated by the OS path separator), the server's own cache (uploads, unpacked zips and
lessons, generated data) and its reference data. Unset, any folder may be read: right for one person's laptop.

Every path that reaches the server goes through `roots_problem` / `check_within_roots` before it is read: the Data
page's *Folder on this server*, every dataset load (CLI, lessons, imported runs) through `resolve_source`, and a new
run's dataset, source run and weights file where the run is created (TrainConfig.validate).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..base.errors import DatasetError
from ..base.paths import cache_dir, default_runs_dir, reference_data_dir

ROOTS_ENV = "SEGCORE_DATA_ROOTS"


def data_roots() -> list[Path]:
    """The folders the admin shares; empty when SEGCORE_DATA_ROOTS is unset (any folder may be read)."""
    return [Path(r.strip()).expanduser() for r in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if r.strip()]


def roots_problem(source: str | Path) -> str | None:
    """Why a path may not be read on this server (None when it may): a control character (NUL, a line break) in it,
    or, with SEGCORE_DATA_ROOTS set, a place outside the shared folders, the server's cache, its runs and its reference
    data. builtin: and download: sources are the server's own."""
    text = str(source)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return "has a control character (such as NUL or a line break) in its path: type the path again"
    if text.startswith(("builtin:", "download:")):
        return None
    roots = data_roots()
    if not roots:
        return None
    resolved = Path(text).expanduser().resolve()
    trusted = [*roots, cache_dir(), reference_data_dir(), default_runs_dir()]
    if any(resolved.is_relative_to(root.resolve()) for root in trusted):
        return None
    return f"is outside the dataset folders this server shares ({ROOTS_ENV}: {', '.join(str(r) for r in roots)})"


def check_within_roots(source: str | Path) -> None:
    """DatasetError naming SEGCORE_DATA_ROOTS when `source` is a path outside them (or holds a control character)."""
    problem = roots_problem(source)
    if problem:
        shown = "".join(c if ord(c) >= 32 and ord(c) != 127 else f"\\x{ord(c):02x}" for c in str(source))
        raise DatasetError(shown, problem, "ask the teacher to put the dataset there, or upload it")
