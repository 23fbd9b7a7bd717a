"""XLA's persistent compilation cache for the commands that train (`train`, `demo`).

A second process with the same model, sizes and options loads its XLA train step from disk
instead of compiling it again (CycleGAN 128 px: benchmarks/RESULTS.md). TensorFlow reads
TF_XLA_FLAGS once, when the first `tf.function` runs, so the folder is named before
TensorFlow is imported (`python3 -m tf_translate.compile_cache` prints it, for scripts and CI).

XLA keys an entry on the step's signature and its HLO only (tensorflow/compiler/jit/
device_executable_persistor.h): not TensorFlow's version, the CPU the code was generated for
(loading another CPU's code only logs that it "could lead to ... SIGILL"), XLA_FLAGS or oneDNN.
Those name the folder instead, so a changed setting compiles its own programs. TensorFlow fails the step on an entry it cannot parse and on a folder it cannot
write: `prepare` drops truncated entries and skips a folder it cannot write, with one line.
Entries are never evicted (6 MB for a tiny CycleGAN, 13 MB at 128 px): delete the
folder to reclaim the space.
"""

import hashlib
import importlib.metadata
import os
import sys

from tf_translate.machine import cpu_description, onednn_setting

CACHE_FLAG = "--tf_xla_persistent_cache_directory"
OFF_FLAG = "--no-compile-cache"
# XlaSerializedCacheEntry (tensorflow/compiler/jit/xla_compilation_cache.proto): key,
# hlo_module, executable; each a length-delimited field.
ENTRY_FIELDS = {1, 2, 3}


def tensorflow_version():
    """The installed TensorFlow's version, read without importing it ("none" if absent)."""
    for name in importlib.metadata.packages_distributions().get("tensorflow", []):
        return importlib.metadata.version(name)
    return "none"


def cache_folder(environ=os.environ):
    """$TF_TRANSLATE_CACHE (default ~/.cache/tf_translate)/xla/<TF version>-onednn-<on|off>-<hash
    of the CPU's model and flags and XLA_FLAGS>."""
    root = environ.get("TF_TRANSLATE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tf_translate")
    model, flags = cpu_description()
    digest = hashlib.sha256(f"{model}\n{' '.join(sorted(flags))}\n{environ.get('XLA_FLAGS', '')}".encode()).hexdigest()[:10]
    return os.path.join(root, "xla", f"{tensorflow_version()}-onednn-{onednn_setting(flags, environ)}-{digest}")


def varint(file):
    value = shift = 0
    while True:
        byte = file.read(1)
        if not byte or shift > 63:
            raise ValueError("truncated")
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value


def whole_entry(path):
    """Whether `path` holds the three length-delimited fields of a cache entry and ends where
    the last one ends (a process killed while TensorFlow wrote it leaves a truncated file)."""
    size, fields = os.path.getsize(path), set()
    try:
        with open(path, "rb") as file:
            while file.tell() < size:
                tag = varint(file)
                if tag & 7 != 2 or tag >> 3 not in ENTRY_FIELDS:
                    return False
                fields.add(tag >> 3)
                file.seek(varint(file), os.SEEK_CUR)
            return file.tell() == size and fields == ENTRY_FIELDS
    except ValueError:
        return False


def prepare(folder):
    """Creates `folder` and removes its unreadable entries; returns an error line when it
    cannot be written (the cache is then left off), else None."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
        dropped = [name for name in sorted(os.listdir(folder))
                   if name.endswith(".pb") and not whole_entry(os.path.join(folder, name))]
        for name in dropped:
            os.remove(os.path.join(folder, name))
    except OSError as error:
        return f"cannot write {folder} ({error.strerror or error})"
    if dropped:
        print(f"tf-translate: warning: removed {len(dropped)} truncated XLA cache entr"
              f"{'y' if len(dropped) == 1 else 'ies'} from {folder}", file=sys.stderr)
    return None


def use_compile_cache(argv, environ=os.environ):
    """Points TF_XLA_FLAGS at `cache_folder()` for a command that trains, unless it has
    --no-compile-cache, TensorFlow is already imported (too late), or the user's own
    TF_XLA_FLAGS names a cache folder. Returns the folder in use by this rule, or None."""
    flags = environ.get("TF_XLA_FLAGS", "")
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in ("train", "demo") or {"-h", "--help"} & set(argv):
        return None
    if OFF_FLAG in argv or CACHE_FLAG in flags or "tensorflow" in sys.modules:
        return None
    folder = cache_folder(environ)
    problem = prepare(folder)
    if problem:
        print(f"tf-translate: warning: XLA compile cache off: {problem}", file=sys.stderr)
        return None
    environ["TF_XLA_FLAGS"] = f"{flags} {CACHE_FLAG}={folder}".strip()
    return folder


if __name__ == "__main__":
    folder = cache_folder()
    problem = prepare(folder)
    if problem:
        sys.exit(f"tf_translate.compile_cache: {problem}")
    print(folder)
