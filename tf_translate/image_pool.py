"""The reference's history of generated images, as in-graph state (works under XLA)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_translate")
class ImagePool(keras.layers.Layer):
    """Returns, per image, either the new fake or one stored earlier (which it replaces).

    Same rule as junyanz `util/image_pool.py`: while fewer than `pool_size` images are
    stored, each new image is stored and returned; after that, with probability 0.5 a
    random stored image is returned and the new one takes its slot, otherwise the new
    image is returned. The buffer, its fill count and the seed are layer weights, so
    they live in checkpoints and resume exactly. `pool_size=0` returns the input.

    Args:
        pool_size: images kept (reference `--pool_size`, 50).
        seed: seed of the pool's own random stream.
    """

    def __init__(self, pool_size=50, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if self.pool_size:
            self.images = self.add_weight(
                shape=(self.pool_size,) + tuple(input_shape[1:]), initializer="zeros",
                trainable=False, name="images", aggregation="only_first_replica")
            self.count = self.add_weight(
                shape=(), dtype="int32", initializer="zeros", trainable=False, name="count",
                aggregation="only_first_replica")

    def call(self, images):
        if not self.pool_size:
            return images
        batch = images.shape[0]
        if batch is None:
            raise ValueError("ImagePool needs a static batch size: batch the dataset with drop_remainder=True")
        images = ops.cast(images, self.images.dtype)
        outputs = []
        for i in range(batch):  # sequential: two images of a batch may hit the same slot
            image = images[i]
            coin, slot_draw = ops.unstack(keras.random.uniform((2,), seed=self.seed_generator))
            count = self.count.value
            filling = count < self.pool_size
            swap = ops.logical_and(ops.logical_not(filling), coin > 0.5)
            slot = ops.where(filling, count,
                             ops.minimum(ops.cast(slot_draw * self.pool_size, "int32"), self.pool_size - 1))
            stored = ops.take(self.images.value, slot, axis=0)
            outputs.append(ops.where(swap, stored, image))
            write = ops.logical_or(filling, swap)
            new_slot_value = ops.where(write, image, stored)
            self.images.assign(ops.slice_update(self.images.value, ops.stack([slot, 0, 0, 0]),
                                                new_slot_value[None]))
            self.count.assign(ops.minimum(count + 1, self.pool_size))
        return ops.stack(outputs)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
