"""Normalisation layers with the reference implementations' semantics.

All statistics are computed in float32 whatever the dtype policy (an fp16 variance of
large activations overflows to inf and silently zeroes the output), then cast back.
"""

import keras
from keras import ops


def instance_moments(x, unbiased=False):
    """Mean and variance over H and W of an NHWC tensor, in float32.

    `unbiased=True` applies Bessel's correction, as `torch.var` does (U-GAT-IT's
    AdaLIN/LIN); `torch.nn.InstanceNorm2d` uses the biased variance.
    """
    x = ops.cast(x, "float32")
    mean, var = ops.moments(x, axes=[1, 2], keepdims=True)
    if unbiased:
        n = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], "float32")
        var = var * n / (n - 1.0)
    return mean, var


def layer_moments(x, unbiased=False):
    """Mean and variance over H, W and C of an NHWC tensor, in float32."""
    x = ops.cast(x, "float32")
    mean, var = ops.moments(x, axes=[1, 2, 3], keepdims=True)
    if unbiased:
        shape = ops.shape(x)
        n = ops.cast(shape[1] * shape[2] * shape[3], "float32")
        var = var * n / (n - 1.0)
    return mean, var


@keras.saving.register_keras_serializable(package="tf_translate")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation as `torch.nn.InstanceNorm2d` computes it.

    Biased variance, eps 1e-5, non-affine by default (junyanz CycleGAN); `affine=True`
    adds a per-channel scale (init 1) and offset (init 0), as StarGAN uses.

    Args:
        epsilon: added to the variance.
        affine: learn a per-channel scale and offset.
    Reference: Ulyanov et al. 2016; torch.nn.InstanceNorm2d.
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)

    def build(self, input_shape):
        if self.affine:
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        mean, var = instance_moments(inputs)
        y = (ops.cast(inputs, "float32") - mean) * ops.rsqrt(var + self.epsilon)
        if self.affine:
            y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}
