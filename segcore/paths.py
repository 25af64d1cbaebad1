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
