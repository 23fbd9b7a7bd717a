"""Run directories: the one owner of `run.json` and the checkpoint file.

A run directory holds `run.json` and `checkpoint.weights.h5` with its SHA-256 record
`checkpoint.weights.h5.sha256` and the copy it replaced, `checkpoint.previous.weights.h5`
(and `best.weights.h5`, `evaluation.json` when evaluated):
- `model`: the `MODELS` name; `config`: the model's `get_config()` (image size included);
- `flags`: how it was trained (data, batch size, length, precision, XLA, seed, total
  steps); empty for a run written by `import-torch`;
- `imported`: only for `import-torch` runs, {direction: PyTorch checkpoint or None};
- `version`: the tf_translate version that wrote it.
Training writes and resumes runs (`training.py`), `import-torch` writes them, and
translate, export and evaluate read only their generators back (`load_generators`).
"""

import hashlib
import io
import json
import os
import shutil
import socket
import sys
import warnings

import keras
import numpy as np

# DiskFullError and the atomic writes live in `files`; imported here as well for callers of `runs`.
from tf_translate.files import (DiskFullError, is_disk_full, remove_quietly, write_atomically,  # noqa: F401
                                write_json_atomically)
from tf_translate.models import MODELS, build_model, constructor_options, model_class
from tf_translate.version import __version__

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"  # the owner (pid, host) of a run directory while it trains
CHECKPOINT = "checkpoint.weights.h5"
BEST_WEIGHTS = "best.weights.h5"  # kept by the evaluation callback (`train --eval-every`)


class RunLock:
    """One process owns a run directory while it trains: RUN/run.lock, created
    exclusively, holds the owner's pid and host and is removed when training ends.

    A lock whose process is gone (same host, pid not running) is taken over with a
    warning; a live owner, or one on another host (which cannot be checked from here),
    is a one-line error naming the lock file. Under multi-worker training only the chief
    locks (the workers share the directory)."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.take_over_if_stale()
                continue
            with os.fdopen(descriptor, "w") as file:
                json.dump(self.owner, file)
            return self
        raise ValueError(f"{self.path!r}: another process took the run directory while this one started")

    def take_over_if_stale(self):
        """Removes a lock left by a process that is gone; refuses a live one."""
        try:
            with open(self.path, encoding="utf-8") as file:
                owner = json.load(file)
            pid, host = int(owner["pid"]), str(owner["host"])
        except (OSError, ValueError, KeyError, TypeError):
            owner, pid, host = None, None, None
        if owner is not None and host != self.owner["host"]:
            raise ValueError(f"{os.path.dirname(self.path)!r} is in use by process {pid} on {host} "
                             f"({self.path}); delete that file only if that process has ended")
        if pid is not None and pid != os.getpid() and process_alive(pid):
            raise ValueError(f"{os.path.dirname(self.path)!r} is in use by process {pid} on this machine "
                             f"({self.path}): wait for it to end or stop it (it saves on Ctrl-C or SIGTERM)")
        warnings.warn(f"{self.path}: taking over the lock of process {pid}, which has ended", stacklevel=3)
        remove_quietly(self.path)

    def __exit__(self, *exc):
        try:
            with open(self.path, encoding="utf-8") as file:
                mine = json.load(file) == self.owner
        except (OSError, ValueError):
            mine = False
        if mine:
            remove_quietly(self.path)


def process_alive(pid):
    """Whether a process with `pid` runs on this machine (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def is_run(run_dir):
    return os.path.exists(os.path.join(run_dir, RUN_FILE))


def read_run(run_dir):
    """The run.json of `run_dir`, checked as untrusted input: a one-line error naming the
    file when it is missing, not JSON, or not a run record of a known model."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} is missing: {run_dir!r} is not a tf_translate run directory")
    try:
        with open(path, encoding="utf-8") as file:
            run = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path!r} is not valid JSON ({error}): the run record is damaged") from None
    expected = {"model": str, "config": dict, "flags": dict}
    problems = [key for key, kind in expected.items() if not isinstance(run, dict) or not isinstance(run.get(key), kind)]
    if problems:
        raise ValueError(f"{path!r} is not a tf_translate run record (missing or wrong: {', '.join(problems)})")
    if run["model"] not in MODELS:
        raise ValueError(f"{path!r} names an unknown model {run['model']!r}; valid models: {', '.join(sorted(MODELS))}")
    check_config(run["model"], run["config"], repr(path))
    return run


MAX_SIZE = 16384  # px: larger sizes (and widths over MAX_FILTERS) are damage, not a run
MAX_FILTERS = 4096


def check_config(model_name, config, source):
    """One-line errors, naming `source` (run.json, --option), for a model config that
    would fail or allocate absurdly deep inside Keras: unknown keys, values of the wrong
    kind for the constructor's default, sizes and widths that are not positive or not
    sane (a `filters` of 100,000 or an `image_size` of 100,000 px)."""
    parameters = constructor_options(model_name)
    for key, value in config.items():
        if key not in parameters:
            raise ValueError(f"{source}: {model_name} has no option {key!r}")
        default = parameters[key].default
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(default))
        if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise ValueError(f"{source}: {key} must be {type(default).__name__} (like {default!r}), got {value!r}")
        limit = MAX_FILTERS if "filters" in key else MAX_SIZE if key in ("image_size", "min_size", "max_size") else None
        if limit and isinstance(value, int) and not 0 < value <= limit:
            raise ValueError(f"{source}: {key} must be between 1 and {limit}, got {value}")


def write_run(run_dir, model_name, config, flags, imported=None):
    """Writes run.json (atomically) for a training run, or an imported one (`imported`)."""
    os.makedirs(run_dir, exist_ok=True)
    record = {"model": model_name, "config": config, "flags": flags, "version": __version__}
    if imported is not None:
        record["imported"] = imported
    write_json_atomically(os.path.join(run_dir, RUN_FILE), record)


def previous_copy(path):
    """RUN/checkpoint.previous.weights.h5 for RUN/checkpoint.weights.h5: the file a save
    replaced, kept until the next save has been written and verified."""
    return path[:-len(".weights.h5")] + ".previous.weights.h5"


class WeightsBuffer(io.BytesIO):
    """An in-memory weights file for `model.save_weights` (Keras writes HDF5 into a
    BytesIO; its name check wants the `.weights.h5` ending). The bytes then go to disk
    with plain file I/O: HDF5 never writes to the disk itself, because on a full disk it
    fails while closing the file and then crashes the process (a segmentation fault,
    measured on a full tmpfs with h5py 3.14)."""

    def __str__(self):
        return "in-memory.weights.h5"


def save_checkpoint(model, run_dir, name=CHECKPOINT):
    """Saves every weight, both optimizers' state (step and moments) and the image pools
    in RUN/name (the checkpoint, or the best weights an evaluation callback keeps).

    Written to a temporary file, fsynced and verified (read back, its SHA-256 is the
    one of the bytes meant, and every array in it reads), then renamed over the last
    checkpoint, which first becomes the previous copy (`previous_copy`, a hard link).
    A process killed at any moment leaves the previous checkpoint intact. The SHA-256
    goes to RUN/name.sha256 before the renames, beside the digests of the files in
    place, so whichever files a crash leaves verify on loading, and damaged bytes do not.

    A full disk (ENOSPC) is a one-line `DiskFullError` naming the run directory; the
    temporary file is removed and nothing is replaced. Peak disk use is three
    checkpoints (previous, current and the one being written); when the disk has no
    room for the third, the previous copy is removed first.
    """
    path = os.path.join(run_dir, name)
    temporary = path[:-len(".weights.h5")] + ".tmp.weights.h5"
    previous = previous_copy(path)
    buffer = WeightsBuffer()
    model.save_weights(buffer)
    data = buffer.getbuffer()
    digest = hashlib.sha256(data).hexdigest()
    if os.path.exists(previous) and shutil.disk_usage(run_dir).free < len(data):
        os.remove(previous)  # the current checkpoint alone stays until the new one is verified
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        check_weights_file(temporary, digest)
        # The files in place are among the recorded digests (the newest two, or the ones
        # before when a save was cut between record and renames): kept from the record
        # instead of hashing a multi-GB U-GAT-IT checkpoint once more per save; files
        # without a record are hashed.
        recorded = recorded_digests(path)[:3] or [sha256(p) for p in (path, previous) if os.path.exists(p)]
        write_json_atomically(path + ".sha256", {"sha256": [digest] + recorded})
        if os.path.exists(path):
            link_or_copy(path, previous)
        os.replace(temporary, path)
    except BaseException as error:
        remove_quietly(temporary)
        remove_quietly(previous + ".tmp")
        if is_disk_full(error):
            raise DiskFullError(f"no space left on device in run directory {run_dir!r}: {name} was not written "
                                "and nothing on disk was replaced (free some space, then --resume)") from None
        raise
    return path


def check_weights_file(path, digest):
    """Raises unless the file at `path` reads back with SHA-256 `digest` and every array
    in it reads."""
    import h5py

    if sha256(path) != digest:
        raise OSError(f"{path!r} did not read back as written")
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)


def link_or_copy(path, target):
    """`target` becomes a copy of `path` atomically: a hard link, or a copy where the
    file system has none."""
    temporary = target + ".tmp"
    remove_quietly(temporary)
    try:
        os.link(path, temporary)
    except OSError as error:
        if is_disk_full(error):
            raise
        shutil.copyfile(path, temporary)
    os.replace(temporary, target)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path, record=None):
    """A one-line error when the file's SHA-256 is not one recorded when it was written
    (bytes damaged on disk or in a copy). `record`: the checkpoint whose .sha256 record
    holds the digests (a previous copy's are in its checkpoint's). Checkpoints without a
    record are not checked."""
    record = record or path
    expected = recorded_digests(record)
    if expected and sha256(path) not in expected:
        raise ValueError(f"checkpoint {path!r} is damaged: its SHA-256 is not one recorded in "
                         f"{os.path.basename(record)}.sha256 when it was written")


def recorded_digests(path):
    """The SHA-256s recorded for `path` (newest first), or [] without a record."""
    record = path + ".sha256"
    if not os.path.exists(record):
        return []
    with open(record) as file:
        return json.load(file).get("sha256", [])


def load_checkpoint(model, run_dir, optimizers=True, name=CHECKPOINT):
    """Loads the run's checkpoint (or RUN/name) into `model`; False if there is none.

    When the checkpoint is damaged (its SHA-256 is not a recorded one, or it does not
    read) or missing, the previous copy that the last save kept is loaded instead, with
    a one-line warning on stderr; both bad is a one-line error naming both.

    With `optimizers=True` (resuming) the optimizers are built first and their state
    must load: Keras only warns when it does not fit and then skips it, and a resumed
    run without its moments and step would silently differ. With `optimizers=False`
    (an uncompiled model, for inference) the optimizer state in the file is not read.
    """
    path = os.path.join(run_dir, name)
    previous = previous_copy(path)
    candidates = [candidate for candidate in (path, previous) if os.path.exists(candidate)]
    if not candidates:
        return False
    if optimizers:
        model.build_optimizers()
    problems = [] if os.path.exists(path) else [f"checkpoint {path!r} is missing"]
    for candidate in candidates:
        try:
            verify_checkpoint(candidate, record=path)
            load_weights_file(model, candidate)
        except ValueError as error:
            problems.append(str(error).splitlines()[0])
            continue
        if candidate != path:
            print(f"tf_translate: warning: {problems[0]}; loaded the previous copy {candidate!r} "
                  "(the state one checkpoint interval earlier) instead", file=sys.stderr)
        return True
    if len(problems) > 1:
        raise ValueError(f"{problems[0]}, and the previous copy could not be used either ({problems[1]})")
    raise ValueError(problems[0])


def load_weights_file(model, path):
    import h5py

    try:
        h5py.File(path, "r").close()
    except Exception as error:
        raise ValueError(f"checkpoint {path!r} is damaged: it cannot be read ({str(error).splitlines()[0]})") from None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="Skipping variable loading")
            model.load_weights(path)
    except Exception as error:
        raise ValueError(f"checkpoint {path!r} does not fit this {type(model).__name__} model "
                         f"({str(error).splitlines()[0]})") from None


def missing_checkpoint(run_dir, name=CHECKPOINT):
    return ValueError(f"{os.path.join(run_dir, name)!r} is missing: the run has no "
                      + ("checkpoint yet" if name == CHECKPOINT else "such weights"))


def load_run(run_dir):
    """The compiled training model of a run with its checkpoint (optimizer state
    included), and the run record: to inspect or continue a run from Python."""
    run = read_run(run_dir)
    model = build_recorded_model(run_dir, run["model"], run["config"])
    model.compile(total_steps=run["flags"].get("total_steps"),
                  steps_per_epoch=run["flags"].get("steps_per_epoch", 1))
    if not load_checkpoint(model, run_dir):
        raise missing_checkpoint(run_dir)
    return model, run


def load_generators(run_dir, name=CHECKPOINT):
    """The run's model with trained weights (the checkpoint, or RUN/name such as the best
    weights of an evaluation callback), for translate/export/evaluate, and the record.

    The model holds only the networks its generators need (`generators_only`: no
    discriminators, image pools or loss networks, whose weights in the file are not
    read). It is built under the run's precision policy (a `mixed_float16` run's
    networks compute in float16, as they were trained; export makes float32 copies)
    and is not compiled: no optimizers are built and their state is not read.
    """
    run = read_run(run_dir)
    precision = run["flags"].get("precision", "float32")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    # Training-only parts (photo2cartoon's face model) are never loaded for inference: a
    # run.json could name any file, and a moved run would otherwise fail here.
    training_only = model_class(run["model"]).training_only_config
    config = {key: value for key, value in run["config"].items() if key not in training_only}
    try:
        model = build_recorded_model(run_dir, run["model"], config, generators_only=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if not load_checkpoint(model, run_dir, optimizers=False, name=name):
        raise missing_checkpoint(run_dir, name)
    check_finite(model, os.path.join(run_dir, name))
    return model, run


def build_recorded_model(run_dir, model_name, config, generators_only=False):
    """`build_model` from a run record (`generators_only`: see `models.base`); a config
    it refuses is a one-line error naming run.json (a record edited by hand, or written
    by another version)."""
    try:
        return build_model(model_name, **config, generators_only=generators_only)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{os.path.join(run_dir, RUN_FILE)!r}: its config does not build a {model_name} "
                         f"model ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None


def check_finite(model, path):
    """Refuses weights that are NaN or infinite (a diverged or damaged import): every
    translation would be a black image."""
    for direction, network in model.generators().items():
        bad = [w.path for w in network.weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
        if bad:
            raise ValueError(f"{path!r} holds non-finite weights (NaN or inf) in the {direction} generator "
                             f"({len(bad)} variable(s), first {bad[0]}): it cannot translate")


def generator(model, run, direction=None):
    """(direction, network): the run's generator for `direction` (default the model's
    first, a2b). Refuses a direction an imported run did not receive from PyTorch."""
    generators = model.generators()
    direction = direction or next(iter(generators))
    if direction not in generators:
        raise ValueError(f"--direction must be one of {', '.join(generators)}, got {direction!r}")
    imported = run.get("imported")
    if imported is not None and imported.get(direction, "") is None:
        raise ValueError(f"this run was imported without a {direction} checkpoint, so its {direction} "
                         "generator is untrained; import again with --checkpoint-b")
    return direction, generators[direction]
