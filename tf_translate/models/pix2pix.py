"""pix2pix: U-Net generator, conditional PatchGAN and the paired training model.

Reference: Isola et al., "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017; junyanz/pytorch-CycleGAN-and-pix2pix (`models/networks.py`
`UnetGenerator` / `UnetSkipConnectionBlock`, `models/pix2pix_model.py`, `test.py`).
"""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import InstanceNormalization
from tf_translate.layers.blocks import conv
from tf_translate.layers.initializers import junyanz_kernel_init
from tf_translate.layers.normalization import BatchNormalization
from tf_translate.layers.patchgan import PatchGANDiscriminator
from tf_translate.layers import xnnpack
from tf_translate.losses import bce_with_logits, l1_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import junyanz_decay

INFERENCE_MODES = ("reference", "eval")
# `--netG unet_256` / `unet_128`, and the reference class at 6 and 5 levels (tests, small images).
UNET_DOWNS = {"unet_256": 8, "unet_128": 7, "unet_64": 6, "unet_32": 5}


def transposed_conv(filters, use_bias):
    """`ConvTranspose2d(k4, s2, padding 1)`: Keras' "valid" transposed conv writes a
    2i + 2 grid; PyTorch's padding 1 removes one row and column on each side."""
    return keras.Sequential([
        xnnpack.Conv2DTranspose(filters, 4, strides=2, padding="valid", use_bias=use_bias,
                                kernel_initializer=junyanz_kernel_init()),
        layers.Cropping2D(1),
    ])


def reference_dropout(x, rate):
    """Dropout that is on outside training too (junyanz's default test mode), from a
    stateful random op: no seed variable, so it exports to SavedModel and TFLite."""
    keep = tf.cast(tf.random.uniform(tf.shape(x)) >= rate, x.dtype)
    return x * keep / tf.cast(1.0 - rate, x.dtype)


@keras.saving.register_keras_serializable(package="tf_translate")
class UNetGenerator(Generator):
    """The junyanz `unet_256` / `unet_128` generator (54,413,955 / 41,828,995 parameters
    with batch norm; 54,409,603 for `unet_256` with instance norm).

    Down level k: LeakyReLU(0.2) (not before the outermost), 4x4 stride-2 conv with
    zero padding 1, norm (not on the outermost, nor on the innermost, whose 1x1 map a
    norm would zero); 3→64→128→256→512→512... Up level k: ReLU, transposed 4x4 conv,
    norm, Dropout(0.5) on the `num_downs - 5` levels next to the innermost (decoder
    layers 2-4 of `unet_256`), and the concatenation with the level's skip. The skip
    is what the reference concatenates after its in-place LeakyReLU has overwritten
    it, LeakyReLU(norm(conv)); the next up's ReLU then runs over the concatenation.
    The outermost up has a bias and ends in tanh. Convs have no bias under batch norm.

    `inference_mode` says what a call outside training computes. "reference" is what
    the reference's `test.py` runs by default (the network stays in train mode):
    dropout on and batch norm with each image's own statistics, so outputs vary
    from call to call. "eval" is `test.py --eval`: no dropout, the running averages.

    Args:
        variant: "unet_256" (8 downs; sizes a multiple of 256), "unet_128" (7 downs);
            "unet_64" and "unet_32" are `UnetGenerator(num_downs=6 / 5)`, which the
            reference's class builds but its `--netG` does not name.
        filters: `--ngf` (64).
        norm: "batch" (the pix2pix default) or "instance".
        use_dropout: dropout on the middle up levels (pix2pix: on).
        inference_mode: "reference" or "eval" (see above).
        output_channels: channels of the output image.
    Reference: `UnetGenerator`, `UnetSkipConnectionBlock` in junyanz `networks.py`.
    """

    inference_modes = INFERENCE_MODES

    def __init__(self, variant="unet_256", filters=64, norm="batch", use_dropout=True,
                 inference_mode="reference", output_channels=3, **kwargs):
        if variant not in UNET_DOWNS:
            raise ValueError(f"variant must be one of {sorted(UNET_DOWNS)}, got {variant!r}")
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        if inference_mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode must be one of {INFERENCE_MODES}, got {inference_mode!r}")
        super().__init__(**kwargs)
        self.variant = variant
        self.filters = filters
        self.norm = norm
        self.use_dropout = use_dropout
        self.inference_mode = inference_mode
        self.output_channels = output_channels
        downs = UNET_DOWNS[variant]
        self.input_multiple = 2 ** downs
        self.fixed_input_size = None
        # Width of each level's down conv output: ngf, 2 ngf, 4 ngf, then 8 ngf.
        widths = [filters * min(2 ** level, 8) for level in range(downs)]
        use_bias = norm == "instance"
        make_norm = BatchNormalization if norm == "batch" else InstanceNormalization
        innermost = downs - 1
        self.down_convs = [conv(widths[level], 4, strides=2, padding=1, padding_mode="zeros",
                                use_bias=use_bias, init="junyanz") for level in range(downs)]
        self.down_norms = [None if level in (0, innermost) else make_norm() for level in range(downs)]
        up_widths = [output_channels] + widths[:-1]  # each level's up returns to its input width
        self.up_convs = [transposed_conv(up_widths[level], use_bias=True if level == 0 else use_bias)
                         for level in range(downs)]
        self.up_norms = [None if level == 0 else make_norm() for level in range(downs)]
        self.dropout_levels = tuple(range(4, innermost)) if use_dropout else ()
        self.dropouts = [layers.Dropout(0.5) for _ in self.dropout_levels]

    def build(self, input_shape):
        shape = tuple(input_shape)
        channels = []
        for level, down in enumerate(self.down_convs):
            down.build(shape)
            shape = tuple(down.compute_output_shape(shape))
            if self.down_norms[level] is not None:
                self.down_norms[level].build(shape)
            channels.append(shape[-1])
        up_in = channels[-1]
        for level in reversed(range(len(self.up_convs))):
            up_shape = shape[:-1] + (up_in,)
            self.up_convs[level].build(up_shape)
            shape = tuple(self.up_convs[level].compute_output_shape(up_shape))
            if self.up_norms[level] is not None:
                self.up_norms[level].build(shape)
            up_in = shape[-1] + (channels[level - 1] if level > 0 else 0)
        self.built = True

    def _norm(self, layer, x, training, batch_statistics):
        if isinstance(layer, BatchNormalization):
            return layer(x, training=training, batch_statistics=batch_statistics)
        return layer(x)

    def call(self, x, training=False):
        reference = not training and self.inference_mode == "reference"
        batch_statistics = bool(training) or reference
        skips = []
        h = self.down_convs[0](x)
        for level in range(1, len(self.down_convs)):
            skips.append(ops.leaky_relu(h, 0.2))
            h = self.down_convs[level](skips[-1])
            if self.down_norms[level] is not None:
                h = self._norm(self.down_norms[level], h, training, batch_statistics)
        for level in reversed(range(len(self.up_convs))):
            h = self.up_convs[level](ops.relu(h))
            if level == 0:
                break
            h = self._norm(self.up_norms[level], h, training, batch_statistics)
            if level in self.dropout_levels:
                dropout = self.dropouts[self.dropout_levels.index(level)]
                h = (dropout(h, training=True) if training
                     else reference_dropout(h, 0.5) if reference else h)
            h = ops.concatenate([skips[level - 1], ops.cast(h, skips[level - 1].dtype)], axis=-1)
        return ops.cast(ops.tanh(ops.cast(h, "float32")), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {"variant": self.variant, "filters": self.filters, "norm": self.norm,
                "use_dropout": self.use_dropout, "inference_mode": self.inference_mode,
                "output_channels": self.output_channels, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class Pix2Pix(TranslationModel):
    """The pix2pix training model: a U-Net generator and a PatchGAN on (input, output).

    One `train_step` is the reference's `optimize_parameters`: G(A) once; the
    discriminator's update first, on D(A, B) and D(A, G(A) detached) in two separate
    calls (so batch norm's statistics stay per call, as the reference's two forward
    passes), loss 0.5 x [BCE(fake, 0) + BCE(real, 1)]; then the generator's update
    against the *updated* discriminator with the same G(A): BCE(D(A, G(A)), 1) +
    100 x L1(G(A), B).

    The data are pairs (input, target); `--direction BtoA` swaps the halves before
    they get here, so `generator` always maps inputs to targets ("a2b").

    Args:
        image_size: training crop (reference `--crop_size`, 256).
        variant, filters, norm, use_dropout, inference_mode: see `UNetGenerator`
            (`--netG unet_256`, `--ngf` 64, `--norm batch`, dropout on; test mode
            "reference" unless `--eval`).
        discriminator_filters: `--ndf` (64); `--netD basic`, 3 layers, batch norm.
        l1_weight: `--lambda_L1` (100).
        learning_rate, beta_1: Adam (`--lr` 2e-4, `--beta1` 0.5); PyTorch's arithmetic,
            epsilon 1e-8, no weight decay.
        decay_at_epoch_start: the schedule position of junyanz's current `train.py`
            (see `LinearDecay`): with 200 epochs decay starts in epoch 100 and the last
            epoch runs at 0.
    Reference: junyanz `models/pix2pix_model.py`.
    """

    reference_run = ReferenceRun(image_size=256, batch_size=1, epochs=200)
    data_kind = "paired"

    def __init__(self, image_size=256, variant="unet_256", filters=64, norm="batch", use_dropout=True,
                 inference_mode="reference", discriminator_filters=64, l1_weight=100.0,
                 learning_rate=2e-4, beta_1=0.5, decay_at_epoch_start=True, seed=None, **kwargs):
        multiple = 2 ** UNET_DOWNS.get(variant, 1)
        if image_size % multiple:
            smaller = [name for name, downs in UNET_DOWNS.items() if image_size % 2 ** downs == 0]
            raise ValueError(f"--image-size {image_size}: pix2pix's {variant} halves the image {UNET_DOWNS[variant]} "
                             f"times, so it trains on multiples of {multiple}; use --image-size "
                             f"{max(multiple, image_size // multiple * multiple)}"
                             + (f" or --generator {smaller[0]}" if smaller else ""))
        super().__init__(**kwargs)
        self.image_size = image_size
        self.variant = variant
        self.filters = filters
        self.norm = norm
        self.use_dropout = use_dropout
        self.inference_mode = inference_mode
        self.discriminator_filters = discriminator_filters
        self.l1_weight = l1_weight
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.decay_at_epoch_start = decay_at_epoch_start
        self.seed = seed  # recorded only: the data pipeline takes its own seed
        self.generator = UNetGenerator(variant, filters, norm, use_dropout, inference_mode, name="generator")
        if not self.generators_only:
            self.discriminator = PatchGANDiscriminator(discriminator_filters, norm=norm, name="discriminator")
        self.generator.build((None, None, None, 3))
        if not self.generators_only:
            self.discriminator.build((None, None, None, 6))
        self.built = True

    def default_optimizers(self, total_steps, steps_per_epoch):
        def adam():
            return make_adam(junyanz_decay(self.learning_rate, total_steps, steps_per_epoch,
                                           self.decay_at_epoch_start), self.beta_1)
        return {"g_optimizer": adam(), "d_optimizer": adam()}

    def optimizer_variables(self):
        return {"g_optimizer": self.generator.trainable_variables,
                "d_optimizer": self.discriminator.trainable_variables}

    def generators(self):
        return {"a2b": self.generator}

    def sample_rows(self, batch):
        inputs, targets = batch
        return [("input", inputs), ("output", self.generator(inputs, training=False)), ("ground truth", targets)]

    def judge(self, inputs, images):
        """D(cat(A, B)) on channels, A first, as the reference's `real_AB`."""
        return self.discriminator(tf.concat([inputs, tf.cast(images, inputs.dtype)], axis=-1), training=True)

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step uses
        with tf.GradientTape() as g_tape:
            fake_b = self.generator(real_a, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_fake_loss = bce_with_logits(self.judge(real_a, tf.stop_gradient(fake_b)), 0.0)
                    d_real_loss = bce_with_logits(self.judge(real_a, real_b), 1.0)
                    d_loss = 0.5 * (d_fake_loss + d_real_loss)
                self.update("d_optimizer", d_tape, d_loss)
            adversarial_loss = bce_with_logits(self.judge(real_a, fake_b), 1.0)
            l1 = l1_loss(fake_b, real_b)
            g_loss = adversarial_loss + self.l1_weight * l1
        self.update("g_optimizer", g_tape, g_loss)
        return {"g_loss": g_loss, "d_loss": d_loss, "adversarial_loss": adversarial_loss, "l1_loss": l1,
                "d_real_loss": d_real_loss, "d_fake_loss": d_fake_loss, "learning_rate": learning_rate}

    def get_config(self):
        return {"image_size": self.image_size, "variant": self.variant, "filters": self.filters,
                "norm": self.norm, "use_dropout": self.use_dropout, "inference_mode": self.inference_mode,
                "discriminator_filters": self.discriminator_filters, "l1_weight": self.l1_weight,
                "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "decay_at_epoch_start": self.decay_at_epoch_start, "seed": self.seed}
