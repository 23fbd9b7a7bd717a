"""Where the first training step's time and the process's memory go: build, trace
(Python -> TF graph), XLA compile (HLO passes + LLVM codegen), then steady steps; with
peak RSS per phase, sampled every 20 ms. With `--dump DIR` XLA also writes its HLO
modules there, and the table gives the size of the optimized module and when each
compiler stage's files appeared (a timeline of HLO passes vs LLVM codegen).

    python benchmarks/compile_profile.py --model ugatit --size 128
    python benchmarks/compile_profile.py --model photo2cartoon --size 256 --dump /tmp/xla

The first call runs inside `tf_translate.memory.freed_memory_returned`, as the first
step of `tf-translate train` does; `--no-trim` shows the peak without it.

Run it alone on the machine: two heavy jobs on 2 cores make both figures worthless.
"""

import argparse
import contextlib
import glob
import json
import os
import threading
import time


class RssSampler:
    """Peak resident memory of this process per named phase."""

    def __init__(self):
        self.peak_kb = 0
        self.phases = []
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while True:
            with open("/proc/self/status") as status:
                rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS"))
            self.peak_kb = max(self.peak_kb, rss)
            time.sleep(0.02)

    def phase(self, name, seconds):
        self.phases.append((name, seconds, self.peak_kb / 1024))
        self.peak_kb = 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ugatit")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--overrides", default="{}", help="JSON constructor overrides")
    parser.add_argument("--no-trim", dest="trim", action="store_false",
                        help="keep the compiler's freed memory resident (as plain `fit` does)")
    parser.add_argument("--dump", help="directory for XLA's HLO dumps (the stage timeline)")
    args = parser.parse_args()
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={args.dump}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    sampler = RssSampler()
    start = time.perf_counter()
    import numpy as np
    import tensorflow as tf
    from tf_translate import build_model
    from tf_translate.memory import freed_memory_returned
    sampler.phase("import", time.perf_counter() - start)

    start = time.perf_counter()
    model = build_model(args.model, image_size=args.size, **json.loads(args.overrides))
    model.compile(jit_compile=True)
    rng = np.random.default_rng(0)
    data = tuple(tf.constant(rng.uniform(-1, 1, (1, args.size, args.size, 3)).astype("float32"))
                 for _ in range(2))
    sampler.phase(f"build ({model.count_params() / 1e6:.1f} M weights)", time.perf_counter() - start)

    step = model.xla_train_step()  # what `fit` calls
    start = time.perf_counter()
    graph = step.get_concrete_function(data).graph
    sampler.phase(f"trace ({len(graph.get_operations())} graph ops)", time.perf_counter() - start)

    compile_start = time.time()
    start = time.perf_counter()
    with freed_memory_returned() if args.trim else contextlib.nullcontext():
        logs = step(data)
        float(next(iter(logs.values())))
    first = time.perf_counter() - start
    sampler.phase("first call: XLA compile + one step", first)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        float(next(iter(step(data).values())))
        times.append(time.perf_counter() - start)
    steady = sorted(times)[len(times) // 2]
    sampler.phase(f"steady step (median of {args.steps})", steady)

    print(f"\n{args.model} {args.size} px, batch 1, {os.cpu_count()} cores: first call - step = "
          f"{first - steady:.1f} s of XLA compile")
    print("| phase | seconds | peak RSS MB in phase |\n|---|---:|---:|")
    for name, seconds, peak_mb in sampler.phases:
        print(f"| {name} | {seconds:.1f} | {peak_mb:.0f} |")
    if args.dump:
        print_dump_timeline(args.dump, compile_start)


def print_dump_timeline(dump_dir, compile_start):
    """When each stage's dump of the largest module appeared, seconds after the first call."""
    files = glob.glob(os.path.join(dump_dir, "*"))
    modules = {}
    for path in files:
        name = os.path.basename(path)
        if not name.startswith("module_"):
            continue
        module = name.split(".")[0]
        modules.setdefault(module, []).append(path)
    if not modules:
        print("no XLA modules dumped")
        return
    module = max(modules, key=lambda m: sum(os.path.getsize(p) for p in modules[m]))
    print(f"\nlargest module {module}: stage files, seconds after the first call began")
    print("| file | seconds | size KB | HLO instructions |\n|---|---:|---:|---:|")
    kernel_files = [p for p in modules[module]
                    if any(k in os.path.basename(p) for k in ("kernel_module", "__compute", "obj-file", "part_"))]
    if kernel_files:
        times = sorted(os.path.getmtime(p) - compile_start for p in kernel_files)
        print(f"| {len(kernel_files)} kernel codegen files, first .. last | {times[0]:.1f} .. {times[-1]:.1f} | | |")
    for path in sorted(set(modules[module]) - set(kernel_files), key=os.path.getmtime):
        with open(path, errors="replace") as f:
            text = f.read()
        instructions = sum(1 for line in text.splitlines() if " = " in line) if path.endswith(".txt") else ""
        print(f"| ...{os.path.basename(path)[-50:]} | {os.path.getmtime(path) - compile_start:.1f} | "
              f"{os.path.getsize(path) / 1024:.0f} | {instructions} |")


if __name__ == "__main__":
    main()
