"""Decoded splits on disk, for datasets larger than memory: each pair decoded once at the training size into fixed-size
uint8 records, then read back a batch at a time.

`cache_dir()/decoded/<key>/` holds images.u8 (N×3×H×W), masks.u8 (N×H×W) and meta.json. The key hashes what decides
the bytes (every pair's paths, sizes and modification times, the size, the mask encoding), so two runs or two
students on the same data at the same size share one entry. An entry is built in a private folder and renamed into
place (base/atomic.build_folder_once): a decode that is killed leaves only a staging folder, which the next eviction
removes; a lock file keeps a second process from decoding the same entry at the same time (it waits, then reads).
Entries are kept under SEGCORE_DECODED_CACHE_MB, least recently used first out.

Why pread and not a memory map: mapped pages a process has touched count as its resident memory until the kernel
reclaims them, so an epoch over a 7 GiB map shows up as a 7 GiB process; pages read with pread stay in the kernel's
page cache (reclaimable, shared by every process reading the entry) and the process holds only the batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from ..base.atomic import build_folder_once, is_complete
from ..base.errors import DatasetError
from ..base.paths import cache_dir
from .layouts import Pair
from .limits import limits

FORMAT = 1  # bump when what an entry holds changes meaning
STALE_PARTIAL_S = 3600  # a staging folder this old belongs to a decode that died
READ_CHUNK = 64  # records per read in a pass over a whole split (class counts, scoring)
Progress = Callable[[int, int], None]


def decoded_dir() -> Path:
    return cache_dir() / "decoded"


class RecordArray:
    """uint8 records of one shape in a file, indexed like a tensor (an int, a slice, a list or tensor of ints, a
    boolean mask) and read with pread: what an index asks for is all that is ever in memory. `view(indices)` is a
    subset without reading anything."""

    dtype = torch.uint8

    def __init__(self, path: Path, shape: tuple[int, ...], rows: np.ndarray | None = None) -> None:
        self.path, self.item_shape, self.count = Path(path), tuple(shape[1:]), int(shape[0])
        self.rows = rows  # positions in the file of this view's records (None: all, in order)
        self.item_bytes = int(np.prod(self.item_shape))
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.count if self.rows is None else len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    def __getstate__(self) -> dict:  # a file descriptor does not travel to another process
        return {**self.__dict__, "_fd": None}

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def _positions(self, key) -> tuple[np.ndarray, bool]:
        """(file positions, whether the key was a single index)."""
        if isinstance(key, (int, np.integer)):
            wanted, single = np.array([int(key)]), True
        elif isinstance(key, slice):
            wanted, single = np.arange(len(self))[key], False
        else:
            wanted = np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key)
            wanted = np.flatnonzero(wanted) if wanted.dtype == bool else wanted.astype(np.int64).ravel()
            single = False
        wanted = np.where(wanted < 0, wanted + len(self), wanted)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} records")
        return (wanted if self.rows is None else self.rows[wanted]), single

    def __getitem__(self, key) -> torch.Tensor:
        positions, single = self._positions(key)
        out = np.empty((len(positions), self.item_bytes), dtype=np.uint8)
        order = np.argsort(positions, kind="stable")
        start = 0
        while start < len(order):  # neighbouring records in one read
            stop = start + 1
            while stop < len(order) and positions[order[stop]] == positions[order[stop - 1]] + 1:
                stop += 1
            block = np.empty((stop - start, self.item_bytes), dtype=np.uint8)
            wanted = block.nbytes
            read = os.preadv(
                self._file(), [memoryview(block).cast("B")], int(positions[order[start]]) * self.item_bytes
            )
            if read != wanted:
                raise DatasetError(
                    self.path, "the decoded-images cache entry is shorter than it should be", "try again"
                )
            out[order[start:stop]] = block
            start = stop
        tensor = torch.from_numpy(out.reshape(len(positions), *self.item_shape))
        return tensor[0] if single else tensor

    def view(self, indices) -> RecordArray:
        positions, _ = self._positions(list(indices))
        return RecordArray(self.path, (self.count, *self.item_shape), positions)

    def chunks(self, size: int = READ_CHUNK):
        """The records in order, `size` at a time (for passes over a whole split)."""
        for start in range(0, len(self), size):
            yield self[start : start + size]


def entry_key(pairs: list[Pair], size: tuple[int, int], decoding: str) -> str:
    """What decides an entry's bytes: every file's path, size and modification time, the size, the decoding."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps({"format": FORMAT, "size": list(size), "decoding": decoding}).encode())
    for pair in pairs:
        for path in (pair.image, pair.mask):
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def split_bytes(count: int, size: tuple[int, int]) -> int:
    return count * 4 * size[0] * size[1]  # RGB image + class map, one byte each


def disk_limit_bytes() -> int:
    return limits().max_decoded_disk_bytes


def decoded_on_disk(
    pairs: list[Pair],
    size: tuple[int, int],
    decoding: str,
    decode: Callable[[Pair], tuple[np.ndarray, np.ndarray]],
    threads: int,
    progress: Progress | None = None,
):
    """(images, masks, names) of these pairs as RecordArrays, decoded into the disk cache first unless an entry
    holds them already. DatasetError when the entry would not fit SEGCORE_DECODED_CACHE_MB."""
    needed, allowed = split_bytes(len(pairs), size), disk_limit_bytes()
    root = pairs[0].image.parent if pairs else Path(".")
    if needed > allowed:
        raise DatasetError(
            root,
            f"{len(pairs)} images at {size[0]}×{size[1]} take {needed / 1024**2:.0f} MiB decoded, over the disk cache's "
            f"limit of {allowed / 1024**2:.0f} MiB (SEGCORE_DECODED_CACHE_MB)",
            "choose a smaller image size or fewer training images, or ask whoever runs the server to raise "
            "SEGCORE_DECODED_CACHE_MB",
        )
    key = entry_key(pairs, size, decoding)
    folder = decoded_dir() / key
    if not is_complete(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):  # one decoder per entry; the others wait and then read it
            if not is_complete(folder):
                for dead in folder.parent.glob(f".{key}.*.partial"):  # under the lock, no decode of it is alive
                    shutil.rmtree(dead, ignore_errors=True)
                evict(allowed - needed, keep=key)
                build_folder_once(folder, lambda staging: _decode_into(staging, pairs, size, decode, threads, progress))
    meta = json.loads((folder / "meta.json").read_text())
    try:
        os.utime(folder)  # most recently used: last to be evicted
    except OSError:
        pass
    height, width = size
    images = RecordArray(folder / "images.u8", (meta["count"], 3, height, width))
    masks = RecordArray(folder / "masks.u8", (meta["count"], height, width))
    return images, masks, meta["names"]


def _decode_into(staging: Path, pairs: list[Pair], size: tuple[int, int], decode, threads: int, progress) -> None:
    height, width = size
    image_bytes, mask_bytes = 3 * height * width, height * width
    with open(staging / "images.u8", "wb") as images, open(staging / "masks.u8", "wb") as masks:
        images.truncate(len(pairs) * image_bytes)
        masks.truncate(len(pairs) * mask_bytes)
        done = 0

        def fill(index: int) -> None:
            image, mask = decode(pairs[index])
            os.pwrite(images.fileno(), np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes(), index * image_bytes)
            os.pwrite(masks.fileno(), np.ascontiguousarray(mask).tobytes(), index * mask_bytes)

        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(fill, range(len(pairs))):
                done += 1
                if progress is not None:
                    progress(done, len(pairs))
        for stream in (images, masks):
            stream.flush()
            os.fsync(stream.fileno())
    meta = {"format": FORMAT, "count": len(pairs), "size": list(size), "names": [p.name for p in pairs]}
    (staging / "meta.json").write_text(json.dumps(meta))


def evict(budget: int, keep: str | None = None) -> list[Path]:
    """Remove entries, least recently used first, until the complete ones take at most `budget` bytes (`keep` is
    neither counted nor removed); staging folders of decodes that died are removed too."""
    folder = decoded_dir()
    if not folder.is_dir():
        return []
    entries, total, removed, now = [], 0, [], time.time()
    for path in folder.iterdir():
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if path.name.endswith((".partial", ".stale")):
            if now - stat.st_mtime > STALE_PARTIAL_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        if not path.is_dir() or path.name == keep or not is_complete(path):
            continue
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        entries.append((stat.st_mtime, size, path))
        total += size
    for _, size, path in sorted(entries):
        if total <= budget:
            break
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        total -= size
    return removed
