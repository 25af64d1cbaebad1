"""Picking the device, and describing it for people."""

from __future__ import annotations

import os

import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was asked for but no CUDA GPU is available here: use --device cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    device = device or pick_device()
    if device.type == "cuda":
        index = device.index or 0
        used = torch.cuda.memory_allocated(index) / 1024**3
        total = torch.cuda.get_device_properties(index).total_memory / 1024**3
        return f"GPU {torch.cuda.get_device_name(index)} ({used:.1f} of {total:.0f} GiB in use by this process)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
