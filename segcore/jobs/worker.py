"""The training process a queued job runs in: python -m segcore.jobs.worker RUNS_DIR RUN_ID [MAX_RUNNING].

Whatever stops it before or during training, the run's status.json gets the real reason (not a later
"killed or crashed" guess), unless another live process owns the run; the next job is started either way.
A run with gpus ≥ 2 replaces this process by torchrun, which starts one worker per GPU (training/distributed.py);
rank 0 speaks for the run.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from ..base.errors import SegcoreError
from ..runs.resume import RunBusy
from ..runs.run import Run, check_run_id
from ..runs.writer import fail_unfinished_run
from ..training.distributed import Distributed, check_devices, exec_under_torchrun, needs_relaunch
from ..training.lifecycle import train
from .queue import JobQueue

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    runs_dir, run_id = Path(argv[0]).resolve(), argv[1]
    max_running = int(argv[2]) if len(argv) > 2 else 1
    stop = {"asked": False}

    def ask_to_stop(signum, frame):
        stop["asked"] = True

    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    code = 0
    try:
        run = Run.open(runs_dir, run_id)
        config = run.train_config
        if needs_relaunch(config.gpus):
            check_devices(config.gpus)
            exec_under_torchrun(config.gpus, ["segcore.jobs.worker", *argv])  # does not return
        resume = run.status_record.resume
        train(config, runs_dir, run_id=run_id, should_stop=lambda: stop["asked"], resume=resume)
    except RunBusy as exc:  # the other trainer owns status.json; only our own launch record is replaced
        code = 1
        logger.error("%s", exc)
        _record(runs_dir, run_id, str(exc))
    except SegcoreError as exc:
        code = 1
        logger.error("run %s failed: %s", run_id, exc)
        _record(runs_dir, run_id, str(exc))  # no-op when training already recorded it
    except BaseException as exc:
        code = 1
        logger.exception("run %s: the worker stopped with an internal error", run_id)
        _record(runs_dir, run_id, f"the training process stopped with an internal error: {type(exc).__name__}: {exc}")
    finally:
        if not Distributed.from_env().is_main:
            return code  # rank 0 records the outcome and starts the next job
        try:
            JobQueue(runs_dir, max_running, check_backend=False).pump()  # hand the device to the next job in line
        except Exception:
            logger.exception("could not start the next queued job from %s", runs_dir)
    return code


def _record(runs_dir: Path, run_id: str, reason: str) -> None:
    if not Distributed.from_env().is_main:
        return
    try:
        if fail_unfinished_run(runs_dir / check_run_id(run_id), reason):
            logger.info("run %s marked failed: %s", run_id, reason)
    except Exception:
        logger.exception("run %s: could not record why it failed (%s)", run_id, reason)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
