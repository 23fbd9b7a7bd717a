"""The references' weight initialisations: PyTorch's default, junyanz's N(0, 0.02), and
`init_weights("xavier", 0.02)` (CUT).

StarGAN, U-GAT-IT (PyTorch), photo2cartoon and NICE-GAN never re-initialise, so they keep
torch's defaults for `nn.Conv2d` and `nn.Linear`: weight `kaiming_uniform_(a=sqrt(5))`,
i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
fan_in = in_channels * kh * kw. CycleGAN re-initialises its convs with N(0, 0.02).
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


def junyanz_kernel_init():
    """junyanz `init_weights("normal", 0.02)`: conv weights N(0, 0.02) (biases stay 0).

    A new initializer per layer: one unseeded Keras initializer instance returns the
    same values on every call, which would start equal-shaped layers identical.
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def xavier_kernel_init(gain=0.02):
    """`init.xavier_normal_(w, gain)`: N(0, gain·sqrt(2 / (fan_in + fan_out))), untruncated
    (Keras' `GlorotNormal` is truncated and has gain 1). CUT's `--init_type xavier
    --init_gain 0.02` on every conv and linear layer (biases 0). Keras' fans of a conv
    kernel (kh·kw·in, kh·kw·out) and of a Dense kernel are torch's; a transposed conv's
    two fans are swapped, which leaves their sum unchanged. A new instance per layer."""
    return keras.initializers.VarianceScaling(scale=gain ** 2, mode="fan_avg", distribution="untruncated_normal")
