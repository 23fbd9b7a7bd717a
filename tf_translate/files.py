"""Files in and out, for every command: the input listing, output names, the check that
no input is overwritten, atomic writes and the one-line disk-full error.

Imports no TensorFlow: the CLI, `runs`, `translate` and `faces` share it.
"""

import errno
import json
import os


def one_line(error):
    """The first line of an error's message (TensorFlow and h5py errors run to many)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def input_paths(input_path):
    """The images of --input: a file, or every image of a folder (one-line error otherwise)."""
    from tf_translate.data import list_images

    if os.path.isdir(input_path):
        return list_images(input_path)
    if os.path.isfile(input_path):
        return [input_path]
    raise ValueError(f"--input {input_path!r} is neither an image nor a folder")


def output_names(paths):
    """Output file names: NAME.png, or NAME.EXT.png where two inputs share a NAME (x.jpg, x.png)."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return [(os.path.basename(path) if stems.count(stem) > 1 else stem) + ".png"
            for path, stem in zip(paths, stems)]


def check_no_overwrite(outputs, paths, output):
    """A one-line error if an output file would replace one of the input `paths`."""
    inputs = {os.path.realpath(path) for path in paths}
    clash = [out for out in outputs if os.path.realpath(out) in inputs]
    if clash:
        raise ValueError(f"--output {output!r} would overwrite the input {clash[0]!r}: choose another folder")


RUN_OWNED = ("run.json", "run.lock", "checkpoint.weights.h5", "checkpoint.previous.weights.h5",
             "checkpoint.weights.h5.sha256", "best.weights.h5", "evaluation.json")


def check_output(path, kind, overwrite=False, flag="--output"):
    """One-line errors before anything is written to `path` (`kind` "file" or "folder"):
    a path of the other kind, a file a run directory owns (never replaced, even with
    `overwrite`: a run's checkpoint is its only state), or any existing path unless
    `overwrite`."""
    if not os.path.lexists(path):
        return
    if kind == "file" and os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder; give a file path")
    if kind == "folder" and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file; give a folder path")
    folder = os.path.dirname(os.path.abspath(path))
    if kind == "file" and os.path.basename(path) in RUN_OWNED and os.path.exists(os.path.join(folder, "run.json")):
        raise ValueError(f"{flag} {path!r} belongs to the run in {folder!r}: choose another path")
    if not overwrite:
        raise ValueError(f"{flag} {path!r} exists: pass --overwrite to replace it, or choose another path")


def check_outputs_free(outputs, output, overwrite=False):
    """A one-line error when translations would replace files already in the output
    folder (other than with `overwrite`), naming the first and counting the rest."""
    taken = [out for out in outputs if os.path.lexists(out)]
    if taken and not overwrite:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise ValueError(f"--output {output!r} already holds {os.path.basename(taken[0])}{more}: pass --overwrite "
                         "to replace them, or choose another folder")


def replace_folder(temporary, path):
    """Moves a finished folder `temporary` to `path`, replacing an existing `path`."""
    if os.path.isdir(path):
        import shutil
        old = temporary + ".old"
        os.replace(path, old)
        os.replace(temporary, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temporary, path)


class DiskFullError(OSError):
    """No space left on device while writing; the message (one line) names the file and
    says what was kept."""

    def __init__(self, message):
        super().__init__(errno.ENOSPC, message)

    def __str__(self):
        return self.strerror


def is_disk_full(error):
    """Whether `error` is ENOSPC (h5py reports it only in its message, as `errno = 28`)."""
    return isinstance(error, OSError) and (error.errno == errno.ENOSPC or "errno = 28" in str(error))


def write_atomically(path, write):
    """Calls `write(file)` on a temporary binary file beside `path`, flushes and fsyncs
    it, then renames it to `path`: `path` is never half-written. On any failure the
    temporary file is removed and `path` is left as it was; a full disk becomes a
    one-line `DiskFullError` naming `path`."""
    path = os.fspath(path)
    temporary = path + ".tmp"
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        remove_quietly(temporary)
        if is_disk_full(error):
            raise DiskFullError(f"no space left on device writing {path!r}; "
                                "nothing was replaced (free some space and run again)") from None
        raise


def write_json_atomically(path, value):
    """Writes JSON through a temporary file and a rename, so `path` is never half-written."""
    write_atomically(path, lambda file: file.write(json.dumps(value, indent=2, sort_keys=True).encode()))


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
