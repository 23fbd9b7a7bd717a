"""Training under tf.distribute: two worker processes over 127.0.0.1 (MultiWorkerMirroredStrategy
through `distribute.run_distributed`) and two logical CPUs (MirroredStrategy through `fit`),
each checked against one process training on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))

WORKER = """
import json, os, sys
sys.path.insert(0, {tests!r})
config = json.loads(sys.argv[1])
if config.get("cpu_replicas"):
    from tf_translate.distribute import use_cpu_replicas
    use_cpu_replicas(config["cpu_replicas"])
from tf_translate.distribute import make_strategy
strategy = make_strategy(config["strategy"])  # before any other TensorFlow op
import keras
import numpy as np
import tensorflow as tf
from helpers import random_images
from tf_translate.data import SkipReport
from tf_translate.training import train

def dataset_fn(data, batch_size, image_size, load_size, seed):
    # A fixed order without augmentation, so that every process sees the same images:
    # sharded per-replica batches of worker k are images k, k + 2, ... of this order.
    count = config.get("images", 8)
    a, b = random_images(count, 32, seed=10), random_images(count, 32, seed=11)
    if config["model"] == "stargan":
        labels = np.eye(3, dtype="float32")[np.arange(count) % 3]
        data = tf.data.Dataset.from_tensor_slices((a, labels))
    else:
        data = tf.data.Dataset.from_tensor_slices((a, b))
    return data.repeat().batch(batch_size, drop_remainder=True), 4, SkipReport()

if config.get("die_at"):  # a worker that crashes (no clean-up, as kill -9) after that step
    import tf_translate.training as training
    end_of_step = training.RunCallback.on_train_batch_end

    def crash_after(self, batch, logs=None):
        end_of_step(self, batch, logs)
        if training.global_step(self.model) == config["die_at"]:
            os._exit(9)
    training.RunCallback.on_train_batch_end = crash_after
if config.get("start"):  # the initial weights, for the update-size rule (same seed as train's build)
    from tf_translate.models import build_model
    keras.utils.set_random_seed(0)
    initial = build_model(config["model"], image_size=32, seed=0, **config["overrides"])
    np.savez(config["start"], *[w.numpy() for w in initial.weights if "seed_generator" not in w.path])
keras.utils.set_random_seed(0)
model = train(config["model"], "unused", config["run_dir"], steps=config["steps"], batch_size=config["batch"],
              image_size=32, model_overrides=config["overrides"], dataset_fn=dataset_fn, verbose=0, seed=0,
              strategy=strategy, checkpoint_every=config.get("checkpoint_every", 1000),
              resume=config.get("resume", False), sample_every=0)
np.savez(config["out"], *[w.numpy() for w in model.weights if "seed_generator" not in w.path])
print("iterations " + json.dumps({{name: int(getattr(model, name).iterations.numpy())
                                   for name in model.optimizer_variables()}}), flush=True)
"""

MODELS = {
    "cyclegan": dict(filters=8, num_residual_blocks=1, discriminator_filters=8, pool_size=0),
    "ugatit_light": dict(filters=8, num_residual_blocks=1, discriminator_filters=8, global_layers=5, local_layers=4),
    "stargan": dict(filters=8, num_residual_blocks=1, discriminator_filters=8, discriminator_layers=2,
                    num_domains=3, domain_names=["x", "y", "z"], n_critic=2),
}


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def script(tmp_path):
    path = tmp_path / "worker.py"
    path.write_text(WORKER.format(tests=TESTS))
    return str(path)


def start(tmp_path, config, env=None):
    return subprocess.Popen([sys.executable, script(tmp_path), json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def finish(process, timeout=420):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def weights(path):
    with np.load(path) as arrays:
        return [arrays[key] for key in sorted(arrays, key=lambda k: int(k.split("_")[1]))]


def two_workers(tmp_path, model, steps, run_dir, name, extra=None):
    return two_workers_with(tmp_path, model, steps, run_dir, name, extra or {}, {})


def two_workers_with(tmp_path, model, steps, run_dir, name, extra, per_worker):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        config = {"model": model, "steps": steps, "batch": 2, "overrides": MODELS[model], "strategy": "multi-worker",
                  "run_dir": run_dir, "out": str(tmp_path / f"{name}_{index}.npz"),
                  **extra, **per_worker.get(index, {})}
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(start(tmp_path, config, {"TF_CONFIG": tf_config}))
    return processes


def one_process(tmp_path, model, steps, name, batch=2, **extra):
    config = {"model": model, "steps": steps, "batch": batch, "overrides": MODELS[model], "strategy": "none",
              "run_dir": str(tmp_path / f"{name}_run"), "out": str(tmp_path / f"{name}.npz"), **extra}
    code, _, err = finish(start(tmp_path, config))
    assert code == 0, err[-3000:]
    return weights(str(tmp_path / f"{name}.npz"))


def assert_same_weights(ours, expected, atol):
    assert len(ours) == len(expected)
    worst = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(ours, expected))
    assert worst <= atol, worst


def update_miss(ours, expected, start):
    """||ours - expected|| / ||expected - start|| over the kernels: the share of the
    expected update missed. Adam moves every weight by about lr in its first steps
    whatever its gradient, so elements whose gradient is float32 noise differ by up to
    lr per step; a relative rule over the whole update separates that from a real
    difference (a wrong loss scale or a replica's batch left out misses > 10 %)."""
    kernels = [i for i, a in enumerate(start) if a.ndim > 1]
    miss = sum(float(np.sum((ours[i] - expected[i]) ** 2)) for i in kernels)
    update = sum(float(np.sum((expected[i] - start[i]) ** 2)) for i in kernels)
    return np.sqrt(miss / update)


CYCLEGAN_RUN = {"images": 2, "checkpoint_every": 2}  # each worker sees the same image at every step


@pytest.fixture(scope="module")
def cyclegan_cluster(tmp_path_factory):
    """Two workers, 6 uninterrupted CycleGAN steps: the reference of both tests below."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    results = [finish(p) for p in two_workers(tmp_path, "cyclegan", 6, str(tmp_path / "run"), "worker", CYCLEGAN_RUN)]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return tmp_path


def check_against_one_process(tmp_path, cluster, model, steps, extra):
    """Both workers end bit-identical, and equal to one process on the same global batch of
    2 (one image per worker) within the update rule; only the chief wrote the run."""
    first, second = weights(str(cluster / "worker_0.npz")), weights(str(cluster / "worker_1.npz"))
    assert_same_weights(first, second, 0.0)
    single = one_process(tmp_path, model, steps, "single", start=str(tmp_path / "start.npz"), **extra)
    start_weights = weights(str(tmp_path / "start.npz"))
    assert update_miss(first, single, start_weights) < 0.005
    names = os.listdir(cluster / "run")
    assert "run.json" in names and not [n for n in names if n.endswith(".tmp") or ".tmp." in n]
    return single, start_weights


def test_two_cyclegan_workers_train_as_one_process_on_the_global_batch(tmp_path, cyclegan_cluster):
    """Measured: 0.1 % of the update missed; the rule can fail: one process on batches of
    1 (other batches) misses 70 %."""
    single, start_weights = check_against_one_process(tmp_path, cyclegan_cluster, "cyclegan", 6, CYCLEGAN_RUN)
    other = one_process(tmp_path, "cyclegan", 6, "batch1", batch=1, images=4)
    assert update_miss(other, single, start_weights) > 0.1


def test_two_ugatit_light_workers_train_as_one_process_on_the_global_batch(tmp_path):
    """Spectral norms (u, v written by every replica) and AdaLIN replicated: 0.03 % missed."""
    results = [finish(p) for p in two_workers(tmp_path, "ugatit_light", 3, str(tmp_path / "run"), "worker")]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    check_against_one_process(tmp_path, tmp_path, "ugatit_light", 3, {})


def iterations(stdout):
    return json.loads(stdout.split("iterations ")[-1].splitlines()[0])


def test_mirrored_on_two_logical_cpus_keeps_stargans_critic_schedule(tmp_path):
    """StarGAN with n_critic 2 under MirroredStrategy on two logical CPUs: the replicated
    loop updates the generator after every second critic step only (a `tf.cond` around
    the update cannot run replicated), as one device does. The weights are not compared
    with one device's: each replica draws its own target labels and gradient-penalty
    mixes (from the same seed state), which one device draws for the whole batch."""
    config = {"model": "stargan", "steps": 5, "batch": 2, "overrides": MODELS["stargan"], "strategy": "mirrored",
              "cpu_replicas": 2, "run_dir": str(tmp_path / "mirrored_run"), "out": str(tmp_path / "mirrored.npz")}
    code, out, err = finish(start(tmp_path, config))
    assert code == 0, err[-3000:]
    assert iterations(out) == {"d_optimizer": 5, "g_optimizer": 2}
    single = start(tmp_path, {**config, "strategy": "none", "cpu_replicas": 0,
                              "run_dir": str(tmp_path / "single_run"), "out": str(tmp_path / "single.npz")})
    code, out, err = finish(single)
    assert code == 0 and iterations(out) == {"d_optimizer": 5, "g_optimizer": 2}, err[-3000:]


def test_a_killed_worker_stops_the_job_in_one_line_and_a_restart_resumes_to_the_same_weights(tmp_path,
                                                                                         cyclegan_cluster):
    """Worker 1 dies after step 3 of 6 (checkpoints every 2 steps): worker 0 stops with a
    one-line error instead of hanging; both restarted with --resume continue from the
    step-2 checkpoint and end equal to an uninterrupted run. Each worker sees the same
    image at every step (2 images, 1 per worker), so the data position after a restart
    does not matter."""
    model, extra = "cyclegan", CYCLEGAN_RUN
    run_dir = str(tmp_path / "run")
    chief, worker = two_workers_with(tmp_path, model, 6, run_dir, "crashed", extra, {1: {"die_at": 3}})
    code, _, err = finish(chief, timeout=400)
    worker_code, _, _ = finish(worker, timeout=60)
    assert worker_code == 9
    assert code != 0 and "restart every worker with --resume" in err, err[-2000:]
    resumed = [finish(p) for p in two_workers_with(tmp_path, model, 6, run_dir, "resumed",
                                                  {**extra, "resume": True}, {})]
    for code, _, err in resumed:
        assert code == 0, err[-3000:]
    assert_same_weights(weights(str(tmp_path / "resumed_0.npz")), weights(str(cyclegan_cluster / "worker_0.npz")),
                        1e-6)
