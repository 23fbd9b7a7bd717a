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
    python benchmarks/train_step.py --models all --json-out results.json   # the RESULTS table

`--models all` (or a comma list) runs, one process at a time, ours under XLA (each of
`--precisions`, float32 by default there) and then the PyTorch re-statement, each model at
its DEFAULTS size and batch (or `--size`/`--batch`), and prints one markdown table under a
header naming the CPU, its AVX-512/AMX flags, the oneDNN setting, versions and threads.

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
sys.path.insert(0, HERE)
from torch_step import MODELS as TORCH_STEP_MODELS  # noqa: E402

from tf_translate.machine import cpu_description, flags_shown, onednn_setting  # noqa: E402

# Our model name -> the reference script's model and the arguments that select the same variant.
TORCH_MODELS = {"ugatit": ("ugatit", ["--light", "0"]), "ugatit_light": ("ugatit", ["--light", "1"]),
                "nicegan": ("nicegan", ["--light", "0"]), "nicegan_light": ("nicegan", ["--light", "1"])}
# --models all: (size, batch) per model. 128 px batch 1 for the translators; StarGAN batch 16
# and DRIT++ batch 2 at its crop 216 (their reference batches). Photo2cartoon has no training
# re-statement in tests/: ours only. Not here: TuiGAN (trains scale by scale on one pair, through
# phases: time it with torch_step.py --model tuigan), DUNIT and INIT (box batches).
DEFAULTS = {"cyclegan": (128, 1), "stargan": (128, 16), "pix2pix": (128, 1), "unit": (128, 1), "drit": (216, 2),
            "ugatit": (128, 1), "ugatit_light": (128, 1), "nicegan": (128, 1), "nicegan_light": (128, 1),
            "photo2cartoon": (128, 1), "cut": (128, 1), "fastcut": (128, 1)}


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
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "tf_version": tf.__version__, "keras_version": keras.__version__,
                      "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                     "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}))


def child(argv):
    done = subprocess.run([sys.executable, __file__, "--child"] + argv, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def torch_side(model, size, batch, script, threads, extra=()):
    """The PyTorch step of our model `model` from `script` (its JSON line), or {"error": ...}."""
    torch_model, variant = TORCH_MODELS.get(model, (model, []))
    command = [sys.executable, script, "--model", torch_model, "--size", str(size), "--batch", str(batch),
               "--threads", str(threads)] + variant + list(extra)
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def stargan_phase(args):
    """StarGAN's n_critic override and torch --phase for `--phase` (other models: none)."""
    # n_critic decides which steps also update the generator: never, or every step.
    overrides = {**json.loads(args.overrides), "n_critic": 10 ** 9 if args.phase == "d" else 1}
    return json.dumps(overrides), ["--phase", args.phase]


def header(cpu, onednn, rows, torch_threads):
    """The lines above the RESULTS table: CPU (model name and flags), oneDNN, versions, threads."""
    model, flags = cpu
    ours = next((r["ours"] for r in rows if "tf_version" in r["ours"]), {})
    torch = next((r["torch"] for r in rows if r["torch"] and "torch_version" in r["torch"]), {})
    tf_threads = ours.get("tf_threads", {})
    return [f"CPU: {model}; {flags_shown(flags)}; {os.cpu_count()} cores", f"oneDNN: {onednn}",
            f"TensorFlow {ours.get('tf_version', '?')}, Keras {ours.get('keras_version', '?')}, "
            f"PyTorch {torch.get('torch_version', '?')}",
            f"threads: TF intra_op {tf_threads.get('intra_op', '?')}, inter_op {tf_threads.get('inter_op', '?')} "
            f"(0 = TF's default, one per core); torch.set_num_threads({torch.get('threads', torch_threads)})"]


def results_table(rows, header_lines):
    """Markdown: one line per model and precision, ours under XLA beside the PyTorch step.

    rows: dicts with model, size, batch, precision, ours (train_step's child JSON) and torch
    (torch_step.py's JSON, or None where the model has no re-statement); either may be {"error": ...}.
    """
    dash = "—"
    out = [*header_lines, "",
           "| model | size | batch | precision | our first step s | our step s | torch step s | ours/torch "
           "| our peak RSS MB | torch peak RSS MB |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ours, torch = row["ours"], row["torch"]
        ours_ok, torch_ok = "error" not in ours, bool(torch) and "error" not in torch
        cells = [f"{ours['first_step_s']:.1f}", f"{ours['step_s']:.3f}"] if ours_ok else [f"error: {ours['error']}", dash]
        cells.append(f"{torch['sec_per_iter_median']:.3f}" if torch_ok else
                     f"error: {torch['error']}" if torch else dash)
        cells.append(f"{ours['step_s'] / torch['sec_per_iter_median']:.2f}" if ours_ok and torch_ok else dash)
        cells.append(f"{ours['peak_rss_mb']:.0f}" if ours_ok else dash)
        cells.append(f"{torch['peak_rss_mb']:.0f}" if torch_ok else dash)
        out.append(f"| {row['model']} | {row['size']} | {row['batch']} | {row['precision']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def run_all(args, models):
    """--models: ours (XLA, each precision) then the torch side, model after model; the table."""
    started, rows = time.perf_counter(), []
    for model in models:
        size, batch = args.size or DEFAULTS[model][0], args.batch or DEFAULTS[model][1]
        overrides, extra = stargan_phase(args) if model == "stargan" else (args.overrides, [])
        has_torch = model.split("_light")[0] in TORCH_STEP_MODELS or args.torch_ref_script != TORCH_STEP
        extra = [*extra, "--iters", str(args.torch_iters)]
        torch = torch_side(model, size, batch, args.torch_ref_script, args.threads, extra) if has_torch else None
        for precision in args.precisions.split(","):
            ours = child(["--model", model, "--size", str(size), "--batch", str(batch), "--steps", str(args.steps),
                          "--mode", "xla", "--precision", precision, "--overrides", overrides])
            rows.append({"model": model, "size": size, "batch": batch, "precision": precision, "ours": ours,
                         "torch": torch})
            print(f"  done: {model} {precision}: ours {ours}, torch {torch}", file=sys.stderr)
        done, elapsed = models.index(model) + 1, time.perf_counter() - started
        print(f"  {done}/{len(models)} models in {elapsed / 60:.0f} min; at this pace about "
              f"{elapsed / done * (len(models) - done) / 60:.0f} min left", file=sys.stderr)
    cpu = cpu_description()
    onednn = f"{onednn_setting(cpu[1])} (TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')})"
    table = results_table(rows, header(cpu, onednn, rows, args.threads))
    print(table)
    print(f"\nwall time of this run: {time.perf_counter() - started:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"table": table, "rows": rows}, f, indent=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--models", help="'all' or a comma list: ours (XLA) and torch, one table (see DEFAULTS)")
    parser.add_argument("--size", type=int, help="default 128 (--models: each model's DEFAULTS size)")
    parser.add_argument("--batch", type=int, help="default 1 (--models: each model's DEFAULTS batch)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--modes", default="xla,function,eager")
    parser.add_argument("--precisions", help="default float32,mixed_float16 (--models: float32)")
    parser.add_argument("--overrides", default="{}", help="JSON constructor overrides")
    parser.add_argument("--torch-ref", action="store_true", help="also time the PyTorch reference step")
    parser.add_argument("--torch-ref-script", default=TORCH_STEP,
                        help="the PyTorch side (default benchmarks/torch_step.py)")
    parser.add_argument("--torch-args", default="", help="extra arguments for it, e.g. '--light 1'")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads of the PyTorch side")
    parser.add_argument("--torch-iters", type=int, default=5, help="--models: timed PyTorch iterations (after 2 "
                        "untimed, the first of them its first step)")
    parser.add_argument("--phase", choices=["d", "dg"], default="dg",
                        help="StarGAN: critic-only steps (d) or critic+generator steps (dg)")
    parser.add_argument("--json-out", help="--models: also write the raw rows and the table to this file")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--mode", default="xla")
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args()
    if args.child:
        return run_one(args)
    if args.models:
        models = list(DEFAULTS) if args.models == "all" else args.models.split(",")
        unknown = [m for m in models if m not in DEFAULTS]
        if unknown:
            parser.error(f"--models: unknown {', '.join(unknown)}; valid: all or {', '.join(DEFAULTS)}")
        args.precisions = args.precisions or "float32"
        return run_all(args, models)
    args.size, args.batch = args.size or 128, args.batch or 1
    args.precisions = args.precisions or "float32,mixed_float16"

    if args.model == "stargan":
        args.overrides, extra = stargan_phase(args)
        args.torch_args = f"{args.torch_args} {' '.join(extra)}"
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
        if args.torch_ref_script == TORCH_STEP and TORCH_MODELS.get(args.model, (args.model,))[0] not in TORCH_STEP_MODELS:
            parser.error(f"benchmarks/torch_step.py has no {args.model}: pass --torch-ref-script FILE")
        ref = torch_side(args.model, args.size, args.batch, args.torch_ref_script, args.threads, args.torch_args.split())
        if "error" in ref:
            rows.append(("PyTorch reference", "float32", ref))
        else:
            torch_step = ref["sec_per_iter_median"]
            rows.append(("PyTorch reference", "float32", {"first_step_s": ref.get("first_step_s", float("nan")),
                         "step_s": torch_step, "images_per_s": args.batch / torch_step,
                         "peak_rss_mb": ref.get("peak_rss_mb", float("nan"))}))

    phase = {"d": ", critic-only steps", "dg": ", critic+generator steps"}[args.phase] if args.model == "stargan" else ""
    print(f"\n{args.model} train step{phase}, {args.size} px, batch {args.batch}, {os.cpu_count()} cores")
    print("| implementation | precision | first step s | step s | images/s | peak MB | vs PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, precision, r in rows:
        if "error" in r:
            print(f"| {name} | {precision} | error: {r['error']} | | | | |")
            continue
        ratio = f"{r['step_s'] / torch_step:.2f}x" if torch_step else ""
        print(f"| {name} | {precision} | {r['first_step_s']:.1f} | {r['step_s']:.3f} | "
              f"{r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
