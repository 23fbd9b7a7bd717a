"""U-GAT-IT: generator with CAM attention and AdaLIN, global and local discriminators.

Follows the official PyTorch code (bias-free convs, two separate bias-free CAM FCs,
non-affine instance norm, torch default init), which is the code with published
parameter counts; REFERENCE.md 2.3 lists where the TF1 code differs.

Reference: Kim et al., "U-GAT-IT: Unsupervised Generative Attentional Networks with
Adaptive Layer-Instance Normalization for Image-to-Image Translation", ICLR 2020;
znxlwm/UGATIT-pytorch (`networks.py`, `UGATIT.py`).
"""

import functools

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import CAMAttention, InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.blocks import (AdaLINResidualBlock, UGATITResidualBlock, build_stack, check_image_size,
                                        conv, dense, run_stack, sn_conv, upsample_block)
from tf_translate.layers.cam import heatmap_image
from tf_translate.losses import bce_with_logits, l1_loss, lsgan_fake_loss, lsgan_real_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel, call_on_both
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import half_then_linear_decay


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATITGenerator(Generator):
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

    returns_heatmap = True  # (image, CAM logits, heatmap)

    def __init__(self, filters=64, num_residual_blocks=4, image_size=256, light=False, **kwargs):
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.image_size = image_size
        self.light = light
        width = filters * 4

        self.encoder = [ReflectionPadding2D(3), conv(filters, 7, use_bias=False, init="torch"),
                        InstanceNormalization(), layers.ReLU()]
        for mult in (2, 4):
            self.encoder += [conv(filters * mult, 3, strides=2, padding=1, padding_mode="reflect", use_bias=False,
                                  init="torch"), InstanceNormalization(), layers.ReLU()]
        self.encoder += [UGATITResidualBlock(width) for _ in range(num_residual_blocks)]
        self.cam = CAMAttention(width)
        pool = layers.GlobalAveragePooling2D() if light else layers.Flatten()
        self.mlp = [pool, dense(width, activation="relu"), dense(width, activation="relu")]
        self.gamma_fc = dense(width)
        self.beta_fc = dense(width)
        self.decoder_blocks = [AdaLINResidualBlock(width) for _ in range(num_residual_blocks)]
        self.upsampler = upsample_block(filters * 2) + upsample_block(filters) + [
            ReflectionPadding2D(3), conv(3, 7, use_bias=False, init="torch"),
            layers.Activation("tanh", dtype="float32")]

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

    @property
    def fixed_input_size(self):
        """The one input size the network takes (full model), or None (light: any)."""
        return None if self.light else self.image_size

    @property
    def input_multiple(self):
        """Height and width must be multiples of this."""
        return 4

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

    Call args:
        x: NHWC images.
        training: spectral norms run their power iterations.
        consecutive_calls: x stacks this many equal batches that every spectral norm
            treats as that many consecutive calls (`SpectralNorm`; None: one call).
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
        # Keras passes it from this model's call to the spectral norms it calls.
        self._register_call_context_args("consecutive_calls")

        self.stack = sn_conv(3, filters, 2)
        for i in range(1, num_layers - 2):
            mult = 2 ** (i - 1)
            self.stack += sn_conv(filters * mult, filters * mult * 2, 2)
        mult = 2 ** (num_layers - 3)
        self.stack += sn_conv(filters * mult, filters * mult * 2, 1)
        width = filters * mult * 2
        self.cam = CAMAttention(width, activation="leaky_relu", spectral_norm=True)
        self.head = conv(1, 4, padding=1, padding_mode="reflect", use_bias=False, init="torch", spectral_norm=True)

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


def lsgan_real_and_cam(outputs):
    """LSGAN "real" on a discriminator's logits and on its CAM logits (D(x) -> 1)."""
    logits, cam_logit, _ = outputs
    return lsgan_real_loss(logits) + lsgan_real_loss(cam_logit)


def lsgan_fake_and_cam(outputs):
    """LSGAN "fake" on a discriminator's logits and on its CAM logits (D(x) -> 0)."""
    logits, cam_logit, _ = outputs
    return lsgan_fake_loss(logits) + lsgan_fake_loss(cam_logit)


@keras.saving.register_keras_serializable(package="tf_translate")
class UGATIT(TranslationModel):
    """The U-GAT-IT training model: two generators, a global and a local
    discriminator per domain.

    Names: `generator_ab` is the reference's genA2B, `generator_ba` genB2A;
    `discriminator_global_a` / `discriminator_local_a` (disGA / disLA) judge A images
    and `discriminator_global_b` / `discriminator_local_b` (disGB / disLB) judge B.

    One `train_step` is the reference iteration, in its order:
    1. D step: LSGAN on the discriminators' logits and CAM logits, global and local,
       real images -> 1 and the generators' fresh fakes -> 0, times
       `adversarial_weight`; Adam update of all four discriminators.
    2. G step against the *updated* discriminators: adversarial (logits and CAM logits
       -> 1) + `cycle_weight` L1(G_ts(G_st(x_s)), x_s) + `identity_weight`
       L1(G_ts(x_s), x_s) + `cam_weight` [BCE(CAM of G_st(x_s), 1) + BCE(CAM of
       G_st(x_t), 0)] over both directions; Adam update of both generators. ρ of
       AdaLIN/LIN is clamped to [0, 1] by its weight constraint right after that update
       (the reference's `RhoClipper`).
    Both optimizers add `weight_decay`·w to the gradient before Adam, as PyTorch's
    `Adam(weight_decay=...)` does (L2, not decoupled). Discriminators run in training
    mode in both steps, so each spectral norm does one power iteration per call (three
    per iteration), as the reference's.

    Deliberate differences, same results: each generator translates its source and
    its target domain (identity) in one batched call (all normalisation is per image);
    in the D step each discriminator judges the real images and the fakes in one
    batched call with the two calls' spectral-norm semantics (`consecutive_calls=2`);
    the generators' forward pass on the real images is made once and used by both steps (the reference runs it twice with the
    same, not yet updated, generator weights), and the D step sees the fakes detached
    (the reference does not detach them; its G gradients from the D loss are zeroed
    before the G step, so the D gradients are the same with less work). Adam is
    PyTorch's arithmetic with its epsilon 1e-8 (`optimizers.Adam`).

    Args:
        image_size: training crop (`--img_size`, 256); the full generator runs only at it.
        light: the light generator (`--light`; False is the paper's model).
        filters: generator width (`--ch`, 64).
        num_residual_blocks: generator residual blocks (`--n_res`, 4).
        discriminator_filters: discriminator width (`--ch`, 64).
        global_layers, local_layers: depth of the global and local discriminators
            (the reference hard-codes 7 and 5; smaller values are for tests on tiny
            images; a D of n layers needs image_size >= 3 * 2**(n - 2)).
        adversarial_weight, cycle_weight, identity_weight, cam_weight: `--adv_weight`
            1, `--cycle_weight` 10, `--identity_weight` 10, `--cam_weight` 1000.
        learning_rate, beta_1, beta_2, weight_decay: Adam (`--lr` 1e-4, betas (0.5,
            0.999), `--weight_decay` 1e-4).
        seed: unused (the step has no randomness); accepted like every model's.
    Reference: Kim et al., "U-GAT-IT", ICLR 2020; `UGATIT.build_model` and
    `UGATIT.train` in UGATIT-pytorch `UGATIT.py`.
    """

    reference_run = ReferenceRun(steps=1_000_000)  # UGATIT-pytorch --iteration, batch 1, 256 px

    def __init__(self, image_size=256, light=False, filters=64, num_residual_blocks=4,
                 discriminator_filters=64, global_layers=7, local_layers=5, adversarial_weight=1.0,
                 cycle_weight=10.0, identity_weight=10.0, cam_weight=1000.0, learning_rate=1e-4,
                 beta_1=0.5, beta_2=0.999, weight_decay=1e-4, seed=None, **kwargs):
        smallest = 3 * 2 ** (max(global_layers, local_layers) - 2)
        if image_size < smallest:
            raise ValueError(f"image_size {image_size} is too small for discriminators of "
                             f"{global_layers} and {local_layers} layers (needs >= {smallest})")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.light = light
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.discriminator_filters = discriminator_filters
        self.global_layers = global_layers
        self.local_layers = local_layers
        self.adversarial_weight = adversarial_weight
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.cam_weight = cam_weight
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.weight_decay = weight_decay
        self.seed = seed

        self.generator_ab = self.make_generator("generator_ab")
        self.generator_ba = self.make_generator("generator_ba")
        if self.generators_only:
            for network in self.generator_networks():
                network.build((None, None, None, 3))
            self.built = True
            return
        discriminator = lambda layers, name: UGATITDiscriminator(discriminator_filters, layers, name=name)
        self.discriminator_global_a = discriminator(global_layers, "discriminator_global_a")
        self.discriminator_local_a = discriminator(local_layers, "discriminator_local_a")
        self.discriminator_global_b = discriminator(global_layers, "discriminator_global_b")
        self.discriminator_local_b = discriminator(local_layers, "discriminator_local_b")
        for network in self.generator_networks() + self.discriminator_networks():
            network.build((None, None, None, 3))
        self.built = True

    def make_generator(self, name):
        return UGATITGenerator(self.filters, self.num_residual_blocks, self.image_size, self.light,
                               name=name)

    def generator_networks(self):
        return [self.generator_ab, self.generator_ba]

    def discriminator_networks(self):
        return [self.discriminator_global_a, self.discriminator_local_a,
                self.discriminator_global_b, self.discriminator_local_b]

    def default_optimizers(self, total_steps, steps_per_epoch):
        # steps_per_epoch is not used: the reference decays per iteration.
        adam = lambda: make_adam(half_then_linear_decay(self.learning_rate, total_steps), self.beta_1,
                                 self.beta_2)
        # The discriminators' first: their update comes first in each step.
        return {"d_optimizer": adam(), "g_optimizer": adam()}

    def optimizer_variables(self):
        variables = lambda networks: [v for n in networks for v in n.trainable_variables]
        return {"d_optimizer": variables(self.discriminator_networks()),
                "g_optimizer": variables(self.generator_networks())}

    def generators(self):
        return {"a2b": self.generator_ab, "b2a": self.generator_ba}

    def discriminator_loss(self, real_a, real_b, fake_a, fake_b):
        """The reference's `Discriminator_loss` (real -> 1, fake -> 0; logits and CAM
        logits; global and local; both domains). The reference calls each D on the real
        images, then on the fakes, each call advancing its spectral-norm vectors; here
        each D judges both in one batched call that `consecutive_calls=2` makes
        equivalent (same σ per half, same final u, v): batch-2 convolutions read each
        kernel once (full model, 128 px: step 6.6-7.0 -> 5.9 s, peak 5.9 -> 5.5 GB)."""
        loss = 0.0
        for d, real, fake in ((self.discriminator_global_a, real_a, fake_a),
                              (self.discriminator_local_a, real_a, fake_a),
                              (self.discriminator_global_b, real_b, fake_b),
                              (self.discriminator_local_b, real_b, fake_b)):
            on_real, on_fake = call_on_both(functools.partial(d, consecutive_calls=2), real, fake)
            loss += lsgan_real_and_cam(on_real) + lsgan_fake_and_cam(on_fake)
        return self.adversarial_weight * loss

    def extra_generator_losses(self, real_a, real_b, fake_a, fake_b):
        """{metric name: (weight, loss)} added to the generators' loss (photo2cartoon)."""
        return {}

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step uses
        with tf.GradientTape() as g_tape:
            # Each generator translates its source domain and, for the identity loss,
            # its target domain in one call (a third less graph, batch-2 products).
            (fake_b, cam_ab_a, _), (identity_b, cam_ab_b, _) = call_on_both(self.generator_ab, real_a, real_b)
            (fake_a, cam_ba_b, _), (identity_a, cam_ba_a, _) = call_on_both(self.generator_ba, real_b, real_a)

            # 1. D step on these fakes, detached (see the class docstring).
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_loss = self.discriminator_loss(real_a, real_b, tf.stop_gradient(fake_a),
                                                     tf.stop_gradient(fake_b))
                self.update("d_optimizer", d_tape, d_loss)

            # 2. G step; the discriminators now hold their updated weights.
            adversarial_loss = (
                lsgan_real_and_cam(self.discriminator_global_a(fake_a, training=True))
                + lsgan_real_and_cam(self.discriminator_local_a(fake_a, training=True))
                + lsgan_real_and_cam(self.discriminator_global_b(fake_b, training=True))
                + lsgan_real_and_cam(self.discriminator_local_b(fake_b, training=True)))
            cycle_loss = (l1_loss(self.generator_ba(fake_b, training=True)[0], real_a)
                          + l1_loss(self.generator_ab(fake_a, training=True)[0], real_b))
            identity_loss = l1_loss(identity_a, real_a) + l1_loss(identity_b, real_b)
            # G_st's CAM logit says "from s" (1) for x_s and "not from s" (0) for x_t.
            cam_loss = (bce_with_logits(cam_ba_b, 1.0) + bce_with_logits(cam_ba_a, 0.0)
                        + bce_with_logits(cam_ab_a, 1.0) + bce_with_logits(cam_ab_b, 0.0))
            g_loss = (self.adversarial_weight * adversarial_loss + self.cycle_weight * cycle_loss
                      + self.identity_weight * identity_loss + self.cam_weight * cam_loss)
            extra = self.extra_generator_losses(real_a, real_b, fake_a, fake_b)
            for weight, loss in extra.values():
                g_loss += weight * loss
        self.update("g_optimizer", g_tape, g_loss)
        return {"g_loss": g_loss, "d_loss": d_loss, "adversarial_loss": adversarial_loss,
                "cycle_loss": cycle_loss, "identity_loss": identity_loss, "cam_loss": cam_loss,
                **{name: loss for name, (_, loss) in extra.items()},
                "learning_rate": learning_rate}

    def sample_rows(self, batch):
        """The reference's sample grid (one column per image): for A, real A, then the
        heatmap and image of A->A (identity), A->B and A->B->A; the same for B."""
        real_a, real_b = batch[0], batch[1]
        size = real_a.shape[1]
        rows = []
        for name, other, real, forward, backward in (
                ("A", "B", real_a, self.generator_ab, self.generator_ba),
                ("B", "A", real_b, self.generator_ba, self.generator_ab)):
            identity, _, identity_heatmap = backward(real, training=False)
            fake, _, fake_heatmap = forward(real, training=False)
            cycled, _, cycled_heatmap = backward(fake, training=False)
            rows += [(f"real {name}", real),
                     (f"{name}->{name} heatmap", heatmap_image(identity_heatmap, size)),
                     (f"{name}->{name}", identity),
                     (f"{name}->{other} heatmap", heatmap_image(fake_heatmap, size)),
                     (f"{name}->{other}", fake),
                     (f"{name}->{other}->{name} heatmap", heatmap_image(cycled_heatmap, size)),
                     (f"{name}->{other}->{name}", cycled)]
        return rows

    def get_config(self):
        return {"image_size": self.image_size, "light": self.light, "filters": self.filters,
                "num_residual_blocks": self.num_residual_blocks,
                "discriminator_filters": self.discriminator_filters,
                "global_layers": self.global_layers, "local_layers": self.local_layers,
                "adversarial_weight": self.adversarial_weight, "cycle_weight": self.cycle_weight,
                "identity_weight": self.identity_weight, "cam_weight": self.cam_weight,
                "learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "weight_decay": self.weight_decay, "seed": self.seed}
