"""Limits on guessing a secret (the teacher's PIN, a student's passphrase): a few free tries per key, then a wait
that doubles with each further failure. Kept in the server's memory, per key (a session, a name, the whole server)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0


class AttemptLimiter:
    """`free` tries per key; from the `free`-th failure on, each failure makes the key wait `first_wait_s`, then twice
    as long, up to `max_wait_s`. A success forgets the key's failures."""

    def __init__(self, free: int = 5, first_wait_s: float = 2.0, max_wait_s: float = 300.0, clock=time.monotonic):
        self.free, self.first_wait_s, self.max_wait_s, self.clock = free, first_wait_s, max_wait_s, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_s(self, *keys: str) -> float:
        """Seconds until any of `keys` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            return max(
                (max(0.0, self._records[k].blocked_until - now) for k in keys if k in self._records), default=0.0
            )

    def failed(self, *keys: str, what: str = "attempt") -> None:
        """Count a failure against every key (and log it on the server's console)."""
        now = self.clock()
        with self._lock:
            for key in keys:
                record = self._records.setdefault(key, _Record())
                record.failures += 1
                beyond = record.failures - self.free + 1  # the free-th failure already makes the next try wait
                if beyond > 0:
                    record.blocked_until = now + min(self.max_wait_s, self.first_wait_s * 2 ** (beyond - 1))
        logger.warning("failed %s (%s)", what, ", ".join(keys))

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

    def forget_all(self) -> None:
        """Forget every key's failures (a server restart does the same)."""
        with self._lock:
            self._records.clear()
