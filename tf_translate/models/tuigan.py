"""TuiGAN: one-shot unpaired translation from one image of each domain, by two pyramids
of small generators trained coarse to fine.

Reference: Lin et al., "TuiGAN: Learning Versatile Image-to-Image Translation with Two
Unpaired Images", ECCV 2020; linjx-ustc1106/TuiGAN-PyTorch (`models/model.py`,
`models/TuiGAN.py`, `utils/functions.py`, `utils/imresize.py`, `utils/manipulate.py`,
`options/config.py`).

The module holds the pyramid rule and the reference's MATLAB-style resize (`imresize`),
the per-scale networks, the `TuiGAN` training model (one jit-compiled iteration per
scale), `TuiGANPyramid` (the whole A->B or B->A chain as one network, for translate and
export) and `train_tuigan`, the per-scale training loop `training.train` hands a
two-image run to.
"""

import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tf_translate.export import GeneratorModule
from tf_translate.layers.normalization import BatchNormalization
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel
from tf_translate.optimizers import current_learning_rate, make_adam

# ---------------------------------------------------------------------------------------
# The pyramid and the reference's resize (NumPy; constants of the graph).


def cubic(x):
    """Keys' cubic kernel, a = -0.5 (`imresize.py` `cubic`)."""
    absx = np.abs(x)
    return ((1.5 * absx ** 3 - 2.5 * absx ** 2 + 1) * (absx <= 1)
            + (-0.5 * absx ** 3 + 2.5 * absx ** 2 - 4 * absx + 2) * ((1 < absx) & (absx <= 2)))


def resize_matrix(in_length, out_length, scale):
    """[out_length, in_length] float64 matrix of the reference's `imresize` along one axis.

    `contributions` with the cubic kernel, antialiased (stretched by 1/scale) only when
    downscaling; the weights of each output pixel sum to 1. A scale of exactly 1 leaves
    the axis alone (the reference skips it). Boundaries as the reference computes them on
    x86-64: taps past the far end reflect (`mirror`, the edge pixel repeated), but taps
    before the first pixel are cast with `np.uint` before the weights are computed, wrap
    to ~1.8e19 and so get weight 0; the kernel is renormalised over the taps left.
    (REFERENCE-WAVE3 T7 says reflect on both sides; the near side is truncation.)
    """
    if scale == 1.0:
        if in_length != out_length:
            raise ValueError(f"a scale of 1 keeps the length: {in_length} -> {out_length}")
        return np.eye(in_length)
    antialias = scale < 1
    kernel = (lambda t: scale * cubic(scale * t)) if antialias else cubic
    width = 4.0 / scale if antialias else 4.0
    match = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1.0 / scale)
    left = np.floor(match - width / 2)
    taps = left[:, None] + np.arange(np.ceil(width) + 2) - 1
    before = taps < 0
    weights = np.where(before, 0.0, kernel(match[:, None] - taps - 1))
    sums = weights.sum(axis=1)
    sums[sums == 0] = 1.0
    weights = weights / sums[:, None]
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index = mirror[np.mod(np.where(before, 0, taps).astype(np.int64), 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps.shape[1]), index.ravel()), weights.ravel())
    return matrix


def to_model_range(pixels):
    """`np2torch`: pixel values (float64, 0-255) / 255 -> float32 -> (x - 0.5)·2, clamped."""
    x = (np.asarray(pixels, np.float64) / 255.0).astype(np.float32)
    return np.clip((x - np.float32(0.5)) * np.float32(2.0), -1.0, 1.0)


def to_pixels(images):
    """`torch2uint8`: 255·clamp((x + 1) / 2, 0, 1) in float32, *truncated* to uint8."""
    x = np.clip((np.asarray(images, np.float32) + np.float32(1.0)) / np.float32(2.0), 0.0, 1.0)
    return (np.float32(255.0) * x).astype(np.uint8)


def resized_length(length, scale):
    """The reference's output length, ceil(length·scale) in float64."""
    return int(np.ceil(np.float64(length) * np.float64(scale)))


def imresize(image, scale):
    """The reference's `imresize(x, scale)` of one [-1, 1] float32 HWC image: to uint8
    (truncating), resized along H and W (float64), back to [-1, 1] float32."""
    pixels = to_pixels(image).astype(np.float64)
    h, w = image.shape[:2]
    mh = resize_matrix(h, resized_length(h, scale), scale)
    mw = resize_matrix(w, resized_length(w, scale), scale)
    return to_model_range(np.einsum("oh,hwc,pw->opc", mh, pixels, mw))


class PyramidRule:
    """The scales of a TuiGAN run, from the size of image A (`adjust_scales2image`,
    `creat_reals_pyramid`).

    num_scales = ceil(log_{0.75}(min_size / short side)) + 1; stop_scale = num_scales -
    ceil(log_{0.75}(min(max_size, long side) / long side)); the image is first resized
    by scale1 = min(max_size / long side, 1) (the finest level), then the ratio is
    recomputed as (min_size / finest short side)^(1 / stop_scale) and level i is made
    from the finest image by `imresize(finest, ratio^(stop_scale - i))`, ceil sizes.
    Attributes: `scale1`, `factor` (the recomputed ratio), `stop_scale`, `sizes`
    ([(h, w)] coarse to fine) and `finest` (h, w).
    """

    def __init__(self, height, width, min_size=100, max_size=250, scale_factor=0.75):
        short, long = min(height, width), max(height, width)
        num_scales = math.ceil(math.log(min_size / short, scale_factor)) + 1
        stop = num_scales - math.ceil(math.log(min(max_size, long) / long, scale_factor))
        if stop < 1:
            raise ValueError(f"a {width}x{height} px image A gives no pyramid with min_size {min_size} and "
                             f"max_size {max_size}: its short side must exceed {min_size} px")
        self.scale1 = min(max_size / long, 1)
        self.finest = (resized_length(height, self.scale1), resized_length(width, self.scale1))
        self.factor = math.pow(min_size / min(self.finest), 1 / stop)
        self.stop_scale = stop
        self.sizes = [tuple(resized_length(n, math.pow(self.factor, stop - i)) for n in self.finest)
                      for i in range(stop + 1)]

    def levels(self, pixels):
        """float32 [-1, 1] HWC levels, coarse to fine, of uint8 RGB `pixels` (A's size)."""
        finest = imresize(to_model_range(pixels), self.scale1)
        return [imresize(finest, math.pow(self.factor, self.stop_scale - i)) for i in range(self.stop_scale + 1)]

    def upsample_matrices(self, level):
        """(rows, columns) matrices taking level `level` to the next: the reference's
        `imresize(x, 1 / factor)` followed by its top-left crop to the next level."""
        (h, w), (nh, nw) = self.sizes[level], self.sizes[level + 1]
        up = 1 / self.factor
        mh, mw = resize_matrix(h, resized_length(h, up), up), resize_matrix(w, resized_length(w, up), up)
        if mh.shape[0] < nh or mw.shape[0] < nw:
            raise ValueError(f"level {level} upsampled is smaller than level {level + 1}")
        return mh[:nh], mw[:nw]

    def level_matrices(self, level):
        """(rows, columns) matrices making level `level` from the finest image."""
        scale = math.pow(self.factor, self.stop_scale - level)
        return tuple(resize_matrix(n, m, scale) for n, m in zip(self.finest, self.sizes[level]))


def resize_in_graph(images, rows, columns):
    """The reference's `imresize` as two matrix products on [B, H, W, C] [-1, 1] images:
    truncation to uint8 levels, the resize (float32 here, float64 in the reference), and
    the clamp back to [-1, 1]. Not differentiable (the reference's is NumPy)."""
    images = tf.stop_gradient(tf.cast(images, tf.float32))
    pixels = tf.floor(255.0 * tf.clip_by_value((images + 1.0) / 2.0, 0.0, 1.0))
    resized = tf.einsum("oh,bhwc,pw->bopc", tf.constant(rows, tf.float32), pixels, tf.constant(columns, tf.float32))
    return tf.clip_by_value((resized / 255.0 - 0.5) * 2.0, -1.0, 1.0)


def channels(scale, filters=32, min_filters=32):
    """`nfc` and `min_nfc` at a scale: doubled every 4 scales, at most 128 (TuiGAN.py:54-55)."""
    factor = 2 ** (scale // 4)
    return min(filters * factor, 128), min(min_filters * factor, 128)


# ---------------------------------------------------------------------------------------
# Networks (models/model.py)


def seeded(seed, offset):
    return None if seed is None else int(seed) * 1009 + offset


@keras.saving.register_keras_serializable(package="tf_translate")
class ConvBlock(layers.Layer):
    """Conv 3x3 (zero padding 1, bias) -> BatchNorm2d -> LeakyReLU(0.2) (`ConvBlock`).

    Conv weights N(0, 0.02) (`weights_init`), biases PyTorch's default U(±1/sqrt(fan_in))
    (`weights_init` leaves them), BN γ ~ N(1, 0.02), β = 0, eps 1e-5, momentum 0.1.
    `call(x, training, update_statistics)`: training uses the batch statistics and moves
    the running averages unless `update_statistics=False`; otherwise the running averages.
    """

    def __init__(self, filters, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.seed = seed
        self.conv = layers.Conv2D(filters, 3, padding="same",
                                  kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02, seed=seeded(seed, 1)))
        self.norm = BatchNormalization(gamma_stddev=0.02)

    def build(self, input_shape):
        bound = 1.0 / math.sqrt(9 * input_shape[-1])
        self.conv.bias_initializer = keras.initializers.RandomUniform(-bound, bound, seed=seeded(self.seed, 2))
        self.conv.build(input_shape)
        self.norm.build(tuple(input_shape[:-1]) + (self.filters,))
        if self.seed is not None:  # γ ~ N(1, 0.02) from the seed too (the layer draws it unseeded)
            self.norm.gamma.assign(keras.initializers.RandomNormal(1.0, 0.02, seed=seeded(self.seed, 3))((self.filters,)))
        self.built = True

    def call(self, x, training=False, update_statistics=True):
        x = self.norm(self.conv(x), training=bool(training and update_statistics), batch_statistics=bool(training))
        return ops.leaky_relu(x, 0.2)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "seed": self.seed}


def output_conv(filters, in_channels, seed):
    """The nets' last 3x3 conv (no norm), initialised as the others."""
    bound = 1.0 / math.sqrt(9 * in_channels)
    return layers.Conv2D(filters, 3, padding="same",
                         kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02, seed=seeded(seed, 1)),
                         bias_initializer=keras.initializers.RandomUniform(-bound, bound, seed=seeded(seed, 2)))


def body_widths(filters, min_filters, num_layers):
    """(in, out) channels of the `num_layers - 2` body blocks: N = nfc / 2^(i+1),
    max(2N, min_nfc) -> max(N, min_nfc) (all nfc at the defaults, nfc = min_nfc)."""
    widths = []
    for i in range(num_layers - 2):
        n = int(filters / 2 ** (i + 1))
        widths.append((max(2 * n, min_filters), max(n, min_filters)))
    return widths


@keras.saving.register_keras_serializable(package="tf_translate")
class TuiGANDiscriminator(keras.Model):
    """The per-scale critic `WDiscriminator`: ConvBlock 3->N, 3 ConvBlocks, Conv N->1.

    Full-resolution critic map (receptive field 11x11, the paper's "11x11 patch"): the
    WGAN score is its mean. 29,185 parameters at nfc 32, 113,665 at 64.

    Args:
        filters, min_filters: `nfc`, `min_nfc` of the scale (`channels`).
        num_layers: `--num_layer` (5).
    """

    def __init__(self, filters=32, min_filters=32, num_layers=5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.min_filters, self.num_layers, self.seed = filters, min_filters, num_layers, seed
        widths = body_widths(filters, min_filters, num_layers)
        self.head = ConvBlock(filters, seed=seeded(seed, 10))
        self.body = [ConvBlock(out, seed=seeded(seed, 20 + i)) for i, (_, out) in enumerate(widths)]
        self.tail_in = widths[-1][1] if widths else filters
        self.tail = output_conv(1, self.tail_in, seeded(seed, 30))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in [self.head] + self.body:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.tail.build(shape)
        self.built = True

    def call(self, x, training=False):
        for block in [self.head] + self.body:
            x = block(x, training=training)
        return self.tail(x)

    def get_config(self):
        return {"filters": self.filters, "min_filters": self.min_filters, "num_layers": self.num_layers,
                "seed": self.seed, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class TuiGANGenerator(keras.Model):
    """The per-scale generator `GeneratorConcatSkip2CleanAddAlpha`: an image branch Φ and
    an attention branch Ψ that blends it with the coarser scale's upsampled result.

    Φ: ConvBlock 3->N, 3 ConvBlocks, Conv N->3, tanh: y = Φ(x) from the noisy source x
    only. Ψ: ConvBlock 9->N on concat[x, y, prev], Conv N->3, sigmoid: a 3-channel mask
    A. Output A·prev + (1 - A)·y. Ψ has two convs, not the five the code seems to
    intend: its `body2` loop adds its blocks to `body` by mistake (replacing body blocks
    1-2 with new ones of the same shape), so `body2` stays empty (REFERENCE-WAVE3 T1).
    33,318 parameters at nfc 32, 121,926 at 64.

    Call with [x, prev] ([B, H, W, 3] each, prev zeros at the coarsest scale).
    """

    def __init__(self, filters=32, min_filters=32, num_layers=5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.min_filters, self.num_layers, self.seed = filters, min_filters, num_layers, seed
        widths = body_widths(filters, min_filters, num_layers)
        self.head = ConvBlock(filters, seed=seeded(seed, 10))
        self.body = [ConvBlock(out, seed=seeded(seed, 20 + i)) for i, (_, out) in enumerate(widths)]
        self.tail = output_conv(3, widths[-1][1] if widths else filters, seeded(seed, 30))
        self.head2 = ConvBlock(filters, seed=seeded(seed, 40))
        # The loop meant for body2 leaves N = nfc / 4, so tail2 takes max(N, min_nfc).
        self.tail2 = output_conv(3, max(int(filters / 4), min_filters), seeded(seed, 50))

    def build(self, input_shape):
        shape = tuple(input_shape[0] if isinstance(input_shape[0], (tuple, list)) else input_shape)
        image = shape
        for block in [self.head] + self.body:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.tail.build(shape)
        concat = tuple(image[:-1]) + (9,)
        self.head2.build(concat)
        self.tail2.build(self.head2.compute_output_shape(concat))
        self.built = True

    def call(self, inputs, training=False, update_statistics=True):
        x, prev = inputs
        y = x
        for block in [self.head] + self.body:
            y = block(y, training=training, update_statistics=update_statistics)
        y = ops.tanh(self.tail(y))
        mask = self.head2(ops.concatenate([x, y, prev], axis=-1), training=training,
                          update_statistics=update_statistics)
        mask = ops.sigmoid(self.tail2(mask))
        return mask * prev + (1.0 - mask) * y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {"filters": self.filters, "min_filters": self.min_filters, "num_layers": self.num_layers,
                "seed": self.seed, "name": self.name}


def attention_blend(mask, prev, y):
    """A·prev + (1 - A)·y: the generator's last line, for tests and readers."""
    return mask * prev + (1.0 - mask) * y


# ---------------------------------------------------------------------------------------
# Losses (TuiGAN.py TVLoss, functions.py calc_gradient_penalty)


def tv_loss(images):
    """`TVLoss`: 2·(Σ(Δ_h)² / (C(H-1)W) + Σ(Δ_w)² / (CH(W-1))) / B, squared differences."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    b, h, w, c = (tf.cast(shape[i], tf.float32) for i in range(4))
    dh = tf.reduce_sum(tf.square(images[:, 1:] - images[:, :-1]))
    dw = tf.reduce_sum(tf.square(images[:, :, 1:] - images[:, :, :-1]))
    return 2.0 * (dh / (c * (h - 1.0) * w) + dw / (c * h * (w - 1.0))) / b


def channel_gradient_penalty(critic_fn, real, fake, alpha):
    """TuiGAN's gradient penalty before its weight: mean over pixels of (‖∇‖ - 1)², the
    norm over the *channels* of each pixel, at α·real + (1 - α)·fake with *one* scalar α
    for the call (`torch.rand(1, 1)` expanded). The textbook WGAN-GP (`losses.
    gradient_penalty`) takes one norm per image and one α per image."""
    real, fake = tf.cast(real, tf.float32), tf.stop_gradient(tf.cast(fake, tf.float32))
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        out = tf.cast(critic_fn(x_hat), tf.float32)
    grad = tape.gradient(out, x_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=-1))
    return tf.reduce_mean(tf.square(norm - 1.0))


@keras.saving.register_keras_serializable(package="tf_translate")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`MultiStepLR(milestones=[m], gamma)` stepped once per iteration of
    `updates_per_iteration` optimizer updates: lr·gamma^(iteration >= m)."""

    def __init__(self, initial_learning_rate, milestone=1600, gamma=0.1, updates_per_iteration=3):
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestone, self.gamma = int(milestone), float(gamma)
        self.updates_per_iteration = int(updates_per_iteration)

    def __call__(self, step):
        iteration = ops.cast(step, "int64") // self.updates_per_iteration
        return self.initial_learning_rate * ops.where(iteration >= self.milestone, self.gamma, 1.0)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "milestone": self.milestone,
                "gamma": self.gamma, "updates_per_iteration": self.updates_per_iteration}


# ---------------------------------------------------------------------------------------
# The whole chain as one network (manipulate.py TuiGAN_generate)


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


# ---------------------------------------------------------------------------------------
# The training model (models/TuiGAN.py)


@keras.saving.register_keras_serializable(package="tf_translate")
class TuiGAN(TranslationModel):
    """TuiGAN's two pyramids, trained one scale at a time.

    Per scale n: `generators_ab[n]` (reference `netG`, A->B), `generators_ba[n]` (`netG2`),
    `discriminators_b[n]` (`netD`, judges B), `discriminators_a[n]` (`netD2`), with
    nfc = 32·2^floor(n / 4) (at most 128). Each scale has its own optimizers (the reference
    makes new ones per scale): Adam(5e-4, 0.5, 0.999) over both generators and over both
    critics, lr ×0.1 from iteration 1600 (`MultiStepLR`).

    One train step is one reference iteration at the current scale (`set_scale`): one
    noise draw per domain, 0.1·N(0, 1); then `d_steps` critic updates, each after
    recomputing the frozen chains of the coarser scales with fresh noise (prev↑ = the
    A->B chain's output upsampled, c_prev↑ = its A->B->A cycle; the same for B): loss
    -D_B(B) - D_A(A) + D_B(G(x_A, prev↑)) + D_A(G2(x_B, prev2↑)) + 0.1·GP each critic;
    then `g_steps` generator updates: -D_B(fake_B) - D_A(fake_A) + 0.1·TV(fake) each,
    identity L1(G(B, z_prev2), B) (the frozen A->B chain on B without noise), cycle
    L1(G(fake_A, c_prev2↑), B) (fake_A not detached: it trains G2 too), and the mirror
    terms, weights 1. Coarser scales run in eval mode (running averages), frozen; a new
    scale starts from the previous one's weights (BN averages included) when its width
    is the same (`start_scale`), from its own initialisation otherwise (scales 4, 8).

    Deliberate difference (REFERENCE-WAVE3 T5): the reference's generator steps reuse the
    fake images of the last critic step, so its steps 2-3 backpropagate through a graph
    built from the weights before step 1 (torch ≥ 1.5 refuses; torch 1.2 mixed old
    activations with updated weights, which cannot be reproduced). Each generator step
    here recomputes G(x_A, prev↑) with the current weights, from the same noise and
    prev↑, with batch statistics but without moving the running averages (the reference
    computes fake once per critic step, so the averages move as often as there).

    Randomness is stateless, from (seed, scale, iteration): a run resumed at any step
    draws what the uninterrupted run drew.

    Args:
        input_size: (height, width) of image A; the pyramid follows from it (`PyramidRule`).
        min_size, max_size, scale_factor: `--min_size` 100, `--max_size` 250,
            `--scale_factor` 0.75 (only counts the scales).
        filters, min_filters, num_layers: `--nfc` 32, `--min_nfc` 32, `--num_layer` 5.
        iterations: `--niter` 4000 per scale; d_steps, g_steps: `--Dsteps`, `--Gsteps` 3.
        learning_rate, beta_1: `--lr_g` = `--lr_d` 5e-4, `--beta1` 0.5;
            decay_iteration, lr_gamma: the milestone 1600 and `--gamma` 0.1.
        gp_weight, identity_weight, cycle_weight, tv_weight: `--lambda_grad` 0.1,
            `--lambda_idt` 1, `--lambda_cyc` 1, `--lambda_tv` 0.1.
        noise_amp: `--noise_amp` = `--noise_amp2` 0.1, every scale, training and test.
        apply_finest: see `TuiGANPyramid`.
        seed: the noise seed (None: drawn now, and recorded by `get_config`).
    """

    reference_run = ReferenceRun(image_size=250, batch_size=1, steps=4000)
    data_kind = "image_pair"

    def __init__(self, input_size=(250, 250), min_size=100, max_size=250, scale_factor=0.75, filters=32,
                 min_filters=32, num_layers=5, iterations=4000, d_steps=3, g_steps=3, learning_rate=5e-4,
                 beta_1=0.5, decay_iteration=1600, lr_gamma=0.1, gp_weight=0.1, identity_weight=1.0,
                 cycle_weight=1.0, tv_weight=0.1, noise_amp=0.1, apply_finest=True, seed=None, **kwargs):
        self.rule = PyramidRule(*input_size, min_size=min_size, max_size=max_size, scale_factor=scale_factor)
        super().__init__(**kwargs)
        self.input_size = tuple(int(n) for n in input_size)
        self.min_size, self.max_size, self.scale_factor = min_size, max_size, scale_factor
        self.filters, self.min_filters, self.num_layers = filters, min_filters, num_layers
        self.iterations, self.d_steps, self.g_steps = int(iterations), int(d_steps), int(g_steps)
        self.learning_rate, self.beta_1 = learning_rate, beta_1
        self.decay_iteration, self.lr_gamma = decay_iteration, lr_gamma
        self.gp_weight, self.identity_weight = gp_weight, identity_weight
        self.cycle_weight, self.tv_weight = cycle_weight, tv_weight
        self.noise_amp, self.apply_finest = noise_amp, apply_finest
        self.seed = int(np.random.SeedSequence().entropy % 2 ** 31) if seed is None else int(seed)
        self.num_scales = len(self.rule.sizes)
        self.scale = 0
        def nets(cls, index, name):
            return [cls(*channels(s, filters, min_filters), num_layers, seed=self.seed * 97 + 4 * s + index,
                        name=f"{name}_{s}") for s in range(self.num_scales)]

        self.generators_ab = nets(TuiGANGenerator, 0, "generator_ab")
        self.generators_ba = nets(TuiGANGenerator, 1, "generator_ba")
        self.discriminators_b = nets(TuiGANDiscriminator, 2, "discriminator_b")
        self.discriminators_a = nets(TuiGANDiscriminator, 3, "discriminator_a")
        for network in self.generators_ab + self.generators_ba:
            network.build([(None, None, None, 3), (None, None, None, 3)])
        for network in self.discriminators_b + self.discriminators_a:
            network.build((None, None, None, 3))
        self.built = True

    # -- the contract (base.py) --
    def default_optimizers(self, total_steps=None, steps_per_epoch=1):
        def adam(updates):
            return make_adam(MultiStepDecay(self.learning_rate, self.decay_iteration, self.lr_gamma, updates),
                             self.beta_1)
        optimizers = {}
        for s in range(self.num_scales):
            optimizers[f"g_optimizer_{s}"] = adam(self.g_steps)
            optimizers[f"d_optimizer_{s}"] = adam(self.d_steps)
        return optimizers

    def optimizer_variables(self):
        variables = {}
        for s in range(self.num_scales):
            variables[f"g_optimizer_{s}"] = (self.generators_ab[s].trainable_variables
                                             + self.generators_ba[s].trainable_variables)
            variables[f"d_optimizer_{s}"] = (self.discriminators_b[s].trainable_variables
                                             + self.discriminators_a[s].trainable_variables)
        return variables

    def generators(self):
        return {"a2b": TuiGANPyramid(self.generators_ab, self.rule, self.noise_amp, self.apply_finest, name="a2b"),
                "b2a": TuiGANPyramid(self.generators_ba, self.rule, self.noise_amp, self.apply_finest, name="b2a")}

    def scale_iterations(self, scale):
        """Iterations completed at `scale` (its critic optimizer counts d_steps each)."""
        return int(getattr(self, f"d_optimizer_{scale}").iterations.numpy()) // self.d_steps

    def completed_steps(self):
        """Iterations completed over all scales: the run's step number (`training.global_step`)."""
        return sum(self.scale_iterations(s) for s in range(self.num_scales))

    def set_scale(self, scale):
        """Makes `scale` the one `train_step` trains (a new compiled step)."""
        if not 0 <= scale < self.num_scales:
            raise ValueError(f"scale must be in [0, {self.num_scales}), got {scale}")
        self.scale = scale
        self.train_function = None

    def start_scale(self, scale):
        """`set_scale`, and at a scale's first iteration the reference's warm start: the
        previous scale's four networks are copied in when the width is unchanged."""
        self.set_scale(scale)
        if scale and self.scale_iterations(scale) == 0 and (channels(scale, self.filters, self.min_filters)
                                                            == channels(scale - 1, self.filters, self.min_filters)):
            for group in (self.generators_ab, self.generators_ba, self.discriminators_b, self.discriminators_a):
                for target, source in zip(group[scale].weights, group[scale - 1].weights):
                    target.assign(source)

    # -- one iteration --
    def upsample(self, x, level):
        return resize_in_graph(x, *self.rule.upsample_matrices(level))

    def draw_randoms(self, scale, iteration):
        """The noise of one iteration at `scale`, stateless from (seed, scale, iteration):
        {"noise_a", "noise_b": [1, h, w, 3]; "chain_a", "chain_b": per coarser scale k,
        [d_steps, 1, h_k, w_k, 3] (one map per critic step); "alpha_b", "alpha_a":
        [d_steps], the GP's α of each critic step}."""
        base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(iteration, tf.int64) * 64 + scale])
        counter = iter(range(10 ** 6))

        def seed():
            return tf.random.experimental.stateless_fold_in(base, next(counter))

        sizes, steps = self.rule.sizes, self.d_steps
        return {"noise_a": tf.random.stateless_normal((1, *sizes[scale], 3), seed()),
                "noise_b": tf.random.stateless_normal((1, *sizes[scale], 3), seed()),
                "chain_a": [tf.random.stateless_normal((steps, 1, *sizes[k], 3), seed()) for k in range(scale)],
                "chain_b": [tf.random.stateless_normal((steps, 1, *sizes[k], 3), seed()) for k in range(scale)],
                "alpha_b": tf.random.stateless_uniform((steps,), seed()),
                "alpha_a": tf.random.stateless_uniform((steps,), seed())}

    def iteration(self, scale, levels_a, levels_b, randoms):
        """One reference iteration at `scale` from the given noise (see the class
        docstring); returns the last critic and generator steps' losses. The critic and
        generator steps are `tf.while_loop`s: one step each to trace and compile."""
        n = scale
        g_ab, g_ba = self.generators_ab, self.generators_ba
        d_b, d_a = self.discriminators_b[n], self.discriminators_a[n]
        levels_a = [tf.cast(level, tf.float32) for level in levels_a[:n + 1]]
        levels_b = [tf.cast(level, tf.float32) for level in levels_b[:n + 1]]
        real_a, real_b = levels_a[n], levels_b[n]
        amp = self.noise_amp
        # draw_concat 'rec': the frozen chains on the other domain, no noise (identity inputs).
        z_prev_b, _ = chain(g_ab, levels_b, None, amp, self.upsample, n)
        z_prev_a, _ = chain(g_ba, levels_a, None, amp, self.upsample, n)
        x_a = amp * randoms["noise_a"] + real_a
        x_b = amp * randoms["noise_b"] + real_b
        d_name, g_name = f"d_optimizer_{n}", f"g_optimizer_{n}"
        zero = tf.constant(0.0)

        def critic_step(j, prevs, d_logs):
            prev_ab, c_prev_ab = chain(g_ab, levels_a, [z[j] for z in randoms["chain_a"]], amp, self.upsample, n, g_ba)
            prev_ba, c_prev_ba = chain(g_ba, levels_b, [z[j] for z in randoms["chain_b"]], amp, self.upsample, n, g_ab)
            with tf.GradientTape() as tape:
                d_real = -tf.reduce_mean(d_b(real_b, training=True))
                d_real2 = -tf.reduce_mean(d_a(real_a, training=True))
                fake_b = tf.stop_gradient(g_ab[n]([x_a, prev_ab], training=True))
                d_fake = tf.reduce_mean(d_b(fake_b, training=True))
                gp = channel_gradient_penalty(lambda t: d_b(t, training=True), real_b, fake_b, randoms["alpha_b"][j])
                fake_a = tf.stop_gradient(g_ba[n]([x_b, prev_ba], training=True))
                d_fake2 = tf.reduce_mean(d_a(fake_a, training=True))
                gp2 = channel_gradient_penalty(lambda t: d_a(t, training=True), real_a, fake_a, randoms["alpha_a"][j])
                d_loss = d_real + d_real2 + d_fake + d_fake2 + self.gp_weight * (gp + gp2)
            self.update(d_name, tape, d_loss)
            return j + 1, (prev_ab, c_prev_ab, prev_ba, c_prev_ba), (d_loss, d_real + d_real2, d_fake + d_fake2, gp + gp2)

        start = tf.zeros_like(real_a)
        _, prevs, d_logs = tf.while_loop(lambda j, *_: j < self.d_steps, critic_step,
                                         (tf.constant(0), (start,) * 4, (zero,) * 4))
        prev_ab, c_prev_ab, prev_ba, c_prev_ba = prevs

        def generator_step(j, g_logs):
            with tf.GradientTape() as tape:
                fake_b = g_ab[n]([x_a, prev_ab], training=True, update_statistics=False)
                fake_a = g_ba[n]([x_b, prev_ba], training=True, update_statistics=False)
                adversarial = -tf.reduce_mean(d_b(fake_b, training=True))
                tv = tv_loss(fake_b)
                adversarial2 = -tf.reduce_mean(d_a(fake_a, training=True))
                tv2 = tv_loss(fake_a)
                identity = tf.reduce_mean(tf.abs(g_ab[n]([real_b, z_prev_b], training=True) - real_b))
                cycle = tf.reduce_mean(tf.abs(g_ab[n]([fake_a, c_prev_ba], training=True) - real_b))
                identity2 = tf.reduce_mean(tf.abs(g_ba[n]([real_a, z_prev_a], training=True) - real_a))
                cycle2 = tf.reduce_mean(tf.abs(g_ba[n]([fake_b, c_prev_ab], training=True) - real_a))
                g_loss = (adversarial + adversarial2 + self.tv_weight * (tv + tv2)
                          + self.identity_weight * (identity + identity2) + self.cycle_weight * (cycle + cycle2))
            self.update(g_name, tape, g_loss)
            return j + 1, (g_loss, adversarial + adversarial2, tv + tv2, identity + identity2, cycle + cycle2)

        _, g_logs = tf.while_loop(lambda j, *_: j < self.g_steps, generator_step, (tf.constant(0), (zero,) * 5))
        names = ("d_loss", "d_real_loss", "d_fake_loss", "gp", "g_loss", "adversarial_loss", "tv_loss",
                 "identity_loss", "cycle_loss")
        return dict(zip(names, tuple(d_logs) + tuple(g_logs)))

    def train_step(self, data):
        levels_a, levels_b = data
        n = self.scale
        learning_rate = current_learning_rate(getattr(self, f"g_optimizer_{n}"))
        iteration = getattr(self, f"d_optimizer_{n}").iterations // self.d_steps
        logs = self.iteration(n, levels_a, levels_b, self.draw_randoms(n, iteration))
        return {**logs, "learning_rate": learning_rate, "scale": tf.constant(float(n))}

    def make_train_function(self, force=False):
        """The current scale's iteration as one `tf.function` (XLA unless turned off),
        traced without AutoGraph, called on each element; eager runs keep Keras'."""
        if self.train_function is not None and not force:
            return self.train_function
        if self.run_eagerly or tf.distribute.has_strategy():
            return super().make_train_function(force)
        step = tf.function(self.train_step, jit_compile=bool(self.jit_compile), reduce_retracing=True,
                           autograph=False)
        self.train_function = lambda iterator: step(next(iterator))
        return self.train_function

    def sample_rows(self, batch):
        """The current scale: A, A->B, A->B->A, B, B->A, B->A->B (eval mode, the noise of
        iteration 0), titled with the scale."""
        levels_a, levels_b = batch
        n = self.scale
        randoms = self.draw_randoms(n, 0)
        prev_ab, c_prev_ab = chain(self.generators_ab, levels_a, [z[0] for z in randoms["chain_a"]], self.noise_amp,
                                   self.upsample, n, self.generators_ba)
        prev_ba, c_prev_ba = chain(self.generators_ba, levels_b, [z[0] for z in randoms["chain_b"]], self.noise_amp,
                                   self.upsample, n, self.generators_ab)
        fake_b = self.generators_ab[n]([self.noise_amp * randoms["noise_a"] + levels_a[n], prev_ab])
        fake_a = self.generators_ba[n]([self.noise_amp * randoms["noise_b"] + levels_b[n], prev_ba])
        h, w = self.rule.sizes[n]
        tag = f"scale {n} ({w}x{h})"
        return [(f"A, {tag}", levels_a[n]), ("A->B", fake_b), ("A->B->A", self.generators_ba[n]([fake_b, c_prev_ab])),
                ("B", levels_b[n]), ("B->A", fake_a), ("B->A->B", self.generators_ab[n]([fake_a, c_prev_ba]))]

    def get_config(self):
        return {"input_size": list(self.input_size), "min_size": self.min_size, "max_size": self.max_size,
                "scale_factor": self.scale_factor, "filters": self.filters, "min_filters": self.min_filters,
                "num_layers": self.num_layers, "iterations": self.iterations, "d_steps": self.d_steps,
                "g_steps": self.g_steps, "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "decay_iteration": self.decay_iteration, "lr_gamma": self.lr_gamma, "gp_weight": self.gp_weight,
                "identity_weight": self.identity_weight, "cycle_weight": self.cycle_weight,
                "tv_weight": self.tv_weight, "noise_amp": self.noise_amp, "apply_finest": self.apply_finest,
                "seed": self.seed}


# ---------------------------------------------------------------------------------------
# Data and the per-scale training loop


def read_image_pair(paths, input_size=None):
    """(A, B) uint8 RGB arrays from two image files. B takes A's size (`input_size`, or
    A's own): centre-cropped to A's aspect ratio, then resized (bicubic). The reference
    requires equal sizes and crashes otherwise (its issue #9)."""
    from PIL import Image

    from tf_translate.data import read_rgb

    if isinstance(paths, str) or len(paths) != 2:
        raise ValueError(f"--data for tuigan takes two image files (domain A, then domain B), got {paths!r}")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"--data {path!r} is not an image file (tuigan trains on two image files)")
    try:
        a, b = (read_rgb(path) for path in paths)
    except Exception as error:  # Pillow's many types
        raise ValueError(f"--data: cannot read the images ({str(error).splitlines()[0]})") from None
    height, width = input_size or a.shape[:2]
    if a.shape[:2] != (height, width):
        a = np.asarray(Image.fromarray(a).resize((width, height), Image.BICUBIC))
    if b.shape[:2] != (height, width):
        bh, bw = b.shape[:2]
        crop_h, crop_w = (bh, round(bh * width / height)) if bw * height > bh * width else (round(bw * height / width), bw)
        top, left = (bh - crop_h) // 2, (bw - crop_w) // 2
        b = np.asarray(Image.fromarray(b[top:top + crop_h, left:left + crop_w]).resize((width, height), Image.BICUBIC))
    return a, b


def pyramid_data(model, a, b):
    """(levels of A, levels of B) as tuples of [1, h, w, 3] float32 tensors."""
    return tuple(tuple(tf.constant(level[None]) for level in model.rule.levels(image)) for image in (a, b))


def train_tuigan(model_name, data, run_dir, steps=None, epochs=None, batch_size=None, image_size=None,
                 load_size=None, precision="float32", xla=True, resume=False, checkpoint_every=1000,
                 sample_every=500, log_every=50, seed=None, verbose=1, model_overrides=None, eager=False,
                 eval_every=0, strategy="none", dataset_fn=None, **unused):
    """`training.train` for two-image runs (TuiGAN): one `fit` per scale, coarse to fine.

    `data`: two image files (A, B). `steps`: iterations per scale (reference `--niter`,
    4000); `image_size`: the finest long side (`--max_size`, 250). A run directory is as
    any other (run.json, checkpoint, samples, logs); the checkpoint holds every scale and
    every scale's optimizers, and the step numbers count iterations over all scales. Each
    scale's `fit` ends with a checkpoint and a sample grid; `resume` continues at the
    saved scale and iteration. Each scale's iteration runs as one graph-compiled
    `tf.function`, without XLA whatever `xla` says (measured 17x slower here, see below).
    """
    from tf_translate.memory import ReturnCompilerMemory
    from tf_translate.runs import RUN_FILE, load_checkpoint, read_run, write_run
    from tf_translate.training import RunCallback, absolute, check_positive

    for flag, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--load-size", load_size),
                        ("--eval-every", eval_every or None), ("--strategy", None if strategy in (None, "none")
                                                               else strategy)):
        if value is not None:
            raise ValueError(f"{flag} is not used by tuigan (one image per domain, --steps iterations per scale)")
    if precision != "float32":
        raise ValueError("tuigan trains in float32 (its networks are small; half precision buys nothing on CPU)")
    check_positive(steps=steps, image_size=image_size)
    if resume:
        run = read_run(run_dir)
        if run["model"] != model_name:
            raise ValueError(f"{run_dir!r} holds a {run['model']!r} run, not {model_name!r}: "
                             "use another --run-dir or the same --model")
        flags, config = run["flags"], run["config"]
        for flag, given, kept in (("--steps", steps, config["iterations"]), ("--image-size", image_size,
                                                                            config["max_size"])):
            if given is not None and given != kept:
                raise ValueError(f"{flag} {given}: the run was started with {kept}, and a resumed tuigan run keeps "
                                 "its settings (start a new --run-dir to change it)")
        if data is not None:
            flags["data"] = absolute(data)
    else:
        if os.path.exists(os.path.join(run_dir, RUN_FILE)):
            raise ValueError(f"{run_dir!r} already holds a run: pass --resume to continue it or choose a new --run-dir")
        flags = dict(precision=precision, xla=xla, seed=seed, data=absolute(data))
        config = {**(model_overrides or {}), "seed": seed}
        if steps:
            config["iterations"] = steps
        if image_size:
            config["max_size"] = image_size
    a, b = read_image_pair(flags["data"], config.get("input_size"))
    config["input_size"] = list(a.shape[:2])
    model = TuiGAN(**config)
    config = model.get_config()
    flags.update(total_steps=model.iterations * model.num_scales, steps_per_epoch=model.iterations)
    # XLA is not used: on this 2-core CPU one scale-0 iteration at 100 px took 35.8 s
    # with XLA and 2.09 s as a plain tf.function (the step's while loops and double
    # backward compile badly); `model.compile(jit_compile=True)` still selects it.
    flags["xla"] = False
    model.compile(jit_compile=False)
    model.run_eagerly = eager
    if resume:
        load_checkpoint(model, run_dir)
    write_run(run_dir, model_name, config, flags)
    dataset = tf.data.Dataset.from_tensors(pyramid_data(model, a, b)).repeat()
    sample_batch = next(iter(dataset))
    model.scale_seconds = {}  # scale -> wall seconds of this call's fit (compile included)
    done = model.completed_steps()
    if done >= model.iterations * model.num_scales:
        print(f"tf_translate: the run is complete ({done} iterations over {model.num_scales} scales)")
    for scale in range(model.num_scales):
        remaining = model.iterations - model.scale_iterations(scale)
        if remaining <= 0:
            continue
        model.start_scale(scale)
        h, w = model.rule.sizes[scale]
        print(f"tf_translate: tuigan scale {scale + 1} of {model.num_scales}: {w}x{h} px, "
              f"{channels(scale, model.filters, model.min_filters)[0]} filters, {remaining} of "
              f"{model.iterations} iterations to go", flush=True)
        callback = RunCallback(run_dir, sample_batch, checkpoint_every, sample_every, log_every)
        start = time.perf_counter()
        try:
            model.fit(dataset, epochs=1, steps_per_epoch=remaining, callbacks=[ReturnCompilerMemory(), callback],
                      verbose=verbose)
        except KeyboardInterrupt:
            if callback.failure is None:
                callback.save(model.completed_steps())
            raise KeyboardInterrupt(f"interrupted at scale {scale} iteration {model.scale_iterations(scale)}; "
                                    "the checkpoint is saved and --resume continues the run") from None
        if callback.failure:
            step, name, value = callback.failure
            raise ValueError(f"training stopped at step {step} (scale {scale}): {name} is {value}; nothing was "
                             "saved after it, the run's checkpoint is the last good state")
        model.scale_seconds[scale] = time.perf_counter() - start
        print(f"tf_translate: scale {scale + 1} took {model.scale_seconds[scale]:.1f} s", file=sys.stderr, flush=True)
    return model
