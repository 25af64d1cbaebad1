"""The class's identical runs trained once.

Most of a class opens the same lesson with the same settings and seed, and training is deterministic for a seed on
one machine. A run is keyed by everything that decides its result: the dataset's content, every setting, the seed,
where the encoder's weights come from (and the source run's own key, for structure transfer), the versions of the
code, and the CPU threads it trains with. A run whose key matches a finished run here is done at once as a linked
copy (its own folder and owner; the files hard-linked); one matching a queued or training run follows it and becomes
a linked copy when it ends (or trains itself, if that run fails). 30 students × 5 runs of one lesson cost about 5
runs of compute. A teacher who wants every run trained turns it off (Teacher page, or SEGCORE_SHARE_IDENTICAL=0).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import timm
import torch

from ..base.paths import cache_dir
from ..data.builtin import BUILTINS, GENERATOR_VERSION
from ..models.weights import weights_source
from ..runs.run import Run, is_run_folder
from ..settings.config import TrainConfig

RESULT_VERSION = 1  # bump when training's result for the same settings changes (a bug fix, a new default path)
SHARE_ENV = "SEGCORE_SHARE_IDENTICAL"
# settings that name the run, or decide nothing about its numbers
NOT_DECIDING = ("run_name", "device")


def dataset_digest(source: str) -> str | None:
    """What the dataset's content is, cheaply: a built-in by name and generator version, an upload or unpacked zip by
    the content hash its cache folder is named after, any other folder by its files' names, sizes and modification
    times. None when the dataset cannot be pinned down (then the run is never shared)."""
    kind, _, name = source.partition(":")
    if kind == "builtin" and name in BUILTINS:
        return f"builtin:{name}:v{GENERATOR_VERSION}"
    if kind == "download":
        return f"download:{name}"
    path = Path(source).expanduser()
    try:
        resolved = path.resolve()
        cache = cache_dir().resolve()
        if resolved.is_relative_to(cache):  # uploads/<content hash>/…, unzipped/<content hash>, lessons/<hash>/…
            return f"cache:{resolved.relative_to(cache).as_posix()}"
        if resolved.is_file():
            stat = resolved.stat()
            return f"file:{resolved}:{stat.st_size}:{stat.st_mtime_ns}"
        if not resolved.is_dir():
            return None
        digest = hashlib.sha256(str(resolved).encode())
        for root, folders, files in os.walk(resolved):
            folders.sort()
            for name in sorted(files):
                stat = Path(root, name).stat()
                digest.update(f"{Path(root, name).relative_to(resolved)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return f"folder:{digest.hexdigest()}"
    except OSError:
        return None


def result_key(config: TrainConfig) -> str | None:
    """The key of what decides a run's result (see the module docstring); None when it cannot be pinned down."""
    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_DECIDING}
    settings["data"] = dataset_digest(config.data)
    if settings["data"] is None:
        return None
    if config.unlabelled and config.unlabelled not in ("dataset", "rest"):  # a folder of unlabelled images: its content
        settings["unlabelled"] = dataset_digest(config.unlabelled)
        if settings["unlabelled"] is None:
            return None
    if config.source_run:
        if not is_run_folder(Path(config.source_run)):
            return None
        settings["source_run"] = Run(Path(config.source_run)).config.get("result_key")
        if not settings["source_run"]:
            return None
    info = config.strategy_info
    if info.pretrained_encoder:
        if config.weights_file:
            stat = Path(config.weights_file).stat()
            settings["weights_file"] = f"{config.weights_file}:{stat.st_size}:{stat.st_mtime_ns}"
        else:
            settings["weights_file"] = weights_source(config.backbone)
    settings["threads"] = config.threads or os.cpu_count()  # a reduction's order, hence the last bits, follows it
    settings["code"] = [RESULT_VERSION, torch.__version__, timm.__version__]
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


def sharing_on(classroom_setting: bool = True) -> bool:
    return classroom_setting and os.environ.get(SHARE_ENV, "1").strip() not in ("0", "false", "no", "off")


def trained_twin(runs: list[Run], key: str) -> Run | None:
    """A finished, whole run of this key that trained itself (the one to link), else None."""
    for run in runs:
        if (
            run.config.get("result_key") == key
            and run.state == "done"
            and not run.status.get("linked_to")
            and not run.status.get("imported")
            and run.has_checkpoint()
            and not run.broken
        ):
            return run
    return None


def active_twin(runs: list[Run], key: str) -> Run | None:
    """A queued or training run of this key that trains itself (the one to follow), else None."""
    for run in runs:
        if run.config.get("result_key") == key and run.state in ("queued", "running") and not run.status.get("follows"):
            return run
    return None
