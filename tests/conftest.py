"""Shared fixtures: small datasets generated on the fly in every layout and mask format we read."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tests never touch the user's cache; subprocesses (CLI, jobs) inherit this too.
os.environ.setdefault("SEGCORE_CACHE", tempfile.mkdtemp(prefix="segcore-test-cache-"))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CAMVID = SHARED / "camvid"
MEMBRANE = SHARED / "membrane"
needs_camvid = pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid not present at {CAMVID}")
needs_membrane = pytest.mark.skipif(not MEMBRANE.is_dir(), reason=f"membrane data not present at {MEMBRANE}")


def wait_until(predicate, timeout_s: float = 120.0, poll_s: float = 0.1) -> bool:
    """Poll until predicate() is true or the time is up; for watching other processes' work."""
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return False


def synthetic_pair(rng: np.random.Generator, size=(64, 64), classes=3) -> tuple[np.ndarray, np.ndarray]:
    """An image whose classes are visibly different (a bright square, a dark disc) so a model can learn them."""
    h, w = size
    image = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    y, x = rng.integers(4, h // 2), rng.integers(4, w // 2)
    s = rng.integers(h // 5, h // 3)
    mask[y : y + s, x : x + s] = 1
    image[y : y + s, x : x + s] = (230, 210, 40)
    if classes > 2:
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = rng.integers(h // 2, h - 8), rng.integers(w // 2, w - 8)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (h // 8) ** 2
        mask[disc] = 2
        image[disc] = (20, 40, 160)
    return image, mask


def write_images_masks(
    root: Path, count=10, size=(64, 64), classes=3, seed=0, class_file=True, mask_fn=None, image_ext=".png"
) -> Path:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(count):
        image, mask = synthetic_pair(rng, size, classes)
        Image.fromarray(image).save(root / "images" / f"img_{i:03d}{image_ext}")
        stored = mask_fn(mask) if mask_fn else Image.fromarray(mask)
        stored.save(root / "masks" / f"img_{i:03d}.png")
    if class_file:
        (root / "classes.txt").write_text("\n".join(["background", "square", "disc"][:classes]) + "\n")
    return root


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    return write_images_masks(tmp_path / "small", count=12)


@pytest.fixture(scope="session")
def train_dataset(tmp_path_factory) -> Path:
    """Shared by training tests: 16 pairs, 3 classes, 64×64."""
    return write_images_masks(tmp_path_factory.mktemp("train") / "data", count=16)


@pytest.fixture(scope="session")
def source_dataset(tmp_path_factory) -> Path:
    """A different task for structure transfer: 2 classes."""
    return write_images_masks(tmp_path_factory.mktemp("source") / "data", count=12, classes=2, seed=7)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    monkeypatch.setenv("SEGCORE_RUNS", str(path))
    yield path
    # a page's Train button starts real workers: none may outlive its test and slow the rest of the suite
    from segcore.jobs.queue import JobQueue
    from segcore.runs.run import list_runs

    queue = JobQueue(path)
    for run in list_runs(path):
        if run.state in ("queued", "running"):
            queue.cancel(run.run_id, grace_s=3)
