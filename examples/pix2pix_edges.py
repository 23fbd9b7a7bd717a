"""pix2pix on real photographs: from an edge map back to the photo (edges -> image).

The photographs are scikit-image's sample images (`skimage.data`, shipped with the
package: no download). Training pairs are 64 x 64 crops of every colour photograph but
the cat; the held-out pairs are crops of the cat (`chelsea`), a photo the model never
sees. The input of each pair is the crop's edge map (Sobel gradient magnitude, dark
edges on white, as edges2shoes), the target the crop itself. The pairs are written in
the reference's aligned layout (DIR/train, DIR/test: edges | photo in one file) and
trained through the library's common path, so the run directory is a normal one
(`tf-translate translate/evaluate/export --run-dir RUN` work on it).

How well does it translate? L1, PSNR and SSIM of the held-out translations against the
true photos (`tf_translate.evaluation.paired_scores`), before and after training, in both
test modes (see `UNetGenerator`: "reference" is junyanz's default test.py, "eval" its
--eval), next to two baselines that need no model: the edge map itself and the mean
training colour everywhere.

`--photos fashion-mnist` trains on the full Fashion-MNIST instead (Debian package
dataset-fashion-mnist: 60,000 garments, 28 px padded to 32; held out: the 10,000 test
garments): a task with enough varied training pairs to generalise. skimage's 8 training
photographs are too few for a held-out photo: the model learns their colours and scores
below the mean-colour baseline on the cat (benchmarks/RESULTS.md has both runs).

Usage:
    python examples/pix2pix_edges.py                     # skimage photographs
    python examples/pix2pix_edges.py --photos fashion-mnist --image-size 32 --steps 3000 --batch-size 8
    python examples/pix2pix_edges.py --steps 20 --train-count 64 --test-count 16 --filters 8
"""

import argparse
import json
import os
import time

import keras
import numpy as np
from PIL import Image

from tf_translate.evaluation import paired_scores
from tf_translate.runs import load_generators
from tf_translate.training import train

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                "colorwheel", "logo")
TEST_PHOTO = "chelsea"


def photo(name):
    """A skimage sample photograph as uint8 RGB at half size (crops then hold objects)."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = Image.fromarray(image[..., :3].astype(np.uint8))
    return np.asarray(image.resize((image.width // 2, image.height // 2), Image.BICUBIC))


def edge_map(image):
    """Dark edges on white: 255 - the Sobel gradient magnitude of the grey image,
    scaled so that the strongest 2 % of edges are black."""
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    padded = np.pad(grey, 1, mode="edge")
    gx = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]
          - padded[:-2, :-2] - 2 * padded[1:-1, :-2] - padded[2:, :-2])
    gy = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]
          - padded[:-2, :-2] - 2 * padded[:-2, 1:-1] - padded[:-2, 2:])
    magnitude = np.hypot(gx, gy)
    scale = max(np.percentile(magnitude, 98), 1e-6)
    edges = 255.0 - np.clip(magnitude / scale, 0.0, 1.0) * 255.0
    return np.repeat(edges[..., None], 3, axis=-1).astype(np.uint8)


def crops(images, count, size, rng):
    """`count` random size x size crops, spread over the images in turn."""
    out = []
    for i in range(count):
        image = images[i % len(images)]
        y = rng.integers(0, image.shape[0] - size + 1)
        x = rng.integers(0, image.shape[1] - size + 1)
        out.append(image[y:y + size, x:x + size])
    return out


FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(split, count, size):
    """`count` Fashion-MNIST garments of "train" or "t10k" as RGB, padded 28 -> `size` with
    the background's black."""
    import gzip

    path = os.path.join(FASHION_MNIST, f"{split}-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: install the Debian package dataset-fashion-mnist")
    with gzip.open(path, "rb") as file:
        images = np.frombuffer(file.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]
    pad = (size - 28) // 2
    images = np.pad(images, ((0, 0), (pad, size - 28 - pad), (pad, size - 28 - pad)))
    return list(np.repeat(images[..., None], 3, axis=-1))


def write_pairs(root, train_count, test_count, size, seed=0, photos="skimage"):
    """DIR/train and DIR/test of aligned edges|photo files; returns the test pairs."""
    rng = np.random.default_rng(seed)
    if photos == "fashion-mnist":
        splits = {"train": fashion_mnist("train", train_count, size), "test": fashion_mnist("t10k", test_count, size)}
    else:
        splits = {"train": crops([photo(n) for n in TRAIN_PHOTOS], train_count, size, rng),
                  "test": crops([photo(TEST_PHOTO)], test_count, size, rng)}
    for split, images in splits.items():
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i, image in enumerate(images):
            pair = np.concatenate([edge_map(image), image], axis=1)
            Image.fromarray(pair).save(os.path.join(root, split, f"{i:05d}.png"))
    return [(edge_map(image), image) for image in splits["test"]], splits["train"]


def translator(generator, mode):
    generator.inference_mode = mode
    return lambda pixels: np.clip(np.round(
        (generator(pixels.astype(np.float32) / 127.5 - 1.0).numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


def scores(generator, test_pairs):
    inputs, targets = zip(*test_pairs)
    return {mode: paired_scores(translator(generator, mode), inputs, targets) for mode in ("reference", "eval")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", default="pix2pix_edges_run")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-count", type=int, default=2000)
    parser.add_argument("--test-count", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--photos", choices=["skimage", "fashion-mnist"], default="skimage")
    parser.add_argument("--no-xla", action="store_true")
    args = parser.parse_args(argv)

    data = os.path.join(args.run_dir + "_data")
    test_pairs, train_images = write_pairs(data, args.train_count, args.test_count, args.image_size,
                                           photos=args.photos)
    variant = f"unet_{args.image_size}"
    overrides = dict(variant=variant, filters=args.filters, discriminator_filters=args.filters)

    keras.utils.set_random_seed(0)
    from tf_translate.models import build_model
    untrained = build_model("pix2pix", image_size=args.image_size, **overrides)
    before = scores(untrained.generator, test_pairs)
    start = time.time()
    train("pix2pix", {"paired": data, "direction": "AtoB"}, args.run_dir, steps=args.steps,
          batch_size=args.batch_size, image_size=args.image_size, seed=0, model_overrides=overrides,
          xla=not args.no_xla, checkpoint_every=1000, sample_every=max(1, args.steps // 4), verbose=2)
    seconds = time.time() - start
    model, _ = load_generators(args.run_dir)
    after = scores(model.generator, test_pairs)

    inputs, targets = zip(*test_pairs)
    mean_colour = np.mean([image.reshape(-1, 3).mean(0) for image in train_images], axis=0)
    baselines = {"the edge map itself": paired_scores(lambda p: p, inputs, targets),
                 "the mean training colour": paired_scores(
                     lambda p: np.broadcast_to(np.round(mean_colour).astype(np.uint8), p.shape), inputs, targets)}
    result = {"steps": args.steps, "train_seconds": round(seconds, 1), "train_pairs": len(train_images),
              "test_pairs": len(test_pairs), "untrained": before, "trained": after, "baselines": baselines}
    held_out = "Fashion-MNIST test garments" if args.photos == "fashion-mnist" else f"crops of '{TEST_PHOTO}'"
    print(f"\n{len(test_pairs)} held-out pairs ({held_out}), {args.steps} steps in {seconds:.0f} s")
    print(f"  {'':34} {'L1':>7} {'PSNR dB':>8} {'SSIM':>6}")
    rows = [(f"untrained, {m} mode", before[m]) for m in before] + [(f"trained, {m} mode", after[m]) for m in after]
    rows += [(name, value) for name, value in baselines.items()]
    for name, value in rows:
        print(f"  {name:34} {value['l1']:7.4f} {value['psnr']:8.2f} {value['ssim']:6.3f}")
    with open(os.path.join(args.run_dir, "edges_result.json"), "w") as file:
        json.dump(result, file, indent=2)
    return result


if __name__ == "__main__":
    main()
