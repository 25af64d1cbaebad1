"""One run on several processes, one GPU each (PyTorch DDP under torchrun).

A run with `gpus` ≥ 2 re-executes its entry point (the worker, the CLI's `train`) under
`torchrun --standalone --nproc_per_node=N`; every process then trains the same model on its own shard of the
training images, gradients are averaged by DDP, the validation confusion matrix is summed over processes,
and only rank 0 writes the run folder. Outside torchrun `Distributed()` is one process and every helper
here does nothing, so single-process training is unchanged.

SEGCORE_DDP_ON_CPU=1 runs the N processes on CPU with gloo (tests, and trying the path without GPUs).
SEGCORE_DDP_CHECKSUMS=FOLDER (tests only): each process appends a checksum of its parameters after every step.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..base.errors import TrainingFailed
from ..runs.run import Run

CPU_ENV = "SEGCORE_DDP_ON_CPU"
CHECKSUM_ENV = "SEGCORE_DDP_CHECKSUMS"


def on_cpu_requested() -> bool:
    return os.environ.get(CPU_ENV, "") == "1"


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def needs_relaunch(gpus: int) -> bool:
    """Whether an entry point must start itself again under torchrun: N ≥ 2 processes asked, not yet one of them."""
    return gpus >= 2 and not under_torchrun()


def check_devices(gpus: int) -> None:
    if gpus < 2 or on_cpu_requested():
        return
    available = torch.cuda.device_count()
    if available < gpus:
        raise TrainingFailed(
            f"the run asks for {gpus} GPUs (setting gpus, --gpus {gpus}) but this machine has {available}: lower --gpus, "
            f"queue it on a Ray cluster that has them, or set {CPU_ENV}=1 to train {gpus} processes on the CPU"
        )


def torchrun_command(processes: int, module_and_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        *module_and_args,
    ]


def exec_under_torchrun(processes: int, module_and_args: list[str]) -> None:
    """Replace this process by torchrun (same pid: the queue's record of the worker and its signals stay valid)."""
    sys.stdout.flush()
    sys.stderr.flush()
    command = torchrun_command(processes, module_and_args)
    os.execv(command[0], command)


def run_under_torchrun(processes: int, module_and_args: list[str]) -> int:
    return subprocess.call(torchrun_command(processes, module_and_args))


@dataclass(frozen=True)
class Distributed:
    """This process's place among the run's processes (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    active: bool = False  # under torchrun, even with one process (so one GPU exercises the whole path)

    @classmethod
    def from_env(cls) -> Distributed:
        if not under_torchrun():
            return cls()
        env = os.environ
        return cls(
            rank=int(env["RANK"]),
            world=int(env["WORLD_SIZE"]),
            local_rank=int(env["LOCAL_RANK"]),
            local_world=int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
            active=True,
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, picked: torch.device) -> torch.device:
        """The device of this process: its own GPU (cuda:LOCAL_RANK), or the CPU when asked or without GPUs."""
        if not self.active:
            return picked
        if picked.type == "cuda" and not on_cpu_requested():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def cpu_threads(self) -> int:
        """CPU threads per process: the cores shared out, so N processes do not fight over them."""
        return max(1, (os.cpu_count() or 1) // self.local_world)

    # -- the process group --------------------------------------------------------------------
    @contextmanager
    def process_group(self, device: torch.device):
        """NCCL between GPUs, gloo on CPU; torn down when the run ends, however it ends."""
        if not self.active or torch.distributed.is_initialized():
            yield self
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            yield self
        finally:
            torch.distributed.destroy_process_group()

    def _tensor(self, values) -> torch.Tensor:
        # collectives on NCCL need CUDA tensors
        device = (
            torch.device("cuda", self.local_rank) if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        )
        return torch.as_tensor(values, dtype=torch.float64, device=device)

    def agree(self, value):
        """Rank 0's value on every rank (e.g. the run id the CLI picked)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one: a stop asked of one process stops all at the same step."""
        if not self.active:
            return flag
        tensor = self._tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def mean(self, value: float) -> float:
        """The mean over ranks: every rank logs and checks the same loss (a NaN on one fails them all together)."""
        if not self.active:
            return value
        tensor = self._tensor([value])
        torch.distributed.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """Integer counts (a confusion matrix) summed over ranks, where they were."""
        if not self.active:
            return counts
        device = self._tensor([0.0]).device
        total = counts.to(device)
        torch.distributed.all_reduce(total)
        return total.to(counts.device)

    # -- data -----------------------------------------------------------------------------------
    def shard_size(self, count: int) -> int:
        """Training images per process per epoch (the set padded to a multiple of the process count)."""
        return math.ceil(count / self.world) if self.active else count

    def shard(self, count: int, seed: int, epoch: int) -> list[int]:
        """This rank's training images for `epoch`, like DistributedSampler: one seeded permutation shared by all
        ranks, padded by repeating its start so each rank gets the same number of images (and steps)."""
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(count, generator=generator).tolist()
        size = self.shard_size(count) * self.world
        padded = (order * math.ceil(size / count))[:size]
        return padded[self.rank :: self.world]

    def eval_range(self, count: int) -> range:
        """A contiguous share of the validation images; the shares cover every image exactly once."""
        if not self.active:
            return range(count)
        return range(count * self.rank // self.world, count * (self.rank + 1) // self.world)

    # -- the model ------------------------------------------------------------------------------
    def prepare_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        """SyncBatchNorm across GPUs (CPU gloo has no SyncBatchNorm); timm's converter keeps BatchNormAct layers whole."""
        if self.active and device.type == "cuda":
            from timm.layers import convert_sync_batchnorm

            return convert_sync_batchnorm(model)
        return model

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around what a training step calls (gradients averaged over ranks); the module itself alone."""
        if not self.active:
            return module
        on_gpu = next(module.parameters()).device.type == "cuda"
        return nn.parallel.DistributedDataParallel(module, device_ids=[self.local_rank] if on_gpu else None)

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's BatchNorm running statistics on every rank: each rank updated its own in its last training
        step, and the model every rank scores must be the one rank 0 saves."""
        if not self.active:
            return
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    def record_checksum(self, model: nn.Module, step: int) -> None:
        """Tests only (SEGCORE_DDP_CHECKSUMS): prove that every rank holds the same parameters after each step."""
        folder = os.environ.get(CHECKSUM_ENV)
        if not folder:
            return
        digest = hashlib.sha1()
        for name, parameter in model.named_parameters():
            digest.update(name.encode())
            digest.update(parameter.detach().to("cpu", torch.float64).numpy().tobytes())
        with open(Path(folder) / f"rank{self.rank}.txt", "a") as stream:
            stream.write(f"{step} {digest.hexdigest()}\n")


class DecodeFeatures(nn.Module):
    """model.decode as a module's forward, for the cached-features path. DDP only sees forward(): decode() called
    past a DDP wrapper of the whole model would leave the decoder's and head's gradients unsynchronised."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: list[torch.Tensor], size) -> torch.Tensor:
        return self.model.decode(features, size)


class QuietWriter(Run):
    """The run folder as ranks 1..N-1 see it: read (resume points), never written — rank 0 writes it, once."""

    def log(self, message: str) -> None:
        pass

    def log_metrics(self, record: dict) -> None:
        pass

    def note_preparing(self, what: str, done: int, total: int) -> None:
        pass
