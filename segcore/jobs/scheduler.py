"""The server's scheduler: one daemon thread per queue that keeps it moving while no page is open.

A pump that fails (a broken run folder, a full disk) is logged and kept in queue.last_error for a page to show;
the loop goes on.
"""

from __future__ import annotations

import logging
import threading
import time

from .queue import JobQueue

logger = logging.getLogger(__name__)
INTERVAL_S = 2.0


def start_scheduler(queue: JobQueue, interval_s: float = INTERVAL_S) -> threading.Thread:
    """Pump `queue` every `interval_s` seconds in a daemon thread (it ends with the server process)."""

    def keep_pumping() -> None:
        while True:
            try:
                queue.pump()
            except Exception as exc:  # one broken run folder or a full disk must not stop the scheduler
                logger.exception("the job scheduler could not run the queue in %s", queue.runs_dir)
                queue.last_error = f"{time.strftime('%H:%M:%S')} the scheduler could not run the queue: {exc}"
            time.sleep(interval_s)

    thread = threading.Thread(target=keep_pumping, name="segcore-scheduler", daemon=True)
    thread.start()
    return thread
