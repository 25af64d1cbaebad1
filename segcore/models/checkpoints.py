"""Checkpoints: a safetensors file of weights plus a JSON sidecar with what is needed to rebuild the model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from ..base.atomic import atomic_write_bytes, atomic_write_json
from ..base.errors import RunError


def save_checkpoint(model: torch.nn.Module, path: Path, meta: dict) -> None:
    """Write <path>.safetensors and <path>.json, each atomically (weights first, so the sidecar never lies)."""
    state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    atomic_write_bytes(path.with_suffix(".safetensors"), save(state))
    atomic_write_json(path.with_suffix(".json"), meta)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    weights, sidecar = path.with_suffix(".safetensors"), path.with_suffix(".json")
    if not weights.is_file() or not sidecar.is_file():
        raise RunError(f"{path.parent}: no finished checkpoint ({weights.name} + {sidecar.name}) in this run")
    try:
        return load_file(str(weights)), json.loads(sidecar.read_text())
    except Exception as exc:
        raise RunError(f"{weights}: the checkpoint cannot be read ({exc})") from None


def build_from_checkpoint(path: Path):
    """The model a checkpoint describes, with its weights, in eval mode; and its sidecar."""
    from . import SegmentationModel

    state, meta = load_checkpoint(path)
    model = SegmentationModel(meta["backbone"], meta["num_classes"], tuple(meta["decoder_channels"]))
    model.load_state_dict(state)
    return model.eval(), meta
