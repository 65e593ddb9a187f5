"""keep_freed_memory: freed blocks stay in the process, so allocating them again costs no page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Allocates, touches and frees a 64 MiB block ten times; prints the page faults of the last nine.
_PROGRAM = """
import resource, sys
import numpy as np
np._core.multiarray._set_madvise_hugepage(False)  # 4 KiB pages, as torch's CPU allocator uses
if sys.argv[1] == "keep":
    from iseg.allocator import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
block = 8 * 2**20  # float64 values: 64 MiB
np.ones(block).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    np.ones(block).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
def test_freed_blocks_are_reused_without_page_faults():
    pages = 9 * 64 * 2**20 // 4096  # what faulting every block in again costs (4 KiB pages)
    assert _page_faults("default") > pages // 2  # glibc maps and unmaps a block this large each time
    assert _page_faults("keep") < pages // 20
