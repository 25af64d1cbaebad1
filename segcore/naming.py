"""Short human names for datasets, runs and comparisons: what a teacher reads in pickers, titles and run ids."""

from __future__ import annotations

import re
import time
from pathlib import Path


def dataset_name(source: object) -> str:
    """'shapes' for builtin:shapes, 'camvid.zip' for an uploaded zip, the folder's name for a folder (for an
    uploaded folder, the name it had on the student's computer rather than the server's cache key)."""
    text = str(source)
    if re.match(r"^(builtin|download):", text):
        return text.split(":", 1)[1]
    path = Path(text.rstrip("/\\"))
    if path.parent.name == "uploads" and path.is_dir():  # an uploaded folder lives under its content hash
        inside = [p for p in path.iterdir() if not p.name.startswith(".")]
        if len(inside) == 1 and inside[0].is_dir():
            return inside[0].name
    return path.name or text


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "data"


def default_run_name(data: object, strategy: str) -> str:
    """What a run is, in its id: dataset · strategy · time (e.g. shapes-feature-1125-231102)."""
    return f"{slug(dataset_name(data))}-{strategy}-{time.strftime('%m%d-%H%M%S')}"


def default_group_name(data: object) -> str:
    return f"{slug(dataset_name(data))}-{time.strftime('%m%d-%H%M%S')}"
