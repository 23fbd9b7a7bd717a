"""SavedModel export with TF Serving signatures.

The exported module holds one float32 generator and two signatures:
- `serving_default`: uint8 `[batch, height, width, 3]` in, uint8 out (input key
  `images`, output key `images`); scaling to [-1, 1], padding to the generator's size
  multiple and cropping back happen inside, so clients send raw pixels of any size.
- `translate_float`: float32 [-1, 1] in and out, same keys and shape rules.
It loads with plain `tf.saved_model.load` and needs no tf_translate at serving time.
"""

import os

import keras
import tensorflow as tf


def float32_copy(network):
    """The same network under the float32 policy (mixed-precision models export as float32)."""
    if network.dtype_policy.name == "float32":
        return network
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = network.__class__.from_config(network.get_config())
        copy.build((None, None, None, 3))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(network.get_weights())
    return copy


def first_output(outputs):
    """The image of a generator that also returns attention outputs (U-GAT-IT)."""
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


class GeneratorModule(tf.Module):
    """A generator with the serving signatures. `multiple`: H and W are reflect-padded
    to a multiple of it before the generator and cropped back after; `fixed_size`
    (for generators tied to one size, such as full U-GAT-IT) resizes instead."""

    def __init__(self, generator, multiple=4, fixed_size=None):
        super().__init__()
        self.generator = generator
        self.multiple = multiple
        self.fixed_size = fixed_size

    def _translate(self, images):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        if self.fixed_size:
            resized = tf.image.resize(images, (self.fixed_size, self.fixed_size))
            out = first_output(self.generator(resized, training=False))
            return tf.image.resize(out, (height, width))
        pad_h = (self.multiple - height % self.multiple) % self.multiple
        pad_w = (self.multiple - width % self.multiple) % self.multiple
        padded = tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="SYMMETRIC")
        out = first_output(self.generator(padded, training=False))
        return tf.cast(out[:, :height, :width, :], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate_float(self, images):
        return {"images": self._translate(images)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serving_default(self, images):
        out = self._translate(tf.cast(images, tf.float32) / 127.5 - 1.0)
        pixels = tf.clip_by_value(tf.round((out + 1.0) * 127.5), 0.0, 255.0)
        return {"images": tf.cast(pixels, tf.uint8)}


def export_saved_model(generator, output_dir, version=1, fixed_size=None):
    """Writes `generator` as a SavedModel in `output_dir/<version>` (TF Serving's layout).

    Returns:
        the version folder's path.
    """
    module = GeneratorModule(float32_copy(generator), fixed_size=fixed_size)
    path = os.path.join(output_dir, str(version))
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.serving_default, "translate_float": module.translate_float})
    return path
