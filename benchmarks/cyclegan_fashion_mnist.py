"""CycleGAN on real images, ours against a PyTorch re-statement of the reference, judged
by a classifier: does our training learn what the reference's learns?

Fashion-MNIST (Debian package dataset-fashion-mnist): domain A = 3,000 training images of
one class, domain B = 3,000 of another, written as 32x32 RGB PNGs; test = 500 test-split
images of class A. Both sides: CycleGAN with 32 filters and 6 residual blocks, 64-filter
PatchGANs, batch 1, 2,000 steps, Adam 2e-4 (0.5, 0.999), 200-step epochs with the
reference's linear schedule over the second half, resize to 36 / random 32 crop / flip,
pool 50. Ours reads the PNG folders with `unpaired_dataset` and trains with `fit`; the
reference side is `tests/torch_reference.py` (junyanz's networks and
`optimize_parameters`, with its data transform). The judge is a small CNN trained on the
real Fashion-MNIST training split (cached in the output folder). Prints a table: the
share of translated test images the judge assigns to class B, KID x 100 of the
translations against 500 real class-B test images (`tf_translate.metrics.kernel_distance`,
50 subsets of 250; on the judge's class probabilities and on the offline MobileNetV2
features), and the training time. The input row is "before training": the
untranslated class-A images against class B.

    python benchmarks/cyclegan_fashion_mnist.py                       # sandal -> sneaker
    python benchmarks/cyclegan_fashion_mnist.py --pair sneaker:ankle_boot
    python benchmarks/cyclegan_fashion_mnist.py --side ours --load-size 286   # the old default
    python benchmarks/cyclegan_fashion_mnist.py --steps 50 --train-count 100  # a quick look
"""

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "examples"), os.path.join(ROOT, "tests")]

from stargan_fashion_mnist import (CLASSES, DATA_DIR, load_split, predict, to_model_images,  # noqa: E402
                                   train_classifier)

NAMES = {name.lower().replace("/", "_").replace(" ", "_"): index for index, name in enumerate(CLASSES)}
SIZE = 32


def write_domain(folder, images):
    """28x28 grey -> 32x32 RGB PNGs (bicubic), the files both sides read."""
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(images):
        path = os.path.join(folder, f"{i:05d}.png")
        if not os.path.exists(path):
            Image.fromarray(image).resize((SIZE, SIZE), Image.BICUBIC).convert("RGB").save(path)


def read_folder(folder):
    return [np.asarray(Image.open(os.path.join(folder, name)).convert("RGB"))
            for name in sorted(os.listdir(folder))]


def to_unit(images):
    return np.asarray(images, np.float32) / 127.5 - 1.0


def make_data(args, root):
    source, target = (NAMES[name] for name in args.pair.split(":"))
    train_images, train_labels = load_split(args.data_dir, "train")
    test_images, test_labels = load_split(args.data_dir, "t10k")
    write_domain(os.path.join(root, "trainA"), train_images[train_labels == source][:args.train_count])
    write_domain(os.path.join(root, "trainB"), train_images[train_labels == target][:args.train_count])
    write_domain(os.path.join(root, "testA"), test_images[test_labels == source][:args.test_count])
    write_domain(os.path.join(root, "testB"), test_images[test_labels == target][:args.test_count])
    return source, target


def kid_columns(classifier, mobilenet, images, real_b):
    """KID x 100 (mean of 50 subsets) of `images` against the real class-B test images,
    on the judge's class probabilities (10-d) and on MobileNetV2 features (1280-d)."""
    import tensorflow as tf

    from tf_translate import metrics

    probabilities = lambda x: tf.nn.softmax(classifier(x, training=False))
    subset = min(250, len(images) // 2, len(real_b) // 2)
    kids = []
    for extractor in (probabilities, mobilenet):
        fake, real = (metrics.extract_features(extractor, x, batch_size=100) for x in (images, real_b))
        kids.append(100 * metrics.kernel_distance(fake, real, subsets=50, subset_size=subset)[0])
    return kids


def judge(args):
    """The classifier, trained once on real training images and cached; its accuracy
    on the real test split."""
    path = os.path.join(args.output, "judge.weights.h5")
    images, labels = load_split(args.data_dir, "train")
    # One step builds the network when cached weights replace the training.
    classifier = train_classifier(images, labels, SIZE, steps=1 if os.path.exists(path) else 1500)
    if os.path.exists(path):
        classifier.load_weights(path)
    else:
        classifier.save_weights(path)
    test_images, test_labels = load_split(args.data_dir, "t10k")
    accuracy = float(np.mean(predict(classifier, to_model_images(test_images, SIZE).numpy()) == test_labels))
    return classifier, accuracy


def train_ours(args, root):
    import keras

    from tf_translate import build_model
    from tf_translate.data import unpaired_dataset
    from tf_translate.optimizers import make_adam
    from tf_translate.schedules import LinearDecay

    keras.utils.set_random_seed(args.seed)
    dataset, _, _ = unpaired_dataset(root, batch_size=1, image_size=SIZE, load_size=args.load_size, seed=args.seed)
    model = build_model("cyclegan", image_size=SIZE, filters=32, num_residual_blocks=6, seed=args.seed)
    optimizers = {}
    if args.keras_adam:  # Keras' Adam arithmetic and epsilon, as this project had it
        epochs = args.steps // args.steps_per_epoch
        schedule = LinearDecay(2e-4, epochs // 2, epochs - epochs // 2, args.steps_per_epoch, True)
        optimizers = {name: make_adam(schedule, 0.5, epsilon=1e-7, pytorch_epsilon=False)
                      for name in ("g_optimizer", "d_optimizer")}
    model.compile(total_steps=args.steps, steps_per_epoch=args.steps_per_epoch, **optimizers)
    start = time.time()
    model.fit(dataset, epochs=args.steps // args.steps_per_epoch, steps_per_epoch=args.steps_per_epoch, verbose=0)
    seconds = time.time() - start
    test = to_unit(read_folder(os.path.join(root, "testA")))
    fakes = np.concatenate([model.generator_ab(test[i:i + 100], training=False).numpy()
                            for i in range(0, len(test), 100)])
    return fakes, seconds


def train_torch(args, root):
    import torch

    from torch_reference import TorchCycleGAN

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    epochs = args.steps // args.steps_per_epoch
    trainer = TorchCycleGAN(ngf=32, n_blocks=6, ndf=64, n_epochs=epochs // 2, n_epochs_decay=epochs - epochs // 2,
                            seed=args.seed)
    images = {d: [Image.fromarray(x) for x in read_folder(os.path.join(root, "train" + d))] for d in "AB"}
    load = args.load_size or int(round(SIZE * 286 / 256))

    def transform(image):  # junyanz get_transform: resize (bicubic), random crop, random flip
        array = np.asarray(image.resize((load, load), Image.BICUBIC))
        y, x = rng.integers(0, load - SIZE + 1, size=2)
        array = array[y:y + SIZE, x:x + SIZE]
        return array[:, ::-1] if rng.random() < 0.5 else array

    start = time.time()
    order = []
    for epoch in range(epochs):
        trainer.start_epoch()
        for _ in range(args.steps_per_epoch):
            if not order:  # A shuffled per pass, B drawn at random (unaligned dataset)
                order = list(rng.permutation(len(images["A"])))
            a = images["A"][order.pop()]
            b = images["B"][int(rng.integers(len(images["B"])))]
            trainer.step(to_unit([transform(a)]), to_unit([transform(b)]))
    seconds = time.time() - start
    test = to_unit(read_folder(os.path.join(root, "testA")))
    with torch.no_grad():
        fakes = trainer.netG_A(trainer.tensor(test)).permute(0, 2, 3, 1).numpy()
    return fakes, seconds


def save_grid(path, rows):
    """Rows of 8 images each ([-1, 1] NHWC), stacked into one PNG."""
    grid = np.concatenate([np.concatenate(list(row[:8]), axis=1) for row in rows], axis=0)
    Image.fromarray(np.uint8(np.clip((grid + 1) * 127.5 + 0.5, 0, 255))).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="sandal:sneaker", help=f"A:B, from {', '.join(NAMES)}")
    parser.add_argument("--side", choices=["both", "ours", "torch"], default="both")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--train-count", type=int, default=3000)
    parser.add_argument("--test-count", type=int, default=500)
    parser.add_argument("--load-size", type=int, help="resize before the 32 crop (default 36, as 286/256)")
    parser.add_argument("--keras-adam", action="store_true", help="ours with Keras' Adam arithmetic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--output", default="cyclegan_fashion_mnist_out")
    args = parser.parse_args(argv)
    if args.steps % args.steps_per_epoch:
        parser.error("--steps must be a multiple of --steps-per-epoch")
    os.makedirs(args.output, exist_ok=True)
    root = os.path.join(args.output, args.pair.replace(":", "2") + f"_{args.train_count}")
    source, target = make_data(args, root)
    classifier, accuracy = judge(args)
    from tf_translate import metrics

    mobilenet = metrics.mobilenet_v2_features()
    test = to_unit(read_folder(os.path.join(root, "testA")))
    real_b = to_unit(read_folder(os.path.join(root, "testB")))
    rows = [("input (class A), before training", float(np.mean(predict(classifier, test) == target)), None,
             *kid_columns(classifier, mobilenet, test, real_b))]
    grid = [test]
    sides = ["torch", "ours"] if args.side == "both" else [args.side]
    for side in sides:
        fakes, seconds = (train_torch if side == "torch" else train_ours)(args, root)
        label = "PyTorch reference" if side == "torch" else "tf_translate" + (" (Keras Adam)" if args.keras_adam else "")
        rows.append((label, float(np.mean(predict(classifier, fakes) == target)), seconds,
                     *kid_columns(classifier, mobilenet, fakes, real_b)))
        grid.append(fakes)
    picture = os.path.join(args.output, f"{args.pair.replace(':', '2')}_{'_'.join(sides)}.png")
    save_grid(picture, grid)
    print(f"\nCycleGAN {args.pair.replace(':', ' -> ')}, {args.steps} steps, load {args.load_size or 36}; "
          f"judge accuracy on the real test split {accuracy:.1%}; rows of {picture}: input, " + ", ".join(sides))
    print("| side | judged class B | KID x 100, judge probabilities | KID x 100, MobileNetV2 features | train s |\n"
          "|---|---:|---:|---:|---:|")
    for label, share, seconds, kid_judge, kid_mobilenet in rows:
        print(f"| {label} | {share:.1%} | {kid_judge:.2f} | {kid_mobilenet:.2f} | "
              f"{'' if seconds is None else f'{seconds:.0f}'} |")
    with open(os.path.join(args.output, "result.json"), "a") as file:
        file.write(json.dumps({"args": vars(args), "rows": rows, "judge_accuracy": accuracy}) + "\n")


if __name__ == "__main__":
    main()
