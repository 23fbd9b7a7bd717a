"""DRIT++: diverse translation from a content code and an attribute code.

Each domain has a content encoder (the domains share its last residual block), an
attribute encoder (a Gaussian code z of 8 values: μ and log σ² in the default concat
variant) and a generator decoding (content, z) into that domain. A→B with a random
z ~ N(0, 1) gives a different translation for every z; with z taken from an example of
domain B (`attribute`) it transfers that example's attributes. Four multi-scale
discriminators judge images (D_A, D_B: fakes with encoded attributes; D_A2, D_B2: fakes
with random z) and a content discriminator tells A's content codes from B's.

Follows the official code (REFERENCE-WAVE2.md §4), including where it differs from the
paper: the discriminators' instance norm is dead code there (`'norm' == 'Instance'`
compares two literals) and their LeakyReLU slope is PyTorch's default 0.01. Those are the
defaults here; `discriminator_norm="instance"`, `content_discriminator_norm="instance"`
and `discriminator_negative_slope=0.2` (preset `drit_paper`) build what the paper and the
code's intent describe. Mode seeking (DRIT++; `mode_seeking=False` is DRIT) is on.

Reference: Lee et al., "DRIT++: Diverse Image-to-Image Translation via Disentangled
Representations", IJCV 2020 (and ECCV 2018); Mao et al., "Mode Seeking Generative
Adversarial Networks", CVPR 2019; HsinYingLee/DRIT `src/` (`networks.py`, `model.py`,
`train.py`, `test.py`, `test_transfer.py`, `options.py`).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.blocks import ResidualBody, build_stack, run_stack
from tf_translate.layers.conv import Conv2D
from tf_translate.layers.initializers import junyanz_kernel_init, torch_bias_init, torch_kernel_init
from tf_translate.layers.multiscale import MultiScaleDiscriminator
from tf_translate.losses import bce_with_logits, l1_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel, unique
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import LinearDecay

NORMS = ("none", "instance")


def drit_conv(filters, kernel_size, strides=1, padding=0, *, fan_in):
    """Reflect pad (if any) and a conv with bias: kernel N(0, 0.02) (`gaussian_weights_init`,
    which `DRIT.initialize` applies to every Conv*), bias PyTorch's default U(±1/√fan_in)
    (the init never touches biases)."""
    layer = Conv2D(filters, kernel_size, strides=strides, padding="valid", kernel_initializer=junyanz_kernel_init(),
                   bias_initializer=torch_bias_init(fan_in))
    return keras.Sequential([ReflectionPadding2D(padding), layer]) if padding else layer


def torch_dense(units, fan_in):
    """`nn.Linear` with PyTorch's default init (the init leaves Linear layers alone)."""
    return layers.Dense(units, kernel_initializer=torch_kernel_init(), bias_initializer=torch_bias_init(fan_in))




@keras.saving.register_keras_serializable(package="tf_translate")
class TransposedConv(layers.Layer):
    """`nn.ConvTranspose2d(k, stride, padding, output_padding)` with PyTorch's output grid.

    Keras' "same" transposed conv for k3 s2 keeps the full output's first H·s positions;
    PyTorch's padding 1 / output_padding 1 drops the first one and keeps the next H·s, a
    one-pixel shift. So the full ("valid") output is computed and cropped as PyTorch does.
    The kernel is Keras' (k, k, out, in), PyTorch's (in, out, k, k) transposed; N(0, 0.02)
    with the default bias init, whose fan-in PyTorch takes from the weight's dim 1
    (out·k·k).
    """

    def __init__(self, filters, kernel_size, strides=1, padding=0, output_padding=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.output_padding = output_padding
        self.conv = layers.Conv2DTranspose(filters, kernel_size, strides=strides, padding="valid",
                                           kernel_initializer=junyanz_kernel_init(),
                                           bias_initializer=torch_bias_init(filters * kernel_size ** 2), name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        y = self.conv(x)
        if self.padding or self.output_padding:
            height, width = tf.shape(x)[1], tf.shape(x)[2]
            p = self.padding
            span = lambda n: (n - 1) * self.strides - 2 * p + self.kernel_size + self.output_padding
            y = y[:, p:p + span(height), p:p + span(width)]
            if self.output_padding > p:  # PyTorch pads the end when output_padding exceeds the crop
                extra = self.output_padding - p
                y = tf.pad(y, [[0, 0], [0, extra], [0, extra], [0, 0]])
        return y

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        span = lambda n: None if n is None else ((n - 1) * self.strides - 2 * self.padding + self.kernel_size
                                                 + self.output_padding)
        return (b, span(h), span(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "output_padding": self.output_padding}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITLayerNormalization(layers.Layer):
    """`F.layer_norm` over (C, H, W) per sample with a per-channel γ (1) and β (0).

    Biased variance, ε 1e-5 inside the square root (unlike UNIT's layer norm). The
    reference's generator uses it after each transposed conv, in a block named
    `ReLUINSConvTranspose2d`. Statistics in float32.
    Reference: `LayerNorm` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", autocast=False, name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", autocast=False, name="beta")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean, variance = ops.moments(x, axes=[1, 2, 3], keepdims=True)
        y = (x - mean) * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITResidualBlock(ResidualBody):
    """x + [pad, 3x3 conv, IN, ReLU, pad, 3x3 conv, IN](x), convs with bias, N(0, 0.02).

    Args:
        filters: channels in and out.
    Reference: `INSResBlock` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        fan_in = filters * 9
        self.body = [drit_conv(filters, 3, 1, 1, fan_in=fan_in), InstanceNormalization(), layers.ReLU(),
                     drit_conv(filters, 3, 1, 1, fan_in=fan_in), InstanceNormalization()]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def build_once(layer, shape):
    """Builds `layer` unless it is built (a shared block built by the other domain's network)."""
    if not layer.built:
        layer.build(tuple(shape))


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITContentEncoder(keras.Model):
    """One domain's content encoder: the image to the content map at 1/4 resolution.

    Reflect pad 3, 7x7 conv, LeakyReLU 0.01; 2 × [reflect pad 1, 3x3 stride-2 conv, IN,
    ReLU] doubling the width; 3 residual blocks; then the block shared by both domains.
    4·`filters` channels (256). 3,918,976 parameters per domain and 1,180,160 in the
    shared block at the defaults (9,018,112 for both domains). The reference's
    `GaussianNoiseLayer` after the shared block adds N(0, 1) in training only: the
    training model adds it (`DRIT.noise`), so calling this network is the eval mode.

    Args:
        filters: width of the first layer (hard-coded 64 in the reference).
        shared_block: the residual block shared with the other domain (made by the
            caller); None makes an own one (not in the config).
    Reference: `E_content` (convA / convB, conv_share) in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters=64, shared_block=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.content_channels = filters * 4
        self.stem = [drit_conv(filters, 7, 1, 3, fan_in=3 * 49), layers.LeakyReLU(negative_slope=0.01)]
        width = filters
        for _ in range(2):
            self.stem += [drit_conv(width * 2, 3, 2, 1, fan_in=width * 9), InstanceNormalization(), layers.ReLU()]
            width *= 2
        self.blocks = [DRITResidualBlock(width) for _ in range(3)]
        self.shared = shared_block or DRITResidualBlock(width, name="shared")

    def build(self, input_shape):
        shape = build_stack(self.stem + self.blocks, input_shape)
        build_once(self.shared, shape)
        self.built = True

    def call(self, x):
        return self.shared(run_stack(self.stem + self.blocks, x))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        quarter = lambda n: None if n is None else (n + 3) // 4
        return (b, quarter(h), quarter(w), self.content_channels)

    def get_config(self):
        return {"filters": self.filters, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITAttributeBlock(layers.Layer):
    """[LeakyReLU 0.2, 3x3 conv, LeakyReLU 0.2, 3x3 conv to `filters`, 2x2 mean pool] +
    [2x2 mean pool, 1x1 conv to `filters`]: the attribute encoder's residual step.

    Reference: `BasicBlock` (norm_layer None) in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, input_filters, filters, **kwargs):
        super().__init__(**kwargs)
        self.input_filters = input_filters
        self.filters = filters
        fan_in = input_filters * 9
        self.body = [layers.LeakyReLU(negative_slope=0.2), drit_conv(input_filters, 3, 1, 1, fan_in=fan_in),
                     layers.LeakyReLU(negative_slope=0.2), drit_conv(filters, 3, 1, 1, fan_in=fan_in),
                     layers.AveragePooling2D(2)]
        self.shortcut = [layers.AveragePooling2D(2), drit_conv(filters, 1, fan_in=input_filters)]

    def build(self, input_shape):
        build_stack(self.body, input_shape)
        build_stack(self.shortcut, input_shape)

    def call(self, x):
        return run_stack(self.body, x) + run_stack(self.shortcut, x)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        half = lambda n: None if n is None else n // 2
        return (b, half(h), half(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "input_filters": self.input_filters, "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITAttributeEncoder(keras.Model):
    """One domain's attribute encoder: the image to an attribute code of `attribute_size`.

    concat (default, `E_attr_concat`): reflect pad 1, 4x4 stride-2 conv to `filters`,
    three `DRITAttributeBlock`s to 2, 3 and 4 × `filters` (64 → 128 → 192 → 256),
    LeakyReLU 0.2, global mean, then two Linear layers: μ and log σ² (1,344,080
    parameters per domain). Returns (μ, log σ²), float32.
    `concat=False` (`E_attr`): a plain stack, 7x7 conv, 4 × [4x4 stride-2 conv], ReLUs,
    global mean, 1x1 conv to the code itself (2,764,936 per domain). Returns z.
    `encode` gives (μ, log σ²) or (z, None) for either.

    Args:
        filters: reference `ndf`/`dim` (hard-coded 64).
        attribute_size: reference `nz` (8).
        concat: the encoder of `--concat 1` (True) or `--concat 0`.
    Reference: `E_attr_concat` and `E_attr` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters=64, attribute_size=8, concat=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.attribute_size = attribute_size
        self.concat = concat
        f = filters
        if concat:
            self.stem = [drit_conv(f, 4, 2, 1, fan_in=3 * 16)]
            widths = [f * min(4, n) for n in range(1, 5)]
            self.stem += [DRITAttributeBlock(widths[n - 1], widths[n]) for n in range(1, 4)]
            self.stem += [layers.LeakyReLU(negative_slope=0.2), layers.GlobalAveragePooling2D()]
            self.mean_fc = torch_dense(attribute_size, widths[-1])
            self.log_variance_fc = torch_dense(attribute_size, widths[-1])
        else:
            self.stem = [drit_conv(f, 7, 1, 3, fan_in=3 * 49), layers.ReLU(),
                         drit_conv(f * 2, 4, 2, 1, fan_in=f * 16), layers.ReLU(),
                         drit_conv(f * 4, 4, 2, 1, fan_in=f * 2 * 16), layers.ReLU(),
                         drit_conv(f * 4, 4, 2, 1, fan_in=f * 4 * 16), layers.ReLU(),
                         drit_conv(f * 4, 4, 2, 1, fan_in=f * 4 * 16), layers.ReLU(),
                         layers.GlobalAveragePooling2D(keepdims=True),
                         drit_conv(attribute_size, 1, fan_in=f * 4), layers.Flatten()]

    def build(self, input_shape):
        shape = build_stack(self.stem, input_shape)
        if self.concat:
            self.mean_fc.build(shape)
            self.log_variance_fc.build(shape)
        self.built = True

    def call(self, x):
        h = run_stack(self.stem, x)
        if not self.concat:
            return ops.cast(h, "float32")
        return ops.cast(self.mean_fc(h), "float32"), ops.cast(self.log_variance_fc(h), "float32")

    def encode(self, x, training=False):
        """(μ, log σ²), or (z, None) for the `concat=False` encoder."""
        outputs = self(x, training=training)
        return outputs if self.concat else (outputs, None)

    def get_config(self):
        return {"filters": self.filters, "attribute_size": self.attribute_size, "concat": self.concat,
                "name": self.name}


def tile_code(z, x):
    """z [B, n] repeated over x's height and width and concatenated after x's channels."""
    z = ops.cast(z, x.dtype)
    shape = ops.shape(x)
    tiled = ops.tile(z[:, None, None, :], [1, shape[1], shape[2], 1])
    return ops.concatenate([x, tiled], axis=-1)


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITFeatureResidualBlock(layers.Layer):
    """The `--concat 0` generator block: the code enters through 1x1 convs.

    o1 = IN(conv3(x)); o2 = MLP([o1, z]); o3 = IN(conv3(o2)); out = MLP'([o3, z]) + x, each
    MLP two 1x1 convs (width + extra → width + extra → width) with ReLUs.

    Call args: x [B, H, W, filters], z [B, extra].
    Reference: `MisINSResBlock` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters, extra, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.extra = extra
        wide = filters + extra
        self.conv1 = [drit_conv(filters, 3, 1, 1, fan_in=filters * 9), InstanceNormalization()]
        self.conv2 = [drit_conv(filters, 3, 1, 1, fan_in=filters * 9), InstanceNormalization()]
        mlp = lambda: [drit_conv(wide, 1, fan_in=wide), layers.ReLU(), drit_conv(filters, 1, fan_in=wide),
                       layers.ReLU()]
        self.blk1, self.blk2 = mlp(), mlp()

    def build(self, input_shape):
        shape = tuple(input_shape)
        wide = shape[:-1] + (self.filters + self.extra,)
        build_stack(self.conv1, shape)
        build_stack(self.conv2, shape)
        build_stack(self.blk1, wide)
        build_stack(self.blk2, wide)

    def call(self, x, z):
        o2 = run_stack(self.blk1, tile_code(z, run_stack(self.conv1, x)))
        return run_stack(self.blk2, tile_code(z, run_stack(self.conv2, o2))) + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "extra": self.extra}


def upsample_layers(filters):
    """Transposed 3x3 stride-2 conv (padding 1, output padding 1), layer norm, ReLU
    (`ReLUINSConvTranspose2d`)."""
    return [TransposedConv(filters, 3, 2, 1, 1), DRITLayerNormalization(), layers.ReLU()]


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITGenerator(keras.Model):
    """One domain's generator: (content map, attribute code) to an image of that domain.

    concat (default, `G_concat`): the residual block shared by both domains' generators,
    z tiled and concatenated, 3 residual blocks at C + n channels, then before each of
    two [transposed 3x3 stride-2 conv halving the width, layer norm, ReLU] and before a
    final transposed 1x1 conv to 3 channels z is concatenated again; tanh. 4,192,275
    parameters per domain plus 1,180,160 shared (9,564,710 for both).
    `concat=False` (`G`): an MLP 8 → 256 → 256 → 4·C gives four C-wide codes for four
    `DRITFeatureResidualBlock`s, then two upsampling layers halving the width and a
    transposed 1x1 conv to 3, tanh (8,573,187 per domain, nothing shared).

    Call: generator(content, z) → float32 image in [-1, 1] at 4× the content map's size.

    Args:
        content_channels: C (256, the content encoder's 4·filters).
        attribute_size: n (`nz`, 8).
        concat: `--concat 1` (True) or 0.
        shared_block: the concat variant's residual block shared with the other domain;
            None makes an own one (not in the config).
    Reference: `G_concat` and `G` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, content_channels=256, attribute_size=8, concat=True, shared_block=None, **kwargs):
        super().__init__(**kwargs)
        self.content_channels = content_channels
        self.attribute_size = attribute_size
        self.concat = concat
        c, n = content_channels, attribute_size
        if concat:
            self.shared = shared_block or DRITResidualBlock(c, name="shared")
            self.blocks = [DRITResidualBlock(c + n) for _ in range(3)]
            first, second = (c + 2 * n) // 2, ((c + 2 * n) // 2 + n) // 2
            self.up1 = upsample_layers(first)
            self.up2 = upsample_layers(second)
            self.out = TransposedConv(3, 1)
        else:
            self.mlp = [torch_dense(c, n), layers.ReLU(), torch_dense(c, c), layers.ReLU(), torch_dense(4 * c, c)]
            self.blocks = [DRITFeatureResidualBlock(c, c) for _ in range(4)]
            self.up1 = upsample_layers(c // 2)
            self.up2 = upsample_layers(c // 4)
            self.out = TransposedConv(3, 1)
        self.tanh = layers.Activation("tanh", dtype="float32")

    def build(self, content_shape, attribute_shape=None):
        shape = tuple(content_shape)
        if shape[-1] != self.content_channels:
            raise ValueError(f"DRITGenerator(content_channels={self.content_channels}) got {shape[-1]} channels")
        n = self.attribute_size
        grow = lambda s, extra: s[:-1] + (s[-1] + extra,)
        if self.concat:
            build_once(self.shared, shape)
            shape = build_stack(self.blocks, grow(shape, n))
            shape = build_stack(self.up1, grow(shape, n))
            shape = build_stack(self.up2, grow(shape, n))
            self.out.build(grow(shape, n))
        else:
            build_stack(self.mlp, (shape[0], n))
            for block in self.blocks:
                block.build(shape)
            shape = build_stack(self.up1, shape)
            shape = build_stack(self.up2, shape)
            self.out.build(shape)
        self.built = True

    def call(self, content, z):
        x = content
        if self.concat:
            x = run_stack(self.blocks, tile_code(z, self.shared(x)))
            x = run_stack(self.up1, tile_code(z, x))
            x = run_stack(self.up2, tile_code(z, x))
            x = self.out(tile_code(z, x))
        else:
            codes = ops.split(run_stack(self.mlp, ops.cast(z, x.dtype)), 4, axis=-1)
            for block, code in zip(self.blocks, codes):
                x = block(x, code)
            x = self.out(run_stack(self.up1 + self.up2, x))
        return self.tanh(x)

    def compute_output_shape(self, content_shape, attribute_shape=None):
        b, h, w, _ = content_shape
        grow = lambda s: None if s is None else s * 4
        return (b, grow(h), grow(w), 3)

    def get_config(self):
        return {"content_channels": self.content_channels, "attribute_size": self.attribute_size,
                "concat": self.concat, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITMultiScaleDiscriminator(MultiScaleDiscriminator):
    """`MultiScaleDiscriminator` with DRIT++'s init and the optional instance norm.

    Kernels N(0, 0.02) with PyTorch's default biases (`gaussian_weights_init` touches
    weights only), LeakyReLU 0.01 by default. `norm="instance"` puts a non-affine IN
    between each strided conv and its LeakyReLU, as `LeakyReLUConv2d` meant to for
    `--dis_norm Instance` (the released code never applies it). 8,271,171 parameters at
    the defaults either way.

    Reference: `MultiScaleDis` and `LeakyReLUConv2d` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, norm="none", negative_slope=0.01, **kwargs):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.norm = norm  # read by _scale_layers, which the parent's __init__ calls
        kwargs.pop("init", None)
        super().__init__(negative_slope=negative_slope, padding_mode="reflect", init="torch", **kwargs)

    def _scale_layers(self):
        stack, channels = [], self.input_channels
        for i in range(self.num_layers):
            width = self.filters * 2 ** i
            stack.append(drit_conv(width, 4, 2, 1, fan_in=channels * 16))
            if self.norm == "instance":
                stack.append(InstanceNormalization())
            stack.append(layers.LeakyReLU(negative_slope=self.negative_slope))
            channels = width
        return stack + [drit_conv(1, 1, fan_in=channels), layers.Activation("linear", dtype="float32")]

    def get_config(self):
        config = super().get_config()
        config.pop("padding_mode")
        config.pop("init")
        return {**config, "norm": self.norm}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITContentDiscriminator(keras.Model):
    """Tells domain A's content maps from B's: one logit map (1x1 at 216 px images).

    `num_layers` × [reflect pad 1, 7x7 stride-2 conv, LeakyReLU], a 4x4 conv (no padding),
    LeakyReLU, a 1x1 conv to one logit; `filters` wide. 10,683,649 parameters at the
    defaults. It needs a content map of at least `min_content_size()` (53 with 3 layers:
    images of 212 px or more; reference issues #42, #46).

    Args:
        filters: width (256, hard-coded in the reference).
        input_channels: the content channels (256).
        num_layers: the 7x7 stride-2 layers (3 in the reference). Fewer give a smaller
            minimum image size (1 layer: 44 px), for tests only.
        norm: "none" (the released code: its IN is dead code) or "instance" (IN after each
            7x7 conv, as `norm='Instance'` in the reference's `Dis_content` intends).
        negative_slope: LeakyReLU slope (0.01 released; 0.2 as in the paper).
    Reference: `Dis_content` in HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters=256, input_channels=256, num_layers=3, norm="none", negative_slope=0.01, **kwargs):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.input_channels = input_channels
        self.num_layers = num_layers
        self.norm = norm
        self.negative_slope = float(negative_slope)
        stack, channels = [], input_channels
        for _ in range(num_layers):
            stack.append(drit_conv(filters, 7, 2, 1, fan_in=channels * 49))
            if norm == "instance":
                stack.append(InstanceNormalization())
            stack.append(layers.LeakyReLU(negative_slope=self.negative_slope))
            channels = filters
        stack += [drit_conv(filters, 4, fan_in=channels * 16), layers.LeakyReLU(negative_slope=self.negative_slope),
                  drit_conv(1, 1, fan_in=filters), layers.Activation("linear", dtype="float32")]
        self.stack = stack

    def min_content_size(self):
        size = 4
        for _ in range(self.num_layers):
            size = 2 * size + 3  # (s + 2 - 7) // 2 + 1 >= previous
        return size

    def build(self, input_shape):
        build_stack(self.stack, input_shape)
        self.built = True

    def call(self, x):
        return run_stack(self.stack, x)

    def get_config(self):
        return {"filters": self.filters, "input_channels": self.input_channels, "num_layers": self.num_layers,
                "norm": self.norm, "negative_slope": self.negative_slope, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class DRITTranslator(Generator):
    """One direction as one model: source content encoder, target generator, and the
    target domain's attribute encoder (for attribute transfer).

    translator(images) draws z ~ N(0, 1) per image from its seeded stream (the
    reference's `test.py`); translator([images, z]) uses the given codes. Content is
    encoded without noise (the reference's eval mode). `attribute_size` tells export
    and translate that it takes a code; `attribute_statistics(images)` gives the mean
    and standard deviation of the codes of target-domain examples (`test_transfer.py`
    samples μ + σε; the `--concat 0` encoder gives the code itself, σ = 0). Shares the
    training model's networks (no copies). Height and width: multiples of 4.

    Reference: `test_forward` and `test_forward_transfer` in HsinYingLee/DRIT `src/model.py`.
    """

    fixed_input_size = None
    input_multiple = 4

    def __init__(self, content_encoder, generator, attribute_encoder=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.content_encoder = content_encoder
        self.generator = generator
        self.attribute_encoder = attribute_encoder
        self.seed = seed
        self.attribute_size = generator.attribute_size
        self.seed_generator = keras.random.SeedGenerator(seed, name="attribute_codes")

    def build(self, input_shape):
        input_shape = tuple(input_shape[0]) if isinstance(input_shape[0], (tuple, list)) else tuple(input_shape)
        if not self.content_encoder.built:
            self.content_encoder.build(input_shape)
        if not self.generator.built:
            self.generator.build(self.content_encoder.compute_output_shape(input_shape))
        if self.attribute_encoder is not None and not self.attribute_encoder.built:
            self.attribute_encoder.build(input_shape)
        self.built = True

    def random_codes(self, batch):
        return keras.random.normal((batch, self.attribute_size), seed=self.seed_generator)

    def call(self, inputs):
        images, codes = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        if codes is None:
            codes = self.random_codes(ops.shape(images)[0])
        return self.generator(self.content_encoder(images), codes)

    def attribute_statistics(self, images):
        """(mean, std) of the attribute code of target-domain `images`, float32 [B, n]."""
        if self.attribute_encoder is None:
            raise ValueError("this translator has no attribute encoder")
        mean, log_variance = self.attribute_encoder.encode(images)
        std = ops.zeros_like(mean) if log_variance is None else ops.exp(0.5 * log_variance)
        return mean, std

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[0]) if isinstance(input_shape[0], (tuple, list)) else tuple(input_shape)
        return shape[:-1] + (3,)

    def get_config(self):
        config = {"content_encoder": keras.saving.serialize_keras_object(self.content_encoder),
                  "generator": keras.saving.serialize_keras_object(self.generator), "seed": self.seed,
                  "name": self.name}
        if self.attribute_encoder is not None:
            config["attribute_encoder"] = keras.saving.serialize_keras_object(self.attribute_encoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("content_encoder", "generator", "attribute_encoder"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def content_min_image_size(content_discriminator):
    """The smallest image side (a multiple of 4) whose content map the content
    discriminator takes: 212 with the reference's 3 layers."""
    size = 4
    while -(-size // 4) < content_discriminator.min_content_size():
        size += 4
    return size


def full_iterations(steps_per_epoch, period=3):
    """How many iterations of an epoch are full steps (`DRIT.is_full_iteration`)."""
    return sum(1 for it in range(steps_per_epoch) if (it + 1) % period == 0 or it >= steps_per_epoch - 2)


@keras.saving.register_keras_serializable(package="tf_translate")
class DRIT(TranslationModel):
    """The DRIT++ training model.

    Networks (reference names): `content_encoder_a`/`_b` (enc_c convA/convB with the
    shared conv_share), `attribute_encoder_a`/`_b` (enc_a), `generator_a`/`_b`
    (gen.forward_a / forward_b: decode into A / B), `discriminator_a`, `discriminator_b`
    (disA, disB: fakes with encoded attributes), `discriminator_a2`, `discriminator_b2`
    (disA2, disB2: fakes with random codes), `content_discriminator` (disContent).
    A→B is generator_b(content_encoder_a(x), z) (`generators()["a2b"]`).

    The schedule (`train.py`): loader iteration `it` (0-based, within the epoch) is a
    content-discriminator-only step unless (it + 1) % 3 == 0 or it is one of the
    epoch's last two; so D_content steps every iteration, the rest on a third.
    - content step (`update_D_content`): fresh batch, image 0 of each domain encoded
      (with the training noise), BCE(Dc(c_a), 0) + BCE(Dc(c_b), 1), gradient norm
      clipped to 5 (`clip_grad_norm_`), Adam at lr / 2.5.
    - full step: one forward pass (`forward`) on image 0 of each domain; then
      1. the image discriminators (BCE real 1 / fake 0 summed over scales; D_A2/D_B2's
         real is images 1: of the batch, their fakes the random-code fakes and, with
         mode seeking, the second random code's) and the content discriminator, on
         the forward's (held constant) fakes and content maps;
      2. `update_EG`: the EG loss (content adversarial BCE(Dc(c), 0.5), image
         adversarial against the updated D_A/D_B, 0.01·KL(z_a) as a sum, 0.01·mean(c²),
         10·cross-cycle L1, 10·self-reconstruction L1) steps both content encoders,
         attribute encoders and generators; then the G-alone loss (random-code
         adversarial against D_A2/D_B2, 10·latent regression |μ(E_a(G(c, z))) − z|,
         mode seeking 1 / (mean|G(c, z₂) − G(c, z₁)| / mean|z₂ − z₁| + 1e-5)) steps the
         content encoders and generators once more. Both losses come from the same
         forward pass, and their gradients are both taken at the weights before the EG
         step (one persistent tape): the second Adam step applies gradients of the
         pre-step weights, as the reference's `backward(retain_graph=True)` followed by
         a second backward through the same graph did on the torch versions it was
         written for. The attribute encoders get no latent-regression or mode-seeking
         update (the reference never steps enc_a after the second backward).
    Every optimizer is Adam (0.5, 0.999) with PyTorch's L2 weight decay 1e-4; the image
    Ds share one optimizer (each variable's update is the same as with four), as do the
    content encoders and generators (stepped twice per full step, as the reference's
    enc_c_opt and gen_opt). The learning rate decays per epoch: factor
    1 − max(0, epoch − E/2) / (E/2 + 1) for a run of E epochs (the reference's 1200
    epochs, decay from 600).

    Batch: at least 2 (reference 2). Image 0 is the encoded one, the rest are the real
    samples of D_A2 and D_B2 only (`half_size = 1`; a larger batch does not enlarge the
    main path, reference issues #18, #54).

    Differences from the reference: BCE is computed from logits (the reference's
    sigmoid + `binary_cross_entropy` clamps the log at −100, i.e. differs only for
    |logit| > 100); its `max_it = 500000` cap (and the crash at it, #39) is not ported,
    --steps / --epochs set the length; in the second backward, torch before 1.5 read the
    updated weights wherever autograd had saved a weight (the conv input gradients) but
    the pre-step activations everywhere else; here that gradient is the clean pre-step
    one (torch ≥ 1.5 refuses the reference's update, #48, #62).

    Args:
        image_size: training crop (reference `--crop_size` 216; `--resize_size` 256: pass
            --load-size 256 for its resize); a multiple of 4 of at least 212 (the content
            discriminator's minimum) unless `content_discriminator_layers` is lowered.
        concat: the concat attribute encoder and generator (`--concat 1`, default) or the
            feature-wise variant (`--concat 0`; the README recommends it for shape changes).
        mode_seeking: DRIT++'s mode-seeking term and second random code (`--no_ms` off).
        filters, attribute_filters, attribute_size, discriminator_filters,
            content_discriminator_filters: the reference's hard-coded 64, 64, `nz` 8, 64, 256.
        discriminator_layers, discriminator_scales: `n_layer` 4, `--dis_scale` 3.
        content_discriminator_layers: 3 (fewer only to test at small sizes).
        discriminator_norm: "none" (released: `--dis_norm` does nothing) or "instance".
        content_discriminator_norm: "none" (released) or "instance" (the code's intent).
        discriminator_negative_slope: 0.01 (released) or 0.2 (paper), every discriminator.
        learning_rate, content_learning_rate, beta_1, beta_2, weight_decay: 1e-4, 4e-5
            (lr / 2.5), 0.5, 0.999, 1e-4.
        content_clip_norm: 5. content_period: `--d_iter` 3.
        seed: seed of the training noise and codes and of the translators' random codes.
    Reference: `DRIT` in HsinYingLee/DRIT `src/model.py`; `src/train.py`.
    """

    reference_run = ReferenceRun(image_size=216, batch_size=2, epochs=1200)

    def __init__(self, image_size=216, concat=True, mode_seeking=True, filters=64, attribute_filters=64,
                 attribute_size=8, discriminator_filters=64, discriminator_layers=4, discriminator_scales=3,
                 content_discriminator_filters=256, content_discriminator_layers=3, discriminator_norm="none",
                 content_discriminator_norm="none", discriminator_negative_slope=0.01, learning_rate=1e-4,
                 content_learning_rate=4e-5, beta_1=0.5, beta_2=0.999, weight_decay=1e-4, content_clip_norm=5.0,
                 content_period=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.concat = bool(concat)
        self.mode_seeking = bool(mode_seeking)
        self.filters = filters
        self.attribute_filters = attribute_filters
        self.attribute_size = attribute_size
        self.discriminator_filters = discriminator_filters
        self.discriminator_layers = discriminator_layers
        self.discriminator_scales = discriminator_scales
        self.content_discriminator_filters = content_discriminator_filters
        self.content_discriminator_layers = content_discriminator_layers
        self.discriminator_norm = discriminator_norm
        self.content_discriminator_norm = content_discriminator_norm
        self.discriminator_negative_slope = float(discriminator_negative_slope)
        self.learning_rate = learning_rate
        self.content_learning_rate = content_learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.weight_decay = weight_decay
        self.content_clip_norm = content_clip_norm
        self.content_period = content_period
        self.seed = seed
        self.steps_per_epoch = None  # set by compile: the epoch tail rule and the decay need it

        content = filters * 4
        self.content_shared_block = DRITResidualBlock(content, name="content_shared")
        self.content_encoder_a = DRITContentEncoder(filters, self.content_shared_block, name="content_encoder_a")
        self.content_encoder_b = DRITContentEncoder(filters, self.content_shared_block, name="content_encoder_b")
        attribute = dict(filters=attribute_filters, attribute_size=attribute_size, concat=self.concat)
        self.attribute_encoder_a = DRITAttributeEncoder(**attribute, name="attribute_encoder_a")
        self.attribute_encoder_b = DRITAttributeEncoder(**attribute, name="attribute_encoder_b")
        self.generator_shared_block = DRITResidualBlock(content, name="generator_shared") if self.concat else None
        generator = dict(content_channels=content, attribute_size=attribute_size, concat=self.concat,
                         shared_block=self.generator_shared_block)
        self.generator_a = DRITGenerator(**generator, name="generator_a")
        self.generator_b = DRITGenerator(**generator, name="generator_b")
        discriminator = dict(filters=discriminator_filters, num_layers=discriminator_layers,
                             num_scales=discriminator_scales, norm=discriminator_norm,
                             negative_slope=self.discriminator_negative_slope)
        self.discriminator_a = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_a")
        self.discriminator_b = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_b")
        self.discriminator_a2 = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_a2")
        self.discriminator_b2 = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_b2")
        self.content_discriminator = DRITContentDiscriminator(
            content_discriminator_filters, content, content_discriminator_layers, content_discriminator_norm,
            self.discriminator_negative_slope, name="content_discriminator")
        minimum = max(content_min_image_size(self.content_discriminator), self.discriminator_a.min_size())
        minimum = -(-minimum // 4) * 4
        if image_size % 4 or image_size < minimum:
            raise ValueError(f"DRIT needs an image size that is a multiple of 4 and at least {minimum} px (the "
                             f"content discriminator's {content_discriminator_layers} stride-2 7x7 convs and 4x4 "
                             f"conv on the 1/4-size content map; reference crop 216), got {image_size}")
        self.noise_seed = keras.random.SeedGenerator(seed, name="training_noise")

        image = (None, None, None, 3)
        for network in (self.content_encoder_a, self.content_encoder_b, self.attribute_encoder_a,
                        self.attribute_encoder_b, self.discriminator_a, self.discriminator_b,
                        self.discriminator_a2, self.discriminator_b2):
            network.build(image)
        for network in (self.generator_a, self.generator_b):
            network.build((None, None, None, content), (None, attribute_size))
        self.content_discriminator.build((None, None, None, content))
        self.built = True

    # --- optimizers and schedule -------------------------------------------------------

    def compile(self, total_steps=None, steps_per_epoch=None, jit_compile=True, **optimizers):
        """As `TranslationModel.compile`; `steps_per_epoch` (loader iterations of an epoch)
        also places the reference's epoch tail of full steps. None: an endless loader,
        a full step every `content_period` iterations and no decay."""
        self.steps_per_epoch = steps_per_epoch
        super().compile(total_steps, steps_per_epoch, jit_compile, **optimizers)

    def default_optimizers(self, total_steps, steps_per_epoch):
        # Optimizer steps per epoch: D_content one per iteration; the image Ds and the
        # attribute encoders one per full step; content encoders + generators two.
        full = full_iterations(steps_per_epoch, self.content_period) if steps_per_epoch else None

        def adam(rate, steps_per_iteration):
            if total_steps and steps_per_epoch:
                epochs = max(2, -(-total_steps // steps_per_epoch))
                rate = LinearDecay(rate, epochs // 2 + 1, epochs - epochs // 2, steps_per_iteration)
            return make_adam(rate, self.beta_1, self.beta_2)

        # D_content first: it steps every iteration, so its count is the run's.
        return {"content_d_optimizer": adam(self.content_learning_rate, steps_per_epoch),
                "d_optimizer": adam(self.learning_rate, full),
                "g_optimizer": adam(self.learning_rate, 2 * full if full else None),
                "attribute_optimizer": adam(self.learning_rate, full)}

    def optimizer_variables(self):
        return {
            "content_d_optimizer": self.content_discriminator.trainable_variables,
            "d_optimizer": (self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables
                            + self.discriminator_a2.trainable_variables
                            + self.discriminator_b2.trainable_variables),
            "g_optimizer": unique(self.content_encoder_a.trainable_variables
                                  + self.content_encoder_b.trainable_variables
                                  + self.generator_a.trainable_variables + self.generator_b.trainable_variables),
            "attribute_optimizer": (self.attribute_encoder_a.trainable_variables
                                    + self.attribute_encoder_b.trainable_variables),
        }

    # --- inference ---------------------------------------------------------------------

    def generators(self):
        """{"a2b": E_c^A, G_B (and E_a^B for attribute transfer), "b2a": the reverse};
        each draws a random code per image unless given one (`DRITTranslator`)."""
        seeds = (None, None) if self.seed is None else (self.seed, self.seed + 1)
        translators = {
            "a2b": DRITTranslator(self.content_encoder_a, self.generator_b, self.attribute_encoder_b, seeds[0],
                                  name="a2b"),
            "b2a": DRITTranslator(self.content_encoder_b, self.generator_a, self.attribute_encoder_a, seeds[1],
                                  name="b2a")}
        for translator in translators.values():
            translator.build((None, None, None, 3))  # its parts are built: this only marks it
        return translators

    def sample_rows(self, batch):
        real_a, real_b = batch
        real_a, real_b = real_a[:1], real_b[:1]
        content_a, content_b = self.content_encoder_a(real_a), self.content_encoder_b(real_b)
        mean_a = self.attribute_encoder_a.encode(real_a)[0]
        mean_b = self.attribute_encoder_b.encode(real_b)[0]
        # Fixed codes, so that grids of successive steps are comparable.
        codes = tf.random.stateless_normal((3, self.attribute_size), seed=[0, self.seed or 0])
        rows = []
        for name, other, real, content, own, gen_own, gen_other, other_content, other_mean in (
                ("A", "B", real_a, content_a, mean_a, self.generator_a, self.generator_b, content_b, mean_b),
                ("B", "A", real_b, content_b, mean_b, self.generator_b, self.generator_a, content_a, mean_a)):
            rows.append((f"real {name}", real))
            rows += [(f"fake {other}, random code {i + 1}", gen_other(content, codes[i:i + 1])) for i in range(3)]
            rows += [(f"fake {other}, attribute of real {other}", gen_other(content, other_mean)),
                     (f"reconstructed {name}", gen_own(content, own))]
        return rows

    # --- the training step -------------------------------------------------------------

    def noise(self, shape, name):
        """N(0, 1) of `shape`, a fresh draw from the model's seed stream.

        `name` says what it is for: "content_a", "content_b" (the training noise of the
        content maps), "attribute_a", "attribute_b" (ε of z_a = μ + σε), "random",
        "random2" (the random codes), "content_recon_a", "content_recon_b",
        "attribute_recon_a", "attribute_recon_b" (the second translation's). The stream
        ignores it; it lets a test substitute known noise.
        """
        del name
        return keras.random.normal(shape, seed=self.noise_seed)

    def encode_content(self, encoder, images, name):
        content = encoder(images, training=True)
        return content + ops.cast(self.noise(ops.shape(content), name), content.dtype)

    def encode_attribute(self, encoder, images, name):
        """(z, μ, log σ²): z = μ + σε (concat) or the code itself (log σ² None)."""
        mean, log_variance = encoder.encode(images, training=True)
        if log_variance is None:
            return mean, mean, None
        return mean + ops.exp(0.5 * log_variance) * self.noise(ops.shape(mean), name), mean, log_variance

    def forward(self, real_a, real_b):
        """The reference's `forward` on the encoded images (image 0 of each domain)."""
        f = {}
        f["content_a"] = self.encode_content(self.content_encoder_a, real_a, "content_a")
        f["content_b"] = self.encode_content(self.content_encoder_b, real_b, "content_b")
        f["attribute_a"], f["mean_a"], f["log_variance_a"] = self.encode_attribute(
            self.attribute_encoder_a, real_a, "attribute_a")
        f["attribute_b"], f["mean_b"], f["log_variance_b"] = self.encode_attribute(
            self.attribute_encoder_b, real_b, "attribute_b")
        batch = ops.shape(real_a)[0]
        f["random"] = self.noise((batch, self.attribute_size), "random")
        draws = ["encoded", "self", "random"]
        codes_a = [f["attribute_a"], f["attribute_a"], f["random"]]
        codes_b = [f["attribute_b"], f["attribute_b"], f["random"]]
        if self.mode_seeking:
            f["random2"] = self.noise((batch, self.attribute_size), "random2")
            draws.append("random2")
            codes_a.append(f["random2"])
            codes_b.append(f["random2"])
        # One call per generator on all its inputs, as the reference (per-image norms only).
        contents_a = [f["content_b"], f["content_a"]] + [f["content_b"]] * (len(draws) - 2)
        contents_b = [f["content_a"], f["content_b"]] + [f["content_a"]] * (len(draws) - 2)
        fakes_a = self.generator_a(ops.concatenate(contents_a, 0), ops.concatenate(codes_a, 0), training=True)
        fakes_b = self.generator_b(ops.concatenate(contents_b, 0), ops.concatenate(codes_b, 0), training=True)
        for draw, fake_a, fake_b in zip(draws, ops.split(fakes_a, len(draws)), ops.split(fakes_b, len(draws))):
            f[f"fake_a_{draw}"], f[f"fake_b_{draw}"] = fake_a, fake_b
        # Second translation: the fakes' content and attributes swapped back.
        f["content_recon_b"] = self.encode_content(self.content_encoder_a, f["fake_a_encoded"], "content_recon_b")
        f["content_recon_a"] = self.encode_content(self.content_encoder_b, f["fake_b_encoded"], "content_recon_a")
        attribute_recon_a = self.encode_attribute(self.attribute_encoder_a, f["fake_a_encoded"], "attribute_recon_a")[0]
        attribute_recon_b = self.encode_attribute(self.attribute_encoder_b, f["fake_b_encoded"], "attribute_recon_b")[0]
        f["recon_a"] = self.generator_a(f["content_recon_a"], attribute_recon_a, training=True)
        f["recon_b"] = self.generator_b(f["content_recon_b"], attribute_recon_b, training=True)
        # Latent regression: the codes re-encoded from the random-code fakes (μ only).
        f["regressed_a"] = self.attribute_encoder_a.encode(f["fake_a_random"], training=True)[0]
        f["regressed_b"] = self.attribute_encoder_b.encode(f["fake_b_random"], training=True)[0]
        return f

    @staticmethod
    def image_gan_loss(discriminator, images, target):
        """Σ over scales of mean BCE(sigmoid(D(images)), target)."""
        return tf.add_n([bce_with_logits(logits, target) for logits in discriminator(images, training=True)])

    def content_discriminator_loss(self, content_a, content_b):
        dc = self.content_discriminator
        return (bce_with_logits(dc(tf.stop_gradient(content_a), training=True), 0.0)
                + bce_with_logits(dc(tf.stop_gradient(content_b), training=True), 1.0))

    def update_content_discriminator(self, content_a, content_b):
        """One D_content update (`backward_contentD`, `clip_grad_norm_(5)`, step); its loss."""
        with tf.GradientTape() as tape:
            loss = self.content_discriminator_loss(content_a, content_b)
        grads = self.gradients("content_d_optimizer", tape, loss)
        # torch's clip_grad_norm_: g · min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ of the whole
        # network, on the gradient before the L2 term (Adam adds it inside its step).
        # The loss scale (mixed float16) is taken out of the norm; under several
        # replicas each clips its own gradient.
        unit = tf.cast(self.content_d_optimizer.scale_loss(tf.constant(1.0 / self.replicas())), tf.float32)
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads]) / unit
        coefficient = tf.minimum(1.0, self.content_clip_norm / (norm + 1e-6))
        grads = [g * tf.cast(coefficient, g.dtype) for g in grads]
        self.apply_gradients("content_d_optimizer", self.with_weight_decay("content_d_optimizer", grads))
        return loss

    def discriminator_losses(self, f, real_a, real_b, random_a, random_b):
        """The four image discriminators' losses (`backward_D`) on held-constant fakes."""
        fake = lambda key: tf.stop_gradient(f[key])

        def loss(discriminator, real, fake_images):
            return self.image_gan_loss(discriminator, real, 1.0) + self.image_gan_loss(discriminator, fake_images, 0.0)

        d_a = loss(self.discriminator_a, real_a, fake("fake_a_encoded"))
        d_b = loss(self.discriminator_b, real_b, fake("fake_b_encoded"))
        d_a2 = loss(self.discriminator_a2, random_a, fake("fake_a_random"))
        d_b2 = loss(self.discriminator_b2, random_b, fake("fake_b_random"))
        if self.mode_seeking:  # the real term counts twice, as the reference's two backward_D calls
            d_a2 += loss(self.discriminator_a2, random_a, fake("fake_a_random2"))
            d_b2 += loss(self.discriminator_b2, random_b, fake("fake_b_random2"))
        return {"d_a_loss": d_a, "d_b_loss": d_b, "d_a2_loss": d_a2, "d_b2_loss": d_b2}

    def eg_losses(self, f, real_a, real_b):
        """The reference's `backward_EG` terms (weights applied), by name."""
        dc = self.content_discriminator
        f32 = lambda t: tf.cast(t, tf.float32)
        losses = {
            "content_adversarial_loss": (bce_with_logits(dc(f["content_a"], training=True), 0.5)
                                         + bce_with_logits(dc(f["content_b"], training=True), 0.5)),
            "adversarial_loss": (self.image_gan_loss(self.discriminator_a, f["fake_a_encoded"], 1.0)
                                 + self.image_gan_loss(self.discriminator_b, f["fake_b_encoded"], 1.0)),
            "content_kl_loss": 0.01 * (tf.reduce_mean(tf.square(f32(f["content_a"])))
                                       + tf.reduce_mean(tf.square(f32(f["content_b"])))),
            "cycle_loss": 10.0 * (l1_loss(f["recon_a"], real_a) + l1_loss(f["recon_b"], real_b)),
            "recon_loss": 10.0 * (l1_loss(f["fake_a_self"], real_a) + l1_loss(f["fake_b_self"], real_b)),
        }
        if self.concat:  # −0.5 Σ (1 + log σ² − μ² − σ²): a sum over the batch and the code
            kl = lambda mean, log_variance: -0.5 * tf.reduce_sum(
                1.0 + log_variance - tf.square(mean) - tf.exp(log_variance))
            losses["kl_loss"] = 0.01 * (kl(f["mean_a"], f["log_variance_a"]) + kl(f["mean_b"], f["log_variance_b"]))
        else:
            losses["kl_loss"] = 0.01 * (tf.reduce_mean(tf.square(f["attribute_a"]))
                                        + tf.reduce_mean(tf.square(f["attribute_b"])))
        return losses

    def g_alone_losses(self, f):
        """The reference's `backward_G_alone` terms (weights applied), by name."""
        adversarial = (self.image_gan_loss(self.discriminator_a2, f["fake_a_random"], 1.0)
                       + self.image_gan_loss(self.discriminator_b2, f["fake_b_random"], 1.0))
        losses = {"latent_regression_loss": 10.0 * (l1_loss(f["regressed_a"], f["random"])
                                                    + l1_loss(f["regressed_b"], f["random"]))}
        if self.mode_seeking:
            adversarial += (self.image_gan_loss(self.discriminator_a2, f["fake_a_random2"], 1.0)
                            + self.image_gan_loss(self.discriminator_b2, f["fake_b_random2"], 1.0))
            codes = l1_loss(f["random2"], f["random"])
            losses["mode_seeking_loss"] = (
                1.0 / (l1_loss(f["fake_b_random2"], f["fake_b_random"]) / codes + 1e-5)
                + 1.0 / (l1_loss(f["fake_a_random2"], f["fake_a_random"]) / codes + 1e-5))
        losses["random_adversarial_loss"] = adversarial
        return losses

    def full_step(self, real_a, real_b):
        """`update_D` then `update_EG` on one batch; the logs."""
        encoded_a, encoded_b, random_a, random_b = real_a[:1], real_b[:1], real_a[1:], real_b[1:]
        with tf.GradientTape(persistent=True) as tape:
            f = self.forward(encoded_a, encoded_b)
            with tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_logs = self.discriminator_losses(f, encoded_a, encoded_b, random_a, random_b)
                    d_loss = tf.add_n(list(d_logs.values()))
                self.update("d_optimizer", d_tape, d_loss)
                content_d_loss = self.update_content_discriminator(f["content_a"], f["content_b"])
            # Against the updated discriminators, on the forward pass above.
            eg = self.eg_losses(f, encoded_a, encoded_b)
            eg_loss = tf.add_n(list(eg.values()))
            alone = self.g_alone_losses(f)
            alone_loss = tf.add_n(list(alone.values()))
        # Both phases' gradients at the pre-step weights, before anything is applied.
        eg_grads = self.gradients("g_optimizer", tape, eg_loss)
        attribute_grads = self.gradients("attribute_optimizer", tape, eg_loss)
        alone_grads = self.gradients("g_optimizer", tape, alone_loss)
        del tape
        self.apply_gradients("g_optimizer", self.with_weight_decay("g_optimizer", eg_grads))
        self.apply_gradients("attribute_optimizer", self.with_weight_decay("attribute_optimizer", attribute_grads))
        # Adam's L2 term reads the weights as they are now (after the EG step), as
        # torch's does at its second step.
        self.apply_gradients("g_optimizer", self.with_weight_decay("g_optimizer", alone_grads))
        return {"g_loss": eg_loss + alone_loss, "eg_loss": eg_loss, "g_alone_loss": alone_loss, "d_loss": d_loss,
                "content_d_loss": content_d_loss, **d_logs, **eg, **alone}

    def content_step(self, real_a, real_b):
        """`update_D_content`: a fresh encoding of image 0 of each domain, one D_content update."""
        content_a = self.encode_content(self.content_encoder_a, real_a[:1], "content_a")
        content_b = self.encode_content(self.content_encoder_b, real_b[:1], "content_b")
        return self.update_content_discriminator(content_a, content_b)

    def is_full_iteration(self, iteration):
        """Whether loader iteration `iteration` (counted from 0 over the run) is a full step:
        `(it + 1) % d_iter == 0 or it >= len(loader) - 2` with it counted in the epoch."""
        iteration = tf.cast(iteration, tf.int64)
        if not self.steps_per_epoch:
            return tf.equal((iteration + 1) % self.content_period, 0)
        it = iteration % self.steps_per_epoch
        return tf.logical_or(tf.equal((it + 1) % self.content_period, 0), it >= self.steps_per_epoch - 2)

    def log_names(self):
        names = ["g_loss", "eg_loss", "g_alone_loss", "d_loss", "content_d_loss", "d_a_loss", "d_b_loss",
                 "d_a2_loss", "d_b2_loss", "content_adversarial_loss", "adversarial_loss", "content_kl_loss",
                 "cycle_loss", "recon_loss", "kl_loss", "latent_regression_loss", "random_adversarial_loss"]
        return names + (["mode_seeking_loss"] if self.mode_seeking else [])

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        if real_a.shape[0] is not None and real_a.shape[0] < 2:
            raise ValueError(f"DRIT trains on batches of at least 2 (image 0 is encoded, the others are the real "
                             f"samples of the random-code discriminators; reference 2), got {real_a.shape[0]}")
        learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step's EG update uses
        iteration = self.content_d_optimizer.iterations
        names = self.log_names()
        held = self.held_logs()

        def full():
            logs = self.full_step(real_a, real_b)
            for name in names:
                held[name].assign(tf.cast(logs[name], tf.float32))
            return [tf.cast(logs[name], tf.float32) for name in names] + [tf.constant(1.0)]

        def content_only():
            loss = self.content_step(real_a, real_b)
            return [tf.cast(loss, tf.float32) if name == "content_d_loss" else held[name].read_value()
                    for name in names] + [tf.constant(0.0)]

        values = tf.cond(self.is_full_iteration(iteration), full, content_only)
        logs = dict(zip(names + ["full_step"], values))
        return {**logs, "learning_rate": learning_rate}

    def held_logs(self):
        """The last full step's losses, shown (and logged) during content-only steps.
        Plain tf.Variables, made on first use outside any traced function's scope."""
        if getattr(self, "_held", None) is None:
            with tf.init_scope():
                self._held = {name: tf.Variable(0.0, trainable=False, name=f"held_{name}")
                              for name in self.log_names()}
        return self._held

    def get_config(self):
        return {"image_size": self.image_size, "concat": self.concat, "mode_seeking": self.mode_seeking,
                "filters": self.filters, "attribute_filters": self.attribute_filters,
                "attribute_size": self.attribute_size, "discriminator_filters": self.discriminator_filters,
                "discriminator_layers": self.discriminator_layers, "discriminator_scales": self.discriminator_scales,
                "content_discriminator_filters": self.content_discriminator_filters,
                "content_discriminator_layers": self.content_discriminator_layers,
                "discriminator_norm": self.discriminator_norm,
                "content_discriminator_norm": self.content_discriminator_norm,
                "discriminator_negative_slope": self.discriminator_negative_slope,
                "learning_rate": self.learning_rate, "content_learning_rate": self.content_learning_rate,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "weight_decay": self.weight_decay,
                "content_clip_norm": self.content_clip_norm, "content_period": self.content_period,
                "seed": self.seed}
