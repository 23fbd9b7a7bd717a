"""Seconds to a first train step with XLA's persistent compilation cache: a cold process, a
second process with the same flags, and a resumed run (tf_translate/compile_cache.py).

    python benchmarks/compile_cache.py --model cyclegan --image-size 128

Each row is one `tf-translate train` process that ends after one step: the step's seconds as
Keras reports them (trace, compile or load, run), and the process's wall and CPU time
(TensorFlow's import, data, model, the step, a checkpoint). The cache folder starts empty
(WORK/cache); --no-compile-cache gives the row without it. A resumed run creates more eager
tensors before its step is traced, which renames the step (TensorFlow numbers functions with
a counter that every eager tensor advances): its first resume compiles, later ones load.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import time

from tf_translate.compile_cache import cache_folder
from tf_translate.data import write_demo_dataset


def timed_train(work, environ, run_dir, *flags, cache=True):
    argv = [sys.executable, "-m", "tf_translate.cli", *([] if cache else ["--no-compile-cache"]), "train",
            "--model", ARGS.model, "--data", os.path.join(work, "data"), "--run-dir", os.path.join(work, run_dir),
            "--image-size", str(ARGS.image_size), *flags]
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=environ, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    step = re.findall(r"(\d+)s/step", done.stdout)[-1]  # Keras' progress line of the process's one step
    return int(step), time.perf_counter() - start, now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime


def main():
    work = os.path.abspath(ARGS.work)
    write_demo_dataset(os.path.join(work, "data"), size=ARGS.image_size, train_count=4, test_count=1)
    environ = {key: value for key, value in os.environ.items() if key != "TF_XLA_FLAGS"}
    environ["TF_TRANSLATE_CACHE"] = os.path.join(work, "cache")
    folder = cache_folder(environ)
    if os.path.exists(folder) and os.listdir(folder):
        sys.exit(f"--work {work}: its cache folder {folder} is not empty; give a new --work")
    rows = [("no cache (--no-compile-cache)", timed_train(work, environ, "off", "--steps", "1", cache=False)),
            ("cold cache, first process", timed_train(work, environ, "run", "--steps", "1")),
            ("second process, same flags", timed_train(work, environ, "again", "--steps", "1")),
            ("--resume of the first run", timed_train(work, environ, "run", "--steps", "2", "--resume")),
            ("a second --resume", timed_train(work, environ, "run", "--steps", "3", "--resume"))]
    size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    print(f"{ARGS.model} {ARGS.image_size} px, the reference's batch size: seconds per one-step process; "
          f"cache {len(os.listdir(folder))} entries, {size / 1e6:.0f} MB")
    print(f"| {'process':<30} | first step | process wall | process CPU (user + system) |")
    for name, (step, wall, cpu) in rows:
        print(f"| {name:<30} | {step:4d} s | {wall:6.1f} s | {cpu:6.1f} s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--work", default="compile_cache_work")
    ARGS = parser.parse_args()
    main()
