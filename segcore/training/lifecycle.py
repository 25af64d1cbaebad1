"""One run's life: train() makes or resumes its folder, holds its training lock, runs the Trainer and records how it
ended — done with its summary, cancelled, or failed with the reason a person can act on (the last good checkpoint
stays). Under torchrun, rank 0 alone writes the folder."""

from __future__ import annotations

import errno
import time
import traceback
from pathlib import Path
from typing import Callable

import torch

from ..base.errors import SegcoreError, TrainingFailed
from ..data.dataset import SegmentationData, load_dataset
from ..models.device import pick_device
from ..runs import resume as resume_points
from ..runs.run import Run, new_run_id
from ..runs.writer import RunWriter, forget_metrics_after_resume_point
from ..settings.config import TrainConfig
from .distributed import Distributed, QuietWriter
from .loop import Cancelled, Trainer, configure_process


def train(
    config: TrainConfig,
    runs_dir: str | Path = "runs",
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    data: SegmentationData | None = None,
    listener: Callable[[dict], None] | None = None,
    resume: bool = False,
) -> Run:
    """Train one run to the end. The run folder records success, failure (with its reason) or cancellation;
    user-facing problems are raised as SegcoreError after being recorded; RunBusy when another process
    is training the same run (nothing is touched then). An invalid config is refused (ConfigError) before
    any folder is made."""
    config.validate()
    runs_dir = Path(runs_dir).resolve()  # a worker or page may change directory; the run folder must not move
    runs_dir.mkdir(parents=True, exist_ok=True)
    dist = Distributed.from_env()
    with dist.process_group(dist.device(pick_device(config.device))):  # under torchrun only (gpus ≥ 2)
        run_id = dist.agree(run_id or new_run_id(runs_dir, config.run_name, config.strategy, config.data))
        if not dist.is_main:
            return _train_beside_rank_zero(config, runs_dir / run_id, should_stop, data, resume)
        return _train_run(config, runs_dir, run_id, should_stop, data, listener, resume)


def _train_beside_rank_zero(config: TrainConfig, run_path: Path, should_stop, data, resume: bool) -> Run:
    """Ranks 1..N-1: the same steps as rank 0 on their own shards; rank 0 alone writes the run folder and records
    failures (an error here ends this process, and torchrun then stops the others)."""
    configure_process(config, pick_device(config.device))
    if data is None:
        data = load_dataset(
            config.data, ignore_index=config.ignore_index, val_fraction=config.val_fraction, seed=config.seed
        )
    try:
        Trainer.build(config, data, QuietWriter(run_path), should_stop).fit(resume=resume)
    except Cancelled:
        pass
    return Run(run_path)


def _train_run(config: TrainConfig, runs_dir: Path, run_id: str, should_stop, data, listener, resume: bool) -> Run:
    with resume_points.exclusive_training(
        runs_dir / run_id, run_id
    ):  # RunBusy: another process trains it; touch nothing
        if resume:
            forget_metrics_after_resume_point(runs_dir / run_id)
        writer = RunWriter(runs_dir / run_id, listener)
        if not writer.has_config():
            writer.write_config({**config.to_dict(), "created": time.time(), "run_id": run_id})
        writer.set_status("running")
        try:
            configure_process(config, pick_device(config.device))
            if data is None:
                data = load_dataset(
                    config.data, ignore_index=config.ignore_index, val_fraction=config.val_fraction, seed=config.seed
                )
            trainer = Trainer.build(config, data, writer, should_stop)
            summary = trainer.fit(resume=resume)
            writer.write_summary(summary)
            writer.set_status("done", miou=summary["miou"])
            writer.log("done")
            return Run(writer.path)
        except Cancelled:
            writer.log("cancelled by the user")
            writer.set_status("cancelled", reason="cancelled by the user")
            return Run(writer.path)
        except torch.cuda.OutOfMemoryError:
            reason = "out of GPU memory: choose a smaller batch size or image size and train again"
            writer.fail(reason)
            raise TrainingFailed(reason) from None
        except SegcoreError as exc:
            writer.fail(str(exc))
            raise
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                writer.fail(
                    f"internal error: {type(exc).__name__}: {exc}",
                    "failed with an internal error:\n" + traceback.format_exc(),
                )
                raise
            what = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
            reason = (
                f"{what}: free space in {runs_dir} (delete old runs or exports) and resume the run "
                f"(writing {exc.filename or writer.path} failed)"
            )
            writer.fail(reason)
            raise TrainingFailed(reason) from None
        except BaseException as exc:
            writer.fail(
                f"internal error: {type(exc).__name__}: {exc}",
                "failed with an internal error:\n" + traceback.format_exc(),
            )
            raise
        finally:
            writer.close()
