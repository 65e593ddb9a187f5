"""glibc malloc settings for CPU inference: keep freed memory in the process for the next forward.

A network forward on the CPU allocates and frees activations of several MB to tens of MB. With
glibc's defaults such blocks often go back to the kernel when freed (a block of their own that is
unmapped, or a heap top that is trimmed), and the next forward faults them in again page by page,
zero-filled. In the evaluation loop (HRNet18s, 2 x 4 x 321 x 481 per forward, 2 threads) that was
5.3 M page faults and 11 s of system time over 240 forwards, a fifth of a forward's time.
:func:`keep_freed_memory` sets ``M_MMAP_MAX=0`` (no block gets a mapping of its own) and a trim
threshold of 2 GiB (the heap top is kept): 25x fewer page faults, forwards about 18% faster, peak
RSS about 10% higher. Values and clicks do not change: only where memory comes from.

The setting is process-wide and stays; evaluate.py and train.py apply it (``keep_freed_memory:
true``; a CPU train step of HRNet18s gained about 20%, its loader workers inherit it), and so does
the web demo's server. A library (``iseg.predict``, ``Predictor``) does not change its host
process's malloc: annotation tools call :func:`keep_freed_memory` themselves if they want it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int)

_applied = False


def keep_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse (see the module docstring).

    Returns True when the settings are in effect, False where the C library is not glibc (macOS,
    Windows, musl), in which case nothing changes.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        log.debug("keep_freed_memory: not glibc (%s %s); malloc settings unchanged", platform.system(), platform.libc_ver())
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.warning("keep_freed_memory: glibc refused mallopt; malloc settings unchanged")
        return False
    _applied = True
    log.debug("malloc: freed memory is kept for reuse (M_MMAP_MAX=0, M_TRIM_THRESHOLD=%d)", TRIM_THRESHOLD)
    return True
