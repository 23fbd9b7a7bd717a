"""Does the paper's instance branch keep objects better than global translation? DUNIT's
own question, on the synthetic night/day scenes (`dunit.scenes`), judged DUNIT's way:
one frozen detector, trained on domain A's boxes, reads the A→B translations of testA,
and its boxes are compared with testA's ground truth by the released multibox IoU
(`DUNIT.instance_iou`; 1 = every object found where it was).

Per seed it trains "dunit" (DRIT++ whose IoU term has no gradient: translations are the
global-only DRIT++ baseline) and "dunit_paper" (instance branch, detector agreement with
gradient; at test time boxes from its own detector) on the same scenes and steps, then
judges both translations, and the source images themselves, with the dunit run's detector.
Prints one table (mean ± sd over seeds, the CPU named) and writes the per-seed numbers
and a picture (rows: testA, dunit, dunit_paper) to benchmarks/results/dunit_instances/.

    python benchmarks/dunit_instances.py --seeds 0 1 2 --steps 300 --detector-steps 300

Run it alone on the machine (it trains 2 × seeds models).
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dunit_instances")
THRESHOLDS = (0.05, 0.5)  # the released detector's (every weak box counts against the IoU), and a confident one
SMALL = dict(filters=16, attribute_filters=16, discriminator_filters=16, content_discriminator_filters=32,
             content_discriminator_layers=1, detector_filters=16, max_boxes=8)


def cpu_name():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="DRIT++ iterations per run")
    parser.add_argument("--detector-steps", type=int, default=300)
    parser.add_argument("--detector-learning-rate", type=float, default=2e-4, help="the released 2e-4 by default")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=64, help="training scenes per domain")
    parser.add_argument("--test-images", type=int, default=32)
    parser.add_argument("--work", default=None, help="folder for scenes and runs (default: a temporary one); "
                        "runs already in it are resumed, not retrained")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from tf_translate.models.dunit.scenes import write_scene_folders
    from tf_translate.runs import load_generators
    from tf_translate.training import image_grid, train

    work = args.work or tempfile.mkdtemp(prefix="dunit_instances_")
    scenes = os.path.join(work, "scenes")
    if not os.path.isdir(scenes):
        write_scene_folders(scenes, args.images, args.images, args.size, 0, test_count=args.test_images)
    test_a = os.path.join(scenes, "testA")
    overrides = dict(SMALL, detector_steps=args.detector_steps, detector_learning_rate=args.detector_learning_rate)
    rows, pictures = [], {}
    for seed in args.seeds:
        models = {}
        for name in ("dunit", "dunit_paper"):
            run_dir = os.path.join(work, f"{name}_{seed}")
            started = time.time()
            if os.path.exists(os.path.join(run_dir, "run.json")):  # a finished or interrupted run of --work
                train(name, scenes, run_dir, steps=args.steps, resume=True, verbose=0)
            else:
                train(name, scenes, run_dir, steps=args.steps, batch_size=2, image_size=args.size,
                      load_size=args.size, seed=seed, verbose=0, model_overrides=overrides, sample_every=10 ** 9)
            models[name] = load_generators(run_dir)[0]
            print(f"seed {seed}: {name} trained in {time.time() - started:.0f} s", flush=True)
        judge = models["dunit"]

        def translator(model):
            a2b = model.generators()["a2b"]
            codes = tf.random.stateless_normal((1, model.attribute_size), seed=[seed, 7])

            def translate(uint8_images):
                images = tf.cast(uint8_images, tf.float32) / 127.5 - 1.0
                return tf.cast(tf.clip_by_value(tf.round((a2b([images, codes]) + 1.0) * 127.5), 0, 255), tf.uint8)
            return translate

        row = {"seed": seed}
        for threshold in THRESHOLDS:
            row[f"source@{threshold}"] = judge.instance_iou(lambda images: images, test_a,
                                                            score_threshold=threshold)[0]
            for name, model in models.items():
                row[f"{name}@{threshold}"] = judge.instance_iou(translator(model), test_a,
                                                                score_threshold=threshold)[0]
        rows.append(row)
        print(json.dumps(row), flush=True)
        if seed == args.seeds[0]:
            from tf_translate.data import check_images, list_images, read_rgb

            paths = check_images(list_images(test_a))[0][:8]
            sources = np.concatenate([read_rgb(p)[None] for p in paths])
            pictures = {"testA": sources}
            for name, model in models.items():
                pictures[name] = np.concatenate([translator(model)(image[None]).numpy() for image in sources])

    cpu = cpu_name()
    print(f"\nInstance IoU of the dunit detector's boxes on testA translations (released multibox IoU), "
          f"{len(args.seeds)} seeds, {args.steps} DRIT++ iterations, {args.detector_steps} detector steps, "
          f"{args.size} px; {cpu}")
    print(f"{'judged images':<34}" + "".join(f"{'score >= ' + str(t):>22}" for t in THRESHOLDS))
    for key, title in (("source", "testA itself (the detector's own)"), ("dunit", "dunit (global DRIT++)"),
                       ("dunit_paper", "dunit_paper (instance branch)")):
        cells = []
        for threshold in THRESHOLDS:
            values = np.array([row[f"{key}@{threshold}"] for row in rows])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.3f} ± {spread:.3f}")
        print(f"{title:<34}" + "".join(f"{cell:>22}" for cell in cells))
    os.makedirs(RESULTS, exist_ok=True)
    record = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "args": vars(args), "per_seed": rows}
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump(record, f, indent=1)
    from PIL import Image

    grid = image_grid([(name, images.astype(np.float32) / 127.5 - 1.0) for name, images in pictures.items()])
    Image.fromarray(grid).save(os.path.join(RESULTS, "translations.png"))
    print(f"wrote {RESULTS}/results.json and translations.png")


if __name__ == "__main__":
    main()
