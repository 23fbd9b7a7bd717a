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
