"""Class activation map (CAM) attention of U-GAT-IT and its descendants, and its
heatmap drawn as an image."""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers.initializers import torch_bias_init, torch_kernel_init
from tf_translate.layers.spectral_norm import SpectralNorm


@keras.saving.register_keras_serializable(package="tf_translate")
class CAMAttention(layers.Layer):
    """U-GAT-IT's auxiliary-classifier attention over the channels of a feature map.

    Global average pooling and global max pooling each go through their own FC
    C → 1; the two results are the CAM logits (the auxiliary domain classifier). Each
    FC's weight vector then re-weights the channels of the features, the two re-weighted
    copies are concatenated, and a 1x1 conv 2C → C (with bias) plus an activation mixes
    them. The heatmap is the channel sum of the result.

    Configurations in the references:
    - U-GAT-IT generator: bias-free FCs, ReLU (the defaults).
    - U-GAT-IT / photo2cartoon discriminator: `spectral_norm=True`,
      `activation="leaky_relu"` (slope 0.2). The FCs are spectral-normalised, the 1x1
      conv is not. The logits use W/σ, but the channel re-weighting uses the raw
      `weight_orig` (the reference reads `list(fc.parameters())[0]`, which under
      `spectral_norm` is `weight_orig`); this layer does the same.
    - photo2cartoon generator: `use_bias=True` (FCs with bias; only the weight
      re-weights the channels).

    Call args:
        x: NHWC features with `channels` channels.
    Returns:
        (features [B, H, W, C], cam_logit [B, 2] as (GAP, GMP), heatmap [B, H, W, 1]).
    Args:
        channels: C.
        activation: "relu" or "leaky_relu" (negative slope 0.2) after the 1x1 conv.
        use_bias: give the two FCs a bias.
        spectral_norm: spectral-normalise the two FCs (PyTorch semantics).
    Reference: Kim et al., "U-GAT-IT", ICLR 2020; `ResnetGenerator` and `Discriminator`
    in UGATIT-pytorch `networks.py`; `ResnetGenerator` in photo2cartoon
    `models/networks.py`.
    """

    def __init__(self, channels, activation="relu", use_bias=False, spectral_norm=False, **kwargs):
        if activation not in ("relu", "leaky_relu"):
            raise ValueError(f"activation must be 'relu' or 'leaky_relu', got {activation!r}")
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.spectral_norm = bool(spectral_norm)

        def fc(name):
            dense = layers.Dense(1, use_bias=use_bias, kernel_initializer=torch_kernel_init(),
                                 bias_initializer=torch_bias_init(channels), name=name)
            return SpectralNorm(dense, name=name + "_sn") if spectral_norm else dense

        self.gap_fc = fc("gap_fc")
        self.gmp_fc = fc("gmp_fc")
        self.conv1x1 = layers.Conv2D(self.channels, 1, kernel_initializer=torch_kernel_init(),
                                     bias_initializer=torch_bias_init(2 * channels), name="conv1x1")
        self.act = layers.ReLU() if activation == "relu" else layers.LeakyReLU(negative_slope=0.2)

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            raise ValueError(f"CAMAttention({self.channels}) got {input_shape[-1]} input channels")
        pooled_shape = (input_shape[0], self.channels)
        self.gap_fc.build(pooled_shape)
        self.gmp_fc.build(pooled_shape)
        self.conv1x1.build(tuple(input_shape[:-1]) + (2 * self.channels,))

    def channel_weights(self, fc):
        """The [C] vector that re-weights channels: the FC's raw kernel (no σ, no bias)."""
        dense = fc.layer if isinstance(fc, SpectralNorm) else fc
        return dense.kernel[:, 0]

    def call(self, x):
        gap_logit = self.gap_fc(ops.mean(x, axis=(1, 2)))
        gmp_logit = self.gmp_fc(ops.max(x, axis=(1, 2)))
        gap = x * ops.cast(self.channel_weights(self.gap_fc), x.dtype)
        gmp = x * ops.cast(self.channel_weights(self.gmp_fc), x.dtype)
        cam_logit = ops.concatenate([gap_logit, gmp_logit], axis=-1)
        y = self.act(self.conv1x1(ops.concatenate([gap, gmp], axis=-1)))
        heatmap = ops.sum(y, axis=-1, keepdims=True)
        return y, cam_logit, heatmap

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return input_shape, (input_shape[0], 2), input_shape[:-1] + (1,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "activation": self.activation,
                "use_bias": self.use_bias, "spectral_norm": self.spectral_norm}


def heatmap_image(heatmap, size):
    """A CAM heatmap [B, h, w, 1] as a gray [-1, 1] image [B, size, size, 1].

    For the sample grids of the models with CAM attention (U-GAT-IT, photo2cartoon,
    NICE-GAN). As the reference's `cam()` in `utils.py`: bilinear resize to the image
    size and min-max scaling per image (it then applies a JET colour map, which the grid
    draws in gray instead). TF ops: an image utility for the grids, not a layer.
    """
    heatmap = tf.image.resize(tf.cast(heatmap, tf.float32), (size, size))
    low = tf.reduce_min(heatmap, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(heatmap, axis=[1, 2, 3], keepdims=True)
    return 2.0 * (heatmap - low) / tf.maximum(high - low, 1e-12) - 1.0
