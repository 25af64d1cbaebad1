"""Where segcore keeps things on disk: a cache for generated/unpacked/downloaded data, and the runs folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("SEGCORE_CACHE", Path.home() / ".cache" / "segcore"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_runs_dir() -> Path:
    return Path(os.environ.get("SEGCORE_RUNS", "runs"))


def default_lessons_dir(runs_dir: str | Path | None = None) -> Path:
    """Where teachers' lesson files are listed from: $SEGCORE_LESSONS, else a 'lessons' folder beside the runs folder."""
    if os.environ.get("SEGCORE_LESSONS"):
        return Path(os.environ["SEGCORE_LESSONS"])
    return Path(runs_dir or default_runs_dir()).resolve().parent / "lessons"


REFERENCE_DATA_ENV = "SEGCORE_REFERENCE_DATA"  # a folder holding camvid/ and membrane/ (default: ../shared/data)


def reference_data_dir() -> Path:
    """Where the domain distance's reference datasets (street scenes, microscopy) are looked for."""
    return Path(os.environ.get(REFERENCE_DATA_ENV, Path(__file__).resolve().parents[3] / "shared" / "data"))
