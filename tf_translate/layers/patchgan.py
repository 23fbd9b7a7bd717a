"""junyanz's PatchGAN discriminator, shared by CycleGAN (instance norm) and pix2pix
(batch norm, on the 6-channel input and target pair)."""

import keras
from keras import layers

from tf_translate.layers.blocks import build_stack, conv
from tf_translate.layers.normalization import BatchNormalization, InstanceNormalization

NORMS = ("instance", "batch")


@keras.saving.register_keras_serializable(package="tf_translate")
class PatchGANDiscriminator(keras.Model):
    """The junyanz 70x70 PatchGAN (`--netD basic`, `n_layers_D` 3).

    C64 (no norm) - C128 - C256 - C512 (stride 1) - 1-channel conv; 4x4 kernels, zero
    padding 1, LeakyReLU 0.2. 30x30 logits for a 256 input, no sigmoid (LSGAN and
    BCE-with-logits take logits). Outputs float32.

    Args:
        filters: width of the first layer (reference `--ndf`, 64).
        num_layers: strided layers after the first (reference `--n_layers_D`, 3).
        norm: "instance" (CycleGAN: non-affine IN, so the normalised convs keep their
            biases) or "batch" (pix2pix: `BatchNorm2d`, and those convs have no bias, as
            the reference's `use_bias = norm_layer == InstanceNorm2d`).
    Reference: `NLayerDiscriminator` in junyanz `networks.py`.
    """

    def __init__(self, filters=64, num_layers=3, norm="instance", **kwargs):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers
        self.norm = norm
        stack = [conv(filters, 4, strides=2, padding=1, padding_mode="zeros", use_bias=True, init="junyanz"),
                 layers.LeakyReLU(0.2)]
        for n in range(1, num_layers + 1):
            stride = 2 if n < num_layers else 1
            stack += [conv(filters * min(2 ** n, 8), 4, strides=stride, padding=1, padding_mode="zeros",
                           use_bias=norm == "instance", init="junyanz"),
                      InstanceNormalization() if norm == "instance" else BatchNormalization(),
                      layers.LeakyReLU(0.2)]
        stack += [conv(1, 4, padding=1, padding_mode="zeros", use_bias=True, init="junyanz"),
                  layers.Activation("linear", dtype="float32")]
        self.stack = stack

    def build(self, input_shape):
        build_stack(self.stack, input_shape)
        self.built = True

    def call(self, x, training=False):
        for layer in self.stack:
            x = layer(x, training=training) if isinstance(layer, BatchNormalization) else layer(x)
        return x

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "norm": self.norm, "name": self.name}
