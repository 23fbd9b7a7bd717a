import keras
import numpy as np
import pytest

from tf_translate.image_pool import ImagePool


class ReferencePool:
    """junyanz `ImagePool.query`, fed the same random draws as the layer."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, image, coin, slot_draw):
        if len(self.images) < self.size:
            self.images.append(image)
            return image
        if coin > 0.5:
            slot = min(int(slot_draw * self.size), self.size - 1)
            stored, self.images[slot] = self.images[slot], image
            return stored
        return image


def test_pool_follows_the_reference_rule_with_a_fixed_seed():
    pool = ImagePool(pool_size=3, seed=7)
    pool.build((None, 2, 2, 1))
    draws = keras.random.SeedGenerator(7)  # the same stream the layer consumes
    reference = ReferencePool(3)
    returned_old = 0
    for step in range(12):
        batch = np.full((2, 2, 2, 1), step, np.float32) + np.array([0.0, 0.5])[:, None, None, None]
        out = pool(batch).numpy()
        for i in range(2):
            coin, slot = keras.random.uniform((2,), seed=draws).numpy()
            expected = reference.query(batch[i], coin, slot)
            np.testing.assert_array_equal(out[i], expected)
            returned_old += not np.array_equal(expected, batch[i])
    assert returned_old > 0  # the swap branch was exercised
    np.testing.assert_array_equal(pool.images.numpy(), np.stack(reference.images))
    assert int(pool.count.numpy()) == 3


def test_pool_of_size_zero_returns_its_input():
    pool = ImagePool(pool_size=0)
    x = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_array_equal(pool(x), x)


def test_pool_needs_a_static_batch():
    pool = ImagePool(pool_size=2)
    pool.build((None, 2, 2, 1))
    import tensorflow as tf
    fn = tf.function(pool.call, input_signature=[tf.TensorSpec([None, 2, 2, 1])])
    with pytest.raises(ValueError, match="drop_remainder"):
        fn.get_concrete_function()
