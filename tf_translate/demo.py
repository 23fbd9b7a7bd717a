"""The built-in demo: train a small CycleGAN on generated data with a known answer.

Domain A is warm-toned scenes of shapes; domain B is other scenes with their colour
channels rotated. On the test split the true B image of every A image is known, so
the translation error (mean absolute difference to the truth, in 0-255 grey levels)
says how well the model learnt the mapping, without any download.
"""

import os
import time

import numpy as np
from PIL import Image

from tf_translate.data import demo_ground_truth, list_images, read_rgb, write_demo_dataset
from tf_translate.export import GeneratorModule, export_saved_model
from tf_translate.training import titled_grid, train

# Small enough to train in minutes on 2 CPU cores, large enough to learn the mapping.
DEMO_MODEL = dict(filters=16, num_residual_blocks=3, discriminator_filters=16, pool_size=50)
GRID_COLUMNS = 8
GRID_TILE = 128  # tiles at least this wide, so a 48 px scene can be judged by eye


def demo_grid(inputs, translations, truth):
    """A titled uint8 grid of uint8 images: rows input A, translation G(A), ground truth B.

    Each pixel is repeated ceil(GRID_TILE / size) times each way (nearest neighbour: the
    model's own pixels, none invented), so 48 px tiles become 144 px.
    """
    factor = -(-GRID_TILE // inputs.shape[1])
    rows = []
    for title, images in (("input A", inputs), ("translation G(A)", translations), ("ground truth B", truth)):
        large = np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
        rows.append((title, large.astype(np.float32) / 127.5 - 1.0))
    return titled_grid(rows)


def translation_error(generator, images_a):
    """Mean absolute error, in grey levels, between G(A) and the true B images."""
    module = GeneratorModule(generator)  # tf.function methods hold their module weakly
    fake = module.serving_default(images_a)["images"].numpy()
    truth = demo_ground_truth(images_a)
    return float(np.mean(np.abs(fake.astype(np.float32) - truth.astype(np.float32))))


def run_demo(run_dir="demo_run", steps=1200, image_size=48, batch_size=4, seed=0, verbose=1):
    """Writes the demo data, trains, reports the error before/after, exports the model.

    Returns:
        dict with the untrained and trained errors, the error of copying the input,
        the sample grids folder, the test grid (RUN_DIR/test_grid.png: the first test
        images, their translations and ground truth) and the export path.
    """
    data = write_demo_dataset(os.path.join(run_dir, "data"), size=image_size, seed=seed)
    test_a = np.stack([read_rgb(p) for p in list_images(os.path.join(data, "testA"))])
    import keras

    from tf_translate.models import build_model
    keras.utils.set_random_seed(seed)  # the same initial weights as the run `train` starts below
    untrained = build_model("cyclegan", image_size=image_size, seed=seed, **DEMO_MODEL)
    before = translation_error(untrained.generator_ab, test_a)
    start = time.time()
    model = train("cyclegan", data, os.path.join(run_dir, "run"), steps=steps, batch_size=batch_size,
                  image_size=image_size, load_size=image_size + image_size // 8, seed=seed,
                  model_overrides=DEMO_MODEL, sample_every=max(steps // 4, 1),
                  checkpoint_every=max(steps // 4, 1), verbose=verbose,
                  resume=os.path.exists(os.path.join(run_dir, "run", "run.json")))
    seconds = time.time() - start
    shown = test_a[:GRID_COLUMNS]
    module = GeneratorModule(model.generator_ab)  # kept: its tf.function methods hold it weakly
    translations = module.serving_default(shown)["images"].numpy()
    grid_path = os.path.join(run_dir, "test_grid.png")
    Image.fromarray(demo_grid(shown, translations, demo_ground_truth(shown))).save(grid_path)
    result = {
        "untrained_error": before,
        "trained_error": translation_error(model.generator_ab, test_a),
        "copy_input_error": float(np.mean(np.abs(test_a.astype(np.float32)
                                                 - demo_ground_truth(test_a).astype(np.float32)))),
        "train_seconds": seconds,
        "samples": os.path.join(run_dir, "run", "samples"),
        "grid": grid_path,
        "export": export_saved_model(model.generator_ab, os.path.join(run_dir, "export")),
    }
    return result
