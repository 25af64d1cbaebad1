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


def shapes_problem(weights: Path, meta: dict) -> str | None:
    """Why the tensors of a checkpoint do not fit the network its sidecar describes (names or shapes differ), read
    from the safetensors header alone; None when they fit."""
    from safetensors import safe_open

    from . import SegmentationModel

    try:
        with torch.device("meta"):
            expected = SegmentationModel(meta["backbone"], meta["num_classes"], tuple(meta["decoder_channels"]))
        wanted = {name: tuple(t.shape) for name, t in expected.state_dict().items()}
        with safe_open(str(weights), framework="pt") as stored:
            found = {name: tuple(stored.get_slice(name).get_shape()) for name in stored.keys()}
    except Exception as exc:  # a sidecar naming no model, a file that is not safetensors
        return f"{weights.name} cannot be checked against its sidecar ({type(exc).__name__}: {str(exc)[:120]})"
    missing = sorted(set(wanted) - set(found))
    if missing:
        return f"{weights.name} lacks {len(missing)} tensor(s) of a {meta['backbone']} network (e.g. {missing[0]})"
    wrong = next((n for n in wanted if found[n] != wanted[n]), None)
    if wrong:
        return f"{weights.name}: {wrong} has shape {list(found[wrong])}, a {meta['backbone']} network needs {list(wanted[wrong])}"
    return None
