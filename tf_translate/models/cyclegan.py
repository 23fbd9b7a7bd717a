"""CycleGAN: ResNet generator, 70x70 PatchGAN discriminator and the training model.

Reference: Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017; junyanz/pytorch-CycleGAN-and-pix2pix
(`models/networks.py`, `models/cycle_gan_model.py`).
"""

import keras
import tensorflow as tf
from keras import layers

from tf_translate.image_pool import ImagePool
from tf_translate.layers import InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.blocks import ResidualBody, build_stack, conv, run_stack
from tf_translate.layers.initializers import junyanz_kernel_init
from tf_translate.layers.patchgan import PatchGANDiscriminator
from tf_translate.layers.xnnpack import NearestUpsampling2D
from tf_translate.losses import l1_loss, lsgan_fake_loss, lsgan_real_loss
from tf_translate.models.base import Generator, TranslationModel, call_on_both
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import junyanz_decay


@keras.saving.register_keras_serializable(package="tf_translate")
class ResidualBlock(ResidualBody):
    """x + [reflect pad, 3x3 conv, IN, ReLU, reflect pad, 3x3 conv, IN](x).

    Args:
        filters: channels in and out.
        norm_affine: instance norm with a learned per-channel scale and offset.
        init: "junyanz" (N(0, 0.02)) or "xavier" (CUT's xavier-normal, gain 0.02).
    Reference: `ResnetBlock` in junyanz `networks.py` (padding_type="reflect", no dropout).
    """

    def __init__(self, filters, norm_affine=False, init="junyanz", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.norm_affine = norm_affine
        self.init = init
        self.body = [
            ReflectionPadding2D(1), conv(filters, 3, use_bias=True, init=init),
            InstanceNormalization(affine=norm_affine), layers.ReLU(),
            ReflectionPadding2D(1), conv(filters, 3, use_bias=True, init=init),
            InstanceNormalization(affine=norm_affine),
        ]

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters, "norm_affine": self.norm_affine}
        return {**config, "init": self.init} if self.init != "junyanz" else config


def transposed_upsampling(filters, kernel_initializer):
    """junyanz's up-sampling conv, ConvTranspose 3x3 s2 (padding 1, output_padding 1).

    PyTorch writes output pixel 2i + k - 1; Keras "valid" writes 2i + k, one row/column
    more. Cropping the first row and column gives the reference's grid exactly.
    """
    return keras.Sequential([
        layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", kernel_initializer=kernel_initializer),
        layers.Cropping2D(((1, 0), (1, 0))),
    ])


@keras.saving.register_keras_serializable(package="tf_translate")
class ResNetGenerator(Generator):
    """The junyanz `resnet_9blocks` / `resnet_6blocks` generator.

    c7s1-64, d128, d256, R256 x N, u128, u64, c7s1-3, tanh; non-affine instance norm, so
    every conv has a bias (11,378,179 parameters with 9 blocks).

    Args:
        filters: width of the first layer (reference `--ngf`, 64).
        num_residual_blocks: 9 (`resnet_9blocks`) or 6 (`resnet_6blocks`).
        upsampling: "transpose" (the reference's ConvTranspose 3x3 s2, padding 1,
            output_padding 1) or "resize_conv" (nearest x2 then 3x3 conv; no
            checkerboard artefacts, same parameter count).
        output_channels: channels of the output image.
        norm_affine: instance norm with a learned scale and offset. The reference's
            default is non-affine; checkpoints of its older versions (and of projects
            built on it, e.g. vintagify) use affine instance norm. Its code keeps the
            conv biases either way (`use_bias` tests only for InstanceNorm2d), so the
            affine variant has 11,388,675 parameters with 9 blocks.
    Reference: `ResnetGenerator` in junyanz `networks.py`.
    """

    def __init__(self, filters=64, num_residual_blocks=9, upsampling="transpose",
                 output_channels=3, norm_affine=False, **kwargs):
        if upsampling not in ("transpose", "resize_conv"):
            raise ValueError(f"upsampling must be 'transpose' or 'resize_conv', got {upsampling!r}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.upsampling = upsampling
        self.output_channels = output_channels
        self.norm_affine = norm_affine

        norm = lambda: InstanceNormalization(affine=norm_affine)
        stack = [ReflectionPadding2D(3), conv(filters, 7, use_bias=True, init="junyanz"), norm(), layers.ReLU()]
        for mult in (2, 4):
            stack += [conv(filters * mult, 3, strides=2, padding=1, padding_mode="zeros", use_bias=True,
                           init="junyanz"), norm(), layers.ReLU()]
        stack += [ResidualBlock(filters * 4, norm_affine) for _ in range(num_residual_blocks)]
        for mult in (2, 1):
            stack += [self._upsample(filters * mult), norm(), layers.ReLU()]
        stack += [ReflectionPadding2D(3), conv(output_channels, 7, use_bias=True, init="junyanz"),
                  layers.Activation("tanh", dtype="float32")]
        self.stack = stack

    def _upsample(self, filters):
        if self.upsampling == "resize_conv":
            return keras.Sequential([NearestUpsampling2D(2),
                                     ReflectionPadding2D(1), conv(filters, 3, use_bias=True, init="junyanz")])
        return transposed_upsampling(filters, junyanz_kernel_init())

    def build(self, input_shape):
        build_stack(self.stack, input_shape)
        self.built = True

    def call(self, x):
        return run_stack(self.stack, x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {"filters": self.filters, "num_residual_blocks": self.num_residual_blocks,
                "upsampling": self.upsampling, "output_channels": self.output_channels,
                "norm_affine": self.norm_affine, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class CycleGAN(TranslationModel):
    """The CycleGAN training model: two generators, two PatchGANs, two image pools.

    `generator_ab` is the reference's netG_A (the paper's G: X→Y), `generator_ba` netG_B
    (F: Y→X). Discriminators are named by the domain they judge: `discriminator_b`
    judges B images (the paper's D_Y, the reference's netD_A, which judges G_A's
    outputs) and `discriminator_a` judges A images (D_X, netD_B).

    One `train_step` is the reference iteration: the generators' update (LSGAN + cycle +
    identity) then both discriminators' update on pooled fakes (loss x 0.5). The
    discriminators' loss reads only pre-step weights and fakes made by the pre-step
    generators, so both gradients are taken before either update is applied; the
    result equals the reference's sequential order.

    Args:
        image_size: training crop (reference `--crop_size`, 256).
        filters, num_residual_blocks, upsampling, norm_affine: see `ResNetGenerator`.
        discriminator_filters: reference `--ndf` (64).
        cycle_weight: reference `--lambda_A` = `--lambda_B` (10).
        identity_weight: absolute identity weight, `--lambda_identity` x lambda (0.5 x 10).
        pool_size: reference `--pool_size` (50).
        learning_rate, beta_1: Adam settings (`--lr` 2e-4, `--beta1` 0.5); PyTorch's
            Adam arithmetic and epsilon 1e-8 (`optimizers.Adam`).
        decay_at_epoch_start: the learning rate steps at the start of each epoch, as
            junyanz's current `train.py` (decay one epoch earlier, last epoch at 0);
            False is the 2019 loop, which steps it at the end (`LinearDecay`).
        seed: seed for the image pools.
    Reference: junyanz `models/cycle_gan_model.py`.
    """

    def __init__(self, image_size=256, filters=64, num_residual_blocks=9, upsampling="transpose",
                 discriminator_filters=64, cycle_weight=10.0, identity_weight=5.0, pool_size=50,
                 learning_rate=2e-4, beta_1=0.5, seed=None, norm_affine=False, decay_at_epoch_start=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.upsampling = upsampling
        self.discriminator_filters = discriminator_filters
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.pool_size = pool_size
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.seed = seed
        self.norm_affine = norm_affine
        self.decay_at_epoch_start = decay_at_epoch_start

        generator = dict(filters=filters, num_residual_blocks=num_residual_blocks, upsampling=upsampling,
                         norm_affine=norm_affine)
        self.generator_ab = ResNetGenerator(**generator, name="generator_ab")
        self.generator_ba = ResNetGenerator(**generator, name="generator_ba")
        if self.generators_only:
            for network in (self.generator_ab, self.generator_ba):
                network.build((None, None, None, 3))
            self.built = True
            return
        self.discriminator_a = PatchGANDiscriminator(discriminator_filters, name="discriminator_a")
        self.discriminator_b = PatchGANDiscriminator(discriminator_filters, name="discriminator_b")
        self.pool_a = ImagePool(pool_size, seed=seed, name="pool_a")
        self.pool_b = ImagePool(pool_size, seed=None if seed is None else seed + 1, name="pool_b")
        image_shape = (None, image_size, image_size, 3)
        for network in (self.generator_ab, self.generator_ba, self.discriminator_a, self.discriminator_b):
            network.build((None, None, None, 3))
        self.pool_a.build(image_shape)
        self.pool_b.build(image_shape)
        self.built = True

    def default_optimizers(self, total_steps, steps_per_epoch):
        def adam():
            return make_adam(junyanz_decay(self.learning_rate, total_steps, steps_per_epoch,
                                           self.decay_at_epoch_start), self.beta_1)
        return {"g_optimizer": adam(), "d_optimizer": adam()}

    def optimizer_variables(self):
        return {
            "g_optimizer": self.generator_ab.trainable_variables + self.generator_ba.trainable_variables,
            "d_optimizer": self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables,
        }

    def generators(self):
        return {"a2b": self.generator_ab, "b2a": self.generator_ba}

    def sample_rows(self, batch):
        real_a, real_b = batch
        fake_b = self.generator_ab(real_a, training=False)
        fake_a = self.generator_ba(real_b, training=False)
        return [("real A", real_a), ("fake B", fake_b), ("reconstructed A", self.generator_ba(fake_b)),
                ("real B", real_b), ("fake A", fake_a), ("reconstructed B", self.generator_ab(fake_a))]

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            identity_loss = tf.constant(0.0)
            if self.identity_weight:
                # Each generator translates its source domain and, for the identity
                # loss, its target domain in one call.
                fake_b, identity_b = call_on_both(self.generator_ab, real_a, real_b)
                fake_a, identity_a = call_on_both(self.generator_ba, real_b, real_a)
                identity_loss = l1_loss(identity_b, real_b) + l1_loss(identity_a, real_a)
            else:
                fake_b = self.generator_ab(real_a, training=True)
                fake_a = self.generator_ba(real_b, training=True)
            cycle_loss = (l1_loss(self.generator_ba(fake_b, training=True), real_a)
                          + l1_loss(self.generator_ab(fake_a, training=True), real_b))
            adversarial_loss = (lsgan_real_loss(self.discriminator_b(fake_b))
                                + lsgan_real_loss(self.discriminator_a(fake_a)))
            g_loss = adversarial_loss + self.cycle_weight * cycle_loss + self.identity_weight * identity_loss
        g_grads = self.gradients("g_optimizer", tape, g_loss)

        pooled_a = tf.stop_gradient(self.pool_a(fake_a))
        pooled_b = tf.stop_gradient(self.pool_b(fake_b))
        with tf.GradientTape() as tape:
            # Each discriminator judges real and pooled images in one call.
            d_a_real, d_a_fake = call_on_both(self.discriminator_a, real_a, pooled_a)
            d_b_real, d_b_fake = call_on_both(self.discriminator_b, real_b, pooled_b)
            d_a_loss = 0.5 * (lsgan_real_loss(d_a_real) + lsgan_fake_loss(d_a_fake))
            d_b_loss = 0.5 * (lsgan_real_loss(d_b_real) + lsgan_fake_loss(d_b_fake))
            d_loss = d_a_loss + d_b_loss
        d_grads = self.gradients("d_optimizer", tape, d_loss)

        learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step uses
        self.apply_gradients("g_optimizer", g_grads)
        self.apply_gradients("d_optimizer", d_grads)
        return {"g_loss": g_loss, "d_loss": d_loss, "adversarial_loss": adversarial_loss,
                "cycle_loss": cycle_loss, "identity_loss": identity_loss,
                "d_a_loss": d_a_loss, "d_b_loss": d_b_loss,
                "learning_rate": learning_rate}

    def get_config(self):
        return {"image_size": self.image_size, "filters": self.filters,
                "num_residual_blocks": self.num_residual_blocks, "upsampling": self.upsampling,
                "discriminator_filters": self.discriminator_filters, "cycle_weight": self.cycle_weight,
                "identity_weight": self.identity_weight, "pool_size": self.pool_size,
                "learning_rate": self.learning_rate, "beta_1": self.beta_1, "seed": self.seed,
                "norm_affine": self.norm_affine, "decay_at_epoch_start": self.decay_at_epoch_start}
