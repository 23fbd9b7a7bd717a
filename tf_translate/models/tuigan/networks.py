"""TuiGAN's per-scale networks (`models/model.py`): `ConvBlock`, the critic
`TuiGANDiscriminator` and the attention generator `TuiGANGenerator`."""

import math

import keras
from keras import layers, ops

from tf_translate.layers.normalization import BatchNormalization


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
