"""segcore: the transfer-learning segmentation engine under the workbench (no Streamlit in here)."""

from .config import TrainConfig
from .data.dataset import SegmentationData, load_dataset
from .data.report import dataset_report
from .errors import DatasetError, RunError, SegcoreError, TrainingFailed, WeightsError
from .models import build, list_backbones
from .predict import Predictor
from .runs import Run, list_runs
from .strategies import REGULARIZERS, STRATEGIES
from .training import train

__all__ = [
    "DatasetError",
    "Predictor",
    "REGULARIZERS",
    "Run",
    "RunError",
    "STRATEGIES",
    "SegcoreError",
    "SegmentationData",
    "TrainConfig",
    "TrainingFailed",
    "WeightsError",
    "build",
    "dataset_report",
    "list_backbones",
    "list_runs",
    "load_dataset",
    "train",
]
