"""Run directories: run.json, atomic checkpoints, resume, sample grids, TensorBoard."""

import json
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tf_translate import __version__
from tf_translate.memory import ReturnCompilerMemory
from tf_translate.models import build_model

RUN_FILE = "run.json"
CHECKPOINT = "checkpoint.weights.h5"


def write_json_atomically(path, value):
    """Writes JSON through a temporary file and a rename, so `path` is never half-written."""
    temporary = path + ".tmp"
    with open(temporary, "w") as file:
        json.dump(value, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def read_run(run_dir):
    """The run.json of `run_dir`, or a one-line error naming what is missing."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{path!r} is missing: {run_dir!r} is not a tf_translate run directory")
    with open(path) as file:
        return json.load(file)


def save_checkpoint(model, run_dir):
    """Saves every weight, both optimizers' state (step and moments) and the image pools.

    Written to a temporary file, flushed, then renamed over the last checkpoint: a
    process killed at any moment leaves the previous checkpoint intact.
    """
    path = os.path.join(run_dir, CHECKPOINT)
    temporary = os.path.join(run_dir, "checkpoint.tmp.weights.h5")
    model.save_weights(temporary)
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def load_checkpoint(model, run_dir):
    """Loads the run's checkpoint into `model` (optimizers built first); False if none."""
    path = os.path.join(run_dir, CHECKPOINT)
    if not os.path.exists(path):
        return False
    model.build_optimizers()
    try:
        with warnings.catch_warnings():
            # Keras only warns when a saved optimizer does not fit and then skips its
            # state; a resumed run without its moments and step would silently differ.
            warnings.filterwarnings("error", message="Skipping variable loading")
            model.load_weights(path)
    except Exception as error:
        raise ValueError(f"checkpoint {path!r} does not fit this {type(model).__name__} model "
                         f"({str(error).splitlines()[0]})") from None
    return True


def load_run(run_dir):
    """Rebuilds the model a run directory describes and loads its checkpoint."""
    run = read_run(run_dir)
    model = build_model(run["model"], **run["config"])
    model.compile(total_steps=run["flags"].get("total_steps"),
                  steps_per_epoch=run["flags"].get("steps_per_epoch", 1))
    if not load_checkpoint(model, run_dir):
        raise ValueError(f"{os.path.join(run_dir, CHECKPOINT)!r} is missing: the run has no checkpoint yet")
    return model, run


def global_step(model):
    """Training steps completed: the iteration count of the model's first optimizer."""
    name = next(iter(model.optimizer_variables()))
    return int(getattr(model, name).iterations.numpy())


def image_grid(rows):
    """A uint8 grid image from [(title, [-1, 1] NHWC images)]: one row per entry."""
    tiles = []
    for _, images in rows:
        images = np.asarray(images, np.float32)
        if images.shape[-1] == 1:  # heatmaps
            images = np.repeat(images, 3, axis=-1)
        tiles.append(np.concatenate(list(images), axis=1))
    grid = np.concatenate(tiles, axis=0)
    return np.clip((grid + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


class RunCallback(keras.callbacks.Callback):
    """Every `checkpoint_every` steps writes the checkpoint; every `sample_every` steps
    writes a sample grid (PNG in RUN/samples and a TensorBoard image) and the scalars.
    Step numbers are the optimizer's, so they continue across resumes."""

    def __init__(self, run_dir, sample_batch, checkpoint_every=1000, sample_every=500, log_every=50):
        super().__init__()
        self.run_dir = run_dir
        self.sample_batch = sample_batch
        self.checkpoint_every = checkpoint_every
        self.sample_every = sample_every
        self.log_every = log_every
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if self.log_every and step % self.log_every == 0:
            with self.writer.as_default(step=step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(name, float(value))
        if self.sample_every and step % self.sample_every == 0:
            self.write_samples(step)
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            save_checkpoint(self.model, self.run_dir)

    def on_train_end(self, logs=None):
        step = global_step(self.model)
        save_checkpoint(self.model, self.run_dir)
        self.write_samples(step)
        self.writer.flush()

    def write_samples(self, step):
        grid = image_grid(self.model.sample_rows(self.sample_batch))
        Image.fromarray(grid).save(os.path.join(self.run_dir, "samples", f"step_{step:07d}.png"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)


def train(model_name, data, run_dir, steps=None, epochs=None, batch_size=1, image_size=256,
          load_size=None, precision="float32", xla=True, resume=False, checkpoint_every=1000,
          sample_every=500, log_every=50, seed=None, verbose=1, model_overrides=None,
          dataset_fn=None, eager=False):
    """Trains `model_name` on `data` in `run_dir`; the CLI's `train` and the demo call it.

    A run directory remembers the model, its config and the flags in run.json. With
    `resume=True` the model is rebuilt from run.json, the checkpoint (weights, optimizer
    moments and step, image pools) is loaded, and training continues at the saved step
    until the run's total (or a new `steps`/`epochs`); a run of another model is refused.
    `eager=True` runs the train step op by op in Python (for debugging: no tracing, slow
    steps); it is a choice of this call, not of the run.

    Returns:
        the trained model.
    """
    from tf_translate.data import reference_load_size, unpaired_dataset  # keeps `import training` light

    run_path = os.path.join(run_dir, RUN_FILE)
    if resume:
        run = read_run(run_dir)
        if run["model"] != model_name:
            raise ValueError(f"{run_dir!r} holds a {run['model']!r} run, not {model_name!r}: "
                             "use another --run-dir or the same --model")
        if not run.get("flags"):
            raise ValueError(f"{run_dir!r} holds imported weights, not a training run: translate or "
                             "export it, or start a new --run-dir to train")
        flags = run["flags"]
        config = run["config"]
        if steps or epochs:  # a longer total given on resume extends the run
            flags.update(steps=steps, epochs=epochs)
    else:
        if os.path.exists(run_path):
            raise ValueError(f"{run_dir!r} already holds a run: pass --resume to continue it "
                             "or choose a new --run-dir")
        flags = dict(steps=steps, epochs=epochs, batch_size=batch_size, image_size=image_size,
                     load_size=load_size or reference_load_size(image_size), precision=precision,
                     xla=xla, seed=seed, data=data)
        config = {"image_size": image_size, "seed": seed, **(model_overrides or {})}

    keras.mixed_precision.set_global_policy(flags["precision"])
    model = build_model(model_name, **config)
    config = model.get_config()
    make_dataset = dataset_fn or unpaired_dataset
    dataset, steps_per_epoch, report = make_dataset(
        flags["data"], batch_size=flags["batch_size"], image_size=flags["image_size"],
        load_size=flags["load_size"], seed=flags["seed"])
    total_steps = flags["steps"] or (flags["epochs"] or 200) * steps_per_epoch
    flags.update(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    model.compile(total_steps=total_steps, steps_per_epoch=steps_per_epoch, jit_compile=flags["xla"])
    model.run_eagerly = eager
    os.makedirs(run_dir, exist_ok=True)
    if resume:
        load_checkpoint(model, run_dir)
    write_json_atomically(run_path, {"model": model_name, "config": config, "flags": flags,
                                     "version": __version__})
    done = global_step(model)
    sample_batch = next(iter(dataset.take(1)))
    if done < total_steps:
        callback = RunCallback(run_dir, sample_batch, checkpoint_every, sample_every, log_every)
        model.fit(dataset, epochs=1, steps_per_epoch=total_steps - done,
                  callbacks=[ReturnCompilerMemory(), callback],
                  verbose=verbose)
    if report.skipped:
        print(f"tf_translate: {len(report.skipped)} unreadable image(s) were skipped")
    return model
