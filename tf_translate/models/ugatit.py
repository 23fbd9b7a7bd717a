"""U-GAT-IT: generator with CAM attention and AdaLIN, global and local discriminators.

Follows the official PyTorch code (bias-free convs, two separate bias-free CAM FCs,
non-affine instance norm, torch default init), which is the code with published
parameter counts; REFERENCE.md 2.3 lists where the TF1 code differs.

Reference: Kim et al., "U-GAT-IT: Unsupervised Generative Attentional Networks with
Adaptive Layer-Instance Normalization for Image-to-Image Translation", ICLR 2020;
znxlwm/UGATIT-pytorch (`networks.py`, `UGATIT.py`).
"""

import keras
from keras import layers, ops

from tf_translate.layers import (LIN, AdaLIN, CAMAttention, InstanceNormalization, ReflectionPadding2D,
                                 SpectralNorm)
from tf_translate.layers.initializers import torch_bias_init, torch_kernel_init


def conv(filters, kernel_size, strides=1, padding=0, use_bias=False, spectral_norm=False,
         fan_in=None):
    """A conv after PyTorch-style reflection padding (`padding` pixels each side).

    Weights get torch's default init (the reference never re-initialises); the bias,
    when there is one, too, for which `fan_in` (in_channels * k * k) is needed.
    `spectral_norm=True` wraps the conv in `SpectralNorm` (torch semantics).
    """
    if use_bias and fan_in is None:
        raise ValueError("conv(use_bias=True) needs fan_in for torch's bias init")
    conv_layer = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias,
        kernel_initializer=torch_kernel_init(),
        bias_initializer=torch_bias_init(fan_in) if use_bias else "zeros")
    if spectral_norm:
        conv_layer = SpectralNorm(conv_layer)
    if not padding:
        return conv_layer
    return keras.Sequential([ReflectionPadding2D(padding), conv_layer])


def dense(units, use_bias=False, activation=None, fan_in=None):
    """A Dense with torch's default init (see `conv`)."""
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
    for layer in stack:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATITResidualBlock(layers.Layer):
    """x + [reflect pad, 3x3 conv, IN, ReLU, reflect pad, 3x3 conv, IN](x), no conv bias.

    Differs from CycleGAN's block only in the bias-free convs (`use_bias=False` in the
    reference) and torch default init.

    Args:
        filters: channels in and out.
    Reference: `ResnetBlock(dim, use_bias=False)` in UGATIT-pytorch `networks.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.body = [conv(filters, 3, padding=1), InstanceNormalization(), layers.ReLU(),
                     conv(filters, 3, padding=1), InstanceNormalization()]

    def build(self, input_shape):
        build_stack(self.body, input_shape)

    def call(self, x):
        return x + run_stack(self.body, x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class AdaLINResidualBlock(layers.Layer):
    """x + [pad, 3x3 conv, AdaLIN, ReLU, pad, 3x3 conv, AdaLIN](x), one γ, β for both.

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
        self.conv1 = conv(filters, 3, padding=1)
        self.norm1 = AdaLIN(rho_mode=rho_mode)
        self.conv2 = conv(filters, 3, padding=1)
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
    """Nearest ×2, reflect pad 1, 3x3 conv (no bias), LIN, ReLU (the U-GAT-IT decoder)."""
    return [layers.UpSampling2D(2, interpolation="nearest"), conv(filters, 3, padding=1), LIN(),
            layers.ReLU()]


def check_image_size(model_name, shape, light, image_size, multiple):
    """One-line ValueError for inputs a generator cannot translate."""
    h, w = shape[1], shape[2]
    if not light:
        if (h is not None and h != image_size) or (w is not None and w != image_size):
            raise ValueError(
                f"{model_name}(light=False) runs only at its image_size {image_size}x{image_size} "
                f"(its first MLP layer flattens the feature map), got {h}x{w}; use light=True "
                f"for other sizes")
    elif any(d is not None and d % multiple for d in (h, w)):
        raise ValueError(f"{model_name} needs height and width divisible by {multiple}, got {h}x{w}")


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATITGenerator(keras.Model):
    """The U-GAT-IT generator; returns (image, cam_logit, heatmap).

    Encoder: c7s1-64, two 3x3 stride-2 downs (reflection padding, IN, ReLU), residual
    blocks. CAM attention (bias-free GAP and GMP FCs, 1x1 conv + ReLU) gives the
    auxiliary domain logits and the heatmap. An MLP (light: on the GAP of the attended
    features, so any size works; full: on the flattened map, so only `image_size`)
    gives γ, β for the AdaLIN residual blocks. Decoder: 2 × (nearest ×2, 3x3 conv,
    LIN, ReLU), c7s1-3, tanh. No conv or FC has a bias except the CAM 1x1 conv.
    10,589,888 parameters light; 278,959,808 full at 256 px (the first MLP FC alone
    holds 268,435,456), 77,633,216 at 128 px.

    Outputs are float32: the image in [-1, 1] [B, H, W, 3], cam_logit [B, 2] (GAP, GMP)
    and heatmap [B, H/4, W/4, 1].

    Differences from the reference: Keras flattens the NHWC map in (H, W, C) order where
    torch flattens NCHW in (C, H, W) order, so importing the full model's first MLP
    weight needs a row permutation; biases are initialised like torch's too.

    Args:
        filters: width of the first layer (reference `--ch`, 64).
        num_residual_blocks: encoder and decoder residual blocks each (`--n_res`, 4).
        image_size: the only input size of the full model (`--img_size`, 256).
        light: GAP before the MLP instead of flattening (`--light`).
    Reference: `ResnetGenerator` in UGATIT-pytorch `networks.py` (netG_A2B, netG_B2A).
    """

    def __init__(self, filters=64, num_residual_blocks=4, image_size=256, light=False, **kwargs):
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.image_size = image_size
        self.light = light
        width = filters * 4

        self.encoder = [ReflectionPadding2D(3), conv(filters, 7), InstanceNormalization(), layers.ReLU()]
        for mult in (2, 4):
            self.encoder += [conv(filters * mult, 3, strides=2, padding=1), InstanceNormalization(),
                             layers.ReLU()]
        self.encoder += [UGATITResidualBlock(width) for _ in range(num_residual_blocks)]
        self.cam = CAMAttention(width)
        pool = layers.GlobalAveragePooling2D() if light else layers.Flatten()
        self.mlp = [pool, dense(width, activation="relu"), dense(width, activation="relu")]
        self.gamma_fc = dense(width)
        self.beta_fc = dense(width)
        self.decoder_blocks = [AdaLINResidualBlock(width) for _ in range(num_residual_blocks)]
        self.upsampler = upsample_block(filters * 2) + upsample_block(filters) + [
            ReflectionPadding2D(3), conv(3, 7), layers.Activation("tanh", dtype="float32")]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        check_image_size(type(self).__name__, input_shape, self.light, self.image_size, 4)
        if not self.light:  # the flattening MLP fixes the size
            input_shape = (input_shape[0], self.image_size, self.image_size, input_shape[3])
        shape = build_stack(self.encoder, input_shape)
        self.cam.build(shape)
        code_shape = build_stack(self.mlp, shape)
        self.gamma_fc.build(code_shape)
        self.beta_fc.build(code_shape)
        for block in self.decoder_blocks:
            block.build(shape)
        build_stack(self.upsampler, shape)
        self.built = True

    def __call__(self, x, *args, **kwargs):
        # Checked before Keras' __call__, which would wrap the error in a multi-line report.
        check_image_size(type(self).__name__, tuple(x.shape), self.light, self.image_size, 4)
        return super().__call__(x, *args, **kwargs)

    def call(self, x):
        x = run_stack(self.encoder, x)
        x, cam_logit, heatmap = self.cam(x)
        code = run_stack(self.mlp, x)
        gamma, beta = self.gamma_fc(code), self.beta_fc(code)
        for block in self.decoder_blocks:
            x = block(x, gamma, beta)
        image = run_stack(self.upsampler, x)
        return image, ops.cast(cam_logit, "float32"), ops.cast(heatmap, "float32")

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        quarter = lambda n: None if n is None else n // 4
        return (b, h, w, 3), (b, 2), (b, quarter(h), quarter(w), 1)

    def get_config(self):
        return {"filters": self.filters, "num_residual_blocks": self.num_residual_blocks,
                "image_size": self.image_size, "light": self.light, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATITDiscriminator(keras.Model):
    """The U-GAT-IT multi-scale discriminator; returns (logits, cam_logit, heatmap).

    Spectral-normalised 4x4 convs with reflection padding 1 and LeakyReLU 0.2:
    `num_layers - 2` stride-2 convs from `filters` doubling, one stride-1 conv doubling
    again, a CAM block (spectral-normalised bias-free FCs, plain 1x1 conv + LeakyReLU)
    and a bias-free spectral-normalised 4x4 conv to one channel. `num_layers=7` is the
    global D (receptive field 286 px, 53,130,176 parameters, 6x6 logits at 256 px),
    `num_layers=5` the local D (70 px, 3,290,560, 30x30). Parameter counts are trainable
    weights; each spectral norm adds its non-trainable u, v (torch buffers).

    Outputs are float32: logits [B, H', W', 1] (LSGAN, no sigmoid), cam_logit [B, 2],
    heatmap [B, H'+1, W'+1, 1].

    Args:
        filters: width of the first layer (reference `--ch`, 64).
        num_layers: 7 (global) or 5 (local); the reference hard-codes these two.
    Reference: `Discriminator` in UGATIT-pytorch `networks.py` (disGA/disGB with
    n_layers=7, disLA/disLB with n_layers=5).
    """

    def __init__(self, filters=64, num_layers=7, **kwargs):
        if num_layers < 3:
            raise ValueError(f"num_layers must be at least 3, got {num_layers}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers

        def sn_conv(cin, cout, strides):
            return [conv(cout, 4, strides=strides, padding=1, use_bias=True, spectral_norm=True,
                         fan_in=cin * 16), layers.LeakyReLU(negative_slope=0.2)]

        self.stack = sn_conv(3, filters, 2)
        for i in range(1, num_layers - 2):
            mult = 2 ** (i - 1)
            self.stack += sn_conv(filters * mult, filters * mult * 2, 2)
        mult = 2 ** (num_layers - 3)
        self.stack += sn_conv(filters * mult, filters * mult * 2, 1)
        width = filters * mult * 2
        self.cam = CAMAttention(width, activation="leaky_relu", spectral_norm=True)
        self.head = conv(1, 4, padding=1, use_bias=False, spectral_norm=True)

    def build(self, input_shape):
        shape = build_stack(self.stack, input_shape)
        self.cam.build(shape)
        self.head.build(shape)
        self.built = True

    def call(self, x, training=False):
        x = run_stack(self.stack, x)
        x, cam_logit, heatmap = self.cam(x)
        logits = self.head(x)
        return (ops.cast(logits, "float32"), ops.cast(cam_logit, "float32"),
                ops.cast(heatmap, "float32"))

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "name": self.name}
