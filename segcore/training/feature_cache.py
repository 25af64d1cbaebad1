"""The feature-transfer cache: a frozen encoder gives the same features for the same input every epoch,
so compute them once per distinct input (both orientations when flips are on) and train the decoder on them.

Computed features are also kept on disk, shared by every run of the same images, backbone, encoder weights,
size and orientation (a second student's feature run, or the second run of a sweep, skips the encoder pass):
`cache_dir()/features/<key>.safetensors`, keyed by content (a hash of the decoded uint8 images and of the
encoder's weights, not by names), written atomically, checked when read (a damaged file is rebuilt), and
kept under SEGCORE_FEATURE_CACHE_MB in total (least recently used first out; 0 turns the disk cache off).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from ..base.paths import cache_dir
from ..data.dataset import ImageSet
from ..models import SegmentationModel

logger = logging.getLogger(__name__)

FORMAT = "1"  # bump when what a file holds changes meaning
DEFAULT_LIMIT_MB = 2048
STALE_TEMP_S = 3600  # a temporary file this old belongs to a writer that died


def disk_limit_bytes() -> int:
    """SEGCORE_FEATURE_CACHE_MB (default 2048); 0 or less: no disk cache."""
    try:
        megabytes = float(os.environ.get("SEGCORE_FEATURE_CACHE_MB", DEFAULT_LIMIT_MB))
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return int(max(0.0, megabytes) * 1024**2)


def features_dir() -> Path:
    return cache_dir() / "features"


def throughput_batch(device: torch.device) -> int:
    """Images per encoder pass when building the cache: larger than a training batch (no gradients, no
    optimiser state), chosen for throughput (bench/README.md, 'A fast cache build')."""
    return 64 if device.type == "cuda" else 32


def _tensor_digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().to("cpu").contiguous()
    if data.dtype == torch.bfloat16:
        data = data.view(torch.int16)
    return hashlib.blake2b(memoryview(data.numpy()).cast("B"), digest_size=16).hexdigest()


def _checksum(tensor: torch.Tensor) -> str:
    return f"{zlib.crc32(memoryview(tensor.contiguous().view(torch.uint8).numpy())):08x}"


class FeatureCache:
    def __init__(
        self,
        model: SegmentationModel,
        normalize: Callable,
        device: torch.device,
        build_dtype: torch.dtype | None = None,
        origin: str = "",
        log: Callable[[str], None] | None = None,
        disk: bool = True,
    ) -> None:
        assert model.encoder_frozen and model.encoder_bn_mode != "all", "only a fully frozen encoder can be cached"
        self.model, self.normalize, self.device, self.build_dtype = model, normalize, device, build_dtype
        self.origin, self.log, self.disk = origin, log or (lambda message: None), disk
        self.store: dict[tuple[int, bool], list[torch.Tensor]] = {}
        # id → (the set, its digest): the set is kept with its digest, so a freed set's id, reused by a new object,
        # can never hand that object the old digest
        self._image_digests: dict[int, tuple[ImageSet, str]] = {}
        self._weights_digest: str | None = None
        self.built = self.loaded = 0  # orientations computed here / read from disk (tests, logs)

    # -- keys ---------------------------------------------------------------------------------
    def weights_digest(self) -> str:
        if self._weights_digest is None:
            digest = hashlib.blake2b(digest_size=16)
            for name, tensor in sorted(self.model.encoder.state_dict().items()):
                digest.update(name.encode())
                digest.update(_tensor_digest(tensor).encode())
            self._weights_digest = digest.hexdigest()
        return self._weights_digest

    def key(self, images: ImageSet, flip: bool, exact: bool) -> str:
        """Content hash of everything the features depend on: the decoded images (which fixes their size),
        the backbone, its weights (and where they came from), the normalisation, the orientation, and the
        precision (training: fp16; validation: the exact full-precision pass `eval` makes on this device)."""
        known = self._image_digests.get(id(images))
        if known is None or known[0] is not images:
            known = self._image_digests[id(images)] = (images, _tensor_digest(images.images))
        parts = {
            "format": FORMAT,
            "images": known[1],
            "shape": list(images.images.shape),
            "backbone": self.model.backbone,
            "weights": self.weights_digest(),
            "origin": self.origin,
            "mean": self.normalize.mean.flatten().tolist(),
            "std": self.normalize.std.flatten().tolist(),
            "flip": flip,
            "precision": f"exact-{self.device.type}" if exact else f"fp16 from {self.build_dtype or 'fp32'}",
        }
        return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=20).hexdigest()

    # -- building -----------------------------------------------------------------------------
    def ensure(self, images: ImageSet, flips: bool, batch_size: int | None = None, exact: bool = False) -> None:
        """Have the features of `images` (both orientations with flips) in memory: from the disk cache when a
        run of the same content stored them, else computed and stored. `exact` keeps full precision
        (validation: the run's reported mIoU must be what `eval` recomputes from the checkpoint), otherwise
        fp16 halves the memory (training)."""
        for flip in (False, True) if flips else (False,):
            if (id(images), flip) in self.store:
                continue
            key = self.key(images, flip, exact) if self.disk and disk_limit_bytes() > 0 else None
            levels = self._read(key, len(images), exact) if key else None
            if levels is None:
                started = time.perf_counter()
                levels = self._compute(images, flip, batch_size or throughput_batch(self.device), exact)
                self.built += 1
                self.log(
                    f"feature cache: encoder pass over {len(images)} images{' (mirrored)' if flip else ''} "
                    f"in {time.perf_counter() - started:.1f}s"
                )
                if key:
                    self._write(key, levels, images, flip, exact)
            else:
                self.loaded += 1
                self.log(
                    f"feature cache: {len(images)} images{' (mirrored)' if flip else ''} read from disk "
                    f"({key[:12]}), encoder pass skipped"
                )
            self.store[(id(images), flip)] = levels

    def _compute(self, images: ImageSet, flip: bool, batch_size: int, exact: bool) -> list[torch.Tensor]:
        """The frozen encoder over `images` in inference mode at a throughput batch size. Training features:
        channels_last and `build_dtype` (device.inference_dtype: bf16/fp16 on CUDA, bf16 on CPUs with native bf16),
        stored fp16. Exact (validation) features:
        the same contiguous full-precision forward `eval` makes, so its mIoU matches the run's."""
        encoder = self.model.encoder
        was_training = encoder.training
        encoder.eval()
        fast = not exact
        chunks: list[list[torch.Tensor]] = []
        try:
            with torch.inference_mode():
                for start in range(0, len(images), batch_size):
                    batch = images.images[start : start + batch_size].to(self.device, non_blocking=True)
                    if flip:
                        batch = batch.flip(-1)
                    inputs = self.normalize(batch)
                    if fast:  # the convolutions follow their input's memory format
                        inputs = inputs.contiguous(memory_format=torch.channels_last)
                    with self._reduced_precision() if fast else nullcontext():
                        features = encoder(inputs)
                    # stored contiguous (NCHW): the decoder's batches index along N
                    chunks.append([(f.to(torch.float16) if fast else f.float()).contiguous() for f in features])
        finally:
            encoder.train(was_training)
        return [torch.cat(level) for level in zip(*chunks)]  # outside inference mode: ordinary tensors

    def _reduced_precision(self):
        if self.build_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.build_dtype)

    # -- disk ---------------------------------------------------------------------------------
    def _read(self, key: str, count: int, exact: bool) -> list[torch.Tensor] | None:
        """The stored features under `key`, or None when absent or damaged (a damaged file is removed)."""
        from safetensors import safe_open

        path = features_dir() / f"{key}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as stored:
                meta = stored.metadata() or {}
                levels = [stored.get_tensor(f"level{i}") for i in range(int(meta["levels"]))]
            sums = json.loads(meta["checksums"])
            wanted = torch.float16 if not exact else torch.float32
            problem = None
            if meta.get("format") != FORMAT or meta.get("key") != key:
                problem = "written for another key or format"
            elif any(level.shape[0] != count or level.dtype != wanted for level in levels) or len(sums) != len(levels):
                problem = "shapes or types do not match"
            elif [_checksum(level) for level in levels] != sums:
                problem = "checksum mismatch"
        except Exception as exc:  # truncated, not safetensors, missing entries: all mean "rebuild"
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            logger.warning("feature cache file %s unusable (%s): rebuilding it", path, problem)
            self.log(f"feature cache: {path.name} was damaged ({problem[:120]}): computing the features again")
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # most recently used: last to be evicted
        except OSError:
            pass
        return [level.to(self.device) for level in levels]

    def _write(self, key: str, levels: list[torch.Tensor], images: ImageSet, flip: bool, exact: bool) -> None:
        """Store atomically (a temporary file renamed into place: readers see the whole file or none), then
        evict least recently used entries until the folder is under the limit. Never fails the run."""
        from safetensors.torch import save_file

        limit = disk_limit_bytes()
        size = sum(level.numel() * level.element_size() for level in levels)
        if size > limit:
            self.log(
                f"feature cache: {size / 1024**2:.0f} MiB of features is over SEGCORE_FEATURE_CACHE_MB "
                f"({limit / 1024**2:.0f} MiB): kept in memory only"
            )
            return
        folder = features_dir()
        temporary = folder / f".{key}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            cpu = [level.to("cpu").contiguous() for level in levels]
            meta = {
                "format": FORMAT,
                "key": key,
                "levels": str(len(cpu)),
                "backbone": self.model.backbone,
                "origin": self.origin[:200],
                "images": str(len(images)),
                "flip": str(flip),
                "precision": "exact" if exact else "fp16",
                "checksums": json.dumps([_checksum(t) for t in cpu]),
            }
            save_file({f"level{i}": t for i, t in enumerate(cpu)}, str(temporary), metadata=meta)
            evict(limit - size, keep=key)
            os.replace(temporary, folder / f"{key}.safetensors")
        except OSError as exc:  # a full disk or a read-only cache costs the next run a rebuild, nothing more
            temporary.unlink(missing_ok=True)
            logger.warning("feature cache not written to %s: %s", folder, exc)
            self.log(f"feature cache: not stored on disk ({exc.strerror or exc})")

    # -- training batches ---------------------------------------------------------------------
    def batch(self, images: ImageSet, indices, flip: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Cached features and masks for `indices`; with flip, each sample takes a random orientation."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        masks = images.masks[index].to(self.device)
        plain = self.store[(id(images), False)]
        if not flip:
            return [level[index.to(level.device)].float() for level in plain], masks
        flipped = self.store[(id(images), True)]
        chosen = torch.rand(len(index)) < 0.5
        features = []
        for straight, mirrored in zip(plain, flipped):
            level = straight[index].clone()
            level[chosen] = mirrored[index[chosen]]
            features.append(level.float())
        masks = masks.clone()
        masks[chosen.to(masks.device)] = masks[chosen.to(masks.device)].flip(-1)
        return features, masks

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for levels in self.store.values() for t in levels)


def evict(budget: int, keep: str | None = None) -> list[Path]:
    """Delete cached feature files, least recently used first, until they take at most `budget` bytes
    (the entry `keep`, about to be written, is neither counted nor deleted); also removes temporary files
    left by writers that died."""
    folder = features_dir()
    entries, total, removed = [], 0, []
    now = time.time()
    for path in folder.glob("*"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # another process evicted or renamed it meanwhile
            continue
        if path.name.endswith(".tmp"):
            if now - stat.st_mtime > STALE_TEMP_S:
                path.unlink(missing_ok=True)
            continue
        if path.suffix == ".safetensors" and path.stem != keep:
            entries.append((stat.st_mtime, stat.st_size, path))
            total += stat.st_size
    for _, size, path in sorted(entries):
        if total <= budget:
            break
        path.unlink(missing_ok=True)
        removed.append(path)
        total -= size
    return removed
