"""junyanz's PatchGAN discriminator, shared by CycleGAN (instance norm) and pix2pix
(batch norm, on the 6-channel input and target pair)."""

import keras
from keras import layers

from tf_translate.layers.antialias import BlurDownsampling2D
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
        antialias: CUT's default D: every stride-2 conv becomes a stride-1 conv whose
            LeakyReLU is followed by `BlurDownsampling2D` (same parameters, 30x30 logits
            at 256 px: 256, 255, 128, 127, 64, 63, 32, 31, 30). False is junyanz's D and
            CUT's `--no_antialias`.
        init: "junyanz" (N(0, 0.02)) or "xavier" (CUT's xavier-normal, gain 0.02).
    Reference: `NLayerDiscriminator` in junyanz `networks.py` and in
    taesungp/contrastive-unpaired-translation `networks.py` (the anti-aliased form).
    """

    def __init__(self, filters=64, num_layers=3, norm="instance", antialias=False, init="junyanz", **kwargs):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers
        self.norm = norm
        self.antialias = antialias
        self.init = init
        down_stride = 1 if antialias else 2
        blur = [BlurDownsampling2D()] if antialias else []
        stack = [conv(filters, 4, strides=down_stride, padding=1, padding_mode="zeros", use_bias=True, init=init),
                 layers.LeakyReLU(0.2)] + blur
        for n in range(1, num_layers + 1):
            stride = down_stride if n < num_layers else 1
            stack += [conv(filters * min(2 ** n, 8), 4, strides=stride, padding=1, padding_mode="zeros",
                           use_bias=norm == "instance", init=init),
                      InstanceNormalization() if norm == "instance" else BatchNormalization(),
                      layers.LeakyReLU(0.2)]
            if n < num_layers:
                stack += [BlurDownsampling2D() for _ in blur]
        stack += [conv(1, 4, padding=1, padding_mode="zeros", use_bias=True, init=init),
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
        config = {"filters": self.filters, "num_layers": self.num_layers, "norm": self.norm, "name": self.name}
        if self.antialias or self.init != "junyanz":  # configs saved before these options stay as they were
            config.update(antialias=self.antialias, init=self.init)
        return config
