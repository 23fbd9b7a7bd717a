"""A trained TuiGAN direction as one network (`manipulate.py` `TuiGAN_generate`), and its
SavedModel."""

import os

import keras
import tensorflow as tf

from tf_translate.export import GeneratorModule
from tf_translate.models.base import Generator
from tf_translate.models.tuigan.pyramid import resize_in_graph


def chain(generators, levels, noises, noise_amp, upsample, steps, partner=None):
    """The frozen chain over the first `steps` scales (`cycle_rec`, `TuiGAN_generate`,
    `draw_concat`): x_k = G_k(noise_amp·z_k + level_k, x_{k-1}↑), running averages.
    With `partner` also the cycle chain y_k = partner_k(x_k, y_{k-1}↑). `noises` None:
    no noise (`draw_concat` 'rec'). Returns (x↑, y↑) at scale `steps`' size."""
    x = tf.zeros_like(levels[0])
    y = tf.zeros_like(levels[0])
    for k in range(steps):
        source = levels[k] if noises is None else noise_amp * noises[k] + levels[k]
        x = generators[k]([source, x], training=False)
        if partner is not None:
            y = partner[k]([x, y], training=False)
        x = upsample(x, k)
        y = upsample(y, k) if partner is not None else y
    return tf.stop_gradient(x), tf.stop_gradient(y)


@keras.saving.register_keras_serializable(package="tf_translate")
class TuiGANPyramid(Generator):
    """A trained direction of TuiGAN as one network: [-1, 1] images in, translations out.

    The input is resized (bicubic, antialiased) to the trained finest size when it has
    another size, and the result back to the input's size; the pyramid levels are made
    from it by the reference's resize and the scales run coarse to fine in eval mode
    (running averages), with 0.1·N(0, 1) noise on every level as the reference's test
    (`noise_amp` 0 turns it off).

    `apply_finest` (True): every scale's generator runs. The reference's
    `TuiGAN_generate` zips the generators with `reals[1:]`, so its finest generator never
    runs and the result is the second-finest scale's output upsampled (REFERENCE-WAVE3
    T13); `apply_finest=False` computes that.
    """

    resizes_itself = True  # `Generator` capability: any input size, no tiles or padding

    def __init__(self, generators, rule, noise_amp=0.1, apply_finest=True, **kwargs):
        super().__init__(**kwargs)
        self.scales = list(generators)
        self.rule = rule
        self.noise_amp = noise_amp
        self.apply_finest = apply_finest

    def levels(self, finest):
        return [resize_in_graph(finest, *self.rule.level_matrices(i)) for i in range(len(self.rule.sizes))]

    def upsample(self, x, level):
        return resize_in_graph(x, *self.rule.upsample_matrices(level))

    def call(self, images, training=False, noises=None):
        images = tf.cast(images, tf.float32)
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        fh, fw = self.rule.finest
        same = tf.logical_and(tf.equal(height, fh), tf.equal(width, fw))
        finest = tf.cond(same, lambda: tf.reshape(images, [-1, fh, fw, 3]), lambda: tf.clip_by_value(
            tf.image.resize(images, (fh, fw), "bicubic", antialias=True), -1.0, 1.0))
        levels = self.levels(finest)
        if noises is None:
            noises = [tf.random.normal(tf.shape(level)) for level in levels]
        steps = len(levels) if self.apply_finest else len(levels) - 1
        x = tf.zeros_like(levels[0])
        for k in range(steps):
            x = self.scales[k]([self.noise_amp * noises[k] + levels[k], x], training=False)
            if k < len(levels) - 1:
                x = self.upsample(x, k)
        return tf.cond(same, lambda: x, lambda: tf.clip_by_value(
            tf.image.resize(x, (height, width), "bicubic", antialias=True), -1.0, 1.0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def serving_module(self):
        return PyramidModule(self)


class PyramidModule(GeneratorModule):
    """`export.GeneratorModule` for a `TuiGANPyramid`: the same signatures (uint8 and
    float), without the padding to a size multiple (the pyramid resizes other sizes to
    its trained size itself)."""

    def __init__(self, pyramid):
        super().__init__(pyramid)
        self.multiple = 1
        self.trained_size = tf.constant(pyramid.rule.finest, tf.int32)

    def _translate(self, images, labels=None):
        return {"images": tf.cast(self.generator(images, training=False), tf.float32)}


def export_pyramid(pyramid, output_dir, version=1):
    """Writes the whole pyramid as one SavedModel in `output_dir/<version>`."""
    module = PyramidModule(pyramid)
    path = os.path.join(output_dir, str(version))
    tf.saved_model.save(module, path, signatures=module.signatures())
    return path
