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
    max_decoded_bytes: int  # one split decoded at the training size (images + masks)

    @classmethod
    def from_env(cls) -> DataLimits:
        return cls(
            max_pixels=_env_int("SEGCORE_MAX_PIXELS", 40_000_000),
            max_images=_env_int("SEGCORE_MAX_IMAGES", 10_000),
            # a process with torch loaded already holds ~0.7 GiB; 256 MiB more keeps one student's data under
            # 1 GiB (CamVid's 367 training pairs take 72 MiB at 192×256, 254 MiB at their full 360×480)
            max_decoded_bytes=_env_int("SEGCORE_MAX_DECODED_MB", 256) * 1024**2,
        )


def limits() -> DataLimits:
    """Read on every call, so a changed environment (tests, a restarted server) takes effect."""
    return DataLimits.from_env()
