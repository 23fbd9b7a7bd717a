"""NICE-GAN: the discriminator's first layers are the encoder; decoupled training.

Each domain's discriminator starts with a shared stem (two spectral-normalised 4x4
stride-2 convs and a CAM block with a learnable residual weight) whose output `z` is
also that domain's image encoding. The generators are decoders from `z`. The encoder
is trained only by the discriminator loss ("decoupled training"): the generator
optimizer holds the decoders alone.

Follows the official PyTorch code (REFERENCE.md 2.5): bias-free decoder convs except
the first 3x3 and the sub-pixel 1x1 convs, torch default init, unbiased variances in
ILN/AdaILN with a softmax over the (IN, LN) weights.

Reference: Chen et al., "Reusing Discriminators for Encoding: Towards Unsupervised
Image-to-Image Translation", CVPR 2020; alpc91/NICE-GAN-pytorch (`networks.py`,
`NICE.py`, `main.py`).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import LIN, SpectralNorm
from tf_translate.layers.blocks import (AdaLINResidualBlock, build_stack, check_image_size, conv, dense, run_stack,
                                        sn_conv)
from tf_translate.layers.cam import heatmap_image
from tf_translate.layers.initializers import torch_bias_init, torch_kernel_init
from tf_translate.losses import l1_loss, lsgan_fake_loss, lsgan_real_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import half_then_linear_decay


@keras.saving.register_keras_serializable(package="tf_translate")
class ResidualCAMAttention(layers.Layer):
    """NICE-GAN's CAM block: one FC over [GAP, GMP] and a learnable residual weight λ.

    Unlike U-GAT-IT's `CAMAttention` (two FCs C → 1), one spectral-normalised bias-free
    FC maps concat[GAP(x), GMP(x)] (2C) to a single CAM logit. Its raw weight
    (`weight_orig`, 2C values) re-weights the channels of [x, x]; a 1x1 conv 2C → C
    with bias mixes them; the output is LeakyReLU_0.2(λ·y + x) with λ a learnable
    scalar starting at 0, so the block starts as the identity (then LeakyReLU). The
    heatmap is the channel sum of the output.

    Call args:
        x: NHWC features with `channels` channels.
    Returns:
        (z [B, H, W, C], cam_logit [B, 1], heatmap [B, H, W, 1]).
    Args:
        channels: C (reference `ndf * 2`).
    Reference: `Discriminator` (`fc`, `conv1x1`, `lamda`) in NICE-GAN-pytorch `networks.py`.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.fc = SpectralNorm(layers.Dense(1, use_bias=False, kernel_initializer=torch_kernel_init()),
                               name="fc")
        self.conv1x1 = layers.Conv2D(self.channels, 1, kernel_initializer=torch_kernel_init(),
                                     bias_initializer=torch_bias_init(2 * self.channels), name="conv1x1")

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            raise ValueError(f"ResidualCAMAttention({self.channels}) got {input_shape[-1]} input channels")
        self.fc.build((input_shape[0], 2 * self.channels))
        self.conv1x1.build(tuple(input_shape[:-1]) + (2 * self.channels,))
        self.lamda = self.add_weight(shape=(), initializer="zeros", name="lamda")

    def call(self, x):
        pooled = ops.concatenate([ops.mean(x, axis=(1, 2)), ops.max(x, axis=(1, 2))], axis=-1)
        cam_logit = self.fc(pooled)
        weights = ops.cast(self.fc.layer.kernel[:, 0], x.dtype)  # raw kernel, as `weight_orig`
        y = self.conv1x1(ops.concatenate([x, x], axis=-1) * weights)
        z = ops.leaky_relu(ops.cast(self.lamda, x.dtype) * y + x, negative_slope=0.2)
        return z, cam_logit, ops.sum(z, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return input_shape, (input_shape[0], 1), input_shape[:-1] + (1,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="tf_translate")
class NICEGANEncoder(keras.Model):
    """The shared stem of a NICE-GAN discriminator: the domain's encoder.

    Reflect pad 1, SN 4x4 stride-2 conv 3 → `filters`, LeakyReLU 0.2, the same to
    2·`filters`, then `ResidualCAMAttention`. Returns float32
    (z [B, H/4, W/4, 2·filters], cam_logit [B, 1], heatmap [B, H/4, W/4, 1]).

    Args:
        filters: width of the first layer (reference `--ch`, 64).
    Reference: `Discriminator.model` and its CAM block in NICE-GAN-pytorch `networks.py`.
    """

    def __init__(self, filters=64, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.stem = sn_conv(3, filters, 2) + sn_conv(filters, filters * 2, 2)
        self.cam = ResidualCAMAttention(filters * 2, name="cam")

    def build(self, input_shape):
        self.cam.build(build_stack(self.stem, input_shape))
        self.built = True

    def call(self, x, training=False):
        z, cam_logit, heatmap = self.cam(run_stack(self.stem, x))
        return ops.cast(z, "float32"), ops.cast(cam_logit, "float32"), ops.cast(heatmap, "float32")

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        quarter = lambda n: None if n is None else n // 4
        return (b, quarter(h), quarter(w), self.filters * 2), (b, 1), (b, quarter(h), quarter(w), 1)

    def get_config(self):
        return {"filters": self.filters, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class NICEGANDiscriminator(keras.Model):
    """The NICE-GAN multi-scale discriminator whose stem is the domain's encoder.

    `encoder` (`NICEGANEncoder`) gives z at 1/4 resolution (2·`filters` channels).
    Branch 0 (local, receptive field 70 px at `num_layers=7`): SN 4x4 stride-2 convs
    up to 1/8 resolution, a stride-1 conv doubling the width, reflect pad, a bias-free
    SN 4x4 conv to 1. Branch 1 (global, 286 px) continues from branch 0's stride-2
    part: two more stride-2 convs, a stride-1 conv, reflect pad, a bias-free SN 4x4 conv
    to 1. At 256 px and the defaults: local 30x30, global 6x6 logits; 46,874,433
    trainable parameters (the encoder 167,489 of them), plus the spectral norms'
    non-trainable u, v (torch buffers).

    The global branch needs inputs of at least 3·2^(num_layers-2) pixels (96 at the
    default) because every reflection pad needs a map of 2 or more pixels.

    Returns float32 (local_logits, global_logits, cam_logit [B, 1], heatmap, z).

    Args:
        filters: width of the first layer (reference `--ch`, 64).
        num_layers: reference `--n_dis` (7); 6 is the smallest that builds.
    Reference: `Discriminator` in NICE-GAN-pytorch `networks.py` (disA, disB).
    """

    def __init__(self, filters=64, num_layers=7, **kwargs):
        if num_layers < 6:
            raise ValueError(f"num_layers must be at least 6 (the reference's layer widths do not "
                             f"chain below that), got {num_layers}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers
        n, f = num_layers, filters
        self.encoder = NICEGANEncoder(filters, name="encoder")
        self.local_down = []  # reference Dis0_0
        for i in range(2, n - 4):
            self.local_down += sn_conv(f * 2 ** (i - 1), f * 2 ** i, 2)
        self.local_tail = sn_conv(f * 2 ** (n - 5), f * 2 ** (n - 4), 1)  # Dis0_1
        self.local_head = conv(1, 4, padding=1, padding_mode="reflect", use_bias=False, init="torch",
                               spectral_norm=True)  # pad + conv0
        self.global_down = []  # Dis1_0
        for i in range(n - 4, n - 2):
            self.global_down += sn_conv(f * 2 ** (i - 1), f * 2 ** i, 2)
        self.global_tail = sn_conv(f * 2 ** (n - 3), f * 2 ** (n - 2), 1)  # Dis1_1
        self.global_head = conv(1, 4, padding=1, padding_mode="reflect", use_bias=False, init="torch",
                                spectral_norm=True)  # pad + conv1

    def min_size(self):
        """The smallest input height and width the global branch accepts."""
        return 3 * 2 ** (self.num_layers - 2)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.encoder.build(input_shape)
        shape = self.encoder.compute_output_shape(input_shape)[0]
        shape = build_stack(self.local_down, shape)
        build_stack(self.local_tail + [self.local_head], shape)
        build_stack(self.global_down + self.global_tail + [self.global_head], shape)
        self.built = True

    def __call__(self, x, *args, **kwargs):
        # Checked here: Keras' __call__ would wrap a reflect-padding failure in a long report.
        small = [d for d in tuple(x.shape)[1:3] if d is not None and d < self.min_size()]
        if small:
            raise ValueError(f"NICEGANDiscriminator(num_layers={self.num_layers}) needs images of at "
                             f"least {self.min_size()}x{self.min_size()}, got {x.shape[1]}x{x.shape[2]}")
        return super().__call__(x, *args, **kwargs)

    def encode(self, x, training=False):
        """z: the domain encoding [B, H/4, W/4, 2·filters] (float32)."""
        return self.encoder(x, training=training)[0]

    def call(self, x, training=False):
        z, cam_logit, heatmap = self.encoder(x, training=training)
        x0 = run_stack(self.local_down, z)
        x1 = run_stack(self.global_down + self.global_tail, x0)
        x0 = run_stack(self.local_tail, x0)
        local_logits = ops.cast(self.local_head(x0), "float32")
        global_logits = ops.cast(self.global_head(x1), "float32")
        return local_logits, global_logits, cam_logit, heatmap, z

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class NICEGANEncoderOnly(keras.Model):
    """A NICE-GAN discriminator with its encoder only, none of its heads: what the
    generators need of a discriminator (`NICEGAN(generators_only=True)`, for translate
    and export). The encoder has the discriminator's attribute name, so a training
    checkpoint loads it; the heads' weights in the file are not read.

    Args:
        filters: width of the encoder's first layer (reference `--ch`, 64).
        num_layers: the discriminator's `--n_dis`; accepted so that both classes are
            built alike, and not used.
    """

    def __init__(self, filters=64, num_layers=7, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers
        self.encoder = NICEGANEncoder(filters, name="encoder")

    def build(self, input_shape):
        self.encoder.build(tuple(input_shape))
        self.built = True

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class PixelShuffle(layers.Layer):
    """Sub-pixel upsampling with `torch.nn.PixelShuffle`'s channel order.

    PyTorch reads input channel c·r² + i·r + j as output pixel (i, j) of channel c
    (channels ordered (C, r, r), major to minor); `tf.nn.depth_to_space` reads channel
    (i·r + j)·C + c (order (r, r, C)). The channels are regrouped to TF's order first,
    so the 1x1 conv before this layer has PyTorch's output-channel layout and imported
    weights need no permutation. TF ops because depth-to-space is the point (and a
    TFLite builtin).

    Args:
        upscale_factor: r.
    Reference: `nn.PixelShuffle(2)` in NICE-GAN-pytorch `networks.py` (`UpBlock2`).
    """

    def __init__(self, upscale_factor=2, **kwargs):
        super().__init__(**kwargs)
        self.upscale_factor = int(upscale_factor)

    def call(self, x):
        r2 = self.upscale_factor ** 2
        channels = x.shape[-1] // r2
        shape = tf.shape(x)
        grouped = tf.reshape(x, tf.stack([shape[0], shape[1], shape[2], channels, r2]))
        tf_order = tf.reshape(tf.transpose(grouped, [0, 1, 2, 4, 3]), shape)
        return tf.nn.depth_to_space(tf_order, self.upscale_factor)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.upscale_factor
        grow = lambda n: None if n is None else n * r
        return (b, grow(h), grow(w), c // (r * r))

    def get_config(self):
        return {**super().get_config(), "upscale_factor": self.upscale_factor}


@keras.saving.register_keras_serializable(package="tf_translate")
class NICEGANGenerator(keras.Model):
    """The NICE-GAN generator: a decoder from a discriminator's encoding z.

    3x3 conv 2·filters → 4·filters (with bias), ILN, ReLU; an MLP (light: on the GAP of
    that map, any size; full: on the flattened map, only `image_size`) gives γ, β for
    `num_residual_blocks` AdaILN residual blocks; then 2 × [3x3 conv halving the width,
    ILN, ReLU, 1x1 conv ×4 channels (with bias), PixelShuffle(2), ILN, ReLU]; reflect
    pad 3, 7x7 conv to 3, tanh. ILN/AdaILN weight IN and LN by softmax(ρ) (`rho_mode=
    "softmax"`). 8,104,640 parameters light, 276,474,560 full at 256 px.

    Input z [B, H/4, W/4, 2·filters]; output the float32 image [B, H, W, 3] in [-1, 1].

    Differences from the reference: Keras flattens the NHWC map in (H, W, C) order where
    torch flattens (C, H, W), so importing the full model's first MLP weight needs a row
    permutation.

    Args:
        filters: reference `--ch` (64).
        num_residual_blocks: AdaILN blocks (`--n_res`, 6).
        image_size: the only image size of the full model (`--img_size`, 256).
        light: GAP before the MLP instead of flattening (`--light`).
    Reference: `ResnetGenerator` in NICE-GAN-pytorch `networks.py` (gen2B, gen2A).
    """

    def __init__(self, filters=64, num_residual_blocks=6, image_size=256, light=False, **kwargs):
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.image_size = image_size
        self.light = light
        width = filters * 4
        iln = lambda: LIN(rho_mode="softmax")

        self.entry = [conv(width, 3, padding=1, padding_mode="reflect", use_bias=True, init="torch",
                           fan_in=filters * 2 * 9), iln(), layers.ReLU()]
        pool = layers.GlobalAveragePooling2D() if light else layers.Flatten()
        self.mlp = [pool, dense(width, activation="relu"), dense(width, activation="relu")]
        self.gamma_fc = dense(width)
        self.beta_fc = dense(width)
        self.blocks = [AdaLINResidualBlock(width, rho_mode="softmax")
                       for _ in range(num_residual_blocks)]
        self.upsampler = []
        for mult in (4, 2):
            out = filters * mult // 2
            self.upsampler += [
                conv(out, 3, padding=1, padding_mode="reflect", use_bias=False, init="torch"), iln(),
                layers.ReLU(),
                layers.Conv2D(out * 4, 1, kernel_initializer=torch_kernel_init(),
                              bias_initializer=torch_bias_init(out)),
                PixelShuffle(2), iln(), layers.ReLU()]
        self.upsampler += [conv(3, 7, padding=3, padding_mode="reflect", use_bias=False, init="torch"),
                           layers.Activation("tanh", dtype="float32")]

    def image_shape(self, z_shape):
        quadruple = lambda n: None if n is None else n * 4
        return (z_shape[0], quadruple(z_shape[1]), quadruple(z_shape[2]), 3)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] != self.filters * 2:
            raise ValueError(f"NICEGANGenerator(filters={self.filters}) decodes z of {self.filters * 2} "
                             f"channels, got {input_shape[-1]}")
        check_image_size(type(self).__name__, self.image_shape(input_shape), self.light,
                         self.image_size, 4)
        if not self.light:  # the flattening MLP fixes the size
            side = self.image_size // 4
            input_shape = (input_shape[0], side, side, input_shape[3])
        shape = build_stack(self.entry, input_shape)
        code_shape = build_stack(self.mlp, shape)
        self.gamma_fc.build(code_shape)
        self.beta_fc.build(code_shape)
        for block in self.blocks:
            block.build(shape)
        build_stack(self.upsampler, shape)
        self.built = True

    def __call__(self, z, *args, **kwargs):
        check_image_size(type(self).__name__, self.image_shape(tuple(z.shape)), self.light,
                         self.image_size, 4)
        return super().__call__(z, *args, **kwargs)

    def call(self, z):
        x = run_stack(self.entry, z)
        code = run_stack(self.mlp, x)
        gamma, beta = self.gamma_fc(code), self.beta_fc(code)
        for block in self.blocks:
            x = block(x, gamma, beta)
        return run_stack(self.upsampler, x)

    def compute_output_shape(self, input_shape):
        return self.image_shape(tuple(input_shape))

    def get_config(self):
        return {"filters": self.filters, "num_residual_blocks": self.num_residual_blocks,
                "image_size": self.image_size, "light": self.light, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class NICEGANTranslator(Generator):
    """One translation direction as one model: a domain's encoder, then a decoder.

    Maps [-1, 1] images to [-1, 1] images (float32), so the common export, grids and
    `translate` take it like any generator. It shares the training model's encoder
    and decoder (no copies); a SavedModel of it holds those two only, not the
    discriminator heads. `fixed_input_size` / `input_multiple` tell the export which
    sizes it takes (full decoder: its image_size only; light: multiples of 4).

    Args:
        encoder: a `NICEGANEncoder` (the source domain discriminator's stem).
        decoder: a `NICEGANGenerator` decoding into the target domain.
    Reference: `gen2B(disA(x)[4])` in the test phase of NICE-GAN-pytorch `NICE.py`.
    """

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    @property
    def fixed_input_size(self):
        return None if self.decoder.light else self.decoder.image_size

    @property
    def input_multiple(self):
        return 4

    def build(self, input_shape):
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build(self.encoder.compute_output_shape(tuple(input_shape))[0])
        self.built = True

    def call(self, x):
        return self.decoder(self.encoder(x)[0])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

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
class NICEGAN(TranslationModel):
    """The NICE-GAN training model: two discriminators that are also the encoders, two
    decoders, decoupled training.

    Names: `discriminator_a` (reference disA) judges A images and its stem encodes them
    (E_A); `discriminator_b` (disB) likewise for B. `generator_ab` (gen2B) decodes a z
    into a B image, `generator_ba` (gen2A) into an A image. A→B is
    generator_ab(discriminator_a.encode(x)).

    One `train_step` is the reference iteration, in its order:
    1. discriminator update: LSGAN on the local, global and CAM outputs of each D for
       real images and for fakes decoded from the real images' encodings (fakes held
       constant). The encoders are part of the discriminators, so this loss alone
       trains them.
    2. generator update against the updated discriminators (z re-encoded with them):
       LSGAN (local, global, CAM) + `cycle_weight` × L1(G_BA(E_B(G_AB(E_A(a)))), a) +
       `recon_weight` × L1(G_BA(E_A(a)), a), and the same for B. The gradient reaches
       the decoders only (`g_optimizer` holds only them); the encoders' share is
       dropped, as the reference's `zero_grad` before its next D step does.
    Both optimizers apply the reference's weight decay as PyTorch's Adam does: 1e-4·w
    added to the gradient before the moments (L2, not decoupled AdamW).

    Args:
        image_size: training size (reference `--img_size`, 256); the full decoder runs
            only at this size.
        light: the light decoder (GAP before its MLP; reference `--light`). The paper's
            numbers are for the light version (maintainer, issue #18).
        filters: reference `--ch` (64).
        num_residual_blocks: AdaILN blocks per decoder (`--n_res`, 6).
        discriminator_layers: `--n_dis` (7).
        adversarial_weight, cycle_weight, recon_weight: `--adv_weight` 1,
            `--cycle_weight` 10, `--recon_weight` 10.
        learning_rate, beta_1, beta_2, weight_decay: Adam settings (`--lr` 1e-4,
            betas (0.5, 0.999), `--weight_decay` 1e-4).
        seed: accepted for the common CLI; the step itself draws no random numbers.
    Reference: `NICE.build_model` and `NICE.train` in NICE-GAN-pytorch `NICE.py`.
    """

    reference_run = ReferenceRun(steps=300_000)  # NICE-GAN-pytorch --iteration, batch 1, 256 px

    def __init__(self, image_size=256, light=False, filters=64, num_residual_blocks=6,
                 discriminator_layers=7, adversarial_weight=1.0, cycle_weight=10.0, recon_weight=10.0,
                 learning_rate=1e-4, beta_1=0.5, beta_2=0.999, weight_decay=1e-4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.light = light
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.discriminator_layers = discriminator_layers
        self.adversarial_weight = adversarial_weight
        self.cycle_weight = cycle_weight
        self.recon_weight = recon_weight
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.weight_decay = weight_decay
        self.seed = seed

        decoder = dict(filters=filters, num_residual_blocks=num_residual_blocks, image_size=image_size,
                       light=light)
        self.generator_ab = NICEGANGenerator(**decoder, name="generator_ab")
        self.generator_ba = NICEGANGenerator(**decoder, name="generator_ba")
        # The generators start with the discriminators' encoders: generators_only builds
        # those stems (at the discriminators' checkpoint paths) and not the heads.
        discriminator = NICEGANEncoderOnly if self.generators_only else NICEGANDiscriminator
        self.discriminator_a = discriminator(filters, discriminator_layers, name="discriminator_a")
        self.discriminator_b = discriminator(filters, discriminator_layers, name="discriminator_b")
        for network in (self.discriminator_a, self.discriminator_b):
            network.build((None, image_size, image_size, 3))
        z_shape = (None, None, None, filters * 2) if light else (None, image_size // 4, image_size // 4,
                                                                 filters * 2)
        for network in (self.generator_ab, self.generator_ba):
            network.build(z_shape)
        self.built = True

    def default_optimizers(self, total_steps, steps_per_epoch):
        # The reference lowers lr by lr/(N//2) before each iteration past N//2 (`NICE.train`),
        # as U-GAT-IT's does; steps_per_epoch is not used: the reference decays per step.
        adam = lambda: make_adam(half_then_linear_decay(self.learning_rate, total_steps), self.beta_1,
                                 self.beta_2)
        # The discriminators first: they update first, and their step count is the run's.
        return {"d_optimizer": adam(), "g_optimizer": adam()}

    def optimizer_variables(self):
        return {
            "d_optimizer": (self.discriminator_a.trainable_variables
                            + self.discriminator_b.trainable_variables),
            "g_optimizer": self.generator_ab.trainable_variables + self.generator_ba.trainable_variables,
        }

    def generators(self):
        """{"a2b": E_A then G_AB, "b2a": E_B then G_BA}, each one Keras model."""
        translators = {"a2b": NICEGANTranslator(self.discriminator_a.encoder, self.generator_ab, name="a2b"),
                       "b2a": NICEGANTranslator(self.discriminator_b.encoder, self.generator_ba, name="b2a")}
        for translator in translators.values():
            translator.build((None, None, None, 3))  # its parts are built: this only marks it
        return translators

    def sample_rows(self, batch):
        real_a, real_b = batch
        rows = []
        for name, other, real, encoder, decoder, back_encoder, back_decoder in (
                ("A", "B", real_a, self.discriminator_a, self.generator_ab, self.discriminator_b,
                 self.generator_ba),
                ("B", "A", real_b, self.discriminator_b, self.generator_ba, self.discriminator_a,
                 self.generator_ab)):
            z, _, heatmap = encoder.encoder(real)
            fake = decoder(z)
            size = real.shape[1]
            rows += [(f"real {name}", real), (f"heatmap {name}", heatmap_image(heatmap, size)),
                     (f"reconstructed {name}", back_decoder(z)), (f"fake {other}", fake),
                     (f"cycled {name}", back_decoder(back_encoder.encode(fake)))]
        return rows

    def adversarial(self, outputs, real):
        """LSGAN on the local, global and CAM outputs of one discriminator call."""
        loss = lsgan_real_loss if real else lsgan_fake_loss
        local_logits, global_logits, cam_logit = outputs[:3]
        return loss(global_logits) + loss(cam_logit) + loss(local_logits)

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        learning_rate = current_learning_rate(self.d_optimizer)  # the rate this step uses
        d_a, d_b = self.discriminator_a, self.discriminator_b
        g_ab, g_ba = self.generator_ab, self.generator_ba

        # 1. Discriminators (and with them the encoders).
        with tf.GradientTape() as tape:
            real_a_out = d_a(real_a, training=True)
            real_b_out = d_b(real_b, training=True)
            fake_a2b = tf.stop_gradient(g_ab(real_a_out[4], training=True))
            fake_b2a = tf.stop_gradient(g_ba(real_b_out[4], training=True))
            d_a_loss = self.adversarial_weight * (
                self.adversarial(real_a_out, True) + self.adversarial(d_a(fake_b2a, training=True), False))
            d_b_loss = self.adversarial_weight * (
                self.adversarial(real_b_out, True) + self.adversarial(d_b(fake_a2b, training=True), False))
            d_loss = d_a_loss + d_b_loss
        self.update("d_optimizer", tape, d_loss)

        # 2. Decoders, against the updated discriminators and encoders.
        with tf.GradientTape() as tape:
            # Full discriminator calls, as the reference's: each runs every spectral norm's
            # power iteration once; the unused logits are pruned from a compiled step.
            real_a_z = d_a(real_a, training=True)[4]
            real_b_z = d_b(real_b, training=True)[4]
            fake_a2b = g_ab(real_a_z, training=True)
            fake_b2a = g_ba(real_b_z, training=True)
            fake_a_out = d_a(fake_b2a, training=True)
            fake_b_out = d_b(fake_a2b, training=True)
            adversarial_loss = self.adversarial(fake_a_out, True) + self.adversarial(fake_b_out, True)
            cycle_loss = (l1_loss(g_ba(fake_b_out[4], training=True), real_a)
                          + l1_loss(g_ab(fake_a_out[4], training=True), real_b))
            recon_loss = (l1_loss(g_ba(real_a_z, training=True), real_a)
                          + l1_loss(g_ab(real_b_z, training=True), real_b))
            g_loss = (self.adversarial_weight * adversarial_loss + self.cycle_weight * cycle_loss
                      + self.recon_weight * recon_loss)
        self.update("g_optimizer", tape, g_loss)
        return {"g_loss": g_loss, "d_loss": d_loss, "adversarial_loss": adversarial_loss,
                "cycle_loss": cycle_loss, "recon_loss": recon_loss, "d_a_loss": d_a_loss,
                "d_b_loss": d_b_loss, "learning_rate": learning_rate}

    def get_config(self):
        return {"image_size": self.image_size, "light": self.light, "filters": self.filters,
                "num_residual_blocks": self.num_residual_blocks,
                "discriminator_layers": self.discriminator_layers,
                "adversarial_weight": self.adversarial_weight, "cycle_weight": self.cycle_weight,
                "recon_weight": self.recon_weight, "learning_rate": self.learning_rate,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "weight_decay": self.weight_decay,
                "seed": self.seed}
