"""Rebuilds `saved_models/demo_cyclegan/`: the built-in demo's CycleGAN, ready to translate.

Trains the demo (`tf-translate demo`: generated scenes, colour channels rotated from A to
B, 1,200 steps of a small CycleGAN at 48 px, about 5 minutes on 2 CPU cores), exports its
A->B generator as SavedModel version 1 and keeps eight of its test images (domain A) and
their true B images as example inputs. Run from the repository root:

    python3 saved_models/build_demo_cyclegan.py
"""

import os
import shutil
import tempfile

from tf_translate.demo import run_demo
from tf_translate.export import export_saved_model
from tf_translate.runs import load_generators

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "demo_cyclegan")
EXAMPLES = 8


def main():
    with tempfile.TemporaryDirectory() as work:
        result = run_demo(work, verbose=0)
        model, _ = load_generators(os.path.join(work, "run"))
        shutil.rmtree(TARGET, ignore_errors=True)
        export_saved_model(model.generator_ab, TARGET, version=1)
        for domain in ("testA", "testB"):
            source, folder = os.path.join(work, "data", domain), os.path.join(TARGET, "examples", domain)
            os.makedirs(folder)
            for name in sorted(os.listdir(source))[:EXAMPLES]:
                shutil.copy(os.path.join(source, name), folder)
    print(f"demo CycleGAN written to {TARGET}/1: translation error {result['trained_error']:.1f} grey "
          f"levels (untrained {result['untrained_error']:.1f}, copying the input "
          f"{result['copy_input_error']:.1f}), trained in {result['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
