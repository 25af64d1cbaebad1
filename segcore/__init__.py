"""segcore: the transfer-learning segmentation engine under the workbench (no Streamlit in here).

The public door: `from segcore import TrainConfig, train, Predictor, load_dataset, ...`. The names are looked up on
first use (PEP 562), so importing a light corner of the package (segcore.base, segcore.settings) does not import
torch. ARCHITECTURE.md maps the sub-packages.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "DatasetError": "segcore.base.errors",
    "RunError": "segcore.base.errors",
    "SegcoreError": "segcore.base.errors",
    "TrainingFailed": "segcore.base.errors",
    "WeightsError": "segcore.base.errors",
    "SegmentationData": "segcore.data.dataset",
    "load_dataset": "segcore.data.dataset",
    "dataset_report": "segcore.data.report",
    "build": "segcore.models",
    "list_backbones": "segcore.models",
    "TrainConfig": "segcore.settings.config",
    "REGULARIZERS": "segcore.settings.strategies",
    "STRATEGIES": "segcore.settings.strategies",
    "Run": "segcore.runs.run",
    "list_runs": "segcore.runs.run",
    "train": "segcore.training.lifecycle",
    "Predictor": "segcore.training.predict",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'segcore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
