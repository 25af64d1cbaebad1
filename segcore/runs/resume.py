"""One resume point per run, consistent by construction, and one trainer per run at a time.

A resume point is a pair of files written under names no earlier point used (weights as safetensors, the
optimiser/schedule/random state for torch.load(weights_only=True)), then `resume.json` naming both, written
last and atomically. A kill at any moment leaves either the old manifest with its old, untouched pair, or the
new manifest with its complete new pair — never new weights with an old optimiser state. Each piece carries the
point's token, so a piece that does not belong to the manifest is noticed and the point is not used.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from ..base.atomic import atomic_write_bytes, atomic_write_json
from ..base.errors import RunError
from ..base.safetensors_header import safetensors_problem
from .files import LEGACY_RESUME_FILES, RESUME_MANIFEST, TRAINING_LOCK

logger = logging.getLogger(__name__)

MANIFEST = RESUME_MANIFEST
LEGACY_FILES = LEGACY_RESUME_FILES
_PIECE = re.compile(r"^resume-[A-Za-z0-9-]{1,64}\.(safetensors|pt)$")


class RunBusy(RunError):
    """Another process holds the run's training lock."""


@contextmanager
def exclusive_training(run_path: Path, run_id: str):
    """Hold the run's training lock for the whole of training; a second trainer fails at once instead of
    training the same folder alongside (non-blocking: a waiting trainer would resume stale state later)."""
    run_path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_path / TRAINING_LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunBusy(
            f"run {run_id} is already being trained by another process: wait for it to finish, "
            "or cancel it before resuming"
        ) from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class ResumePoint:
    token: str
    epoch: int
    step: int
    weights: Path
    state: Path


def save_resume_point(run_path: Path, weights: dict, state: dict, epoch: int, step: int) -> ResumePoint:
    import torch
    from safetensors.torch import save

    token = f"e{epoch:04d}-s{step:07d}-{uuid.uuid4().hex[:8]}"
    weights_path, state_path = run_path / f"resume-{token}.safetensors", run_path / f"resume-{token}.pt"
    weights_bytes = save(weights, metadata={"resume_token": token})
    buffer = io.BytesIO()
    torch.save({**state, "resume_token": token, "epoch": epoch, "step": step}, buffer)
    state_bytes = buffer.getvalue()
    atomic_write_bytes(weights_path, weights_bytes)
    atomic_write_bytes(state_path, state_bytes)
    atomic_write_json(
        run_path / MANIFEST,
        {
            "format": 1,
            "token": token,
            "epoch": epoch,
            "step": step,
            "weights": {"file": weights_path.name, "bytes": len(weights_bytes)},
            "state": {"file": state_path.name, "bytes": len(state_bytes)},
        },
    )
    for old in [*run_path.glob("resume-*"), *(run_path / name for name in LEGACY_FILES)]:
        if old.name not in (weights_path.name, state_path.name) and old.exists():
            try:
                old.unlink()
            except OSError:
                logger.warning("%s: could not remove the superseded resume piece %s", run_path, old.name, exc_info=True)
    return ResumePoint(token, epoch, step, weights_path, state_path)


def read_resume_point(run_path: Path) -> tuple[ResumePoint | None, str]:
    """(the run's resume point, '') when resume.json and both pieces it names are there, whole and of the same
    token; else (None, why not) — cheap: headers and sizes, no tensors read."""
    manifest_path = run_path / MANIFEST
    if not manifest_path.is_file():
        if any((run_path / name).exists() for name in LEGACY_FILES):
            return None, (
                f"{run_path.name} has a resume point in the older unpaired format (last.safetensors + "
                "last_state.pt, no resume.json), which cannot be proven consistent"
            )
        return None, "no resume point saved yet"
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{MANIFEST} cannot be read ({exc})"
    pieces = {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("token"), str):
        return None, f"{MANIFEST} is not a resume manifest (no token)"
    epoch, step = manifest.get("epoch"), manifest.get("step")
    if not (type(epoch) is int and epoch >= 1 and type(step) is int and step >= 0):
        return None, f"{MANIFEST}: epoch {epoch!r} / step {step!r} are not counts"
    for kind in ("weights", "state"):
        entry = manifest.get(kind)
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _PIECE.match(name):  # a plain file name: nothing outside the run folder
            return None, f"{MANIFEST} names no valid {kind} file"
        path = run_path / name
        if not path.is_file():
            return None, f"{name}, the {kind} named by {MANIFEST}, is missing"
        if path.stat().st_size != entry.get("bytes"):
            return None, f"{name} has {path.stat().st_size} bytes, {MANIFEST} recorded {entry.get('bytes')}"
        if manifest["token"] not in name:
            return None, f"{name} does not belong to the resume point {manifest['token']} that {MANIFEST} names"
        pieces[kind] = path
    problem = safetensors_problem(pieces["weights"])
    if problem:
        return None, problem
    if _safetensors_token(pieces["weights"]) != manifest["token"]:
        return None, f"{pieces['weights'].name} was written for another resume point than {MANIFEST} names"
    return ResumePoint(manifest["token"], epoch, step, pieces["weights"], pieces["state"]), ""


def load_resume_point(point: ResumePoint) -> tuple[dict, dict]:
    """(weights, training state) of a point read_resume_point accepted; RunError if the state is not its own."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(point.weights))
    state = torch.load(point.state, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("resume_token") != point.token:
        raise RunError(
            f"{point.state}: this optimiser state belongs to another resume point than {MANIFEST} names; "
            "the run cannot be resumed consistently — train it again"
        )
    return weights, state


def _safetensors_token(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("resume_token")
    except Exception:  # a damaged file has no token; the caller says so
        logger.warning("%s: cannot read its metadata", path, exc_info=True)
        return None
