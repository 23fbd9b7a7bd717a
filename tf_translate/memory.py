"""Handing the memory that XLA's compiler frees back to the operating system.

glibc's malloc keeps freed heap memory for reuse and returns it to the system only
when it lies at the top of a heap. Compiling a large train step frees most of the
compiler's working memory in the middle of the heaps, so it stays resident, and the
step's own buffers (allocated fresh, as large blocks) come on top of it. For full
U-GAT-IT at 128 px (benchmarks/compile_profile.py) that is 0.8 GB of freed compiler
memory under a 2.0 GB step: peak RSS 7.6 GB, or 6.9 GB when it is returned while the
first step compiles.
"""

import contextlib
import ctypes
import ctypes.util
import threading

import keras


def _malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def freed_memory_returned(period=0.5):
    """While the block runs, returns freed heap memory to the system every `period`
    seconds, and once more at its end. Meant for a first train step (trace and XLA
    compile); a trim costs a few ms to 0.2 s of one core, so it is not for every step.
    A no-op without glibc."""
    trim = _malloc_trim()
    if trim is None:
        yield
        return
    done = threading.Event()

    def trim_until_done():
        while not done.wait(period):
            trim(0)

    thread = threading.Thread(target=trim_until_done, name="malloc-trim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        trim(0)


class ReturnCompilerMemory(keras.callbacks.Callback):
    """Runs the first batch of `fit` (where the step is traced and XLA-compiled) inside
    `freed_memory_returned`, lowering the training process's peak memory."""

    def __init__(self, period=0.5):
        super().__init__()
        self.period = period
        self._context = None
        self._done = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self._done and self._context is None:
            self._context = freed_memory_returned(self.period)
            self._context.__enter__()

    def on_train_batch_end(self, batch, logs=None):
        self._stop()

    def on_train_end(self, logs=None):
        self._stop()  # fit ended (or failed) inside the first batch

    def _stop(self):
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
            self._done = True
