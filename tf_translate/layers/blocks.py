"""Builders and blocks that several papers' networks share.

`conv` is every paper's padded convolution, `build_stack` / `run_stack` every network's
layer loop; `dense`, `sn_conv`, the residual blocks, the upsampling block and
`check_image_size` are U-GAT-IT's, reused by photo2cartoon and NICE-GAN. A block that
one paper alone uses stays in that paper's module.
"""

import keras
from keras import layers, ops

from tf_translate.layers.conv import Conv2D, NearestUpsampleConv2D
from tf_translate.layers.initializers import (junyanz_kernel_init, torch_bias_init, torch_kernel_init,
                                             xavier_kernel_init)
from tf_translate.layers.normalization import LIN, AdaLIN, InstanceNormalization
from tf_translate.layers.padding import ReflectionPadding2D
from tf_translate.layers.spectral_norm import SpectralNorm

KERNEL_INITS = {"junyanz": junyanz_kernel_init, "xavier": xavier_kernel_init}
PADDING_MODES = {"reflect": ReflectionPadding2D, "zeros": layers.ZeroPadding2D}
INITS = ("torch", "junyanz", "xavier")


def conv(filters, kernel_size, strides=1, padding=0, padding_mode=None, *, use_bias, init, fan_in=None,
         spectral_norm=False):
    """A "valid" `Conv2D` after PyTorch-style explicit padding (`padding` pixels each side).

    Keras "same" pads asymmetrically for even inputs and strides 2, which shifts the
    sampling grid by one pixel against the references; explicit padding keeps weights
    imported from PyTorch exact. The references' convs differ in padding, bias and
    initialisation, so every caller states them; a padded conv is
    `Sequential([padding, conv])`.

    Args:
        filters, kernel_size, strides: as `Conv2D`.
        padding: pixels added on each side (0: the conv alone).
        padding_mode: "reflect" (`nn.ReflectionPad2d`: U-GAT-IT, photo2cartoon,
            NICE-GAN) or "zeros" (`nn.Conv2d(padding=p)`: CycleGAN, StarGAN); required
            when `padding` > 0.
        use_bias: the conv has a bias.
        init: "torch", PyTorch's default init of kernel and bias (the references that
            never re-initialise; a bias needs `fan_in` = in_channels * k * k), or
            "junyanz", `init_weights("normal", 0.02)` (N(0, 0.02) kernel, zero bias), or
            "xavier", `init_weights("xavier", 0.02)` (CUT: xavier-normal gain 0.02, zero bias).
        spectral_norm: wrap the conv in `SpectralNorm` (torch semantics).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if padding and padding_mode not in PADDING_MODES:
        raise ValueError(f"conv(padding={padding}) needs padding_mode 'reflect' or 'zeros', got {padding_mode!r}")
    if init == "torch":
        if use_bias and fan_in is None:
            raise ValueError("conv(use_bias=True, init='torch') needs fan_in for torch's bias init")
        initializers = dict(kernel_initializer=torch_kernel_init(),
                            bias_initializer=torch_bias_init(fan_in) if use_bias else "zeros")
    else:
        initializers = dict(kernel_initializer=KERNEL_INITS[init]())
    conv_layer = Conv2D(filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias,
                        **initializers)
    if spectral_norm:
        conv_layer = SpectralNorm(conv_layer)
    if not padding:
        return conv_layer
    return keras.Sequential([PADDING_MODES[padding_mode](padding), conv_layer])


def dense(units, use_bias=False, activation=None, fan_in=None):
    """A Dense with torch's default init (a bias needs `fan_in`, see `conv`)."""
    return layers.Dense(units, use_bias=use_bias, activation=activation,
                        kernel_initializer=torch_kernel_init(),
                        bias_initializer=torch_bias_init(fan_in) if use_bias else "zeros")


def build_stack(stack, shape):
    """Builds each layer of `stack` on the previous one's output shape; returns the last."""
    shape = tuple(shape)
    for layer in stack:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def run_stack(stack, x):
    """Calls the layers of `stack` in turn."""
    for layer in stack:
        x = layer(x)
    return x


def sn_conv(in_channels, filters, strides):
    """Reflect pad 1, spectral-normalised 4x4 conv with bias, LeakyReLU 0.2: a layer of
    the U-GAT-IT (and photo2cartoon) and NICE-GAN discriminators."""
    return [conv(filters, 4, strides=strides, padding=1, padding_mode="reflect", use_bias=True, init="torch",
                 fan_in=in_channels * 16, spectral_norm=True), layers.LeakyReLU(negative_slope=0.2)]


class ResidualBody(layers.Layer):
    """x + body(x): the build, call and shape of every paper's plain residual block.
    Subclasses set `self.body` (their reference's layer list) and `get_config`."""

    def build(self, input_shape):
        build_stack(self.body, input_shape)

    def call(self, x):
        return x + run_stack(self.body, x)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATITResidualBlock(ResidualBody):
    """x + [reflect pad, 3x3 conv, IN, ReLU, reflect pad, 3x3 conv, IN](x), no conv bias.

    Differs from CycleGAN's block only in the bias-free convs (`use_bias=False` in the
    reference) and torch default init. The U-GAT-IT and photo2cartoon encoders use it.

    Args:
        filters: channels in and out.
    Reference: `ResnetBlock(dim, use_bias=False)` in UGATIT-pytorch `networks.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.body = [conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch"),
                     InstanceNormalization(), layers.ReLU(),
                     conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch"),
                     InstanceNormalization()]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class AdaLINResidualBlock(layers.Layer):
    """x + [pad, 3x3 conv, AdaLIN, ReLU, pad, 3x3 conv, AdaLIN](x), one γ, β for both.

    The U-GAT-IT and NICE-GAN decoders use it (reflection padding, bias-free convs,
    torch default init).

    Call args:
        x: NHWC features with `filters` channels.
        gamma, beta: [B, filters] from the generator's MLP.
    Args:
        filters: channels in and out.
        rho_mode: AdaLIN's "clip" (U-GAT-IT) or "softmax" (NICE-GAN).
    Reference: `ResnetAdaILNBlock` in UGATIT-pytorch `networks.py`.
    """

    def __init__(self, filters, rho_mode="clip", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.rho_mode = rho_mode
        self.conv1 = conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch")
        self.norm1 = AdaLIN(rho_mode=rho_mode)
        self.conv2 = conv(filters, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch")
        self.norm2 = AdaLIN(rho_mode=rho_mode)

    def build(self, input_shape):
        build_stack([self.conv1, self.norm1, self.conv2, self.norm2], input_shape)

    def call(self, x, gamma, beta):
        y = ops.relu(self.norm1(self.conv1(x), gamma, beta))
        return x + self.norm2(self.conv2(y), gamma, beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "rho_mode": self.rho_mode}


def upsample_block(filters):
    """Nearest ×2, reflect pad 1, 3x3 conv (no bias), LIN, ReLU (the U-GAT-IT and
    photo2cartoon decoders); the first three as one `NearestUpsampleConv2D` (2.25x fewer
    multiply-adds)."""
    return [NearestUpsampleConv2D(filters, use_bias=False, kernel_initializer=torch_kernel_init()), LIN(),
            layers.ReLU()]


def check_image_size(model_name, shape, light, image_size, multiple):
    """One-line ValueError for inputs a U-GAT-IT-style generator cannot translate: the
    full model (`light=False`) flattens its feature map, so it runs only at
    `image_size`; the light one needs height and width divisible by `multiple`."""
    h, w = shape[1], shape[2]
    if not light:
        if (h is not None and h != image_size) or (w is not None and w != image_size):
            raise ValueError(
                f"{model_name}(light=False) runs only at its image_size {image_size}x{image_size} "
                f"(its first MLP layer flattens the feature map), got {h}x{w}; use light=True "
                f"for other sizes")
    elif any(d is not None and d % multiple for d in (h, w)):
        raise ValueError(f"{model_name} needs height and width divisible by {multiple}, got {h}x{w}")
