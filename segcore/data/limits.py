"""The limits that keep one upload from exhausting a shared server, in one place, each overridable by an
environment variable. Messages name the variable so an admin knows what to raise."""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_INDEX_CLASSES = 255  # class indices 0…254 fit uint8; 255 stays free as the internal 'ignored' mark


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        return int(text) if text else default
    except ValueError:
        return default


@dataclass(frozen=True)
class DataLimits:
    max_pixels: int  # per image or mask, read from the header before decoding
    max_images: int  # image/mask pairs per dataset
    max_decoded_bytes: int  # resident memory for one decoded split: larger splits go to the disk cache
    max_decoded_disk_bytes: int  # the disk cache of decoded splits (data/record_store.py), all entries together

    @classmethod
    def from_env(cls) -> DataLimits:
        return cls(
            max_pixels=_env_int("SEGCORE_MAX_PIXELS", 40_000_000),
            # a dataset's list of pairs and its mask scan stay in memory: 100,000 pairs is about 60 MiB of them
            max_images=_env_int("SEGCORE_MAX_IMAGES", 100_000),
            # a process with torch loaded already holds ~0.7 GiB; a split up to 256 MiB decoded stays in memory
            # (CamVid's 367 training pairs take 72 MiB at 192×256), a larger one is read from the disk cache a batch
            # at a time, so this bounds resident memory, not the dataset's size
            max_decoded_bytes=_env_int("SEGCORE_MAX_DECODED_MB", 256) * 1024**2,
            max_decoded_disk_bytes=_env_int("SEGCORE_DECODED_CACHE_MB", 20_480) * 1024**2,
        )


def limits() -> DataLimits:
    """Read on every call, so a changed environment (tests, a restarted server) takes effect."""
    return DataLimits.from_env()
