"""photo2cartoon: U-GAT-IT with hourglass modules and Soft-AdaLIN.

The discriminators are U-GAT-IT's (`UGATITDiscriminator(filters=32, num_layers=7 | 5)`,
13,294,048 and 826,080 parameters).

Reference: minivision-ai/photo2cartoon (`models/networks.py`,
`models/UGATIT_sadalin_hourglass.py`, `train.py`); the design follows U-GAT-IT (Kim et
al., ICLR 2020) with the hourglass of Newell et al. (ECCV 2016).
"""

import keras
from keras import layers, ops

from tf_translate.layers import CAMAttention, InstanceNormalization, ReflectionPadding2D, SoftAdaLIN
from tf_translate.models.ugatit import (UGATITResidualBlock, build_stack, check_image_size, conv, dense,
                                        run_stack, upsample_block)


def conv1x1(filters, use_bias, fan_in=None):
    return conv(filters, 1, use_bias=use_bias, fan_in=fan_in)


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlassConvBlock(layers.Layer):
    """Pre-activation multi-scale block: three IN-ReLU-conv3x3 steps (widths d/2, d/4,
    d/4) whose outputs are concatenated (d channels) and added to the input.

    When `input_filters` differs from `filters`, the residual goes through IN-ReLU-conv1x1.
    The reference builds that projection in every block but never uses it (all its blocks
    keep the width), so its module holds 57,344 parameters (ngf 32) that no forward
    pass touches; they are left out here and from the 3,773,735 count.

    Args:
        filters: output width d (divisible by 4).
        input_filters: input width; None means `filters`.
    Reference: `ConvBlock` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, input_filters=None, **kwargs):
        if filters % 4:
            raise ValueError(f"HourGlassConvBlock filters must be divisible by 4, got {filters}")
        super().__init__(**kwargs)
        self.filters = filters
        self.input_filters = input_filters
        self.steps = [[InstanceNormalization(), layers.ReLU(), conv(width, 3, padding=1)]
                      for width in (filters // 2, filters // 4, filters // 4)]
        self.projection = None
        if input_filters is not None and input_filters != filters:
            self.projection = [InstanceNormalization(), layers.ReLU(), conv1x1(filters, use_bias=False)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for step in self.steps:
            shape = build_stack(step, shape)
        if self.projection:
            build_stack(self.projection, input_shape)

    def call(self, x):
        outputs, y = [], x
        for step in self.steps:
            y = run_stack(step, y)
            outputs.append(y)
        residual = run_stack(self.projection, x) if self.projection else x
        return residual + ops.concatenate(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "input_filters": self.input_filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlassBlock(layers.Layer):
    """A 4-level hourglass: at each level a skip block, a 2x2 average pool and a block;
    a centre block; then back up with a block, nearest ×2 and the skip added.

    Needs H and W divisible by 16.

    Args:
        filters: width throughout.
    Reference: `HourGlassBlock` in photo2cartoon `models/networks.py`.
    """

    LEVELS = 4

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        block = lambda: HourGlassConvBlock(filters)
        # [skip, down] per level, then centre and up blocks: the reference's order
        # (ConvBlock1_1, 1_2, 2_1, ... 5, 6 ... 9), which keeps weight lists aligned.
        self.levels = [[block(), block()] for _ in range(self.LEVELS)]
        self.center = block()
        self.up_blocks = [block() for _ in range(self.LEVELS)]
        self.pool = layers.AveragePooling2D(2)
        self.upsample = layers.UpSampling2D(2, interpolation="nearest")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for skip, down in self.levels:
            skip.build(shape)
            shape = self.pool.compute_output_shape(shape)
            down.build(shape)
        self.center.build(shape)
        for up in self.up_blocks:
            up.build(shape)
            shape = self.upsample.compute_output_shape(shape)

    def call(self, x):
        skips = []
        for skip, down in self.levels:
            skips.append(skip(x))
            x = down(self.pool(x))
        x = self.center(x)
        for up, skip in zip(self.up_blocks, reversed(skips)):
            x = self.upsample(up(x)) + skip
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class HourGlass(layers.Layer):
    """Hourglass block, conv block and 1x1 conv-IN-ReLU, plus a 3-channel 1x1 side output.

    With `use_residual=True` returns x + conv1x1(features) + conv1x1(side output); the
    last hourglass of the generator (`use_residual=False`) returns the 3-channel side
    output itself.

    Args:
        filters: width in and out.
        use_residual: see above (reference `use_res`).
    Reference: `HourGlass` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, use_residual=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_residual = use_residual
        self.body = [HourGlassBlock(filters), HourGlassConvBlock(filters), conv1x1(filters, use_bias=False),
                     InstanceNormalization(), layers.ReLU()]
        self.side_output = conv1x1(3, use_bias=True, fan_in=filters)              # Conv1
        if use_residual:
            self.features_back = conv1x1(filters, use_bias=True, fan_in=filters)  # Conv2
            self.side_back = conv1x1(filters, use_bias=True, fan_in=3)            # Conv3

    def build(self, input_shape):
        shape = build_stack(self.body, input_shape)
        self.side_output.build(shape)
        if self.use_residual:
            self.features_back.build(shape)
            self.side_back.build(tuple(shape[:-1]) + (3,))

    def call(self, x):
        features = run_stack(self.body, x)
        side = self.side_output(features)
        if not self.use_residual:
            return side
        return x + self.features_back(features) + self.side_back(side)

    def compute_output_shape(self, input_shape):
        return input_shape if self.use_residual else tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "use_residual": self.use_residual}


@keras.saving.register_keras_serializable(package="tf_translate")
class SoftAdaLINResidualBlock(layers.Layer):
    """x + [pad, 3x3 conv, SoftAdaLIN, ReLU, pad, 3x3 conv, SoftAdaLIN](x), no conv bias.

    Call args:
        x: NHWC features with `filters` channels.
        content: [B, filters] content features of the matching encoder block.
        style: [B, filters] style features.
    Args:
        filters: channels in and out.
    Reference: `ResnetSoftAdaLINBlock` in photo2cartoon `models/networks.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = conv(filters, 3, padding=1)
        self.norm1 = SoftAdaLIN(filters)
        self.conv2 = conv(filters, 3, padding=1)
        self.norm2 = SoftAdaLIN(filters)

    def build(self, input_shape):
        build_stack([self.conv1, self.norm1, self.conv2, self.norm2], input_shape)

    def call(self, x, content, style):
        y = ops.relu(self.norm1(self.conv1(x), content, style))
        return x + self.norm2(self.conv2(y), content, style)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class Photo2CartoonGenerator(keras.Model):
    """The photo2cartoon generator; returns (image, cam_logit, heatmap).

    c7s1-32, 2 hourglasses, two 3x3 stride-2 downs (64, 128), 4 residual blocks each
    followed by a GAP "content feature", CAM attention (FCs with bias), an FC MLP to a
    "style feature", 4 Soft-AdaLIN residual blocks fed the content features in reverse
    order (last encoder block first), 2 × (nearest ×2, 3x3 conv, LIN, ReLU), 2
    hourglasses (the last outputs 3 channels), reflect pad 3, 7x7 conv 3 → 3, tanh.
    3,773,735 parameters (light, ngf 32). Light needs H and W divisible by 16 (the
    hourglasses pool 4 times at full resolution); the full model runs only at
    `image_size`.

    Outputs are float32: image [B, H, W, 3] in [-1, 1], cam_logit [B, 2], heatmap
    [B, H/4, W/4, 1].

    Args:
        filters: width of the first layer (reference `--ch`, 32).
        image_size: the only input size of the full model (`--img_size`, 256).
        light: GAP before the style MLP instead of flattening (`--light`, True).
    Reference: `ResnetGenerator` in photo2cartoon `models/networks.py` (genA2B, genB2A).
    """

    def __init__(self, filters=32, image_size=256, light=True, **kwargs):
        if image_size % 16:
            raise ValueError(f"image_size must be divisible by 16, got {image_size}")
        super().__init__(**kwargs)
        self.filters = filters
        self.image_size = image_size
        self.light = light
        width = filters * 4

        self.stem = [ReflectionPadding2D(3), conv(filters, 7), InstanceNormalization(), layers.ReLU()]
        self.stem += [HourGlass(filters), HourGlass(filters)]
        for mult in (2, 4):
            self.stem += [conv(filters * mult, 3, strides=2, padding=1), InstanceNormalization(),
                          layers.ReLU()]
        self.encoder_blocks = [UGATITResidualBlock(width) for _ in range(4)]
        self.content_pool = layers.GlobalAveragePooling2D()
        self.cam = CAMAttention(width, use_bias=True)
        flat = width * (image_size // 4) ** 2
        pool = layers.GlobalAveragePooling2D() if light else layers.Flatten()
        self.mlp = [pool, dense(width, use_bias=True, activation="relu", fan_in=width if light else flat),
                    dense(width, use_bias=True, activation="relu", fan_in=width)]
        self.decoder_blocks = [SoftAdaLINResidualBlock(width) for _ in range(4)]
        self.upsampler = upsample_block(filters * 2) + upsample_block(filters) + [
            HourGlass(filters), HourGlass(filters, use_residual=False),
            ReflectionPadding2D(3), conv(3, 7), layers.Activation("tanh", dtype="float32")]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        check_image_size(type(self).__name__, input_shape, self.light, self.image_size, 16)
        if not self.light:
            input_shape = (input_shape[0], self.image_size, self.image_size, input_shape[3])
        shape = build_stack(self.stem + self.encoder_blocks, input_shape)
        self.cam.build(shape)
        build_stack(self.mlp, shape)
        for block in self.decoder_blocks:
            block.build(shape)
        build_stack(self.upsampler, shape)
        self.built = True

    def __call__(self, x, *args, **kwargs):
        # Checked before Keras' __call__, which would wrap the error in a multi-line report.
        check_image_size(type(self).__name__, tuple(x.shape), self.light, self.image_size, 16)
        return super().__call__(x, *args, **kwargs)

    def call(self, x):
        x = run_stack(self.stem, x)
        content = []
        for block in self.encoder_blocks:
            x = block(x)
            # As the reference: GAP after each block. A block returns x + IN(...) and a
            # non-affine IN has zero spatial mean, so all four are GAP of the first
            # block's input (up to rounding) and their reverse order changes nothing.
            content.append(self.content_pool(x))
        x, cam_logit, heatmap = self.cam(x)
        style = run_stack(self.mlp, x)
        for block, content_features in zip(self.decoder_blocks, reversed(content)):
            x = block(x, content_features, style)
        image = run_stack(self.upsampler, x)
        return image, ops.cast(cam_logit, "float32"), ops.cast(heatmap, "float32")

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        quarter = lambda n: None if n is None else n // 4
        return (b, h, w, 3), (b, 2), (b, quarter(h), quarter(w), 1)

    def get_config(self):
        return {"filters": self.filters, "image_size": self.image_size, "light": self.light,
                "name": self.name}
