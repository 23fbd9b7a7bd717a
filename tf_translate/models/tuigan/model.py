"""The TuiGAN training model (`models/TuiGAN.py`): two pyramids trained one scale at a
time, each scale one training phase."""

import functools

import keras
import numpy as np
import tensorflow as tf

from tf_translate.models.base import ReferenceRun, TranslationModel
from tf_translate.models.tuigan.data import pyramid_dataset, read_image_pair
from tf_translate.models.tuigan.losses import MultiStepDecay, channel_gradient_penalty, tv_loss
from tf_translate.models.tuigan.networks import TuiGANDiscriminator, TuiGANGenerator
from tf_translate.models.tuigan.pyramid import PyramidRule, channels, resize_in_graph
from tf_translate.models.tuigan.serving import TuiGANPyramid, chain
from tf_translate.optimizers import current_learning_rate, make_adam


@keras.saving.register_keras_serializable(package="tf_translate")
class TuiGAN(TranslationModel):
    """TuiGAN's two pyramids, trained one scale at a time.

    Per scale n: `generators_ab[n]` (reference `netG`, A->B), `generators_ba[n]` (`netG2`),
    `discriminators_b[n]` (`netD`, judges B), `discriminators_a[n]` (`netD2`), with
    nfc = 32·2^floor(n / 4) (at most 128). Each scale has its own optimizers (the reference
    makes new ones per scale): Adam(5e-4, 0.5, 0.999) over both generators and over both
    critics, lr ×0.1 from iteration 1600 (`MultiStepLR`).

    One train step is one reference iteration at the current scale (`set_scale`): one
    noise draw per domain, 0.1·N(0, 1); then `d_steps` critic updates, each after
    recomputing the frozen chains of the coarser scales with fresh noise (prev↑ = the
    A->B chain's output upsampled, c_prev↑ = its A->B->A cycle; the same for B): loss
    -D_B(B) - D_A(A) + D_B(G(x_A, prev↑)) + D_A(G2(x_B, prev2↑)) + 0.1·GP each critic;
    then `g_steps` generator updates: -D_B(fake_B) - D_A(fake_A) + 0.1·TV(fake) each,
    identity L1(G(B, z_prev2), B) (the frozen A->B chain on B without noise), cycle
    L1(G(fake_A, c_prev2↑), B) (fake_A not detached: it trains G2 too), and the mirror
    terms, weights 1. Coarser scales run in eval mode (running averages), frozen; a new
    scale starts from the previous one's weights (BN averages included) when its width
    is the same (`start_scale`), from its own initialisation otherwise (scales 4, 8).

    Deliberate difference (REFERENCE-WAVE3 T5): the reference's generator steps reuse the
    fake images of the last critic step, so its steps 2-3 backpropagate through a graph
    built from the weights before step 1 (torch ≥ 1.5 refuses; torch 1.2 mixed old
    activations with updated weights, which cannot be reproduced). Each generator step
    here recomputes G(x_A, prev↑) with the current weights, from the same noise and
    prev↑, with batch statistics but without moving the running averages (the reference
    computes fake once per critic step, so the averages move as often as there).

    Randomness is stateless, from (seed, scale, iteration): a run resumed at any step
    draws what the uninterrupted run drew.

    `training.train` trains it as any other model: each scale is one training phase
    (`phases`; `start_phase` is `start_scale`), `iterations` steps long, and the step
    numbers count iterations over all scales (`completed_steps`).

    Args:
        input_size: (height, width) of image A; the pyramid follows from it (`PyramidRule`).
        min_size, max_size, scale_factor: `--min_size` 100, `--max_size` 250,
            `--scale_factor` 0.75 (only counts the scales).
        filters, min_filters, num_layers: `--nfc` 32, `--min_nfc` 32, `--num_layer` 5.
        iterations: `--niter` 4000 per scale; d_steps, g_steps: `--Dsteps`, `--Gsteps` 3.
        learning_rate, beta_1: `--lr_g` = `--lr_d` 5e-4, `--beta1` 0.5;
            decay_iteration, lr_gamma: the milestone 1600 and `--gamma` 0.1.
        gp_weight, identity_weight, cycle_weight, tv_weight: `--lambda_grad` 0.1,
            `--lambda_idt` 1, `--lambda_cyc` 1, `--lambda_tv` 0.1.
        noise_amp: `--noise_amp` = `--noise_amp2` 0.1, every scale, training and test.
        apply_finest: see `TuiGANPyramid`.
        seed: the noise seed (None: drawn now, and recorded by `get_config`).
    """

    reference_run = ReferenceRun(image_size=250, batch_size=1, steps=4000)
    data_kind = "image_pair"
    # Run settings (`training.train`): --image-size is the finest long side (`--max_size`)
    # and --steps the iterations per scale (`--niter`); both are kept by a resumed run.
    flag_options = {"image_size": "max_size", "steps": "iterations"}
    unused_flags = ("epochs", "batch_size", "load_size", "eval_every", "strategy")
    precisions = ("float32",)  # its networks are small; half precision buys nothing on CPU
    # Graph mode, not XLA: on a 2-core CPU one scale-0 iteration at 100 px took 35.8 s
    # with XLA and 2.09 s as a plain tf.function (the step's while loops and double
    # backward compile badly); `compile(jit_compile=True)` still selects XLA.
    trains_with_xla = False

    def __init__(self, input_size=(250, 250), min_size=100, max_size=250, scale_factor=0.75, filters=32,
                 min_filters=32, num_layers=5, iterations=4000, d_steps=3, g_steps=3, learning_rate=5e-4,
                 beta_1=0.5, decay_iteration=1600, lr_gamma=0.1, gp_weight=0.1, identity_weight=1.0,
                 cycle_weight=1.0, tv_weight=0.1, noise_amp=0.1, apply_finest=True, seed=None, **kwargs):
        self.rule = PyramidRule(*input_size, min_size=min_size, max_size=max_size, scale_factor=scale_factor)
        super().__init__(**kwargs)
        self.input_size = tuple(int(n) for n in input_size)
        self.min_size, self.max_size, self.scale_factor = min_size, max_size, scale_factor
        self.filters, self.min_filters, self.num_layers = filters, min_filters, num_layers
        self.iterations, self.d_steps, self.g_steps = int(iterations), int(d_steps), int(g_steps)
        self.learning_rate, self.beta_1 = learning_rate, beta_1
        self.decay_iteration, self.lr_gamma = decay_iteration, lr_gamma
        self.gp_weight, self.identity_weight = gp_weight, identity_weight
        self.cycle_weight, self.tv_weight = cycle_weight, tv_weight
        self.noise_amp, self.apply_finest = noise_amp, apply_finest
        self.seed = int(np.random.SeedSequence().entropy % 2 ** 31) if seed is None else int(seed)
        self.num_scales = len(self.rule.sizes)
        self.scale = 0
        def nets(cls, index, name):
            return [cls(*channels(s, filters, min_filters), num_layers, seed=self.seed * 97 + 4 * s + index,
                        name=f"{name}_{s}") for s in range(self.num_scales)]

        self.generators_ab = nets(TuiGANGenerator, 0, "generator_ab")
        self.generators_ba = nets(TuiGANGenerator, 1, "generator_ba")
        if not self.generators_only:
            self.discriminators_b = nets(TuiGANDiscriminator, 2, "discriminator_b")
            self.discriminators_a = nets(TuiGANDiscriminator, 3, "discriminator_a")
        for network in self.generators_ab + self.generators_ba:
            network.build([(None, None, None, 3), (None, None, None, 3)])
        if not self.generators_only:
            for network in self.discriminators_b + self.discriminators_a:
                network.build((None, None, None, 3))
        self.built = True

    # -- the contract (base.py) --
    def default_optimizers(self, total_steps=None, steps_per_epoch=1):
        def adam(updates):
            return make_adam(MultiStepDecay(self.learning_rate, self.decay_iteration, self.lr_gamma, updates),
                             self.beta_1)
        optimizers = {}
        for s in range(self.num_scales):
            optimizers[f"g_optimizer_{s}"] = adam(self.g_steps)
            optimizers[f"d_optimizer_{s}"] = adam(self.d_steps)
        return optimizers

    def optimizer_variables(self):
        variables = {}
        for s in range(self.num_scales):
            variables[f"g_optimizer_{s}"] = (self.generators_ab[s].trainable_variables
                                             + self.generators_ba[s].trainable_variables)
            variables[f"d_optimizer_{s}"] = (self.discriminators_b[s].trainable_variables
                                             + self.discriminators_a[s].trainable_variables)
        return variables

    def generators(self):
        return {"a2b": TuiGANPyramid(self.generators_ab, self.rule, self.noise_amp, self.apply_finest, name="a2b"),
                "b2a": TuiGANPyramid(self.generators_ba, self.rule, self.noise_amp, self.apply_finest, name="b2a")}

    @classmethod
    def options_from_data(cls, data, options):
        """`input_size`: image A's (height, width), or the run's when it has one."""
        a, _ = read_image_pair(data, options.get("input_size"))
        return {"input_size": list(a.shape[:2])}

    def dataset_function(self):
        return functools.partial(pyramid_dataset, self)

    def phases(self, total_steps=None):
        """One phase per scale, coarse to fine, `iterations` steps each."""
        titles = []
        for scale, (h, w) in enumerate(self.rule.sizes):
            titles.append(f"scale {scale + 1} of {self.num_scales}: {w}x{h} px, "
                          f"{channels(scale, self.filters, self.min_filters)[0]} filters")
        return [(title, self.iterations) for title in titles]

    def start_phase(self, index):
        self.start_scale(index)

    def scale_iterations(self, scale):
        """Iterations completed at `scale` (its critic optimizer counts d_steps each)."""
        return int(getattr(self, f"d_optimizer_{scale}").iterations.numpy()) // self.d_steps

    def completed_steps(self):
        """Iterations completed over all scales: the run's step number (`training.global_step`)."""
        return sum(self.scale_iterations(s) for s in range(self.num_scales))

    def set_scale(self, scale):
        """Makes `scale` the one `train_step` trains (a new compiled step)."""
        if not 0 <= scale < self.num_scales:
            raise ValueError(f"scale must be in [0, {self.num_scales}), got {scale}")
        self.scale = scale
        self.train_function = None

    def start_scale(self, scale):
        """`set_scale`, and at a scale's first iteration the reference's warm start: the
        previous scale's four networks are copied in when the width is unchanged."""
        self.set_scale(scale)
        if scale and self.scale_iterations(scale) == 0 and (channels(scale, self.filters, self.min_filters)
                                                            == channels(scale - 1, self.filters, self.min_filters)):
            for group in (self.generators_ab, self.generators_ba, self.discriminators_b, self.discriminators_a):
                for target, source in zip(group[scale].weights, group[scale - 1].weights):
                    target.assign(source)

    # -- one iteration --
    def upsample(self, x, level):
        return resize_in_graph(x, *self.rule.upsample_matrices(level))

    def draw_randoms(self, scale, iteration):
        """The noise of one iteration at `scale`, stateless from (seed, scale, iteration):
        {"noise_a", "noise_b": [1, h, w, 3]; "chain_a", "chain_b": per coarser scale k,
        [d_steps, 1, h_k, w_k, 3] (one map per critic step); "alpha_b", "alpha_a":
        [d_steps], the GP's α of each critic step}."""
        base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(iteration, tf.int64) * 64 + scale])
        counter = iter(range(10 ** 6))

        def seed():
            return tf.random.experimental.stateless_fold_in(base, next(counter))

        sizes, steps = self.rule.sizes, self.d_steps
        return {"noise_a": tf.random.stateless_normal((1, *sizes[scale], 3), seed()),
                "noise_b": tf.random.stateless_normal((1, *sizes[scale], 3), seed()),
                "chain_a": [tf.random.stateless_normal((steps, 1, *sizes[k], 3), seed()) for k in range(scale)],
                "chain_b": [tf.random.stateless_normal((steps, 1, *sizes[k], 3), seed()) for k in range(scale)],
                "alpha_b": tf.random.stateless_uniform((steps,), seed()),
                "alpha_a": tf.random.stateless_uniform((steps,), seed())}

    def iteration(self, scale, levels_a, levels_b, randoms):
        """One reference iteration at `scale` from the given noise (see the class
        docstring); returns the last critic and generator steps' losses. The critic and
        generator steps are `tf.while_loop`s: one step each to trace and compile."""
        n = scale
        g_ab, g_ba = self.generators_ab, self.generators_ba
        d_b, d_a = self.discriminators_b[n], self.discriminators_a[n]
        levels_a = [tf.cast(level, tf.float32) for level in levels_a[:n + 1]]
        levels_b = [tf.cast(level, tf.float32) for level in levels_b[:n + 1]]
        real_a, real_b = levels_a[n], levels_b[n]
        amp = self.noise_amp
        # draw_concat 'rec': the frozen chains on the other domain, no noise (identity inputs).
        z_prev_b, _ = chain(g_ab, levels_b, None, amp, self.upsample, n)
        z_prev_a, _ = chain(g_ba, levels_a, None, amp, self.upsample, n)
        x_a = amp * randoms["noise_a"] + real_a
        x_b = amp * randoms["noise_b"] + real_b
        d_name, g_name = f"d_optimizer_{n}", f"g_optimizer_{n}"
        zero = tf.constant(0.0)

        def critic_step(j, prevs, d_logs):
            prev_ab, c_prev_ab = chain(g_ab, levels_a, [z[j] for z in randoms["chain_a"]], amp, self.upsample, n, g_ba)
            prev_ba, c_prev_ba = chain(g_ba, levels_b, [z[j] for z in randoms["chain_b"]], amp, self.upsample, n, g_ab)
            with tf.GradientTape() as tape:
                d_real = -tf.reduce_mean(d_b(real_b, training=True))
                d_real2 = -tf.reduce_mean(d_a(real_a, training=True))
                fake_b = tf.stop_gradient(g_ab[n]([x_a, prev_ab], training=True))
                d_fake = tf.reduce_mean(d_b(fake_b, training=True))
                gp = channel_gradient_penalty(lambda t: d_b(t, training=True), real_b, fake_b, randoms["alpha_b"][j])
                fake_a = tf.stop_gradient(g_ba[n]([x_b, prev_ba], training=True))
                d_fake2 = tf.reduce_mean(d_a(fake_a, training=True))
                gp2 = channel_gradient_penalty(lambda t: d_a(t, training=True), real_a, fake_a, randoms["alpha_a"][j])
                d_loss = d_real + d_real2 + d_fake + d_fake2 + self.gp_weight * (gp + gp2)
            self.update(d_name, tape, d_loss)
            return j + 1, (prev_ab, c_prev_ab, prev_ba, c_prev_ba), (d_loss, d_real + d_real2, d_fake + d_fake2, gp + gp2)

        start = tf.zeros_like(real_a)
        _, prevs, d_logs = tf.while_loop(lambda j, *_: j < self.d_steps, critic_step,
                                         (tf.constant(0), (start,) * 4, (zero,) * 4))
        prev_ab, c_prev_ab, prev_ba, c_prev_ba = prevs

        def generator_step(j, g_logs):
            with tf.GradientTape() as tape:
                fake_b = g_ab[n]([x_a, prev_ab], training=True, update_statistics=False)
                fake_a = g_ba[n]([x_b, prev_ba], training=True, update_statistics=False)
                adversarial = -tf.reduce_mean(d_b(fake_b, training=True))
                tv = tv_loss(fake_b)
                adversarial2 = -tf.reduce_mean(d_a(fake_a, training=True))
                tv2 = tv_loss(fake_a)
                identity = tf.reduce_mean(tf.abs(g_ab[n]([real_b, z_prev_b], training=True) - real_b))
                cycle = tf.reduce_mean(tf.abs(g_ab[n]([fake_a, c_prev_ba], training=True) - real_b))
                identity2 = tf.reduce_mean(tf.abs(g_ba[n]([real_a, z_prev_a], training=True) - real_a))
                cycle2 = tf.reduce_mean(tf.abs(g_ba[n]([fake_b, c_prev_ab], training=True) - real_a))
                g_loss = (adversarial + adversarial2 + self.tv_weight * (tv + tv2)
                          + self.identity_weight * (identity + identity2) + self.cycle_weight * (cycle + cycle2))
            self.update(g_name, tape, g_loss)
            return j + 1, (g_loss, adversarial + adversarial2, tv + tv2, identity + identity2, cycle + cycle2)

        _, g_logs = tf.while_loop(lambda j, *_: j < self.g_steps, generator_step, (tf.constant(0), (zero,) * 5))
        names = ("d_loss", "d_real_loss", "d_fake_loss", "gp", "g_loss", "adversarial_loss", "tv_loss",
                 "identity_loss", "cycle_loss")
        return dict(zip(names, tuple(d_logs) + tuple(g_logs)))

    def train_step(self, data):
        levels_a, levels_b = data
        n = self.scale
        learning_rate = current_learning_rate(getattr(self, f"g_optimizer_{n}"))
        iteration = getattr(self, f"d_optimizer_{n}").iterations // self.d_steps
        logs = self.iteration(n, levels_a, levels_b, self.draw_randoms(n, iteration))
        return {**logs, "learning_rate": learning_rate, "scale": tf.constant(float(n))}

    def make_train_function(self, force=False):
        """The current scale's iteration as one `tf.function` (XLA unless turned off),
        traced without AutoGraph, called on each element; eager runs keep Keras'."""
        if self.train_function is not None and not force:
            return self.train_function
        if self.run_eagerly or tf.distribute.has_strategy():
            return super().make_train_function(force)
        step = tf.function(self.train_step, jit_compile=bool(self.jit_compile), reduce_retracing=True,
                           autograph=False)
        self.train_function = lambda iterator: step(next(iterator))
        return self.train_function

    def sample_rows(self, batch):
        """The current scale: A, A->B, A->B->A, B, B->A, B->A->B (eval mode, the noise of
        iteration 0), titled with the scale."""
        levels_a, levels_b = batch
        n = self.scale
        randoms = self.draw_randoms(n, 0)
        prev_ab, c_prev_ab = chain(self.generators_ab, levels_a, [z[0] for z in randoms["chain_a"]], self.noise_amp,
                                   self.upsample, n, self.generators_ba)
        prev_ba, c_prev_ba = chain(self.generators_ba, levels_b, [z[0] for z in randoms["chain_b"]], self.noise_amp,
                                   self.upsample, n, self.generators_ab)
        fake_b = self.generators_ab[n]([self.noise_amp * randoms["noise_a"] + levels_a[n], prev_ab])
        fake_a = self.generators_ba[n]([self.noise_amp * randoms["noise_b"] + levels_b[n], prev_ba])
        h, w = self.rule.sizes[n]
        tag = f"scale {n} ({w}x{h})"
        return [(f"A, {tag}", levels_a[n]), ("A->B", fake_b), ("A->B->A", self.generators_ba[n]([fake_b, c_prev_ab])),
                ("B", levels_b[n]), ("B->A", fake_a), ("B->A->B", self.generators_ab[n]([fake_a, c_prev_ba]))]

    def get_config(self):
        return {"input_size": list(self.input_size), "min_size": self.min_size, "max_size": self.max_size,
                "scale_factor": self.scale_factor, "filters": self.filters, "min_filters": self.min_filters,
                "num_layers": self.num_layers, "iterations": self.iterations, "d_steps": self.d_steps,
                "g_steps": self.g_steps, "learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "decay_iteration": self.decay_iteration, "lr_gamma": self.lr_gamma, "gp_weight": self.gp_weight,
                "identity_weight": self.identity_weight, "cycle_weight": self.cycle_weight,
                "tv_weight": self.tv_weight, "noise_amp": self.noise_amp, "apply_finest": self.apply_finest,
                "seed": self.seed}
