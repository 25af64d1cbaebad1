"""Short human names for datasets, runs and comparisons: what a teacher reads in pickers, titles and run ids."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

from filelock import FileLock

from ..base.atomic import atomic_write_json
from ..base.errors import SegcoreError


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


def slug(text: str, limit: int = 40, fallback: str = "data") -> str:
    """Text as a file-name-safe id part: letters, digits, '.', '_' and '-' only, at most `limit` characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit].strip("-.") or fallback


def default_run_name(data: object, strategy: str) -> str:
    """What a run is, in its id: dataset · strategy · time (e.g. shapes-feature-1125-231102)."""
    return f"{slug(dataset_name(data))}-{strategy}-{time.strftime('%m%d-%H%M%S')}"


def default_group_name(data: object) -> str:
    """A comparison's id: dataset and time, plus a short random tail, so two students who click in the same
    second never share a comparison."""
    return f"{slug(dataset_name(data))}-{time.strftime('%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class Titles:
    """Names people give runs and comparisons, kept beside the runs (runs/.titles.json) rather than in the run
    folders: renaming never moves a folder, so structure transfer's source-run references stay valid."""

    LIMIT = 80

    def __init__(self, runs_dir) -> None:
        self.path = Path(runs_dir) / ".titles.json"

    def _read(self) -> dict:
        try:
            payload = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"runs": {}, "comparisons": {}}
        if not isinstance(payload, dict):
            return {"runs": {}, "comparisons": {}}
        return {
            kind: {k: v for k, v in (payload.get(kind) or {}).items() if isinstance(v, str)}
            for kind in ("runs", "comparisons")
        }

    def get(self, kind: str, key: str) -> str | None:
        return self._read()[kind].get(key)

    def set(self, kind: str, key: str, title: str) -> str:
        title = " ".join(str(title).split())
        if len(title) > self.LIMIT:
            raise SegcoreError(f"a name may have at most {self.LIMIT} characters; this one has {len(title)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):  # two students renaming at once must not lose either name
            payload = self._read()
            if title:
                payload[kind][key] = title
            else:
                payload[kind].pop(key, None)  # an empty name goes back to the default
            atomic_write_json(self.path, payload)
        return title
