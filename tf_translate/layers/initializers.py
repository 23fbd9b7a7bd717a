"""PyTorch's default initialisation, for the references that never re-initialise.

U-GAT-IT (PyTorch), photo2cartoon and NICE-GAN keep torch's defaults for `nn.Conv2d` and
`nn.Linear`: weight `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels * kh * kw.
"""

import math

import keras


def torch_kernel_init():
    """torch's default weight init, as a new initializer for each layer.

    VarianceScaling(1/3, fan_in, uniform) has the bound sqrt(3 * (1/3) / fan_in), the
    same distribution; Keras computes the fan-in of a Conv2D kernel (kh, kw, in, out) as
    kh * kw * in and of a Dense kernel as its input size. A new instance per layer
    matters: one unseeded Keras initializer instance returns the same values on every
    call, so sharing it would give equally shaped layers identical weights.
    """
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_bias_init(fan_in):
    """torch's default bias init for a layer with the given fan-in (a new instance)."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)
