"""Training under `tf.distribute`: several GPUs of one machine, or several machines.

`--strategy mirrored` is `MirroredStrategy` over the local GPUs (or, for testing on a
CPU-only machine, `--cpu-replicas N` logical CPU devices); `multi-worker` is
`MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment variable of
each worker process; `auto` picks `mirrored` when more than one GPU is visible.

Keras 3's `fit` works under `MirroredStrategy` but not under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585: "Attempt to convert a value (PerReplica...)"), so multi-worker
runs go through `run_distributed`, a loop over `strategy.run(model.train_step)` that
drives the same Keras callbacks (checkpoints, samples, TensorBoard, evaluation) as `fit`.
So do replicated runs of models whose schedule updates a network only on some steps
(StarGAN's n_critic: `TranslationModel.step_kinds`), because an update's all-reduce
cannot sit inside a `tf.cond`: the loop picks each step's kind on the host.

What replication means here, model by model:
- the global batch is `--batch-size`; each replica trains on `batch_size / replicas`
  images and its losses are per-replica means divided by the replica count
  (`TranslationModel.gradients`), so the summed gradients are the global mean's;
- image pools (CycleGAN) are per replica, as the reference under DDP (each process
  keeps its own `ImagePool`);
- normalisation is per image (instance norm, AdaLIN) in every model but pix2pix, whose
  batch norm uses each replica's batch statistics (unsynchronised, as PyTorch DDP's
  `BatchNorm2d`) and keeps the replicas' mean as its running averages;
- spectral norm's power iteration reads the weights only, so every replica computes
  the same u and v;
- XLA: on CPU, XLA cannot compile the cross-replica updates (TF-NOTES), so a replicated
  step runs as a plain `tf.function` (`TranslationModel.compile` turns `jit_compile` off).

Data: each worker builds the input pipeline itself and keeps every `workers`-th batch
(`Dataset.shard` by input pipeline), so workers read disjoint batches of one shuffled
order (same seed on every worker).

Checkpoints, samples and logs are written by the chief (worker 0; `TF_CONFIG` task
"chief" or "worker" 0) only; every worker reads the checkpoint on `--resume` (the run
directory must be on a filesystem all workers see, or copied to each).
"""

import json
import os
import time

import tensorflow as tf

STRATEGIES = ("auto", "none", "mirrored", "multi-worker")
# How long a collective waits for the other workers before the step fails: a killed or
# hung worker then stops the job with a message instead of hanging it forever.
COLLECTIVE_TIMEOUT_SECONDS = 120


def use_cpu_replicas(count):
    """Splits the CPU into `count` logical devices (for testing `mirrored` without GPUs).
    Must run before TensorFlow creates any op."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(name):
    """The `tf.distribute` strategy for `--strategy` (None: no strategy, one device).
    "multi-worker" must be made before TensorFlow runs anything (even listing devices)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multi-worker":
        config = os.environ.get("TF_CONFIG")
        if not config:
            raise ValueError("--strategy multi-worker needs TF_CONFIG in each worker's environment, e.g. "
                             '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                             '"index": 0}}')
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON ({error})") from None
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "none":
        return None
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        raise ValueError("--strategy mirrored needs several GPUs (or --cpu-replicas N for a test on the CPU); "
                         f"this machine shows {len(devices)} device")
    return tf.distribute.MirroredStrategy(devices)


def is_chief(strategy=None):
    """Whether this process writes the run directory: always without a strategy or
    with one worker; worker 0 (or the "chief" task) under multi-worker training."""
    strategy = strategy or (tf.distribute.get_strategy() if tf.distribute.has_strategy() else None)
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def replicated_dataset(strategy, make_dataset, global_batch_size):
    """The training data as `strategy` distributes it: each input pipeline (one per
    worker) builds `make_dataset(per-replica batch size)` and keeps its share of the
    batches. Returns the distributed dataset."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"--batch-size {global_batch_size} does not divide among {replicas} replicas: "
                         f"use a multiple of {replicas}")

    def dataset_fn(context):
        dataset = make_dataset(context.get_per_replica_batch_size(global_batch_size))
        return dataset.shard(context.num_input_pipelines, context.input_pipeline_id)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset_fn, options)


def run_distributed(model, strategy, dataset, steps, callbacks, verbose=1, log_every=50):
    """`fit`'s effect for `steps` steps under `strategy`, where `fit` cannot run it:
    the train step replicated with `strategy.run`, the losses averaged over replicas,
    and the Keras callbacks called as `fit` calls them (set_model, on_train_begin,
    on_train_batch_begin/end with the step's logs, on_train_end). Stops early when a
    callback sets `model.stop_training`.

    A collective that times out (a worker died or hangs) raises a ValueError naming
    the step, after the callbacks' `on_train_end` has run on this worker.
    """

    def compiled(kind):
        @tf.function
        def replicated_step(iterator):
            step = model.train_step if kind is None else (lambda data: model.train_step(data, kind))
            outputs = strategy.run(step, args=(next(iterator),))
            return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                    for name, value in outputs.items()}
        return replicated_step

    # Models with a host-side schedule (`TranslationModel.step_kinds`): one function per kind.
    functions = {kind: compiled(kind) for kind in model.step_kinds} or {None: compiled(None)}

    for callback in callbacks:
        callback.set_model(model)
    model.stop_training = False
    for callback in callbacks:
        callback.on_train_begin()
    iterator = iter(dataset)
    start = time.time()
    step = 0
    try:
        for step in range(steps):
            for callback in callbacks:
                callback.on_train_batch_begin(step)
            replicated_step = functions[model.step_kind()] if model.step_kinds else functions[None]
            logs = {name: float(value) for name, value in replicated_step(iterator).items()}
            for callback in callbacks:
                callback.on_train_batch_end(step, logs)
            if verbose and (step + 1 == steps or (log_every and (step + 1) % log_every == 0)):
                shown = " - ".join(f"{name}: {value:.4g}" for name, value in sorted(logs.items()))
                print(f"step {step + 1}/{steps} - {(time.time() - start) / (step + 1):.2f} s/step - {shown}",
                      flush=True)
            if model.stop_training:
                break
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError, tf.errors.CancelledError,
            tf.errors.InternalError) as error:
        raise ValueError(f"training stopped at step {step + 1} of this session: a worker stopped or stopped "
                         f"answering ({type(error).__name__}); restart every worker with --resume to continue "
                         "from the last checkpoint") from None
    for callback in callbacks:
        callback.on_train_end()
