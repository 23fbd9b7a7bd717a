"""DRIT++'s networks: content and attribute encoders, generators, image and content
discriminators (HsinYingLee/DRIT `src/networks.py`). See the package docstring."""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.blocks import ResidualBody, build_stack, run_stack
from tf_translate.layers.conv import Conv2D
from tf_translate.layers.initializers import junyanz_kernel_init, torch_bias_init, torch_kernel_init
from tf_translate.layers.multiscale import MultiScaleDiscriminator

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



def content_min_image_size(content_discriminator):
    """The smallest image side (a multiple of 4) whose content map the content
    discriminator takes: 212 with the reference's 3 layers."""
    size = 4
    while -(-size // 4) < content_discriminator.min_content_size():
        size += 4
    return size
