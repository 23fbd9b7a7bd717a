"""Does our training learn like the reference's? Several seeds per side on real data,
both sides judged the same way (issue 34).

Models: cyclegan, ugatit_light. Domain A = `--train-count` Fashion-MNIST training images
of one class, domain B = as many of another, written as `--size` px RGB PNGs (bicubic from
28 px); test = the class-A test split. Ours is the library's `train` on those folders
(XLA, float32). The reference side is the PyTorch re-statement of the reference's training
loop on the same PNGs, built on the networks and `step` of `tests/torch_reference.py` /
`tests/torch_ugatit.py`: its data pipeline (PIL bicubic resize to 286/256 of the crop,
random crop, random flip; A in a new order every pass, B drawn at random for CycleGAN and
reshuffled per pass for U-GAT-IT), its initialisation, learning-rate schedule, image pool
and update order. Both sides use the same widths, sizes and steps. An epoch is one pass
over domain A (`--train-count` steps at batch 1), so junyanz's schedule steps where it
would.

The judge is a small CNN trained once on the real training split (cached in
~/.cache/tf_translate): the share of translated class-A test images it assigns to class
B, and KID x 100 of the translations against the real class-B test images on its
128-d penultimate features. Each (side, seed) run is kept in
benchmarks/results/learns_like_reference/<model>_<A>2<B>.json, so seeds can be run one
at a time; every call prints the table of all kept runs of the same settings:
mean ± sd (over seeds) per side, and the verdict "within" when our mean lies within the
reference's mean ± 2 sd. The picture (rows: inputs, reference, ours; lowest seed run by
both sides) goes beside the JSON.

    python benchmarks/learns_like_reference.py --model cyclegan --pair sandal:sneaker --seeds 0 1 2
    python benchmarks/learns_like_reference.py --model cyclegan --seeds 0 --side ours
    python benchmarks/learns_like_reference.py --model ugatit_light --steps 600 --train-count 200 \
        --discriminator-filters 16
    python benchmarks/learns_like_reference.py --model cyclegan --seeds 0 --steps 40 --train-count 20 \
        --results /tmp/look   # a quick look
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "examples"), os.path.join(ROOT, "tests")]

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
RESULTS = os.path.join(ROOT, "benchmarks", "results", "learns_like_reference")
JUDGE_STEPS = 1500


# --- pure pieces (tests/test_benchmarks_learns.py) ----------------------------------------

def mean_sd(values):
    """(mean, sample standard deviation, ddof 1; 0 for one value)."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def within_spread(ours, reference, widths=2.0):
    """True when the mean of `ours` lies within the reference's mean ± `widths` sd."""
    mean, sd = mean_sd(reference)
    return bool(abs(mean_sd(ours)[0] - mean) <= widths * sd)


def judged(logits, features, real_features, target):
    """{target-class share, KID x 100} of translations from the judge's outputs on them
    (`logits`, `features`) and its features of real target images."""
    from tf_translate import metrics
    subset = min(500, len(features) // 2, len(real_features) // 2)
    kid = metrics.kernel_distance(features, real_features, subsets=50, subset_size=subset)[0]
    return {"target_accuracy": metrics.target_class_accuracy(logits, target), "kid_x100": 100 * kid}


def cpu_name():
    with open("/proc/cpuinfo") as file:
        names = [line.split(":", 1)[1].strip() for line in file if line.startswith("model name")]
    return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores"


# --- data ---------------------------------------------------------------------------------

def class_index(name):
    if name not in CLASSES:
        raise SystemExit(f"--pair: unknown class {name!r}; choose from {', '.join(CLASSES)}")
    return CLASSES.index(name)


def write_domain(folder, images, size):
    """28x28 grey -> size x size RGB PNGs (bicubic): the files both sides read."""
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(images):
        path = os.path.join(folder, f"{i:05d}.png")
        if not os.path.exists(path):
            Image.fromarray(image).resize((size, size), Image.BICUBIC).convert("RGB").save(path)


def read_folder(folder):
    return [np.asarray(Image.open(os.path.join(folder, name)).convert("RGB")) for name in sorted(os.listdir(folder))]


def to_unit(images):
    return np.asarray(images, np.float32) / 127.5 - 1.0


def make_data(args, root, source, target):
    from stargan_fashion_mnist import load_split
    train_images, train_labels = load_split(args.data_dir, "train")
    test_images, test_labels = load_split(args.data_dir, "t10k")
    for split, images, labels, count in (("train", train_images, train_labels, args.train_count),
                                         ("test", test_images, test_labels, None)):
        for domain, label in (("A", source), ("B", target)):
            write_domain(os.path.join(root, split + domain), images[labels == label][:count], args.size)


# --- the judge ----------------------------------------------------------------------------

def load_judge(args):
    """(classifier, feature model, accuracy on the real test split): a small CNN trained
    once on the real training split and cached."""
    import keras

    from stargan_fashion_mnist import load_split, predict, to_model_images, train_classifier
    path = os.path.join(os.path.expanduser("~/.cache/tf_translate"),
                        f"fashion_mnist_judge_{args.size}px_{JUDGE_STEPS}.weights.h5")
    images, labels = load_split(args.data_dir, "train")
    cached = os.path.exists(path)
    classifier = train_classifier(images, labels, args.size, steps=1 if cached else JUDGE_STEPS)
    if cached:
        classifier.load_weights(path)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        classifier.save_weights(path)
    test_images, test_labels = load_split(args.data_dir, "t10k")
    accuracy = float(np.mean(predict(classifier, to_model_images(test_images, args.size).numpy()) == test_labels))
    features = keras.Model(classifier.inputs, classifier.layers[-2].output)
    return classifier, features, accuracy


def judge_images(judge, images, real_b, target):
    classifier, features, _ = judge
    outputs = lambda net, x: np.concatenate([net(x[i:i + 500], training=False).numpy() for i in range(0, len(x), 500)])
    return judged(outputs(classifier, images), outputs(features, images), outputs(features, real_b), target)


# --- the models: our options and the reference's training loop ----------------------------

def cyclegan_options(args):
    return {"filters": args.filters, "num_residual_blocks": args.blocks,
            "discriminator_filters": args.discriminator_filters}


def cyclegan_reference(args, seed, images):
    """junyanz `train.py` + `UnalignedDataset` + `CycleGANModel` at our sizes."""
    import torch

    from torch_reference import TorchCycleGAN

    epochs = args.steps // args.train_count
    trainer = TorchCycleGAN(ngf=args.filters, n_blocks=args.blocks, ndf=args.discriminator_filters,
                            n_epochs=epochs // 2, n_epochs_decay=epochs - epochs // 2, seed=seed)
    reference_loop(args, seed, images, lambda step, a, b: trainer.step(a, b), trainer.start_epoch, shuffle_b=False)
    return torch.no_grad()(lambda x: trainer.netG_A(trainer.tensor(x)).permute(0, 2, 3, 1).numpy())


def ugatit_light_options(args):
    return {"filters": args.filters, "num_residual_blocks": args.blocks,
            "discriminator_filters": args.discriminator_filters,
            "global_layers": args.global_layers, "local_layers": args.local_layers}


def ugatit_light_reference(args, seed, images):
    """UGATIT-pytorch `UGATIT.train` with `--light True` at our sizes: PyTorch's default
    initialisation, both domains reshuffled per pass, the learning rate lowered by
    lr / (iterations // 2) before each iteration of the second half."""
    import torch

    from torch_ugatit import TorchUGATIT

    trainer = TorchUGATIT(args.filters, args.blocks, args.size, True, args.discriminator_filters,
                          args.global_layers, args.local_layers, dtype="float32")
    half = args.steps // 2

    def step(index, a, b):
        if index + 1 > half:  # the reference counts iterations from 1
            for optimizer in (trainer.G_optim, trainer.D_optim):
                optimizer.param_groups[0]["lr"] -= 1e-4 / half
        trainer.step(a, b)
    reference_loop(args, seed, images, step, shuffle_b=True)
    return torch.no_grad()(lambda x: trainer.genA2B(trainer.tensor(x))[0].permute(0, 2, 3, 1).numpy())


def reference_loop(args, seed, images, step, start_epoch=lambda: None, shuffle_b=False):
    """The references' data loop at batch 1: resize (PIL bicubic) to the load size (286/256 of
    the crop, as ours), random crop, random flip; A in a new order every pass, B the same
    when `shuffle_b` (two DataLoaders), else drawn at random (junyanz's unaligned dataset).
    An epoch is one pass over A."""
    from tf_translate.data import reference_load_size
    rng = np.random.default_rng(seed)
    load = reference_load_size(args.size)
    orders = {"A": [], "B": []}

    def transform(image):
        array = np.asarray(image.resize((load, load), Image.BICUBIC))
        y, x = rng.integers(0, load - args.size + 1, size=2)
        array = array[y:y + args.size, x:x + args.size]
        return to_unit([array[:, ::-1] if rng.random() < 0.5 else array])

    def draw(domain):
        if not orders[domain]:
            orders[domain] = list(rng.permutation(len(images[domain])))
        return images[domain][orders[domain].pop()]

    for index in range(args.steps):
        if index % len(images["A"]) == 0:
            start_epoch()
        a = draw("A")
        b = draw("B") if shuffle_b else images["B"][int(rng.integers(len(images["B"])))]
        step(index, transform(a), transform(b))


MODELS = {"cyclegan": (cyclegan_options, cyclegan_reference),
          "ugatit_light": (ugatit_light_options, ugatit_light_reference)}


# --- one run per side and seed --------------------------------------------------------------

def run_ours(args, root, seed, work):
    from tf_translate.training import train
    run_dir = os.path.join(work, f"ours_seed{seed}")
    shutil.rmtree(run_dir, ignore_errors=True)
    model = train(args.model, root, run_dir, steps=args.steps, image_size=args.size, seed=seed, verbose=0,
                  model_overrides=MODELS[args.model][0](args), checkpoint_every=args.steps,
                  sample_every=args.steps, log_every=args.steps)
    generator = model.generators()["a2b"]

    def translate(images):
        output = generator(images, training=False)
        return np.asarray(output[0] if isinstance(output, (tuple, list)) else output)
    return translate


def run_reference(args, root, seed, work):
    import torch
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(seed)
    images = {d: [Image.fromarray(x) for x in read_folder(os.path.join(root, "train" + d))] for d in "AB"}
    return MODELS[args.model][1](args, seed, images)


def settings(args):
    return {"model": args.model, "pair": args.pair, "steps": args.steps, "size": args.size,
            "train_count": args.train_count, **MODELS[args.model][0](args)}


def load_record(path, current):
    if os.path.exists(path):
        with open(path) as file:
            record = json.load(file)
        if record["settings"] == current:
            return record
        print(f"{path}: kept runs have other settings ({record['settings']}); starting a new record")
    return {"settings": current, "runs": []}


def print_table(record, judge_accuracy, inputs):
    runs = record["runs"]
    s = record["settings"]
    print(f"\n{s['model']} {s['pair'].replace(':', ' -> ')}: {s['steps']} steps at batch 1, {s['size']} px, "
          f"{s['train_count']} images per domain; judge: {judge_accuracy:.1%} on the real test split; "
          f"CPU: {cpu_name()}, shared")
    print(f"inputs before training: {inputs['target_accuracy']:.1%} judged target, KID x 100 {inputs['kid_x100']:.2f}")
    print("| side | seeds | judged target, mean ± sd | KID x 100, mean ± sd | train s, mean "
          "| per seed (judged target) |\n"
          "|---|---|---:|---:|---:|---|")
    by_side = {side: sorted((r for r in runs if r["side"] == side), key=lambda r: r["seed"])
               for side in ("reference", "ours")}
    for side, rows in by_side.items():
        if not rows:
            continue
        accuracy, kid = (mean_sd([r[key] for r in rows]) for key in ("target_accuracy", "kid_x100"))
        print(f"| {side} | {' '.join(str(r['seed']) for r in rows)} | {accuracy[0]:.1%} ± {accuracy[1]:.1%} | "
              f"{kid[0]:.2f} ± {kid[1]:.2f} | {np.mean([r['train_seconds'] for r in rows]):.0f} | "
              f"{', '.join(format(r['target_accuracy'], '.1%') for r in rows)} |")
    if by_side["reference"] and by_side["ours"]:
        for key, label in (("target_accuracy", "judged target"), ("kid_x100", "KID")):
            inside = within_spread([r[key] for r in by_side["ours"]], [r[key] for r in by_side["reference"]])
            print(f"verdict ({label}): ours is {'within' if inside else 'OUTSIDE'} the reference's mean ± 2 sd")


def save_picture(path, rows):
    """Rows of 8 images ([-1, 1] NHWC) stacked into one PNG, scaled x2."""
    grid = np.concatenate([np.concatenate(list(row[:8]), axis=1) for row in rows], axis=0)
    Image.fromarray(np.uint8(np.clip((grid + 1) * 127.5 + 0.5, 0, 255))).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cyclegan")
    parser.add_argument("--pair", default="sandal:sneaker", help=f"A:B, from {', '.join(CLASSES)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--side", choices=["both", "ours", "reference"], default="both")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--train-count", type=int, default=250, help="images per domain = steps per epoch")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--discriminator-filters", type=int, default=32)
    parser.add_argument("--global-layers", type=int, default=5, help="U-GAT-IT's global D depth (7 at 256 px)")
    parser.add_argument("--local-layers", type=int, default=4, help="U-GAT-IT's local D depth (5 at 256 px)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch threads (2 threads on 2 cores shared with other jobs ran 14x slower than 1)")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/tf_translate/learns_like_reference"),
                        help="folder for the PNGs and run folders")
    parser.add_argument("--results", default=RESULTS, help="folder for the JSON and the picture")
    args = parser.parse_args(argv)
    if ":" not in args.pair:
        parser.error(f"--pair {args.pair!r}: give two classes as A:B")
    if args.steps % args.train_count:
        parser.error(f"--steps {args.steps} must be a multiple of --train-count {args.train_count} (whole epochs)")
    return args


def main(argv=None):
    args = parse_args(argv)
    source, target = (class_index(name) for name in args.pair.split(":"))
    name = f"{args.model}_{args.pair.replace(':', '2')}"
    root = os.path.join(args.work, f"{args.pair.replace(':', '2')}_{args.size}px_{args.train_count}")
    work = os.path.join(args.work, f"{name}_runs")
    make_data(args, root, source, target)
    judge = load_judge(args)
    test, real_b = (to_unit(read_folder(os.path.join(root, folder))) for folder in ("testA", "testB"))
    inputs = judge_images(judge, test, real_b, target)
    os.makedirs(args.results, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    path = os.path.join(args.results, name + ".json")
    record = load_record(path, settings(args))
    for seed in args.seeds:
        for side in (["reference", "ours"] if args.side == "both" else [args.side]):
            started = time.time()
            translate = (run_ours if side == "ours" else run_reference)(args, root, seed, work)
            seconds = time.time() - started
            fakes = np.concatenate([translate(test[i:i + 200]) for i in range(0, len(test), 200)])
            np.save(os.path.join(work, f"{side}_seed{seed}_first8.npy"), fakes[:8])
            result = dict(side=side, seed=seed, **judge_images(judge, fakes, real_b, target),
                          train_seconds=seconds, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
                              timespec="minutes"), cpu=cpu_name(), command=" ".join(sys.argv))
            print(f"{side} seed {seed}: {result['target_accuracy']:.1%} judged target, KID x 100 "
                  f"{result['kid_x100']:.2f}, {seconds:.0f} s", flush=True)
            record["runs"] = [r for r in record["runs"] if (r["side"], r["seed"]) != (side, seed)] + [result]
            record.update(judge_accuracy=judge[2], inputs=inputs)
            with open(path, "w") as file:
                json.dump(record, file, indent=1)
    both = sorted({r["seed"] for r in record["runs"] if r["side"] == "ours"}
                  & {r["seed"] for r in record["runs"] if r["side"] == "reference"})
    pictures = [os.path.join(work, f"{side}_seed{both[0]}_first8.npy") for side in ("reference", "ours")
                ] if both else []
    if pictures and all(os.path.exists(p) for p in pictures):
        save_picture(os.path.join(args.results, name + ".png"), [test] + [np.load(p) for p in pictures])
    print_table(record, judge[2], inputs)


if __name__ == "__main__":
    main()
