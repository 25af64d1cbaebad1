"""The dataset a run was trained on, read the way its training read it."""

from __future__ import annotations

from ..data.dataset import SegmentationData, load_dataset
from .run import Run

RUN_OWN = object()  # "as the run had it"


def load_run_dataset(
    run: Run, split: str | None = None, source: str | None = None, ignore_index=RUN_OWN
) -> SegmentationData:
    """The run's dataset with the run's own ignore index, validation fraction and seed, so 'val' is the very
    split it was validated on. `split`: fail now (naming the splits there are) if the dataset lacks it;
    `source`: another copy or location of the data, read with the same settings; `ignore_index`: another
    ignore index (e.g. to score a run on data that marks unlabelled pixels differently).
    RunError when config.json is damaged; DatasetError when the data cannot be read."""
    config = run.train_config
    ignore = config.ignore_index if ignore_index is RUN_OWN else ignore_index
    data = load_dataset(source or config.data, ignore_index=ignore, val_fraction=config.val_fraction, seed=config.seed)
    if split is not None:
        data.pairs(split)
    return data
