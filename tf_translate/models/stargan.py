"""StarGAN: one label-conditioned generator for many domains, and a discriminator with
a real/fake head and a domain-classification head.

Convolutions are zero-padded and keep PyTorch's default initialisation (`init="torch"`):
yunjey/stargan never re-initialises its modules.

Reference: Choi et al., "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation", CVPR 2018; yunjey/stargan (`model.py`,
`solver.py`, `main.py`).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers import InstanceNormalization
from tf_translate.layers.blocks import ResidualBody, build_stack, conv, run_stack
from tf_translate.layers.initializers import torch_kernel_init
from tf_translate.layers import xnnpack
from tf_translate.losses import (classification_loss, gradient_penalty, l1_loss,
                                 wgan_critic_loss, wgan_generator_loss)
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import StarGANDecay


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANResidualBlock(ResidualBody):
    """x + [3x3 conv, IN, ReLU, 3x3 conv, IN](x), zero padding 1, no conv bias.

    Differs from CycleGAN's block: zero instead of reflection padding, affine instance
    norm, and no conv biases (the affine IN offset makes them redundant).

    Reference: `ResidualBlock` in yunjey `model.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.body = [
            conv(filters, 3, padding=1, padding_mode="zeros", use_bias=False, init="torch"),
            InstanceNormalization(affine=True), layers.ReLU(),
            conv(filters, 3, padding=1, padding_mode="zeros", use_bias=False, init="torch"),
            InstanceNormalization(affine=True),
        ]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANGenerator(Generator):
    """The StarGAN generator: translates an image to the domain a label vector names.

    Called as `generator([images, labels])`: images NHWC in [-1, 1], labels float
    [batch, num_domains] (0/1 attribute vector or one-hot; for multi-dataset training the
    unified `[c1, c2, mask]`, so `num_domains` is then c1 + c2 + 2). The label is tiled
    over the image and concatenated after the image channels (the reference order, so
    imported weights line up). The list form keeps one `inputs` argument, which
    `.keras` saving, `build()` and SavedModel export all expect.

    c7s1-64, d128, d256 (4x4 s2), 6 residual blocks, u128, u64 (4x4 s2 transposed),
    c7s1-3, tanh; affine instance norm, zero padding, no conv biases (8,430,528
    parameters with the defaults). The reference notes that this label conditioning
    fails with reflection padding, since IN removes the constant label planes.
    H and W must be multiples of 4. Instance norm always uses the instance's statistics:
    the reference declares `track_running_stats=True` but never calls `G.eval()`, so
    its running averages are never used (they are buffers, not parameters).

    Args:
        filters: width of the first layer (reference `--g_conv_dim`, 64).
        num_domains: length of the label vector (reference `--c_dim`, 5).
        num_residual_blocks: bottleneck blocks (reference `--g_repeat_num`, 6).
    Reference: `Generator` in yunjey `model.py`.
    """

    @property
    def label_size(self):
        """The label input's length (`Generator` capability): `num_domains`."""
        return self.num_domains

    def __init__(self, filters=64, num_domains=5, num_residual_blocks=6, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_domains = num_domains
        self.num_residual_blocks = num_residual_blocks

        stack = [conv(filters, 7, padding=3, padding_mode="zeros", use_bias=False, init="torch"),
                 InstanceNormalization(affine=True), layers.ReLU()]
        width = filters
        for _ in range(2):
            stack += [conv(width * 2, 4, strides=2, padding=1, padding_mode="zeros", use_bias=False, init="torch"),
                      InstanceNormalization(affine=True), layers.ReLU()]
            width *= 2
        stack += [StarGANResidualBlock(width) for _ in range(num_residual_blocks)]
        for _ in range(2):
            # PyTorch ConvTranspose2d(k4, s2, padding 1) gives 2H and crops one pixel on
            # each side of the full (2H + 2) output; Keras "same" pads (1, 1) here, the
            # same grid (checked against a NumPy scatter in the tests). Keras computes a
            # Conv2DTranspose kernel's fan-in from its output channels, as torch does.
            stack += [xnnpack.Conv2DTranspose(width // 2, 4, strides=2, padding="same", use_bias=False,
                                              kernel_initializer=torch_kernel_init()),
                      InstanceNormalization(affine=True), layers.ReLU()]
            width //= 2
        stack += [conv(3, 7, padding=3, padding_mode="zeros", use_bias=False, init="torch"),
                  layers.Activation("tanh", dtype="float32")]
        self.stack = stack

    def build(self, input_shape):
        image_shape, label_shape = input_shape
        if label_shape[-1] is not None and label_shape[-1] != self.num_domains:
            raise ValueError(f"labels have {label_shape[-1]} entries; this generator takes "
                             f"num_domains={self.num_domains}")
        build_stack(self.stack, tuple(image_shape[:-1]) + (image_shape[-1] + self.num_domains,))
        self.built = True

    def call(self, inputs):
        images, labels = inputs
        labels = ops.cast(labels, images.dtype)
        # [B, C] -> [B, H, W, C] by broadcasting against a ones plane of the image.
        planes = labels[:, None, None, :] * ops.ones_like(images[..., :1])
        return run_stack(self.stack, ops.concatenate([images, planes], axis=-1))

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0]
        return tuple(image_shape[:-1]) + (3,)

    def get_config(self):
        return {"filters": self.filters, "num_domains": self.num_domains,
                "num_residual_blocks": self.num_residual_blocks, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANDiscriminator(keras.Model):
    """The StarGAN discriminator: PatchGAN real/fake logits and domain-class logits.

    `num_layers` 4x4 stride-2 convs (64 -> 2048 with the defaults), zero padding 1,
    LeakyReLU 0.01, biases, no normalisation. Two bias-free heads on the last map: `src`,
    a 3x3 conv to 1 channel (2x2 logits at 128 px), and `cls`, a conv whose kernel covers
    the whole remaining map (image_size / 2**num_layers) to `num_domains` logits.
    Returns `(src_logits [B, h, w, 1], class_logits [B, num_domains])`, both float32.
    44,762,048 parameters at 128 px, 44,884,928 at 256 px (5 domains).
    Images must be `image_size` square: the class head's kernel is sized for it.

    Args:
        image_size: training resolution (reference `--image_size`, 128).
        filters: width of the first layer (reference `--d_conv_dim`, 64).
        num_domains: class logits (reference `--c_dim`; c_dim + c2_dim with two datasets).
        num_layers: stride-2 convs (reference `--d_repeat_num`, 6).
    Reference: `Discriminator` in yunjey `model.py`.
    """

    def __init__(self, image_size=128, filters=64, num_domains=5, num_layers=6, **kwargs):
        if image_size % (2 ** num_layers):
            raise ValueError(f"image_size {image_size} must be a multiple of 2**num_layers "
                             f"= {2 ** num_layers}")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.num_domains = num_domains
        self.num_layers = num_layers

        stack, width, in_channels = [], filters, 3
        for _ in range(num_layers):
            stack += [conv(width, 4, strides=2, padding=1, padding_mode="zeros", use_bias=True, init="torch",
                           fan_in=in_channels * 16),
                      layers.LeakyReLU(0.01)]
            in_channels, width = width, width * 2
        self.stack = stack
        self.src_head = conv(1, 3, padding=1, padding_mode="zeros", use_bias=False, init="torch")
        kernel = image_size // 2 ** num_layers
        self.cls_head = conv(num_domains, kernel, use_bias=False, init="torch")

    def build(self, input_shape):
        shape = build_stack(self.stack, input_shape)
        self.src_head.build(shape)
        self.cls_head.build(shape)
        self.built = True

    def call(self, x):
        x = run_stack(self.stack, x)
        src = ops.cast(self.src_head(x), "float32")
        cls = ops.cast(self.cls_head(x), "float32")
        # A reshape, not a slice: fails loudly if the image was not `image_size`.
        cls = ops.reshape(cls, (ops.shape(cls)[0], self.num_domains))
        return src, cls

    def get_config(self):
        return {"image_size": self.image_size, "filters": self.filters,
                "num_domains": self.num_domains, "num_layers": self.num_layers, "name": self.name}


# ---------------------------------------------------------------------------------
# Target labels (yunjey `solver.py`: the label permutation in `train`, `create_labels`).

# The attributes yunjey's `create_labels` treats as mutually exclusive hair colours.
HAIR_COLOR_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def sample_target_labels(labels, seed):
    """Training targets the reference's way: the batch's own labels, permuted.

    yunjey draws `rand_idx = torch.randperm(B)` and uses `label_org[rand_idx]` as the
    target for every dataset (CelebA and RaFD, one- or multi-dataset). So targets are
    always real label combinations from the data (hair colours stay one-hot without a
    rule, attribute frequencies follow the data), and a sample may draw its own label.
    The "one hair colour, flip the other attributes" rule is `create_labels`, used only
    for the fixed sample grid and testing: see `grid_target_labels`.

    Args:
        labels: [B, C] labels of the batch (unified labels with their mask included).
        seed: int32 tensor of shape [2] for the stateless RNG (XLA-compatible, and
            reproducible from the step counter).
    Returns:
        [B, C] target labels (same dtype).
    Reference: `Solver.train` / `train_multi` in yunjey `solver.py`.
    """
    batch = tf.shape(labels)[0]
    order = tf.argsort(tf.random.stateless_uniform([batch], seed=seed))
    return tf.gather(labels, order)


def hair_color_indices(attrs):
    """Indices of the hair-colour attributes among `attrs` (yunjey's list)."""
    return [i for i, name in enumerate(attrs) if name in HAIR_COLOR_ATTRIBUTES]


def grid_target_labels(labels, hair_colors=(), multi_label=True):
    """The fixed targets of the results grid: one label batch per domain column.

    Multi-label: for column i, if attribute i is a hair colour it is set to 1 and the
    other hair colours to 0; otherwise attribute i is reversed (0 <-> 1) and the rest
    kept. Single-label: column i is the one-hot of domain i for every image.

    Args:
        labels: [B, C] original labels (0/1).
        hair_colors: indices of the mutually exclusive hair colours
            (`hair_color_indices(attrs)`).
        multi_label: CelebA-style attributes (True) or one-hot domains (False).
    Returns:
        list of C float32 tensors [B, C].
    Reference: `Solver.create_labels` in yunjey `solver.py`.
    """
    labels = tf.cast(labels, tf.float32)
    num = labels.shape[-1]
    batch = tf.shape(labels)[0]
    targets = []
    for i in range(num):
        if not multi_label:
            targets.append(tf.tile(tf.one_hot([i], num), [batch, 1]))
            continue
        column = tf.one_hot(i, num)
        if i in hair_colors:
            others = tf.reduce_sum(tf.one_hot(list(hair_colors), num), axis=0) - column
            target = labels * (1.0 - others) * (1.0 - column) + column
        else:
            target = labels + column * (1.0 - 2.0 * labels)  # flips entry i only
        targets.append(target)
    return targets


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGAN(TranslationModel):
    """The StarGAN training model: one generator, one critic with a class head.

    `data_kind = "labelled"`: `fit` takes (images, labels), so the CLI reads CelebA or
    domain folders for it (`training.training_data`), not unpaired trainA/trainB.

    `generator` is the reference's G, `discriminator` its D (the paper's D_src and
    D_cls). `fit` takes `(images, labels)` batches: labels [B, num_domains] of 0/1
    attributes (`multi_label=True`, CelebA) or one-hots (RaFD). With a second dataset
    (`num_domains_2 > 0`, the reference's `--dataset Both`) labels are the unified
    `[c1, c2, mask]` of `data_labels.unified_labels`, each batch from one dataset
    (`data_labels.multi_dataset` alternates them), and only the known labels are
    classified (the mask vector).

    One `train_step` is one critic update (the reference iteration; with two datasets,
    half of one). Targets are the batch's labels permuted (`sample_target_labels`).
    Critic: -D(x) + D(G(x, c')) + cls_weight * BCE/CE(D_cls(x), c) + gp_weight * GP.
    Every `n_critic`-th iteration the generator is then updated against the *updated*
    critic: -D(G(x, c')) + cls_weight * cls(D_cls(G(x, c')), c') + rec_weight *
    |x - G(G(x, c'), c)|. The generator branch is a `tf.cond` on the critic's step
    count inside the step function, so its forward and backward passes run only on
    those steps; the generator losses logged in between are the last computed ones.
    With `compile(jit_compile=True)` XLA compiles each update's forward and backward
    pass (`critic_gradients`, `generator_gradients`), not the whole step: see `compile`.

    Args:
        image_size: training resolution (reference `--image_size`, 128).
        num_domains: labels of the (first) dataset (reference `--c_dim`, 5).
        filters, num_residual_blocks: see `StarGANGenerator` (`--g_conv_dim`,
            `--g_repeat_num`).
        discriminator_filters, discriminator_layers: see `StarGANDiscriminator`
            (`--d_conv_dim`, `--d_repeat_num`).
        multi_label: the first dataset's labels are independent attributes (BCE) or one
            domain (softmax CE).
        num_domains_2: labels of a second dataset (reference `--c2_dim`, used only with
            `--dataset Both`); 0 trains on one dataset.
        multi_label_2: the same for the second dataset (RaFD: False).
        domain_names: names of the first dataset's labels (CelebA attributes); gives the
            grid's titles, which columns are mutually exclusive hair colours, and the
            names `target_label` accepts.
        domain_names_2: the same for the second dataset.
        gp_weight, cls_weight, rec_weight: reference `--lambda_gp` 10, `--lambda_cls` 1,
            `--lambda_rec` 10.
        n_critic: critic updates per generator update (`--n_critic` 5).
        learning_rate, beta_1, beta_2: Adam (`--g_lr` = `--d_lr` 1e-4, `--beta1` 0.5,
            `--beta2` 0.999).
        lr_update_step, decay_to_zero: see `StarGANDecay` (`--lr_update_step` 1000).
        seed: seed of the target permutation and the GP mixing weights.
    Reference: `Solver.train` and `Solver.train_multi` in yunjey `solver.py`.
    """

    reference_run = ReferenceRun(image_size=128, batch_size=16, steps=200_000)  # yunjey --num_iters
    data_kind = "labelled"

    def __init__(self, image_size=128, num_domains=5, filters=64, num_residual_blocks=6,
                 discriminator_filters=64, discriminator_layers=6, multi_label=True,
                 num_domains_2=0, multi_label_2=False, domain_names=None, domain_names_2=None,
                 gp_weight=10.0, cls_weight=1.0, rec_weight=10.0, n_critic=5, learning_rate=1e-4,
                 beta_1=0.5, beta_2=0.999, lr_update_step=1000, decay_to_zero=True, seed=None,
                 **kwargs):
        if n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {n_critic}")
        for names, count, suffix in ((domain_names, num_domains, ""),
                                     (domain_names_2, num_domains_2, "_2")):
            if names is not None and len(names) != count:
                raise ValueError(f"domain_names{suffix} has {len(names)} names for "
                                 f"num_domains{suffix}={count}")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.num_domains = num_domains
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.discriminator_filters = discriminator_filters
        self.discriminator_layers = discriminator_layers
        self.multi_label = multi_label
        self.num_domains_2 = num_domains_2
        self.multi_label_2 = multi_label_2
        self.domain_names = None if domain_names is None else list(domain_names)
        self.domain_names_2 = None if domain_names_2 is None else list(domain_names_2)
        self.gp_weight = gp_weight
        self.cls_weight = cls_weight
        self.rec_weight = rec_weight
        self.n_critic = n_critic
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.lr_update_step = lr_update_step
        self.decay_to_zero = decay_to_zero
        self.seed = seed

        # With two datasets G reads [c1, c2, mask] and D classifies c1 + c2 (reference
        # `build_model`: c_dim + c2_dim + 2 and c_dim + c2_dim).
        self.num_datasets = 2 if num_domains_2 else 1
        classes = num_domains + num_domains_2
        self.label_size = classes + (2 if num_domains_2 else 0)
        self.generator = StarGANGenerator(filters, self.label_size, num_residual_blocks,
                                          name="generator")
        if not self.generators_only:
            self.discriminator = StarGANDiscriminator(image_size, discriminator_filters, classes,
                                                      discriminator_layers, name="discriminator")
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        # Generator losses of the last generator update, logged on critic-only steps.
        self.last_generator_losses = self.add_weight(
            shape=(4,), initializer="zeros", trainable=False, name="last_generator_losses")
        self.generator.build([(None, None, None, 3), (None, self.label_size)])
        if not self.generators_only:
            self.discriminator.build((None, image_size, image_size, 3))
        self.built = True

    def default_optimizers(self, total_steps, steps_per_epoch):
        # `total_steps` counts train steps; as in the reference (num_iters 200k,
        # num_iters_decay 100k) the rate decays over the second half. steps_per_epoch is
        # not used: the reference decays every `lr_update_step` iterations.
        def adam(period):
            lr = self.learning_rate
            if total_steps:
                iterations = total_steps // self.num_datasets
                decay = iterations // 2
                lr = StarGANDecay(lr, iterations - decay, decay, self.lr_update_step,
                                  self.decay_to_zero, self.num_datasets, period)
            return make_adam(lr, self.beta_1, self.beta_2)
        # The critic first: its step count is the run's step count.
        return {"d_optimizer": adam(1), "g_optimizer": adam(self.n_critic)}

    def compile(self, total_steps=None, steps_per_epoch=1, jit_compile=True, **optimizers):
        """As `TranslationModel.compile`, except that `jit_compile` XLA-compiles the two
        gradient computations (`critic_gradients`, `generator_gradients`) rather than the
        whole train step.

        On CPU the generator update inside a `tf.cond` ran 10-25x slower when XLA compiled
        the whole step than outside a conditional (TF-NOTES: one compiled gradient
        function per update, applied outside). So the Keras step runs as a plain
        `tf.function`, calls the compiled functions and applies their gradients itself.
        The optimizer slots are created here, since the generator's update runs inside
        a `tf.cond` where no variable may be created.
        """
        super().compile(total_steps, steps_per_epoch, jit_compile=False, **optimizers)
        # As in the base class: no XLA for cross-replica work on CPU.
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            jit_compile = False
        self.critic_gradients = tf.function(self._critic_gradients, jit_compile=bool(jit_compile))
        self.generator_gradients = tf.function(self._generator_gradients,
                                               jit_compile=bool(jit_compile))

    def optimizer_variables(self):
        return {"d_optimizer": self.discriminator.trainable_variables,
                "g_optimizer": self.generator.trainable_variables}

    def generators(self):
        return {"label": self.generator}

    def names(self):
        """(first dataset's domain names, second dataset's), numbered when not given."""
        return (self.domain_names or [f"domain {i}" for i in range(self.num_domains)],
                self.domain_names_2 or [f"dataset 2 domain {i}" for i in range(self.num_domains_2)])

    def label_names(self):
        """The meaning of every entry of the generator's label vector, in order."""
        first, second = self.names()
        if not self.num_domains_2:
            return first
        return first + second + ["mask: dataset 1", "mask: dataset 2"]

    def target_label(self, names):
        """The label vector that translates an image to `names`, for inference.

        Multi-label (CelebA): the named attributes are 1 and all others 0, since the
        input's own attributes are unknown (at most one hair colour). Single-label: one
        name, its one-hot. With two datasets the names come from one dataset, whose mask
        bit is set (the reference's `[c1, zeros, 1, 0]`).

        Args:
            names: domain or attribute names (`domain_names`, `domain_names_2`).
        Returns:
            float32 NumPy vector [len(label_names())].
        Raises:
            ValueError (one line) for unknown names and impossible combinations.
        """
        first, second = self.names()
        names = list(names)
        if not names:
            raise ValueError("name at least one target domain or attribute")
        unknown = [n for n in names if n not in first and n not in second]
        if unknown:
            raise ValueError(f"unknown domain(s) {', '.join(unknown)}; this model knows "
                             f"{', '.join(first + second)}")
        dataset = 0 if names[0] in first else 1
        own, multi_label = (first, self.multi_label) if dataset == 0 else (second, self.multi_label_2)
        if any(n not in own for n in names):
            raise ValueError("the targets mix the domains of two datasets; name domains of one")
        if not multi_label and len(names) > 1:
            raise ValueError(f"this model translates to one domain at a time, got {', '.join(names)}")
        hair = [n for n in names if own.index(n) in hair_color_indices(own)]
        if multi_label and len(hair) > 1:
            raise ValueError(f"hair colours are exclusive: name at most one of {', '.join(hair)}")
        label = np.zeros(len(self.label_names()), np.float32)
        offset = 0 if dataset == 0 else self.num_domains
        label[[offset + own.index(n) for n in names]] = 1.0
        if self.num_domains_2:
            label[self.num_domains + self.num_domains_2 + dataset] = 1.0
        return label

    def hair_colors(self):
        """Indices of the mutually exclusive hair-colour labels (by `domain_names`)."""
        return hair_color_indices(self.domain_names or [])

    def grid_labels(self, labels):
        """[(title, target labels)] for the results grid: one column per target domain
        (`create_labels`), then with two datasets one per second-dataset domain."""
        labels = tf.convert_to_tensor(labels, tf.float32)
        names, names_2 = self.names()
        own = grid_target_labels(labels[:, :self.num_domains], self.hair_colors(), self.multi_label)
        if not self.num_domains_2:
            return list(zip(names, own))
        batch = tf.shape(labels)[0]
        zeros_1 = tf.zeros([batch, self.num_domains])
        zeros_2 = tf.zeros([batch, self.num_domains_2])
        mask_1 = tf.tile([[1.0, 0.0]], [batch, 1])
        mask_2 = tf.tile([[0.0, 1.0]], [batch, 1])
        second = grid_target_labels(zeros_2, (), self.multi_label_2)
        return ([(n, tf.concat([c, zeros_2, mask_1], 1)) for n, c in zip(names, own)]
                + [(n, tf.concat([zeros_1, c, mask_2], 1)) for n, c in zip(names_2, second)])

    def grid_columns(self, batch):
        """[(title, images)]: the inputs, then their translation to every grid target."""
        images, labels = batch
        columns = [("input", images)]
        for title, target in self.grid_labels(labels):
            columns.append((title, self.generator([images, target], training=False)))
        return columns

    def sample_rows(self, batch):
        """The paper's figure: one row per input image, holding the input and then one
        column per target domain (`grid_columns`, whose titles name the columns)."""
        columns = self.grid_columns(batch)
        titles = ", ".join(title for title, _ in columns)
        images = tf.stack([tf.cast(x, tf.float32) for _, x in columns], axis=1)
        return [(f"image {i}: {titles}", images[i]) for i in range(images.shape[0])]

    def classification_loss(self, logits, labels):
        """BCE / CE on the known labels: the whole label with one dataset; with two, each
        dataset's slice weighted by its mask bit (0 for the other dataset's samples)."""
        if not self.num_domains_2:
            return classification_loss(logits, labels, multi_label=self.multi_label)
        c1, c2 = self.num_domains, self.num_domains_2
        mask = labels[:, c1 + c2:]
        return (classification_loss(logits[:, :c1], labels[:, :c1], mask[:, :1], self.multi_label)
                + classification_loss(logits[:, c1:], labels[:, c1:c1 + c2], mask[:, 1:],
                                      self.multi_label_2))

    def _critic_gradients(self, images, labels, targets, alpha):
        """The critic's losses and gradients (the forward and backward pass only)."""
        fakes = tf.stop_gradient(self.generator([images, targets], training=True))
        with tf.GradientTape() as tape:
            src_real, cls_real = self.discriminator(images, training=True)
            src_fake, _ = self.discriminator(fakes, training=True)
            d_adversarial = wgan_critic_loss(src_real, src_fake)
            d_cls = self.classification_loss(cls_real, labels)
            gp = gradient_penalty(lambda x: self.discriminator(x, training=True)[0],
                                  images, fakes, alpha)
            d_loss = d_adversarial + self.cls_weight * d_cls + self.gp_weight * gp
        grads = self.gradients("d_optimizer", tape, d_loss)
        return grads, tf.stack([d_loss, d_adversarial, d_cls, gp])

    def _generator_gradients(self, images, labels, targets):
        """The generator's losses (g_loss, adversarial, cls, rec) and gradients."""
        with tf.GradientTape() as tape:
            fake = self.generator([images, targets], training=True)
            src, cls = self.discriminator(fake, training=True)
            adversarial = wgan_generator_loss(src)
            cls_loss = self.classification_loss(cls, targets)
            rec_loss = l1_loss(self.generator([fake, labels], training=True), images)
            g_loss = adversarial + self.rec_weight * rec_loss + self.cls_weight * cls_loss
        grads = self.gradients("g_optimizer", tape, g_loss)
        return grads, tf.stack([g_loss, adversarial, cls_loss, rec_loss])

    # Under a distribution strategy the generator's update cannot sit inside a `tf.cond`
    # (its gradient all-reduce is a synchronisation point), so replicated training
    # (`distribute.run_distributed`) asks `step_kind` on the host and runs one compiled
    # step per kind.
    step_kinds = ("critic", "critic_and_generator")

    def step_kind(self):
        """The kind of the next train step: the generator is updated after every
        n_critic-th critic iteration, as the reference's `(i + 1) % n_critic == 0`."""
        iteration = int(self.d_optimizer.iterations.numpy()) // self.num_datasets
        return "critic_and_generator" if (iteration + 1) % self.n_critic == 0 else "critic"

    def train_step(self, data, kind=None):
        images, labels = data
        images = tf.cast(images, tf.float32)
        labels = tf.cast(labels, tf.float32)
        batch = tf.shape(images)[0]
        step = self.d_optimizer.iterations  # critic updates so far
        iteration = step // self.num_datasets
        seed = keras.random.randint([2], 0, 2 ** 31 - 1, seed=self.seed_generator, dtype="int32")
        targets = sample_target_labels(labels, seed)
        alpha = keras.random.uniform([batch, 1, 1, 1], seed=self.seed_generator)
        learning_rate = current_learning_rate(self.d_optimizer)

        # Critic update.
        grads, d_losses = self.critic_gradients(images, labels, targets, alpha)
        self.apply_gradients("d_optimizer", grads)

        # Generator update every n_critic-th iteration, against the updated critic.
        def generator_step():
            grads, losses = self.generator_gradients(images, labels, targets)
            self.apply_gradients("g_optimizer", grads)
            self.last_generator_losses.assign(losses)
            return losses

        if kind is None:  # one device: the schedule in the graph
            g_losses = tf.cond(tf.equal((iteration + 1) % self.n_critic, 0), generator_step,
                               lambda: tf.convert_to_tensor(self.last_generator_losses))
        else:
            g_losses = generator_step() if kind == "critic_and_generator" else tf.convert_to_tensor(
                self.last_generator_losses)
        return {"d_loss": d_losses[0], "d_adversarial_loss": d_losses[1], "d_cls_loss": d_losses[2],
                "gp": d_losses[3], "g_loss": g_losses[0], "adversarial_loss": g_losses[1],
                "cls_loss": g_losses[2], "rec_loss": g_losses[3], "learning_rate": learning_rate}

    def get_config(self):
        return {"image_size": self.image_size, "num_domains": self.num_domains,
                "filters": self.filters, "num_residual_blocks": self.num_residual_blocks,
                "discriminator_filters": self.discriminator_filters,
                "discriminator_layers": self.discriminator_layers, "multi_label": self.multi_label,
                "num_domains_2": self.num_domains_2, "multi_label_2": self.multi_label_2,
                "domain_names": self.domain_names, "domain_names_2": self.domain_names_2,
                "gp_weight": self.gp_weight,
                "cls_weight": self.cls_weight, "rec_weight": self.rec_weight,
                "n_critic": self.n_critic, "learning_rate": self.learning_rate,
                "beta_1": self.beta_1, "beta_2": self.beta_2,
                "lr_update_step": self.lr_update_step, "decay_to_zero": self.decay_to_zero,
                "seed": self.seed}
