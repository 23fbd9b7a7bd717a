"""CUT and FastCUT: contrastive unpaired translation with one generator and PatchNCE.

A ResNet generator with anti-aliased resampling, a PatchGAN with anti-aliased
down-sampling, a per-layer two-layer MLP on patches of the generator's encoder features
(netF), and the PatchNCE loss between patches of the input and of the output. FastCUT is
the same model with a heavier NCE weight, no identity NCE, flip equivariance and a shorter
schedule.

Reference: Park, Efros, Zhang, Zhu, "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020; taesungp/contrastive-unpaired-translation (`models/cut_model.py`,
`models/networks.py`, `models/patchnce.py`, `train.py`).
"""

import functools
import inspect

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tf_translate.data import SkipReport, domain_folders, image_folder_dataset
from tf_translate.layers import InstanceNormalization, ReflectionPadding2D
from tf_translate.layers.antialias import BilinearUpsampling2D, BlurDownsampling2D
from tf_translate.layers.blocks import build_stack, conv, run_stack
from tf_translate.layers.initializers import xavier_kernel_init
from tf_translate.layers.patchgan import PatchGANDiscriminator
from tf_translate.losses import lsgan_fake_loss, lsgan_real_loss, patch_nce_loss
from tf_translate.models.base import Generator, ReferenceRun, TranslationModel
from tf_translate.models.cyclegan import ResidualBlock, transposed_upsampling
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import epoch_share_decay, epoch_share_split

NCE_LAYERS = (0, 4, 8, 12, 16)


@keras.saving.register_keras_serializable(package="tf_translate")
class CUTGenerator(Generator):
    """CUT's `resnet_9blocks` generator, whose encoder features feed the PatchNCE loss.

    c7s1-64, then per down-sampling a stride-1 3x3 conv, IN, ReLU and `BlurDownsampling2D`;
    R256 x N; per up-sampling `BilinearUpsampling2D`, a 3x3 conv (zero pad 1), IN, ReLU;
    c7s1-3, tanh. Non-affine instance norm and biased convs; xavier-normal (gain 0.02)
    init. 11,378,179 parameters with 9 blocks in every mode (the resampling has no
    weights). `self.stack[i]` is module i of the reference's `nn.Sequential` (a padded
    conv is one `Sequential`, as `nn.Conv2d(padding=1)` is one module), so `encode`
    taps the reference's layer indices.

    Args:
        filters: reference `--ngf` (64).
        num_residual_blocks: 9 (`resnet_9blocks`).
        output_channels: channels of the output image.
        no_antialias: `--no_antialias`: 3x3 stride-2 convs down, as junyanz's CycleGAN.
        no_antialias_up: `--no_antialias_up`: ConvTranspose 3x3 s2 up, as junyanz's CycleGAN.
            With both, the stack equals `cyclegan.ResNetGenerator`'s layer for layer.
    Reference: `ResnetGenerator` in taesungp `networks.py`.
    """

    input_multiple = 4  # two stride-2 down-samplings

    def __init__(self, filters=64, num_residual_blocks=9, output_channels=3, no_antialias=False,
                 no_antialias_up=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.output_channels = output_channels
        self.no_antialias = no_antialias
        self.no_antialias_up = no_antialias_up
        stack = [ReflectionPadding2D(3), conv(filters, 7, use_bias=True, init="xavier"), InstanceNormalization(),
                 layers.ReLU()]
        for mult in (2, 4):
            stride = 2 if no_antialias else 1
            stack += [conv(filters * mult, 3, strides=stride, padding=1, padding_mode="zeros", use_bias=True,
                           init="xavier"), InstanceNormalization(), layers.ReLU()]
            if not no_antialias:  # the blur comes after the ReLU
                stack.append(BlurDownsampling2D())
        stack += [ResidualBlock(filters * 4, init="xavier") for _ in range(num_residual_blocks)]
        for mult in (2, 1):
            if no_antialias_up:
                stack.append(transposed_upsampling(filters * mult, xavier_kernel_init()))
            else:  # the bilinear x2 comes before its conv
                stack += [BilinearUpsampling2D(),
                          conv(filters * mult, 3, padding=1, padding_mode="zeros", use_bias=True, init="xavier")]
            stack += [InstanceNormalization(), layers.ReLU()]
        stack += [ReflectionPadding2D(3), conv(output_channels, 7, use_bias=True, init="xavier"),
                  layers.Activation("tanh", dtype="float32")]
        self.stack = stack

    def build(self, input_shape):
        build_stack(self.stack, input_shape)
        self.built = True

    def call(self, x):
        return run_stack(self.stack, x)

    def encode(self, x, layer_ids=NCE_LAYERS):
        """The outputs of the reference's modules `layer_ids` (ascending), running the
        stack only up to the last of them (`encode_only=True`).

        The reference's ReLUs are in place: when module i is an instance norm followed
        by a ReLU, the tensor it stored for i has been rectified by the time it is used
        (index 8 with `no_antialias`), so the ReLU's output is returned. The last index
        is returned as computed: the reference stops before the ReLU after it runs.
        """
        wanted, last = set(layer_ids), max(layer_ids)
        features = {}
        for index, layer in enumerate(self.stack[:last + 1]):
            x = layer(x)
            if index in wanted:
                features[index] = x
            if (index - 1 in wanted and isinstance(layer, layers.ReLU)
                    and isinstance(self.stack[index - 1], InstanceNormalization)):
                features[index - 1] = x
        return [features[i] for i in layer_ids]

    def feature_channels(self, layer_ids=NCE_LAYERS, input_channels=3):
        """The channel count of each tapped feature, from the built stack's shapes."""
        shape, channels = (None, 64, 64, input_channels), {}
        for index, layer in enumerate(self.stack[:max(layer_ids) + 1]):
            shape = tuple(layer.compute_output_shape(shape))
            channels[index] = shape[-1]
        return [channels[i] for i in layer_ids]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {"filters": self.filters, "num_residual_blocks": self.num_residual_blocks,
                "output_channels": self.output_channels, "no_antialias": self.no_antialias,
                "no_antialias_up": self.no_antialias_up, "name": self.name}


def l2_normalize(x):
    """x / (‖x‖₂ + 1e-7) over the last axis, in float32 (the reference's `Normalize(2)`:
    epsilon added to the norm, not under the square root)."""
    x = tf.cast(x, tf.float32)
    return x / (tf.sqrt(tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)) + 1e-7)


@keras.saving.register_keras_serializable(package="tf_translate")
class PatchSampleMLP(keras.Model):
    """netF: per tapped layer, the features at given positions through Linear → ReLU →
    Linear, then L2-normalised.

    The reference builds its MLPs lazily on the first batch (`create_mlp`); here they are
    built up front from the known channel counts (3, 128, 256, 256, 256 for the default
    generator), which gives the same layers and lets F's optimizer exist before training
    (560,384 parameters with 256 units).

    Call args:
        features: [B, H_l, W_l, C_l] per layer.
        patch_ids: int32 [P_l] per layer: flat positions h·W_l + w, the same for every
            image of the batch.
    Returns:
        [B, P_l, units] float32 per layer.
    Args:
        channels: C_l of each layer.
        units: reference `--netF_nc` (256).
    Reference: `PatchSampleF(use_mlp=True)` and `Normalize` in taesungp `networks.py`.
    """

    def __init__(self, channels, units=256, **kwargs):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]
        self.units = units
        # float32 under any policy: at the reference's init its outputs are ~1e-4, where
        # float16 is subnormal and the L2 norm's gradient (1/‖x‖) overflows.
        self.mlps = [keras.Sequential([
            layers.Dense(units, activation="relu", kernel_initializer=xavier_kernel_init(), dtype="float32"),
            layers.Dense(units, kernel_initializer=xavier_kernel_init(), dtype="float32"),
        ], name=f"mlp_{i}") for i in range(len(self.channels))]

    def build(self, input_shape=None):
        for mlp, channels in zip(self.mlps, self.channels):
            mlp.build((None, None, channels))
        self.built = True

    def call(self, features, patch_ids):
        out = []
        for mlp, feature, ids in zip(self.mlps, features, patch_ids):
            shape = tf.shape(feature)
            flat = tf.reshape(tf.cast(feature, tf.float32), [shape[0], shape[1] * shape[2], feature.shape[-1]])
            out.append(l2_normalize(mlp(tf.gather(flat, ids, axis=1))))
        return out

    def get_config(self):
        return {"channels": self.channels, "units": self.units, "name": self.name}


def sample_patch_ids(features, num_patches, seed_generator):
    """Per layer, min(num_patches, H·W) distinct flat positions in random order (the
    reference's `np.random.permutation(H·W)[:num_patches]`), as int32."""
    ids = []
    for feature in features:
        if feature.shape[1] is None or feature.shape[2] is None:
            raise ValueError("patch sampling needs static feature sizes (train on fixed-size crops)")
        noise = keras.random.uniform((feature.shape[1] * feature.shape[2],), seed=seed_generator)
        ids.append(tf.cast(tf.argsort(noise)[:num_patches], tf.int32))
    return ids


def two_rule_dataset(data, batch_size=1, image_size=256, load_size=None, seed=None, model=None):
    """`data.unpaired_dataset`'s batches under CUT's data rule of the step each trains at:
    resized to `load_size` and randomly cropped to `image_size` before
    `model.decay_start_step` (the reference's first `--n_epochs`), resized straight to
    `image_size` with no crop from then on (its decay epochs, `load_size := crop_size`);
    both randomly flipped. Only the rule in force is computed: the cropped pipeline serves
    the steps before the boundary and the resized one those after it, so neither decodes,
    caches or augments images for the other's steps (a process that crosses the boundary
    keeps the cropped cache it filled). The cropped stream is `unpaired_dataset`'s (same
    seeds); the resized one is drawn from its own seeds.

    The switch is exact: when iteration begins (`fit` makes its iterator after `compile`
    and after a checkpoint is loaded) the model's step s is read, and the iterator's k-th
    batch is the one step s + k trains on. The first resized batch is that of step
    `decay_start_step`, the first of epoch n_epochs + 1, as in the reference (whose loader
    is made anew each epoch, after `set_epoch`), also in a run resumed in either phase and
    whatever prefetch reads ahead. This assumes every batch of the iterator feeds one train
    step (`fit`, on one device or a Keras-distributed one), or under multi-worker training
    one replica's share of a step (the count is then in per-replica batches).

    Args:
        model: the `CUT` whose optimizer step and `decay_start_step` place the switch;
            None, or a model compiled without a run length: the crop throughout.
    Returns:
        (dataset, steps per epoch, SkipReport)
    """
    report = SkipReport()  # one report: a bad file is named once, not once per rule
    folder_a, folder_b = domain_folders(data)

    def stream(folder, size, seed_offset):
        return image_folder_dataset(folder, image_size, size, True, report,
                                    None if seed is None else seed + seed_offset)
    (a, count_a), (b, count_b) = stream(folder_a, load_size, 0), stream(folder_b, load_size, 1)
    (a_resized, _), (b_resized, _) = stream(folder_a, image_size, 2), stream(folder_b, image_size, 3)
    cropped = tf.data.Dataset.zip(a.repeat(), b.repeat())
    resized = tf.data.Dataset.zip(a_resized.repeat(), b_resized.repeat())

    def cropped_pairs_left():
        """Image pairs to crop before the decay epochs, from the model's step now (-1: all)."""
        if model is None or model.decay_start_step is None:
            return np.int64(-1)
        strategy = model.distribute_strategy
        # Multi-worker training reads per-replica batches, and each pipeline keeps every
        # n-th of them (`training.train`'s own loop, `distribute.replicated_dataset`).
        batches_per_step = (strategy.num_replicas_in_sync
                            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else 1)
        return np.int64(max(0, model.decay_start_step - model.completed_steps()) * batches_per_step * batch_size)
    start = tf.data.Dataset.from_tensors(0).map(lambda _: tf.py_function(cropped_pairs_left, [], tf.int64))
    dataset = start.flat_map(lambda pairs: cropped.take(pairs).concatenate(resized))
    steps_per_epoch = max(1, max(count_a, count_b) // batch_size)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE), steps_per_epoch, report


@keras.saving.register_keras_serializable(package="tf_translate")
class CUT(TranslationModel):
    """The CUT training model: generator (netG), discriminator (netD, judges B images)
    and patch MLP (netF), each with its own Adam and linear schedule.

    One `train_step` is the reference's `optimize_parameters`: G translates A (and, with
    identity NCE, B in the same call), the discriminator is updated on that fake, then
    G and F are updated together on LSGAN against the *updated* D plus PatchNCE.
    PatchNCE (per tapped layer, mean of `patch_nce_loss` × `nce_weight`, then averaged
    over the layers) compares patches of G's encoding of the output (q, through F) with
    those of a second encoding of the input (k, through F, held constant) at positions
    drawn anew for every NCE term and shared by the batch and by q and k. CUT averages
    the NCE of (A, G(A)) and (B, G(B)); FastCUT flips each iteration's input batch with
    probability ½ (one coin) and flips q's features back.

    Data (`two_rule_dataset`): resized to 286/256 of the crop, randomly cropped and
    flipped, except in the epochs the learning rate decays, where images are resized
    straight to the crop size and only flipped (the reference's fine-tuning rule,
    `UnalignedDataset.__getitem__`). The switch follows the schedule's split of the run
    (`compile`); the dataset places it from G's optimizer step, so a resumed run
    switches at the same step, and the train step takes plain (A, B) batches.

    Test time: the generator translates each image at its own size (fully
    convolutional), in train or inference mode alike (instance norm without running
    statistics, no dropout: the reference's `--eval` changes nothing). The reference's
    `test.py` squash-resizes every test image to 256x256 and translates the first
    `--num_test` 50 (its pretrained launcher: 500); on 256x256 test sets (horse2zebra)
    the two agree, and `evaluate --samples 50` takes the same first 50 (sorted paths).

    Args:
        image_size: training crop (`--crop_size`, 256).
        filters, num_residual_blocks, no_antialias, no_antialias_up: see `CUTGenerator`.
        discriminator_filters: `--ndf` (64). The D is anti-aliased unless `no_antialias`.
        gan_weight: `--lambda_GAN` (1).
        nce_weight: `--lambda_NCE` (CUT 1, FastCUT 10); must be positive (the reference
            crashes at 0 with its default netF).
        nce_identity: `--nce_idt` (CUT True, FastCUT False).
        flip_equivariance: `--flip_equivariance` (CUT False, FastCUT True).
        nce_layers: `--nce_layers`, indices into the reference generator's modules.
        nce_temperature: `--nce_T` (0.07).
        num_patches: `--num_patches` (256).
        mlp_units: `--netF_nc` (256).
        learning_rate, beta_1: `--lr` 2e-4, `--beta1` 0.5 for G, D and F; PyTorch's Adam
            arithmetic (`optimizers.Adam`).
        constant_epochs, decay_epochs: `--n_epochs`, `--n_epochs_decay` (CUT 200 + 200,
            FastCUT 150 + 50): the run's epochs are split in this proportion.
        seed: seed of the patch positions and flip coins.
    Reference: `CUTModel` in taesungp `models/cut_model.py`.
    """

    reference_run = ReferenceRun(epochs=400)
    decay_start_step = None  # the first step of the no-crop decay epochs (`compile`); None: never

    def __init__(self, image_size=256, filters=64, num_residual_blocks=9, discriminator_filters=64,
                 no_antialias=False, no_antialias_up=False, gan_weight=1.0, nce_weight=1.0, nce_identity=True,
                 flip_equivariance=False, nce_layers=NCE_LAYERS, nce_temperature=0.07, num_patches=256,
                 mlp_units=256, learning_rate=2e-4, beta_1=0.5, constant_epochs=200, decay_epochs=200, seed=None,
                 **kwargs):
        nce_layers = [int(i) for i in nce_layers]
        if not nce_weight > 0:
            raise ValueError(f"nce_weight must be positive, got {nce_weight} (the reference's netF needs the "
                             "NCE loss: at 0 its optimizer is never made and the first step fails)")
        if not nce_layers or nce_layers != sorted(set(nce_layers)) or nce_layers[0] < 0:
            raise ValueError(f"nce_layers must be distinct ascending module indices, got {nce_layers}")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.num_residual_blocks = num_residual_blocks
        self.discriminator_filters = discriminator_filters
        self.no_antialias = no_antialias
        self.no_antialias_up = no_antialias_up
        self.gan_weight = gan_weight
        self.nce_weight = nce_weight
        self.nce_identity = nce_identity
        self.flip_equivariance = flip_equivariance
        self.nce_layers = nce_layers
        self.nce_temperature = nce_temperature
        self.num_patches = num_patches
        self.mlp_units = mlp_units
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.constant_epochs = constant_epochs
        self.decay_epochs = decay_epochs
        self.seed = seed

        self.generator = CUTGenerator(filters, num_residual_blocks, no_antialias=no_antialias,
                                      no_antialias_up=no_antialias_up, name="generator")
        self.generator.build((None, None, None, 3))
        encoder_length = len(self.generator.stack) - 3  # the last conv block is not an encoder feature
        if nce_layers[-1] >= encoder_length:
            raise ValueError(f"nce_layers {nce_layers}: this generator's modules run from 0 to "
                             f"{len(self.generator.stack) - 1}; tap the encoder and blocks (0-{encoder_length - 1})")
        if self.generators_only:
            self.built = True
            return
        self.discriminator = PatchGANDiscriminator(discriminator_filters, antialias=not no_antialias, init="xavier",
                                                   name="discriminator")
        self.discriminator.build((None, None, None, 3))
        self.patch_sampler = PatchSampleMLP(self.generator.feature_channels(nce_layers), mlp_units,
                                            name="patch_sampler")
        self.patch_sampler.build()
        self.seed_generator = keras.random.SeedGenerator(seed, name="patch_seed")
        self.built = True

    def compile(self, total_steps=None, steps_per_epoch=1, **kwargs):
        """`TranslationModel.compile`, and the step where the decay epochs, and with them
        the no-crop data rule, start: the schedule's split of the run."""
        super().compile(total_steps, steps_per_epoch, **kwargs)
        self.decay_start_step = None
        if total_steps:
            constant, _ = epoch_share_split(total_steps, steps_per_epoch, self.constant_epochs, self.decay_epochs)
            self.decay_start_step = constant * steps_per_epoch

    def dataset_function(self):
        return functools.partial(two_rule_dataset, model=self)

    def default_optimizers(self, total_steps, steps_per_epoch):
        def adam():
            return make_adam(epoch_share_decay(self.learning_rate, total_steps, steps_per_epoch,
                                               self.constant_epochs, self.decay_epochs), self.beta_1)
        return {"g_optimizer": adam(), "d_optimizer": adam(), "f_optimizer": adam()}

    def optimizer_variables(self):
        return {"g_optimizer": self.generator.trainable_variables,
                "d_optimizer": self.discriminator.trainable_variables,
                "f_optimizer": self.patch_sampler.trainable_variables}

    def generators(self):
        return {"a2b": self.generator}

    def sample_rows(self, batch):
        real_a, real_b = batch
        rows = [("real A", real_a), ("fake B", self.generator(real_a, training=False)), ("real B", real_b)]
        if self.nce_identity:
            rows.append(("idt B", self.generator(real_b, training=False)))
        return rows

    def draw_flip(self):
        """FastCUT's coin: one bool for the whole batch, True with probability ½."""
        return keras.random.uniform((), seed=self.seed_generator) < 0.5

    def nce_loss(self, tape, source, target, flip, patch_ids=None):
        """calculate_NCE_loss(source, target): λ_NCE-weighted PatchNCE averaged over layers.

        q is G's encoding of `target` (flipped back when the input was flipped), k the
        encoding of `source`; k's branch is computed with `tape` paused, as the reference
        detaches k after F (no gradient reaches F or G through it).
        """
        feat_q = self.generator.encode(target, self.nce_layers)
        if self.flip_equivariance:
            feat_q = [tf.where(flip, tf.reverse(f, [2]), f) for f in feat_q]
        with tape.stop_recording():
            feat_k = self.generator.encode(source, self.nce_layers)
            if patch_ids is None:
                patch_ids = sample_patch_ids(feat_k, self.num_patches, self.seed_generator)
            k = [tf.stop_gradient(f) for f in self.patch_sampler(feat_k, patch_ids)]
        q = self.patch_sampler(feat_q, patch_ids)
        losses = [self.nce_weight * patch_nce_loss(qi, ki, self.nce_temperature) for qi, ki in zip(q, k)]
        return tf.add_n(losses) / float(len(losses))

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.optimize(real_a, real_b)

    def optimize(self, real_a, real_b, flip=None, patch_ids=None):
        """One `optimize_parameters`: D step, then the G and F step against the updated D.

        Args:
            real_a, real_b: [-1, 1] NHWC batches.
            flip: FastCUT's coin (bool scalar); None draws it.
            patch_ids: None (drawn) or (ids for the A term, ids for the B term), each a
                list of int32 position vectors per NCE layer (parity tests pass the
                reference's draws).
        """
        batch = real_a.shape[0] or tf.shape(real_a)[0]
        if self.flip_equivariance and flip is None:
            flip = self.draw_flip()
        ids_a, ids_b = patch_ids or (None, None)
        with tf.GradientTape() as tape:
            real = tf.concat([real_a, tf.cast(real_b, real_a.dtype)], axis=0) if self.nce_identity else real_a
            if self.flip_equivariance:
                real = tf.where(flip, tf.reverse(real, [2]), real)
            fake = self.generator(real, training=True)
            fake_b = fake[:batch]
            with tape.stop_recording():  # the D step, on the fake made before it
                with tf.GradientTape() as d_tape:
                    d_fake_loss = lsgan_fake_loss(self.discriminator(tf.stop_gradient(fake_b)))
                    d_real_loss = lsgan_real_loss(self.discriminator(real_b))
                    d_loss = 0.5 * (d_fake_loss + d_real_loss)
                learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step uses
                self.update("d_optimizer", d_tape, d_loss)
            # The G loss reads D's weights after its update (the reference's order).
            adversarial_loss = self.gan_weight * lsgan_real_loss(self.discriminator(fake_b))
            nce_loss = self.nce_loss(tape, real_a, fake_b, flip, ids_a)
            logs = {"nce_loss": nce_loss}
            if self.nce_identity:
                nce_identity_loss = self.nce_loss(tape, real_b, fake[batch:], flip, ids_b)
                logs["nce_identity_loss"] = nce_identity_loss
                nce_loss = 0.5 * (nce_loss + nce_identity_loss)
            g_loss = adversarial_loss + nce_loss
        self.update_generator_and_sampler(tape, g_loss)
        return {"g_loss": g_loss, "d_loss": d_loss, "adversarial_loss": adversarial_loss, **logs,
                "d_real_loss": d_real_loss, "d_fake_loss": d_fake_loss, "learning_rate": learning_rate}

    def update_generator_and_sampler(self, tape, loss):
        """G's and F's gradients from one pass of the (non-persistent) tape, applied by
        their own Adams. The gradients carry G's optimizer's loss scale; F's are rescaled
        to its own (a no-op in float32, where neither scales)."""
        g_variables = self.optimizer_variables()["g_optimizer"]
        f_variables = self.optimizer_variables()["f_optimizer"]
        factor = self.g_optimizer.scale_loss(tf.constant(1.0 / self.replicas(), tf.float32))
        grads = tape.gradient(loss, g_variables + f_variables, output_gradients=tf.cast(factor, loss.dtype))
        g_grads, f_grads = grads[:len(g_variables)], grads[len(g_variables):]
        if isinstance(self.g_optimizer, keras.optimizers.LossScaleOptimizer):
            ratio = self.f_optimizer.scale_loss(tf.constant(1.0)) / self.g_optimizer.scale_loss(tf.constant(1.0))
            f_grads = [g * tf.cast(ratio, g.dtype) for g in f_grads]
        self.apply_gradients("g_optimizer", g_grads)
        self.apply_gradients("f_optimizer", f_grads)

    def get_config(self):
        return {"image_size": self.image_size, "filters": self.filters,
                "num_residual_blocks": self.num_residual_blocks, "discriminator_filters": self.discriminator_filters,
                "no_antialias": self.no_antialias, "no_antialias_up": self.no_antialias_up,
                "gan_weight": self.gan_weight, "nce_weight": self.nce_weight, "nce_identity": self.nce_identity,
                "flip_equivariance": self.flip_equivariance, "nce_layers": list(self.nce_layers),
                "nce_temperature": self.nce_temperature, "num_patches": self.num_patches,
                "mlp_units": self.mlp_units, "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "constant_epochs": self.constant_epochs, "decay_epochs": self.decay_epochs, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tf_translate")
class FastCUT(CUT):
    """CUT with FastCUT's defaults (`--CUT_mode FastCUT`): nce_weight 10, no identity
    NCE, flip equivariance, 150 + 50 epochs. A subclass only so that the reference run
    (200 epochs, not CUT's 400) is the class's, as `train` and the CLI read it. Its
    signature is CUT's with these defaults: `--option`, `--help` and the run.json check
    read the constructor's signature.
    Reference: `CUTModel.modify_commandline_options` in taesungp `models/cut_model.py`.
    """

    reference_run = ReferenceRun(epochs=200)
    preset = dict(nce_weight=10.0, nce_identity=False, flip_equivariance=True, constant_epochs=150, decay_epochs=50)

    def __init__(self, **kwargs):
        super().__init__(**{**self.preset, **kwargs})


FastCUT.__init__.__signature__ = inspect.signature(CUT.__init__).replace(parameters=[
    parameter.replace(default=FastCUT.preset.get(name, parameter.default))
    for name, parameter in inspect.signature(CUT.__init__).parameters.items()])
