"""Training a model in a run directory: data choice, resume, sample grids, TensorBoard."""

import contextlib
import math
import os
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tf_translate.distribute import is_chief, make_strategy, replicated_dataset, run_distributed
from tf_translate.export import size_multiple
from tf_translate.files import write_atomically
from tf_translate.memory import ReturnCompilerMemory
from tf_translate.models import build_model, model_class
from tf_translate.runs import CHECKPOINT, RUN_FILE, RunLock, load_checkpoint, read_run, save_checkpoint, write_run


def global_step(model):
    """Training steps completed (`TranslationModel.completed_steps`)."""
    return model.completed_steps()


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


TITLE_HEIGHT = 12


def titled_grid(rows):
    """`image_grid` with each row's title written on a white strip above it (the sample
    PNGs and TensorBoard images say what each row is)."""
    from PIL import ImageDraw

    parts = []
    for title, images in rows:
        tiles = image_grid([(title, images)])
        strip = Image.new("RGB", (tiles.shape[1], TITLE_HEIGHT), (255, 255, 255))
        ImageDraw.Draw(strip).text((2, 0), title, fill=(0, 0, 0))
        parts += [np.asarray(strip), tiles]
    return np.concatenate(parts, axis=0)


class RunCallback(keras.callbacks.Callback):
    """Every `checkpoint_every` steps writes the checkpoint; every `sample_every` steps
    writes a sample grid (PNG in RUN/samples and a TensorBoard image) and the scalars.
    Step numbers are the optimizer's, so they continue across resumes."""

    def __init__(self, run_dir, sample_batch, checkpoint_every=1000, sample_every=500, log_every=50, chief=True):
        super().__init__()
        self.chief = chief  # only the chief worker writes (`distribute.is_chief`)
        self.failure = None  # (step, loss name, value) of the first non-finite loss
        self.saved_step = None
        self.run_dir = run_dir
        self.sample_batch = sample_batch
        self.checkpoint_every = checkpoint_every
        self.sample_every = sample_every
        self.log_every = log_every
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs")) if chief else None
        if chief:
            os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        bad = [(name, float(value)) for name, value in (logs or {}).items() if not np.isfinite(float(value))]
        if bad:  # stop before anything is written: the last checkpoint stays the last good one
            self.failure = (step, *bad[0])
            self.model.stop_training = True
            return
        if self.chief and self.log_every and step % self.log_every == 0:
            with self.writer.as_default(step=step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(name, float(value))
        if self.chief and self.sample_every and step % self.sample_every == 0:
            self.write_samples(step)
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            self.save(step)

    def save(self, step):
        """Writes the checkpoint unless a weight is not finite (an update from damaged
        optimizer state): then training stops and the last good checkpoint stays. A step
        already saved is not saved again, so the previous copy (`runs.previous_copy`)
        holds an earlier state."""
        if step == self.saved_step:
            return
        if not all(np.isfinite(w.numpy()).all() for w in self.model.trainable_weights):
            self.failure = (step, "a weight", float("nan"))
            self.model.stop_training = True
            return
        if self.chief:
            save_checkpoint(self.model, self.run_dir)
        self.saved_step = step

    def on_train_end(self, logs=None):
        if self.failure:
            return
        step = global_step(self.model)
        self.save(step)
        if self.failure or not self.chief:
            return
        self.write_samples(step)
        self.writer.flush()

    def write_samples(self, step):
        grid = titled_grid(self.model.sample_rows(self.sample_batch))
        write_atomically(os.path.join(self.run_dir, "samples", f"step_{step:07d}.png"),  # no half PNG on a full disk
                         lambda file: Image.fromarray(grid).save(file, format="PNG"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], step=step)


def training_data(model_name, data, attr_file=None, attrs=None, direction=None):
    """The CLI's `--data` (with `--attr-file`, `--attrs`, `--direction`) -> `train`'s data
    arguments.

    Models with `data_kind == "labelled"` (StarGAN) read labelled images: the CelebA
    layout or one folder per domain (`data_labels.labelled_data_spec`); "paired" ones
    (pix2pix) read aligned A|B files or equally named pairs, `direction` saying which
    side is the input (`data.paired_dataset`; None: AtoB, or on resume the run's); the
    others read unpaired trainA/trainB folders (`data.unpaired_dataset`).

    Returns:
        (data to record in run.json, dataset_fn for `train` or None for the unpaired
        default, model constructor overrides such as the domain names).
    """
    kind = model_class(model_name).data_kind
    if direction is not None and kind != "paired":
        raise ValueError(f"--direction is for paired models (pix2pix), not {model_name!r}")
    if kind == "labelled":
        from tf_translate.data_labels import labelled_data_spec, labelled_dataset
        spec, overrides = labelled_data_spec(data, attr_file, attrs)
        return spec, labelled_dataset, overrides
    if attr_file or attrs:
        raise ValueError(f"--attr-file and --attrs are for label-conditioned models (stargan), "
                         f"not {model_name!r}")
    if kind == "paired":
        from tf_translate.data import paired_dataset
        return {"paired": absolute(data), "direction": direction}, paired_dataset, {}
    return data, None, {}


def train(model_name, data, run_dir, steps=None, epochs=None, batch_size=None, image_size=None,
          load_size=None, precision=None, xla=None, resume=False, checkpoint_every=None,
          sample_every=None, log_every=None, seed=None, verbose=1, model_overrides=None,
          dataset_fn=None, eager=False, eval_every=0, eval_features="mobilenet_v2", eval_samples=100,
          strategy="none", callbacks=()):
    """Trains `model_name` on `data` in `run_dir`; the CLI's `train` and the demo call it.

    Image size, batch size and length default to the model's `reference_run` (CycleGAN
    256 px, batch 1, 200 epochs; StarGAN 128 px, batch 16, 200,000 iterations; ...).
    A run directory remembers the model, its config and the flags in run.json. With
    `resume=True` the model is rebuilt from run.json, the checkpoint (weights, optimizer
    moments and step, image pools) is loaded, and training continues at the saved step
    until the run's total (or a new `steps`/`epochs`); a run of another model is refused,
    and so are a `precision`, `seed` or model option other than the run's (they change
    the model or its data). `xla` and the checkpoint, sample and log intervals are kept
    in run.json too; given on resume, they replace the kept ones (with a note). Settings
    left None take the run's, or for a new run float32, XLA, 1000, 500 and 50 steps.
    One process at a time trains a run directory (`runs.RunLock`), and SIGTERM or
    SIGHUP save the checkpoint as Ctrl-C does. A seeded run starts from the same weights
    and reads its data in the same order every time.
    `eager=True` runs the train step op by op in Python (for debugging: no tracing, slow
    steps); it is a choice of this call, not of the run. `eval_every=N` computes KID of
    the a2b translations of DATA/testA against DATA/testB (`eval_samples` each, features
    `eval_features`) every N steps into TensorBoard and keeps the best in RUN/best.weights.h5.
    `strategy` ("none", "auto", "mirrored", "multi-worker" or a strategy made by
    `distribute.make_strategy`, which multi-worker training needs before TensorFlow runs
    anything else) spreads the global batch over replicas; like `eager` it belongs to this call, not to the run, so a
    run can resume under another strategy with the same global batch. `callbacks` are
    more Keras callbacks for every `fit`, after the run's own (e.g. a progress printer).

    A model that trains in phases (`TranslationModel.phases`: TuiGAN's scales, coarse to
    fine) gets one `fit` per phase after `start_phase`, with the same checkpoints, sample
    grids, resume, Ctrl-C and non-finite-loss rules; settings it takes as constructor
    options (`flag_options`: TuiGAN's --steps per scale and --image-size as its finest
    side) are kept by a resumed run, settings it has no use for (`unused_flags`) are
    refused, and run.json records `xla` as run (False for a model whose `trains_with_xla`
    is False).

    Returns:
        the trained model.
    """
    from tf_translate.data import reference_load_size  # keeps `import training` light

    if os.path.isfile(run_dir):
        raise ValueError(f"--run-dir {run_dir!r} is a file; give a folder for the run")
    cls = model_class(model_name)
    reference = cls.reference_run
    options = cls.flag_options  # the settings a model takes as constructor options (TuiGAN's --steps)
    check_positive(steps=steps, epochs=epochs, batch_size=batch_size, image_size=image_size, load_size=load_size)
    check_used(model_name, cls, epochs=epochs, batch_size=batch_size, load_size=load_size,
               eval_every=eval_every or None, strategy=None if strategy in (None, "none") else strategy,
               precision=precision or RUN_DEFAULTS["precision"])
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
        kept_steps = config.get(options["steps"]) if "steps" in options else None
        for flag, given, kept in (("--image-size", image_size, config.get(options["image_size"])),
                                  ("--batch-size", batch_size, flags.get("batch_size")),
                                  ("--load-size", load_size, flags.get("load_size")),
                                  ("--steps", steps if "steps" in options else None, kept_steps)):
            if given is not None and given != kept:
                raise ValueError(f"{flag} {given}: the run was started with {kept}, and a resumed run "
                                 "keeps its settings (start a new --run-dir to change it)")
        refuse_changed_settings(run, precision=precision, seed=seed, model_overrides=model_overrides)
        for name, given in (("xla", xla), ("checkpoint_every", checkpoint_every),
                            ("sample_every", sample_every), ("log_every", log_every)):
            kept = flags.setdefault(name, RUN_DEFAULTS[name])  # runs recorded before the intervals were
            if given is not None and given != kept:
                print(f"tf_translate: --{name.replace('_', '-')} {given} replaces the run's {kept}")
                flags[name] = given
        if (steps or epochs) and "steps" not in options:  # a longer total given on resume extends the run
            flags.update(steps=steps, epochs=epochs)
        if data is not None:  # where the data is now (the run may have moved)
            flags["data"] = resumed_data(absolute(data), flags["data"])
    else:
        if os.path.exists(os.path.join(run_dir, RUN_FILE)):
            raise ValueError(f"{run_dir!r} already holds a run: pass --resume to continue it "
                             "or choose a new --run-dir")
        image_size = image_size or reference.image_size
        config = {options["image_size"]: image_size, "seed": seed, **(model_overrides or {})}
        if "steps" in options:  # a length per phase, an option of the model (TuiGAN's iterations per scale)
            config[options["steps"]] = steps or reference.steps
            steps = None
        load_size = None if "load_size" in cls.unused_flags else load_size or reference_load_size(image_size)
        if load_size is not None and load_size < image_size:
            raise ValueError(f"--load-size {load_size} is smaller than --image-size {image_size}: "
                             "images are resized to the load size, then cropped to the image size")
        if not (steps or epochs) and "steps" not in options:
            steps, epochs = reference.steps, reference.epochs
        given = dict(precision=precision, xla=xla, checkpoint_every=checkpoint_every,
                     sample_every=sample_every, log_every=log_every)
        flags = dict(RUN_DEFAULTS, **{name: value for name, value in given.items() if value is not None},
                     steps=steps, epochs=epochs, batch_size=batch_size or reference.batch_size,
                     load_size=load_size, seed=seed, data=absolute(data))
        for name in cls.unused_flags:
            flags.pop(name, None)
    # What ran is recorded: a model that does not train with XLA records xla False.
    flags["xla"] = bool(flags["xla"]) and cls.trains_with_xla
    config.update(cls.options_from_data(flags["data"], config))

    keras.mixed_precision.set_global_policy(flags["precision"])
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    scope = lambda: strategy.scope() if strategy else contextlib.nullcontext()  # noqa: E731
    if flags["seed"] is not None:  # a seeded run starts from the same weights every time
        keras.utils.set_random_seed(flags["seed"])
    with scope():
        model = build_model(model_name, **config)
    config = model.get_config()
    multiple = math.lcm(*[size_multiple(g) for g in model.generators().values()])
    if "image_size" in config and config["image_size"] % multiple:  # a crop size (not TuiGAN's finest side)
        raise ValueError(f"--image-size {config['image_size']}: {model_name} trains on sizes that are a "
                         f"multiple of {multiple} (e.g. {config['image_size'] // multiple * multiple or multiple})")
    make_dataset = dataset_fn or model.dataset_function() or default_dataset(model.data_kind)
    dataset, steps_per_epoch, report = make_dataset(
        flags["data"], batch_size=flags.get("batch_size"), image_size=config.get("image_size"),
        load_size=flags.get("load_size"), seed=flags["seed"])
    if flags.get("steps") or flags.get("epochs"):
        total_steps = flags["steps"] or flags["epochs"] * steps_per_epoch
    else:  # a run recorded before its length was: keep the total it was started with
        total_steps = flags.get("total_steps")
    phases = model.phases(total_steps)
    total_steps = sum(length for _, length in phases)
    flags.update(total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    with scope():
        model.compile(total_steps=total_steps, steps_per_epoch=steps_per_epoch, jit_compile=flags["xla"])
    model.run_eagerly = eager
    # Keras' fit cannot run under MultiWorkerMirroredStrategy, nor a replicated step with a
    # host-side schedule (`distribute`): its own loop does.
    own_loop = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or bool(
        strategy and strategy.num_replicas_in_sync > 1 and model.step_kinds)
    if own_loop:
        def per_replica_dataset(batch_size):
            return make_dataset(flags["data"], batch_size=batch_size, image_size=config["image_size"],
                                load_size=flags["load_size"], seed=flags["seed"])[0]
        replicated = replicated_dataset(strategy, per_replica_dataset, flags["batch_size"])
    try:  # before anything is written: a folder of undecodable images leaves no run behind
        sample_batch = next(iter(dataset.take(1)))
    except StopIteration:
        raise ValueError(f"--data {flags['data']}: no training image could be decoded "
                         f"({len(report.skipped)} skipped)") from None
    if resume:
        with scope():
            load_checkpoint(model, run_dir)
    extra_callbacks = list(callbacks)
    callbacks = [ReturnCompilerMemory(), RunCallback(run_dir, sample_batch, flags["checkpoint_every"],
                                                     flags["sample_every"], flags["log_every"], is_chief(strategy))]
    if eval_every and is_chief(strategy):
        from tf_translate.evaluation import held_out_callback
        callbacks.append(held_out_callback(model, flags["data"], run_dir, eval_every, eval_features, eval_samples))
    callbacks += extra_callbacks
    chief = is_chief(strategy)  # only the chief owns the run directory (the workers share it)
    with RunLock(run_dir) if chief else contextlib.nullcontext(), signals_as_interrupts():
        if chief and not resume and os.path.exists(os.path.join(run_dir, RUN_FILE)):  # written while this started
            raise ValueError(f"{run_dir!r} already holds a run: pass --resume to continue it "
                             "or choose a new --run-dir")
        if is_chief(strategy):
            write_run(run_dir, model_name, config, flags)
        done = global_step(model)
        model.phase_seconds = {}  # phase index -> wall seconds of its fit in this call (compile included)
        if done >= total_steps:
            print(f"tf_translate: the run is complete ({done} of {total_steps} steps)" + (
                "" if "steps" in options else "; pass a larger --steps or --epochs with --resume to extend it"))
        try:
            start = 0
            for index, (title, length) in enumerate(phases):
                # Phases run in order, so the steps done in this one follow from the run's step.
                remaining = length - min(max(done - start, 0), length)
                start += length
                if remaining <= 0:
                    continue
                model.start_phase(index)
                if title:
                    print(f"tf_translate: {model_name} {title}, {remaining} of {length} steps to go", flush=True)
                started = time.perf_counter()
                if own_loop:
                    run_distributed(model, strategy, replicated, remaining, callbacks, verbose, flags["log_every"])
                else:
                    model.fit(dataset, epochs=1, steps_per_epoch=remaining, callbacks=callbacks, verbose=verbose)
                if callbacks[1].failure:
                    break
                model.phase_seconds[index] = time.perf_counter() - started
                if title:
                    print(f"tf_translate: {model_name} {title} took {model.phase_seconds[index]:.1f} s", file=sys.stderr,
                          flush=True)
        except KeyboardInterrupt as interrupt:
            if callbacks[1].failure is None:
                callbacks[1].save(global_step(model))
            cause = f" ({interrupt})" if str(interrupt) else ""
            raise KeyboardInterrupt(f"interrupted at step {global_step(model)}{cause}; the checkpoint is saved and "
                                    "--resume continues the run") from None
    failure = callbacks[1].failure
    if failure:
        raise ValueError(f"training stopped at step {failure[0]}: {failure[1]} is {failure[2]}; nothing was "
                         f"saved after it, {os.path.join(run_dir, CHECKPOINT)} is the last good state")
    if report.skipped:
        print(f"tf_translate: {len(report.skipped)} unreadable image(s) were skipped")
    return model


RUN_DEFAULTS = dict(precision="float32", xla=True, checkpoint_every=1000, sample_every=500, log_every=50)


def refuse_changed_settings(run, precision, seed, model_overrides):
    """One-line errors for settings given on resume that would change the run's model or
    data: the kept setting cannot win silently for these."""
    flags, config = run["flags"], run["config"]
    for flag, given, kept in (("--precision", precision, flags.get("precision", "float32")),
                              ("--seed", seed, flags.get("seed"))):
        if given is not None and given != kept:
            raise ValueError(f"{flag} {given}: the run was started with {kept}, and a resumed run "
                             "keeps its settings (start a new --run-dir to change it)")
    for name, value in (model_overrides or {}).items():
        if name in config and config[name] != value:
            raise ValueError(f"--option {name}={value}: the run's model was built with {name}={config[name]} "
                             "(start a new --run-dir to change it)")


@contextlib.contextmanager
def signals_as_interrupts():
    """SIGTERM (kill, timeout, docker stop, batch schedulers) and SIGHUP raise
    KeyboardInterrupt while training, so they save the checkpoint as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number, frame):
        raise KeyboardInterrupt(f"stopped by {signal.Signals(number).name}")

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def default_dataset(data_kind):
    """The dataset function for a model's `data_kind` (see `training_data`)."""
    if data_kind == "labelled":
        from tf_translate.data_labels import labelled_dataset
        return labelled_dataset
    from tf_translate.data import paired_dataset, unpaired_dataset
    return paired_dataset if data_kind == "paired" else unpaired_dataset


# A data setting recorded as None (not given when the run started) meant its default: a
# resumed run given another value would read other data (pix2pix's direction swaps input
# and target).
RECORDED_NONE = {"direction": "AtoB"}


def resumed_data(given, recorded):
    """The data a resumed run reads: `given`, where a data spec (dict) leaves a setting
    unsaid (None) the run's; a setting other than the paths that differs is refused."""
    if not (isinstance(given, dict) and isinstance(recorded, dict)):
        return given
    for key, value in given.items():
        kept = recorded.get(key, None)
        kept = RECORDED_NONE.get(key) if kept is None else kept  # what the run read when it recorded None
        if value is not None and kept is not None and value != kept and key not in ("paired", "datasets"):
            raise ValueError(f"--{key} {value}: the run was started with {kept}, and a resumed run keeps "
                             "its settings (start a new --run-dir to change it)")
    return {**recorded, **{key: value for key, value in given.items() if value is not None}}


def check_used(model_name, cls, precision, **settings):
    """One-line errors for settings the model class has no use for (`unused_flags`) and
    for a precision it does not train in (`precisions`)."""
    for name, value in settings.items():
        if value is not None and name in cls.unused_flags:
            raise ValueError(f"--{name.replace('_', '-')} is not used by {model_name}")
    if cls.precisions is not None and precision not in cls.precisions:
        raise ValueError(f"{model_name} trains in {' or '.join(cls.precisions)}, not {precision}")


def check_positive(**values):
    """One-line errors for sizes and lengths that are given but not positive."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def absolute(data):
    """`--data` as absolute paths, so a run resumes from any working directory."""
    if isinstance(data, str):
        return os.path.abspath(data)
    if isinstance(data, (list, tuple)):
        return [absolute(item) for item in data]
    return data  # a labelled-data spec records its own paths
