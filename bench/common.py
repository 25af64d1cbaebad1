"""Shared by the benchmarks: the peer (smp) model, a plain training loop for it, memory and table helpers."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
RESULTS = ROOT / "bench" / "results"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} (CPU)"


def peer_model(num_classes: int, frozen: bool, pretrained: bool = True):
    """smp's U-Net over timm's tf_efficientnet_lite0, with the same bundled ImageNet weights as ours
    (or none: the peer's from-scratch baseline)."""
    import segmentation_models_pytorch as smp

    from segcore.models.weights import pretrained_state_dict

    model = smp.Unet("tu-tf_efficientnet_lite0", encoder_weights=None, classes=num_classes)
    if not pretrained:
        return model
    state, _ = pretrained_state_dict("tf_efficientnet_lite0")
    encoder = model.encoder.model
    wanted = encoder.state_dict()
    encoder.load_state_dict({k: state[k] for k in wanted})
    if frozen:
        model.freeze_encoder()  # smp: no gradients and norm layers kept in eval mode
    return model


def write_results(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return "—" if value is None else str(value)
