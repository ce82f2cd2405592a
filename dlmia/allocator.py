"""Keep freed memory in the process: the CPU training loops here free and remake the same large
tensors every step, and glibc's malloc would otherwise hand them back to the system each time.

PyTorch takes CPU tensors from malloc. glibc serves a block above its mmap threshold (128 KiB,
rising with the blocks freed to at most 32 MiB) with pages of its own and unmaps it when freed,
and it trims the heap's free top beyond the trim threshold; either way the next tensor of that
size gets fresh pages, which the kernel zero-fills on first touch, one fault per 4 KiB page. A
stacked DL-MIA step makes several 3 MiB (K x 256 x 256) kernel buffers: a 12-trial fit on ML-1M
took ~514,000 page faults in 12.0 s. With both thresholds raised the blocks stay in the heap and
are reused: ~22,000 faults in 11.7 s, the same numbers bit for bit (bench/results/fits); a
sequential recommender's side trains ~2% faster. The price is a resident set that stays at its
high-water mark (up to ~10% more peak memory for a side).
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit: blocks below it come from the heap
TRIM_THRESHOLD = 256 << 20  # free heap top kept before any is given back


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc malloc's mmap and trim thresholds for this process (once; later calls do
    nothing). False where the C library has no `mallopt` (not glibc) or refuses a value."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
