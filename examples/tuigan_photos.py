"""TuiGAN on two real photographs from scikit-image, offline: the cat of `chelsea` (A) is
translated towards the Hubble deep field (B), one image of each domain.

It writes the two images, trains the pyramid in a run directory (as `tf-translate train
--model tuigan --data A B` does), translates the training image with the whole pyramid,
and reports the time of each scale (its `fit`, compile included). While it trains it
prints a progress line every --progress-every iterations (scale k of n, iteration,
elapsed seconds).

Expected time: measured on a 2-core AMD EPYC (Zen 5, AVX-512) loaded by other work: the
small run below, about 45 min (per iteration 0.9, 1.6 and 2.6 s at its three scales, about
1.5 min of compiling per scale, 4 min of start-up); the reference run (4,000 iterations on
each of more, larger scales up to 250 px) takes days on 2 cores (not measured).

    python examples/tuigan_photos.py --run-dir tuigan_run                      # reference: 250 px, 4000 it/scale
    python examples/tuigan_photos.py --run-dir tuigan_small --size 120 --min-size 60 --steps 400
The tests run it with --size 48 --min-size 31 --steps 2 --eager --progress-every 1.
"""

import argparse
import json
import os
import time

import keras
import numpy as np
from PIL import Image


class Progress(keras.callbacks.Callback):
    """Prints "scale k of n, iteration i of N, elapsed T s" every `every` iterations and at
    the end of each scale."""

    def __init__(self, every):
        super().__init__()
        self.every = every
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
        done, total = model.scale_iterations(model.scale), model.iterations
        if done % self.every == 0 or done == total:
            print(f"scale {model.scale + 1} of {model.num_scales}, iteration {done} of {total}, "
                  f"elapsed {time.perf_counter() - self.start:.0f} s", flush=True)


def write_photos(folder):
    """A.png (the chelsea cat photo) and B.png (the Hubble deep field crop, A's size)."""
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    a = data.chelsea()
    b = data.hubble_deep_field()[:a.shape[0], :a.shape[1]]
    paths = [os.path.join(folder, name) for name in ("A.png", "B.png")]
    for path, image in zip(paths, (a, b)):
        Image.fromarray(image).save(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("Expected time: ")[1].split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--size", type=int, default=250, help="finest long side (reference --max_size)")
    parser.add_argument("--min-size", type=int, default=100, help="coarsest short side (reference --min_size)")
    parser.add_argument("--steps", type=int, default=4000, help="iterations per scale (reference --niter)")
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--eager", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress-every", type=int, default=100, help="iterations between progress lines")
    args = parser.parse_args(argv)

    from tf_translate.data import read_rgb
    from tf_translate.training import train

    paths = write_photos(args.run_dir + "_data")
    model = train("tuigan", paths, args.run_dir, steps=args.steps, image_size=args.size, xla=not args.no_xla,
                  eager=args.eager, seed=args.seed, verbose=0, model_overrides={"min_size": args.min_size},
                  callbacks=[Progress(args.progress_every)])
    pyramid = model.generators()["a2b"]
    h, w = model.rule.finest
    source = np.asarray(Image.fromarray(read_rgb(paths[0])).resize((w, h), Image.BICUBIC))
    result = pyramid(source[None].astype(np.float32) / 127.5 - 1.0).numpy()[0]
    output = os.path.join(args.run_dir, "chelsea_to_hubble.png")
    Image.fromarray(np.concatenate([source, np.clip(np.round((result + 1) * 127.5), 0, 255).astype(np.uint8)],
                                   axis=1)).save(output)
    report = {"scales": [list(size) for size in model.rule.sizes], "iterations_per_scale": model.iterations,
              "seconds_per_scale": [round(model.phase_seconds[s], 2) for s in sorted(model.phase_seconds)],
              "output": output}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
