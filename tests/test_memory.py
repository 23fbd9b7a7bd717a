import time

import numpy as np
import pytest

from tf_translate.memory import ReturnCompilerMemory, _malloc_trim, freed_memory_returned


def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(_malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system():
    """300 MB of 64 KB blocks (heap-allocated: below glibc's mmap threshold) freed
    between small blocks that stay alive: glibc keeps them resident; inside the context
    they are returned within its period, and the callback does the same for a first batch."""

    def allocate_and_free():
        blocks, pinned = [], []
        for _ in range(4800):
            blocks.append(np.ones(64 * 1024 // 8))
            pinned.append(np.ones(16))  # live blocks between the freed ones: holes, not a top
        del blocks
        return pinned

    pinned = allocate_and_free()
    kept = resident_mb()
    with freed_memory_returned(period=0.05):
        time.sleep(0.3)
        returned = resident_mb()
    assert kept - returned > 150, (kept, returned)

    pinned = allocate_and_free()
    kept = resident_mb()
    callback = ReturnCompilerMemory(period=0.05)
    callback.on_train_batch_begin(0)
    time.sleep(0.3)
    callback.on_train_batch_end(0)
    assert kept - resident_mb() > 150
    callback.on_train_batch_begin(1)  # only the first batch: no second trimming thread
    assert callback._context is None
    del pinned
