"""UNIT: two VAE-GANs whose latent codes are translated by swapping decoders.

Each domain has an auto-encoder (`UNITGenerator`, the reference's `VAEGen`): an
encoder to a latent map h and a decoder back to the image. A→B is B's decoder on A's
code. Training decodes h + n with n ~ N(0, 1) (a VAE whose variance is fixed at one, so
the "KL" term is mean(h²)); test time decodes h itself. Multi-scale LSGAN
discriminators judge each domain.

Follows the official code's master branch (REFERENCE-WAVE2.md §3): no layers are
shared between the domains there. `shared_layers=N` restores the paper's weight
sharing as branch `version_02` has it: the last N encoder residual blocks and the first
N decoder residual blocks are one set of layers for both domains.

Reference: Liu, Breuel and Kautz, "Unsupervised Image-to-Image Translation Networks",
NIPS 2017; mingyuliutw/UNIT (`networks.py`: `VAEGen`, `ContentEncoder`, `Decoder`,
`ResBlock`, `Conv2dBlock`, `LayerNorm`, `MsImageDis`; `trainer.py`: `UNIT_Trainer`;
`utils.py`: `weights_init`, `get_scheduler`; `configs/unit_edges2shoes_folder.yaml`).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.blocks import ResidualBody
from tf_translate.layers.conv import Conv2D
from tf_translate.layers.multiscale import MultiScaleDiscriminator
from tf_translate.layers.normalization import UNITLayerNormalization
from tf_translate.losses import l1_loss, lsgan_fake_loss, lsgan_real_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel, call_on_both, unique
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import StepDecay

NORMS = ("none", "in", "ln")
ACTIVATIONS = ("relu", "tanh", "none")
PADDINGS = {"reflect": ReflectionPadding2D, "zeros": layers.ZeroPadding2D}


def kaiming_kernel_init():
    """UNIT's `weights_init('kaiming')`: `kaiming_normal_(a=0, mode='fan_in')`, i.e.
    N(0, 2 / fan_in), not truncated (Keras' `HeNormal` truncates at 2σ). A new instance
    per layer (an unseeded initializer instance repeats its values)."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_in", distribution="untruncated_normal")




def build_layers(stack, shape):
    """Builds each layer of `stack` on the previous output shape, skipping layers that are
    built already (a shared block built by the other domain's network)."""
    shape = tuple(shape)
    for layer in stack:
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITConvBlock(layers.Layer):
    """Pad, conv with bias, optional norm, activation: the reference's `Conv2dBlock`.

    Kernels start N(0, 2/fan_in) (`weights_init('kaiming')`), biases 0. The attribute
    names are the reference's (`conv`, `norm`), which is what `torch_import` maps.

    Args:
        filters, kernel_size, strides: as `Conv2D`.
        padding: pixels padded on each side before the conv.
        norm: "in" (non-affine `nn.InstanceNorm2d`), "ln" (`UNITLayerNormalization`) or "none".
        activation: "relu", "tanh" (float32 output) or "none".
        padding_mode: "reflect" (`pad_type: reflect`, every UNIT config) or "zeros".
    Reference: `Conv2dBlock` in mingyuliutw/UNIT `networks.py`.
    """

    def __init__(self, filters, kernel_size, strides=1, padding=0, norm="none", activation="relu",
                 padding_mode="reflect", **kwargs):
        if norm not in NORMS or activation not in ACTIVATIONS or padding_mode not in PADDINGS:
            raise ValueError(f"UNITConvBlock: norm in {NORMS}, activation in {ACTIVATIONS}, padding_mode in "
                             f"{tuple(PADDINGS)}; got {norm!r}, {activation!r}, {padding_mode!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.norm_type = norm
        self.activation = activation
        self.padding_mode = padding_mode
        self.pad = PADDINGS[padding_mode](padding) if padding else None
        self.conv = Conv2D(filters, kernel_size, strides=strides, padding="valid", use_bias=True,
                           kernel_initializer=kaiming_kernel_init(), bias_initializer="zeros", name="conv")
        norms = {"in": InstanceNormalization, "ln": UNITLayerNormalization}
        self.norm = norms[norm](name="norm") if norm in norms else None

    def build(self, input_shape):
        build_layers([layer for layer in (self.pad, self.conv, self.norm) if layer is not None], input_shape)

    def call(self, x):
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation == "relu":
            x = ops.relu(x)
        elif self.activation == "tanh":
            x = ops.tanh(ops.cast(x, "float32"))
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.pad is not None:
            shape = self.pad.compute_output_shape(shape)
        return self.conv.compute_output_shape(shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "norm": self.norm_type,
                "activation": self.activation, "padding_mode": self.padding_mode}


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITResidualBlock(ResidualBody):
    """x + [pad, 3x3 conv, IN, ReLU, pad, 3x3 conv, IN](x), convs with bias, no
    activation after the sum.

    Args:
        filters: channels in and out.
        padding_mode: see `UNITConvBlock`.
    Reference: `ResBlock` (norm 'in') in mingyuliutw/UNIT `networks.py`.
    """

    def __init__(self, filters, padding_mode="reflect", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.padding_mode = padding_mode
        self.body = [UNITConvBlock(filters, 3, 1, 1, "in", "relu", padding_mode, name="model_0"),
                     UNITConvBlock(filters, 3, 1, 1, "in", "none", padding_mode, name="model_1")]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "padding_mode": self.padding_mode}


def residual_blocks(count, filters, padding_mode, shared_blocks, shared_first):
    """`count` residual blocks, the shared ones (given) first or last."""
    shared_blocks = list(shared_blocks or ())
    if len(shared_blocks) > count:
        raise ValueError(f"{len(shared_blocks)} shared residual blocks, but only {count} blocks")
    own = [UNITResidualBlock(filters, padding_mode) for _ in range(count - len(shared_blocks))]
    return shared_blocks + own if shared_first else own + shared_blocks


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITEncoder(keras.Model):
    """c7s1-`filters` (IN, ReLU), `num_downsampling` 4x4 stride-2 convs doubling the width
    (IN, ReLU), `num_residual_blocks` residual blocks: the image to the latent map h of
    `filters`·2^num_downsampling channels at 1/2^num_downsampling resolution. 5,385,856
    parameters at the defaults.

    Args:
        filters: reference `gen.dim` (64).
        num_downsampling: `gen.n_downsample` (2).
        num_residual_blocks: `gen.n_res` (4).
        padding_mode: `gen.pad_type` ("reflect").
        shared_blocks: residual blocks (made by the caller) used as the last ones, shared
            with the other domain's encoder (`UNIT(shared_layers=N)`); not in the config.
    Reference: `ContentEncoder` in mingyuliutw/UNIT `networks.py` (gen_a.enc, gen_b.enc).
    """

    def __init__(self, filters=64, num_downsampling=2, num_residual_blocks=4, padding_mode="reflect",
                 shared_blocks=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_downsampling = num_downsampling
        self.num_residual_blocks = num_residual_blocks
        self.padding_mode = padding_mode
        self.stem = [UNITConvBlock(filters, 7, 1, 3, "in", "relu", padding_mode)]
        for i in range(num_downsampling):
            self.stem.append(UNITConvBlock(filters * 2 ** (i + 1), 4, 2, 1, "in", "relu", padding_mode))
        self.latent_channels = filters * 2 ** num_downsampling
        self.blocks = residual_blocks(num_residual_blocks, self.latent_channels, padding_mode, shared_blocks,
                                      shared_first=False)

    def build(self, input_shape):
        build_layers(self.stem + self.blocks, input_shape)
        self.built = True

    def call(self, x):
        for layer in self.stem + self.blocks:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        shrink = lambda n: None if n is None else n // 2 ** self.num_downsampling
        return (b, shrink(h), shrink(w), self.latent_channels)

    def get_config(self):
        return {"filters": self.filters, "num_downsampling": self.num_downsampling,
                "num_residual_blocks": self.num_residual_blocks, "padding_mode": self.padding_mode,
                "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITDecoder(keras.Model):
    """`num_residual_blocks` residual blocks (IN), then `num_upsampling` × [nearest ×2,
    5x5 conv halving the width, UNIT layer norm, ReLU], then a 7x7 conv to the image and
    tanh (float32). 5,754,627 parameters at the defaults.

    Args:
        filters: the encoder's `filters` (reference `gen.dim`, 64): h has
            filters·2^num_upsampling channels.
        num_upsampling: `gen.n_downsample` (2).
        num_residual_blocks: `gen.n_res` (4).
        output_channels: image channels (`input_dim_a` / `input_dim_b`, 3).
        padding_mode: `gen.pad_type` ("reflect").
        shared_blocks: residual blocks used as the first ones, shared with the other
            domain's decoder (`UNIT(shared_layers=N)`); not in the config.
    Reference: `Decoder` (res_norm 'in') in mingyuliutw/UNIT `networks.py` (gen_a.dec).
    """

    def __init__(self, filters=64, num_upsampling=2, num_residual_blocks=4, output_channels=3,
                 padding_mode="reflect", shared_blocks=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_upsampling = num_upsampling
        self.num_residual_blocks = num_residual_blocks
        self.output_channels = output_channels
        self.padding_mode = padding_mode
        width = self.latent_channels = filters * 2 ** num_upsampling
        self.blocks = residual_blocks(num_residual_blocks, width, padding_mode, shared_blocks, shared_first=True)
        self.upsampler = []
        for _ in range(num_upsampling):
            width //= 2
            self.upsampler += [layers.UpSampling2D(2, interpolation="nearest"),
                               UNITConvBlock(width, 5, 1, 2, "ln", "relu", padding_mode)]
        self.upsampler.append(UNITConvBlock(output_channels, 7, 1, 3, "none", "tanh", padding_mode))

    def build(self, input_shape):
        if input_shape[-1] != self.latent_channels:
            raise ValueError(f"UNITDecoder(filters={self.filters}) decodes h of {self.latent_channels} channels, "
                             f"got {input_shape[-1]}")
        build_layers(self.blocks + self.upsampler, input_shape)
        self.built = True

    def call(self, h):
        for layer in self.blocks + self.upsampler:
            h = layer(h)
        return h

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        grow = lambda n: None if n is None else n * 2 ** self.num_upsampling
        return (b, grow(h), grow(w), self.output_channels)

    def get_config(self):
        return {"filters": self.filters, "num_upsampling": self.num_upsampling,
                "num_residual_blocks": self.num_residual_blocks, "output_channels": self.output_channels,
                "padding_mode": self.padding_mode, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITGenerator(keras.Model):
    """One domain's auto-encoder: `encoder` (image → h) and `decoder` (h → image).

    11,140,483 parameters at the defaults (the reference's `VAEGen` for
    edges2shoes, summer2winter, edges2handbags and gta2city alike). Calling it
    reconstructs the image from h without noise, as the reference's eval mode does;
    the training noise is the training model's (`UNIT.latent_noise`).

    Args:
        filters, num_downsampling, num_residual_blocks, padding_mode: see `UNITEncoder`.
        output_channels: image channels (3).
        shared_encoder_blocks, shared_decoder_blocks: see `UNITEncoder`/`UNITDecoder`.
    Reference: `VAEGen` in mingyuliutw/UNIT `networks.py` (gen_a, gen_b).
    """

    def __init__(self, filters=64, num_downsampling=2, num_residual_blocks=4, output_channels=3,
                 padding_mode="reflect", shared_encoder_blocks=None, shared_decoder_blocks=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_downsampling = num_downsampling
        self.num_residual_blocks = num_residual_blocks
        self.output_channels = output_channels
        self.padding_mode = padding_mode
        self.encoder = UNITEncoder(filters, num_downsampling, num_residual_blocks, padding_mode,
                                   shared_encoder_blocks, name="enc")
        self.decoder = UNITDecoder(filters, num_downsampling, num_residual_blocks, output_channels, padding_mode,
                                   shared_decoder_blocks, name="dec")

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build(self.encoder.compute_output_shape(tuple(input_shape)))
        self.built = True

    def encode(self, x):
        """h, the latent map (the reference's `encode` returns (h, noise); the noise is
        drawn by the training model here)."""
        return self.encoder(x)

    def decode(self, h):
        return self.decoder(h)

    def call(self, x):
        return self.decode(self.encode(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {"filters": self.filters, "num_downsampling": self.num_downsampling,
                "num_residual_blocks": self.num_residual_blocks, "output_channels": self.output_channels,
                "padding_mode": self.padding_mode, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITTranslator(Generator):
    """One direction as one model: the source domain's encoder, the target's decoder.

    Maps [-1, 1] images to [-1, 1] images (float32) by decoding h without noise (the
    reference's `forward`, `sample` and `test.py`), so translate, the SavedModel and
    TFLite exports take it like any generator. It shares the training model's networks
    (no copies). Height and width must be multiples of 2^num_downsampling
    (`input_multiple`; the export pads and crops back).

    Args:
        encoder: a `UNITEncoder` (the source domain's, e.g. gen_a.enc).
        decoder: a `UNITDecoder` (the target domain's, e.g. gen_b.dec).
    Reference: `gen_b.decode(gen_a.encode(x)[0])` in mingyuliutw/UNIT `test.py`, `trainer.forward`.
    """

    fixed_input_size = None

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    @property
    def input_multiple(self):
        return 2 ** self.encoder.num_downsampling

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build(self.encoder.compute_output_shape(tuple(input_shape)))
        self.built = True

    def call(self, x):
        return self.decoder(self.encoder(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.decoder.output_channels,)

    def get_config(self):
        return {"encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder), "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="tf_translate")
class UNIT(TranslationModel):
    """The UNIT training model: two VAE generators, two multi-scale discriminators.

    Names: `generator_a` (reference gen_a: encoder E_1 and decoder G_1 of domain A),
    `generator_b` (gen_b), `discriminator_a` (dis_a, judges A images), `discriminator_b`
    (dis_b). A→B is generator_b.decode(generator_a.encode(x)) (`generators()["a2b"]`).

    One `train_step` is the reference iteration, in its order:
    1. `discriminator_step` (reference `dis_update`): h_a = E_a(a), h_b = E_b(b), fakes
       x_ba = G_a(h_b + n), x_ab = G_b(h_a + n) with fresh noise, held constant; loss
       `gan_weight` × Σ_scales [mean(D(fake)²) + mean((D(real) − 1)²)] for both
       domains (no 0.5 factor).
    2. `generator_step` (`gen_update`), against the updated discriminators, with its own
       encodings and fresh noise n_a, n_b: x_a_recon = G_a(h_a + n_a), x_ab = G_b(h_a + n_a)
       (the same noise), and likewise for B; re-encoded h_a_recon = E_b(x_ab),
       x_aba = G_a(h_a_recon + n) with new noise. Loss: `gan_weight` × LSGAN (each D's
       scales summed) + `recon_weight` × L1(x_a_recon, a) + `kl_weight` × mean(h_a²) +
       `cycle_weight` × L1(x_aba, a) + `cycle_kl_weight` × mean(h_a_recon²), plus the
       same for B. The reference's VGG term (weight 0 but for gta2city) and its
       `recon_h_w` (0, unused) are not ported.
    Both optimizers are Adam with PyTorch's L2 weight decay (added to the gradient
    before the moments) and a step decay of the rate (`StepDecay`, stepped at the start
    of each iteration as the reference's loop does). The learning rate does not depend
    on the run's length.

    Weight sharing (`shared_layers`): the reference's master code has none; the NIPS
    2017 results come from branch `version_02` (`COCOResGen`), which shares the last
    encoder residual block and the first decoder residual block of the two domains
    (`n_enc_shared_blk 1`, `n_gen_shared_blk 1`). `shared_layers=N` shares N of each
    here (one set of variables, counted and updated once). version_02 trained with
    other weights: gan 10, recon (`ll_direct_link_w`) 100, KL (`kl_direct_link_w`)
    0.1, cycle 100, cycle KL 0.1 — master's 1 / 10 / 0.01 / 10 / 0.01 keep the same
    ratios, so only the effective learning rate differs — with 216 px crops, 3x3 stride-2
    downsampling, transposed-conv decoders, and LeakyReLU first layers; only the
    sharing itself is ported.

    Init: every conv N(0, 2/fan_in) (kaiming, fan-in, untruncated), biases 0, layer
    norm γ ~ U(0, 1); then the discriminators are re-initialised N(0, 0.02), biases 0.

    Args:
        image_size: training crop (reference `crop_image_height/width`, 256); at least
            the discriminator's minimum (64 at the defaults).
        filters, num_downsampling, num_residual_blocks: `gen.dim` 64, `gen.n_downsample`
            2, `gen.n_res` 4.
        shared_layers: residual blocks shared at the end of the encoders and at the
            start of the decoders (0, master; version_02 used 1).
        discriminator_filters, discriminator_layers, discriminator_scales: `dis.dim`
            64, `dis.n_layer` 4, `dis.num_scales` 3.
        gan_weight, recon_weight, kl_weight, cycle_weight, cycle_kl_weight: `gan_w` 1,
            `recon_x_w` 10, `recon_kl_w` 0.01, `recon_x_cyc_w` 10, `recon_kl_cyc_w` 0.01.
        learning_rate, beta_1, beta_2, weight_decay: `lr` 1e-4, `beta1` 0.5, `beta2`
            0.999, `weight_decay` 1e-4.
        decay_steps, decay_rate: `step_size` 100,000 and `gamma` 0.5 (`lr_policy: step`).
        seed: seed of the latent noise stream.
    Reference: `UNIT_Trainer` in mingyuliutw/UNIT `trainer.py`; `train.py`.
    """

    reference_run = ReferenceRun(image_size=256, batch_size=1, steps=1_000_000)  # max_iter, batch_size 1

    def __init__(self, image_size=256, filters=64, num_downsampling=2, num_residual_blocks=4, shared_layers=0,
                 discriminator_filters=64, discriminator_layers=4, discriminator_scales=3, gan_weight=1.0,
                 recon_weight=10.0, kl_weight=0.01, cycle_weight=10.0, cycle_kl_weight=0.01, learning_rate=1e-4,
                 beta_1=0.5, beta_2=0.999, weight_decay=1e-4, decay_steps=100_000, decay_rate=0.5, seed=None,
                 **kwargs):
        if not 0 <= shared_layers <= num_residual_blocks:
            raise ValueError(f"shared_layers must be between 0 and num_residual_blocks ({num_residual_blocks}), "
                             f"got {shared_layers}")
        if image_size % 2 ** num_downsampling:
            raise ValueError(f"image_size must be divisible by {2 ** num_downsampling}, got {image_size}")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.num_downsampling = num_downsampling
        self.num_residual_blocks = num_residual_blocks
        self.shared_layers = shared_layers
        self.discriminator_filters = discriminator_filters
        self.discriminator_layers = discriminator_layers
        self.discriminator_scales = discriminator_scales
        self.gan_weight = gan_weight
        self.recon_weight = recon_weight
        self.kl_weight = kl_weight
        self.cycle_weight = cycle_weight
        self.cycle_kl_weight = cycle_kl_weight
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.weight_decay = weight_decay
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.seed = seed

        latent = filters * 2 ** num_downsampling
        self.shared_encoder_blocks = [UNITResidualBlock(latent, name=f"shared_enc_{i}") for i in range(shared_layers)]
        self.shared_decoder_blocks = [UNITResidualBlock(latent, name=f"shared_dec_{i}") for i in range(shared_layers)]
        generator = dict(filters=filters, num_downsampling=num_downsampling, num_residual_blocks=num_residual_blocks,
                         shared_encoder_blocks=self.shared_encoder_blocks,
                         shared_decoder_blocks=self.shared_decoder_blocks)
        self.generator_a = UNITGenerator(**generator, name="generator_a")
        self.generator_b = UNITGenerator(**generator, name="generator_b")
        if self.generators_only:
            for network in (self.generator_a, self.generator_b):
                network.build((None, None, None, 3))
            self.built = True
            return
        discriminator = dict(filters=discriminator_filters, num_layers=discriminator_layers,
                             num_scales=discriminator_scales, negative_slope=0.2, padding_mode="reflect",
                             init="junyanz")
        self.discriminator_a = MultiScaleDiscriminator(**discriminator, name="discriminator_a")
        self.discriminator_b = MultiScaleDiscriminator(**discriminator, name="discriminator_b")
        if image_size < self.discriminator_a.min_size():
            raise ValueError(f"image_size {image_size} is below the discriminator's minimum "
                             f"{self.discriminator_a.min_size()} ({discriminator_scales} scales of "
                             f"{discriminator_layers} reflect-padded stride-2 convs)")
        self.seed_generator = keras.random.SeedGenerator(seed, name="latent_noise")
        for network in (self.generator_a, self.generator_b, self.discriminator_a, self.discriminator_b):
            network.build((None, None, None, 3))
        self.built = True

    def default_optimizers(self, total_steps, steps_per_epoch):
        # The reference's StepLR does not depend on the run's length: total_steps and
        # steps_per_epoch are not used.
        adam = lambda: make_adam(StepDecay(self.learning_rate, self.decay_steps, self.decay_rate), self.beta_1,
                                 self.beta_2)
        # The discriminators first: they update first, and their step count is the run's.
        return {"d_optimizer": adam(), "g_optimizer": adam()}

    def optimizer_variables(self):
        return {
            "d_optimizer": unique(self.discriminator_a.trainable_variables
                                  + self.discriminator_b.trainable_variables),
            "g_optimizer": unique(self.generator_a.trainable_variables + self.generator_b.trainable_variables),
        }

    def generators(self):
        """{"a2b": E_A then G_B, "b2a": E_B then G_A}, each one Keras model decoding h
        without noise."""
        translators = {
            "a2b": UNITTranslator(self.generator_a.encoder, self.generator_b.decoder, name="a2b"),
            "b2a": UNITTranslator(self.generator_b.encoder, self.generator_a.decoder, name="b2a")}
        for translator in translators.values():
            translator.build((None, None, None, 3))  # its parts are built: this only marks it
        return translators

    def sample_rows(self, batch):
        real_a, real_b = batch
        gen_a, gen_b = self.generator_a, self.generator_b
        fake_b = gen_b.decode(gen_a.encode(real_a))
        fake_a = gen_a.decode(gen_b.encode(real_b))
        return [("real A", real_a), ("fake B", fake_b), ("cycled A", gen_a.decode(gen_b.encode(fake_b))),
                ("real B", real_b), ("fake A", fake_a), ("cycled B", gen_b.decode(gen_a.encode(fake_a)))]

    def latent_noise(self, h, draw):
        """n ~ N(0, 1) of h's shape, a fresh draw from the model's seed stream.

        `draw` names the reference's variable: "dis_n_a", "dis_n_b" (`dis_update`),
        "n_a", "n_b", "n_a_recon", "n_b_recon" (`gen_update`). The stream ignores it;
        it lets a test substitute known noise.
        """
        del draw
        return ops.cast(keras.random.normal(ops.shape(h), seed=self.seed_generator), h.dtype)

    def adversarial(self, discriminator, images):
        """Σ over scales of mean((D(x) − 1)²): the generator's LSGAN term (`calc_gen_loss`)."""
        return tf.add_n([lsgan_real_loss(logits) for logits in discriminator(images)])

    def discriminator_loss(self, discriminator, fake, real):
        """Σ over scales of mean(D(fake)²) + mean((D(real) − 1)²) (`calc_dis_loss`); fake
        and real in one call (the discriminators normalise nothing)."""
        fake_out, real_out = call_on_both(discriminator, fake, real)
        return tf.add_n([lsgan_fake_loss(f) + lsgan_real_loss(r) for f, r in zip(fake_out, real_out)])

    def discriminator_step(self, real_a, real_b):
        """The reference's `dis_update`: one discriminator update; its losses."""
        gen_a, gen_b = self.generator_a, self.generator_b
        h_a, h_b = gen_a.encode(real_a), gen_b.encode(real_b)
        fake_ba = tf.stop_gradient(gen_a.decode(h_b + self.latent_noise(h_b, "dis_n_b")))
        fake_ab = tf.stop_gradient(gen_b.decode(h_a + self.latent_noise(h_a, "dis_n_a")))
        with tf.GradientTape() as tape:
            d_a_loss = self.gan_weight * self.discriminator_loss(self.discriminator_a, fake_ba, real_a)
            d_b_loss = self.gan_weight * self.discriminator_loss(self.discriminator_b, fake_ab, real_b)
            d_loss = d_a_loss + d_b_loss
        self.update("d_optimizer", tape, d_loss)
        return {"d_loss": d_loss, "d_a_loss": d_a_loss, "d_b_loss": d_b_loss}

    def generator_step(self, real_a, real_b):
        """The reference's `gen_update`: one update of both generators; its losses."""
        gen_a, gen_b = self.generator_a, self.generator_b
        kl = lambda h: tf.reduce_mean(tf.square(tf.cast(h, tf.float32)))
        with tf.GradientTape() as tape:
            h_a, h_b = gen_a.encode(real_a), gen_b.encode(real_b)
            z_a = h_a + self.latent_noise(h_a, "n_a")
            z_b = h_b + self.latent_noise(h_b, "n_b")
            # Each decoder reconstructs its domain and translates the other's code in one call.
            recon_a, fake_ba = call_on_both(gen_a.decoder, z_a, z_b)
            recon_b, fake_ab = call_on_both(gen_b.decoder, z_b, z_a)
            h_a_recon = gen_b.encode(fake_ab)  # A's content re-encoded from B
            h_b_recon = gen_a.encode(fake_ba)
            cycled_a = gen_a.decode(h_a_recon + self.latent_noise(h_a_recon, "n_a_recon"))
            cycled_b = gen_b.decode(h_b_recon + self.latent_noise(h_b_recon, "n_b_recon"))
            adversarial_loss = (self.adversarial(self.discriminator_a, fake_ba)
                                + self.adversarial(self.discriminator_b, fake_ab))
            recon_loss = l1_loss(recon_a, real_a) + l1_loss(recon_b, real_b)
            kl_loss = kl(h_a) + kl(h_b)
            cycle_loss = l1_loss(cycled_a, real_a) + l1_loss(cycled_b, real_b)
            cycle_kl_loss = kl(h_a_recon) + kl(h_b_recon)
            g_loss = (self.gan_weight * adversarial_loss + self.recon_weight * recon_loss
                      + self.kl_weight * kl_loss + self.cycle_weight * cycle_loss
                      + self.cycle_kl_weight * cycle_kl_loss)
        self.update("g_optimizer", tape, g_loss)
        return {"g_loss": g_loss, "adversarial_loss": adversarial_loss, "recon_loss": recon_loss,
                "kl_loss": kl_loss, "cycle_loss": cycle_loss, "cycle_kl_loss": cycle_kl_loss}

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        learning_rate = current_learning_rate(self.d_optimizer)  # the rate this step uses
        logs = self.discriminator_step(real_a, real_b)
        logs.update(self.generator_step(real_a, real_b))
        return {**logs, "learning_rate": learning_rate}

    def get_config(self):
        return {"image_size": self.image_size, "filters": self.filters, "num_downsampling": self.num_downsampling,
                "num_residual_blocks": self.num_residual_blocks, "shared_layers": self.shared_layers,
                "discriminator_filters": self.discriminator_filters,
                "discriminator_layers": self.discriminator_layers,
                "discriminator_scales": self.discriminator_scales, "gan_weight": self.gan_weight,
                "recon_weight": self.recon_weight, "kl_weight": self.kl_weight, "cycle_weight": self.cycle_weight,
                "cycle_kl_weight": self.cycle_kl_weight, "learning_rate": self.learning_rate,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "weight_decay": self.weight_decay,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate, "seed": self.seed}
