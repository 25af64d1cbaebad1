"""Export a run: its checkpoint (safetensors + JSON) and an ONNX file checked against PyTorch."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ..base.errors import RunError
from ..models.checkpoints import build_from_checkpoint
from ..runs.run import Run


def export_run(run: Run, destination: str | Path, onnx: bool = True, tolerance: float = 1e-3) -> dict:
    destination = Path(destination)
    model, meta = build_from_checkpoint(run.best_stem)
    example = torch.rand(1, 3, meta["height"], meta["width"])
    with torch.no_grad():
        outputs = model(example)
    if not torch.isfinite(outputs).all() or not all(
        torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()
    ):
        raise RunError(
            f"run {run.run_id} has non-finite weights or outputs (NaN or infinity): it did not train "
            "properly — train it again with a lower learning rate; nothing was exported"
        )
    destination.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy2(run.path / f"best{suffix}", destination / f"{run.run_id}{suffix}")
    result = {
        "safetensors": str(destination / f"{run.run_id}.safetensors"),
        "json": str(destination / f"{run.run_id}.json"),
    }
    if onnx:
        path = destination / f"{run.run_id}.onnx"
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        result["onnx"] = str(path)
        result["onnx_max_abs_diff"] = check_onnx(model, path, example)
        if not result["onnx_max_abs_diff"] <= tolerance:  # also refuses NaN, which compares False
            raise RunError(f"the ONNX export differs from PyTorch by {result['onnx_max_abs_diff']:.2e} (> {tolerance})")
    return result


def check_onnx(model: torch.nn.Module, path: Path, example: torch.Tensor) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = torch.cat([example, torch.rand_like(example)])
    (onnx_out,) = session.run(None, {"image": batch.numpy()})
    with torch.no_grad():
        torch_out = model(batch).numpy()
    return float(np.abs(onnx_out - torch_out).max())
