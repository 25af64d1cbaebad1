"""Picking the device, and describing it for people."""

from __future__ import annotations

import functools
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


@functools.cache  # asked at every training step of a cached-feature run
def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 convolutions run in hardware (2.5–3× an fp32 inference pass on the 2-core dev
    machine, bench/README.md); elsewhere bf16 on a CPU is emulated and slower than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent on other torch builds
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def inference_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision of an inference-only pass whose result is stored in fp16 anyway (the feature cache's
    training features): the GPU's bf16 (else fp16), bf16 on a CPU that has it natively, else None (fp32)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None
