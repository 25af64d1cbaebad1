"""A training process's peak memory: large blocks are mapped on their own, so freed activations go back to the system.

glibc's malloc serves a block over its mmap threshold with its own mapping, released when freed. The threshold
starts at 128 KiB and *grows* each time such a block is freed, up to 32 MiB, so after the first training step a
step's activations (1–16 MiB each) come from the heap instead, freed and reallocated in a different order each
step: the heap fragments and the process's peak resident memory rises by ~0.3 GiB over what the step holds
(bench/README.md, "Large datasets"). A fixed threshold keeps every large block a mapping of its own. The library
way (MALLOC_MMAP_THRESHOLD_ in the environment) must be set before the interpreter starts, which a worker the
queue or Ray starts does not control; mallopt sets the same at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BLOCK_BYTES = 1 << 20  # 1 MiB: a 256×256 activation of 4 channels; smaller blocks stay in the heap's bins


def map_large_blocks_alone(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for this process; False where the C library is not glibc
    (macOS, musl): nothing is changed there."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
