"""Multi-worker training on one machine: seconds per step for 1 process (no strategy) and
for N worker processes over 127.0.0.1 (MultiWorkerMirroredStrategy, the same global batch),
and the bytes each step all-reduces. On one 2-core machine N workers share the cores, so
this measures the communication and replication overhead, not a speed-up.

    python benchmarks/multi_worker.py --model cyclegan --size 64 --steps 10
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

WORKER = r"""
import json, os, sys, time
config = json.loads(sys.argv[1])
from tf_translate.distribute import make_strategy
strategy = make_strategy(config["strategy"])
import numpy as np
import tensorflow as tf
import keras
from tf_translate.data import SkipReport
import tf_translate.training as training

times = []
end_of_step = training.RunCallback.on_train_batch_end
def timed(self, batch, logs=None):
    times.append(time.perf_counter())
    end_of_step(self, batch, logs)
training.RunCallback.on_train_batch_end = timed

def dataset_fn(data, batch_size, image_size, load_size, seed):
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (8, image_size, image_size, 3)).astype("float32") for _ in range(2))
    return tf.data.Dataset.from_tensor_slices((a, b)).repeat().batch(batch_size, drop_remainder=True), 4, SkipReport()

keras.utils.set_random_seed(0)
model = training.train(config["model"], "unused", config["run_dir"], steps=config["steps"], batch_size=config["batch"],
                       image_size=config["size"], dataset_fn=dataset_fn, verbose=0, seed=0, strategy=strategy,
                       checkpoint_every=10 ** 9, sample_every=0, xla=config["xla"])
steady = np.diff(times[2:])
params = sum(int(np.prod(v.shape)) for vs in model.optimizer_variables().values() for v in vs)
print("result " + json.dumps({"step_s": float(np.median(steady)), "gradient_mb": params * 4 / 1e6}), flush=True)
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run(script, workers, args, tmp):
    processes = []
    ports = free_ports(workers)
    for index in range(workers):
        config = {"model": args.model, "steps": args.steps, "batch": args.batch, "size": args.size,
                  "strategy": "multi-worker" if workers > 1 else "none", "xla": workers == 1 and args.xla,
                  "run_dir": os.path.join(tmp, f"run_{workers}")}
        env = dict(os.environ)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                           "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen([sys.executable, script, json.dumps(config)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        out, err = process.communicate(timeout=3600)
        if process.returncode:
            raise SystemExit(err[-3000:])
        results.append(json.loads(out.split("result ")[-1].splitlines()[0]))
    return results[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2, help="global batch (divided among the workers)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--xla", action="store_true", help="XLA for the one-process run (workers cannot use it on CPU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "worker.py")
        with open(script, "w") as file:
            file.write(WORKER)
        one = run(script, 1, args, tmp)
        many = run(script, args.workers, args, tmp)
    print(f"\n{args.model}, {args.size} px, global batch {args.batch}, {os.cpu_count()} cores, "
          f"{one['gradient_mb']:.1f} MB of gradients all-reduced per step")
    print("| setting | step s | vs one process |")
    print("|---|---:|---:|")
    print(f"| one process{' (XLA)' if args.xla else ''} | {one['step_s']:.3f} | 1.00x |")
    print(f"| {args.workers} workers over 127.0.0.1 | {many['step_s']:.3f} | {many['step_s'] / one['step_s']:.2f}x |")


if __name__ == "__main__":
    main()
