"""Train-step speed and memory: first-step (compile) seconds, median step seconds,
images/s and peak RSS, per execution mode and precision, optionally beside the PyTorch
reference: `benchmarks/torch_step.py` (the repository's own re-statements of the
reference steps, for cyclegan and stargan) or, with `--torch-ref-script FILE`, another
script with the same command line and JSON output (e.g. a U-GAT-IT reference). Each
configuration runs in its own process so peak memory and the dtype policy do not leak
between rows.

    python benchmarks/train_step.py --model cyclegan --size 128 --batch 1 \
        --modes xla,function,eager --precisions float32,mixed_float16 --torch-ref
    python benchmarks/train_step.py --model ugatit --size 128 --torch-ref     # full, torch --light 0
    python benchmarks/train_step.py --model ugatit_light --size 256 --torch-ref
    python benchmarks/train_step.py --model stargan --size 128 --batch 16 --phase d --torch-ref

StarGAN times one phase per run: `--phase d` a critic-only step, `--phase dg` a critic
step followed by a generator step (torch_ref.py's phases of the same names).

Run it alone on the machine: two heavy jobs on 2 cores make both figures worthless.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_STEP = os.path.join(HERE, "torch_step.py")
# Our model name -> the reference script's model and the arguments that select the same variant.
TORCH_MODELS = {"ugatit": ("ugatit", ["--light", "0"]), "ugatit_light": ("ugatit", ["--light", "1"])}


def batch_for(model_name, model, size, batch):
    """Random training data in the model's `fit` format."""
    import numpy as np
    rng = np.random.default_rng(0)
    images = lambda: rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    if model_name == "stargan":
        labels = rng.integers(0, 2, (batch, model.num_domains)).astype("float32")
        return images(), labels
    return images(), images()


def run_one(args):
    """Child process: one model, mode and precision; prints one JSON line."""
    import keras
    import tensorflow as tf
    from tf_translate import build_model
    from tf_translate.memory import freed_memory_returned

    keras.mixed_precision.set_global_policy(args.precision)
    overrides = json.loads(args.overrides)
    model = build_model(args.model, image_size=args.size, **overrides)
    model.compile(jit_compile=args.mode == "xla")
    data = tuple(tf.constant(x) for x in batch_for(args.model, model, args.size, args.batch))
    if args.mode == "eager":
        step = lambda: model.train_step(data)
    else:
        # Keras' own train function, as `fit` runs it: the model decides what XLA compiles
        # (StarGAN compiles its two gradient functions, not the tf.cond around them).
        model.make_train_function()
        batches = iter(tf.data.Dataset.from_tensors(data).repeat())
        step = lambda: model.train_function(batches)
    times = []
    for index in range(args.steps + 1):
        # The first step compiles; `tf-translate train` returns the compiler's freed
        # memory meanwhile (tf_translate.memory), and so does this benchmark.
        with freed_memory_returned() if index == 0 else contextlib.nullcontext():
            start = time.perf_counter()
            logs = step()
            float(next(iter(logs.values())))  # wait for the step to finish
            times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])
    print(json.dumps({"first_step_s": times[0], "step_s": median, "images_per_s": args.batch / median,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child(argv):
    done = subprocess.run([sys.executable, __file__, "--child"] + argv, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--modes", default="xla,function,eager")
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--overrides", default="{}", help="JSON constructor overrides")
    parser.add_argument("--torch-ref", action="store_true", help="also time the PyTorch reference step")
    parser.add_argument("--torch-ref-script", default=TORCH_STEP,
                        help="the PyTorch side (default benchmarks/torch_step.py: cyclegan, stargan)")
    parser.add_argument("--torch-args", default="", help="extra arguments for it, e.g. '--light 1'")
    parser.add_argument("--phase", choices=["d", "dg"], default="dg",
                        help="StarGAN: critic-only steps (d) or critic+generator steps (dg)")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--mode", default="xla")
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args()
    if args.child:
        return run_one(args)

    if args.model == "stargan":
        # n_critic decides which steps also update the generator: never, or every step.
        overrides = {**json.loads(args.overrides), "n_critic": 10 ** 9 if args.phase == "d" else 1}
        args.overrides = json.dumps(overrides)
        args.torch_args = f"{args.torch_args} --phase {args.phase}"
    rows = []
    for precision in args.precisions.split(","):
        for mode in args.modes.split(","):
            result = child(["--model", args.model, "--size", str(args.size), "--batch", str(args.batch),
                            "--steps", str(args.steps), "--mode", mode, "--precision", precision,
                            "--overrides", args.overrides])
            rows.append((f"tf_translate {mode}", precision, result))
            print(f"  done: {mode} {precision}: {result}", file=sys.stderr)
    torch_step = None
    if args.torch_ref:
        torch_model, variant = TORCH_MODELS.get(args.model, (args.model, []))
        if args.torch_ref_script == TORCH_STEP and args.model not in ("cyclegan", "stargan", "pix2pix"):
            parser.error(f"benchmarks/torch_step.py has no {args.model}: pass --torch-ref-script FILE")
        command = [sys.executable, args.torch_ref_script, "--model", torch_model, "--size", str(args.size),
                   "--batch", str(args.batch), "--threads", str(os.cpu_count())] + variant + args.torch_args.split()
        done = subprocess.run(command, capture_output=True, text=True)
        ref = json.loads([l for l in done.stdout.splitlines() if l.startswith("{")][-1])
        torch_step = ref["sec_per_iter_median"]
        rows.append(("PyTorch reference", "float32", {"first_step_s": float("nan"), "step_s": torch_step,
                     "images_per_s": args.batch / torch_step, "peak_rss_mb": ref.get("peak_rss_mb", float("nan"))}))

    phase = {"d": ", critic-only steps", "dg": ", critic+generator steps"}[args.phase] if args.model == "stargan" else ""
    print(f"\n{args.model} train step{phase}, {args.size} px, batch {args.batch}, {os.cpu_count()} cores")
    print(f"| implementation | precision | first step s | step s | images/s | peak MB | vs PyTorch |")
    print(f"|---|---|---:|---:|---:|---:|---:|")
    for name, precision, r in rows:
        if "error" in r:
            print(f"| {name} | {precision} | error: {r['error']} | | | | |")
            continue
        ratio = f"{r['step_s'] / torch_step:.2f}x" if torch_step else ""
        print(f"| {name} | {precision} | {r['first_step_s']:.1f} | {r['step_s']:.3f} | "
              f"{r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
