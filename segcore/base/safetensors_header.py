"""Whether a .safetensors file is whole, judged from its header and size alone (no tensor is read, no torch)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from .values import positive_int


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be loaded (truncated, not safetensors), checked from its header and size
    alone; None when it looks whole. Cheap enough for every page load."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                return f"{path.name} is {size} bytes, too short to be a safetensors file"
            (header_size,) = struct.unpack("<Q", prefix)
            if header_size > min(size - 8, 100_000_000):
                return f"{path.name} is truncated or not a safetensors file (its header claims {header_size} bytes, the file has {size})"
            header = json.loads(stream.read(header_size))
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{path.name} is not a safetensors file (its header is not JSON)"
    if not isinstance(header, dict):
        return f"{path.name} is not a safetensors file (its header is not a JSON object)"
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(positive_int(o) is not None or o == 0 for o in offsets)
        ):
            return f"{path.name} is not a safetensors file (tensor '{name}' has no valid data offsets)"
        data_end = max(data_end, offsets[1])
    expected = 8 + header_size + data_end
    if size != expected:
        return f"{path.name} is truncated or damaged: it has {size} bytes, its header describes {expected}"
    return None
