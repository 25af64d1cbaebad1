"""Values read from files other processes, machines or people wrote: checked for their kind, never trusted."""

from __future__ import annotations

import logging
import math
import os

logger = logging.getLogger(__name__)


def finite_number(value) -> float | None:
    """A finite JSON number, or None (JSON from other processes may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def positive_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def json_kind(value) -> str:
    """What a JSON value is, in words: for messages that say a file holds the wrong kind of thing."""
    if value is None:
        return "null"
    return {list: "a JSON list", str: "a JSON string", bool: "a JSON boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name`, else `default` (read at each call)."""
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        logger.warning("%s=%r is not a number of seconds; using %s", name, text, default)
        return default
    return value if value > 0 else default


def age_words(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h': how long ago, for a message."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
