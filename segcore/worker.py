"""The training process a queued job runs in: python -m segcore.worker RUNS_DIR RUN_ID [MAX_RUNNING]."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .config import TrainConfig
from .errors import SegcoreError
from .jobs import JobQueue
from .runs import Run
from .training import train


def main(argv: list[str]) -> int:
    runs_dir, run_id = Path(argv[0]), argv[1]
    max_running = int(argv[2]) if len(argv) > 2 else 1
    stop = {"asked": False}

    def ask_to_stop(signum, frame):
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    run = Run.open(runs_dir, run_id)
    resume = bool(run.status.get("resume"))
    code = 0
    try:
        train(TrainConfig.from_dict(run.config), runs_dir, run_id=run_id, should_stop=lambda: stop["asked"], resume=resume)
    except SegcoreError:
        code = 1  # already recorded in the run's status with its reason
    except Exception:
        code = 1
    finally:
        JobQueue(runs_dir, max_running).pump()  # hand the device to the next job in line
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
