"""Run directories: the one owner of `run.json` and the checkpoint file.

A run directory holds `run.json` and `checkpoint.weights.h5` (and `best.weights.h5`,
`evaluation.json` when evaluated):
- `model`: the `MODELS` name; `config`: the model's `get_config()` (image size included);
- `flags`: how it was trained (data, batch size, length, precision, XLA, seed, total
  steps); empty for a run written by `import-torch`;
- `imported`: only for `import-torch` runs, {direction: PyTorch checkpoint or None};
- `version`: the tf_translate version that wrote it.
Training writes and resumes runs (`training.py`), `import-torch` writes them, and
translate, export and evaluate read only their generators back (`load_generators`).
"""

import hashlib
import json
import os
import warnings

import keras

from tf_translate import __version__
from tf_translate.models import MODELS, build_model, model_class

RUN_FILE = "run.json"
CHECKPOINT = "checkpoint.weights.h5"
BEST_WEIGHTS = "best.weights.h5"  # kept by the evaluation callback (`train --eval-every`)


def write_json_atomically(path, value):
    """Writes JSON through a temporary file and a rename, so `path` is never half-written."""
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(value, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


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
    return run


def write_run(run_dir, model_name, config, flags, imported=None):
    """Writes run.json (atomically) for a training run, or an imported one (`imported`)."""
    os.makedirs(run_dir, exist_ok=True)
    record = {"model": model_name, "config": config, "flags": flags, "version": __version__}
    if imported is not None:
        record["imported"] = imported
    write_json_atomically(os.path.join(run_dir, RUN_FILE), record)


def save_checkpoint(model, run_dir, name=CHECKPOINT):
    """Saves every weight, both optimizers' state (step and moments) and the image pools
    in RUN/name (the checkpoint, or the best weights an evaluation callback keeps).

    Written to a temporary file, flushed, then renamed over the last checkpoint: a
    process killed at any moment leaves the previous checkpoint intact. Its SHA-256 goes
    to RUN/name.sha256 before the rename, beside the previous file's, so whichever file a
    crash leaves in place verifies on loading, and damaged bytes do not.
    """
    path = os.path.join(run_dir, name)
    temporary = os.path.join(run_dir, name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(temporary)
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    # The file in place is one of the recorded digests (the newest, or the one before when
    # a save was cut between record and rename): kept from the record instead of hashing
    # a multi-GB U-GAT-IT checkpoint once more per save; unrecorded older files are hashed.
    previous = recorded_digests(path)[:2] or ([sha256(path)] if os.path.exists(path) else [])
    write_json_atomically(path + ".sha256", {"sha256": [sha256(temporary)] + previous})
    os.replace(temporary, path)
    return path


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path):
    """A one-line error when the file's SHA-256 is not the one recorded when it was written
    (bytes damaged on disk or in a copy). Checkpoints without a record are not checked."""
    expected = recorded_digests(path)
    if expected and sha256(path) not in expected:
        raise ValueError(f"checkpoint {path!r} is damaged: its SHA-256 is not the one recorded in "
                         f"{os.path.basename(path)}.sha256 when it was written")


def recorded_digests(path):
    """The SHA-256s recorded for `path` (newest first), or [] without a record."""
    record = path + ".sha256"
    if not os.path.exists(record):
        return []
    with open(record) as file:
        return json.load(file).get("sha256", [])


def load_checkpoint(model, run_dir, optimizers=True, name=CHECKPOINT):
    """Loads the run's checkpoint (or RUN/name) into `model`; False if there is none.

    With `optimizers=True` (resuming) the optimizers are built first and their state
    must load: Keras only warns when it does not fit and then skips it, and a resumed
    run without its moments and step would silently differ. With `optimizers=False`
    (an uncompiled model, for inference) the optimizer state in the file is not read.
    """
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return False
    verify_checkpoint(path)
    if optimizers:
        model.build_optimizers()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="Skipping variable loading")
            model.load_weights(path)
    except Exception as error:
        raise ValueError(f"checkpoint {path!r} does not fit this {type(model).__name__} model "
                         f"({str(error).splitlines()[0]})") from None
    return True


def missing_checkpoint(run_dir, name=CHECKPOINT):
    return ValueError(f"{os.path.join(run_dir, name)!r} is missing: the run has no "
                      + ("checkpoint yet" if name == CHECKPOINT else "such weights"))


def load_run(run_dir):
    """The compiled training model of a run with its checkpoint (optimizer state
    included), and the run record: to inspect or continue a run from Python."""
    run = read_run(run_dir)
    model = build_model(run["model"], **run["config"])
    model.compile(total_steps=run["flags"].get("total_steps"),
                  steps_per_epoch=run["flags"].get("steps_per_epoch", 1))
    if not load_checkpoint(model, run_dir):
        raise missing_checkpoint(run_dir)
    return model, run


def load_generators(run_dir, name=CHECKPOINT):
    """The run's model with trained weights (the checkpoint, or RUN/name such as the best
    weights of an evaluation callback), for translate/export/evaluate, and the record.

    The model is built under the run's precision policy (a `mixed_float16` run's
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
        model = build_model(run["model"], **config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if not load_checkpoint(model, run_dir, optimizers=False, name=name):
        raise missing_checkpoint(run_dir, name)
    return model, run


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
