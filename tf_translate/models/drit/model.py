"""DRIT++'s training model (HsinYingLee/DRIT `src/model.py`, `src/train.py`). See the
package docstring."""

import keras
import tensorflow as tf
from keras import ops

from tf_translate.losses import bce_with_logits, l1_loss
from tf_translate.models.base import ReferenceRun, TranslationModel, unique
from tf_translate.models.drit.networks import (DRITAttributeEncoder, DRITContentDiscriminator, DRITContentEncoder,
                                              DRITGenerator, DRITMultiScaleDiscriminator, DRITResidualBlock,
                                              content_min_image_size)
from tf_translate.models.drit.translator import DRITTranslator
from tf_translate.optimizers import current_learning_rate, make_adam
from tf_translate.schedules import LinearDecay


def full_iterations(steps_per_epoch, period=3):
    """How many iterations of an epoch are full steps (`DRIT.is_full_iteration`)."""
    return sum(1 for it in range(steps_per_epoch) if (it + 1) % period == 0 or it >= steps_per_epoch - 2)


@keras.saving.register_keras_serializable(package="tf_translate")
class DRIT(TranslationModel):
    """The DRIT++ training model.

    Networks (reference names): `content_encoder_a`/`_b` (enc_c convA/convB with the
    shared conv_share), `attribute_encoder_a`/`_b` (enc_a), `generator_a`/`_b`
    (gen.forward_a / forward_b: decode into A / B), `discriminator_a`, `discriminator_b`
    (disA, disB: fakes with encoded attributes), `discriminator_a2`, `discriminator_b2`
    (disA2, disB2: fakes with random codes), `content_discriminator` (disContent).
    A→B is generator_b(content_encoder_a(x), z) (`generators()["a2b"]`).

    The schedule (`train.py`): loader iteration `it` (0-based, within the epoch) is a
    content-discriminator-only step unless (it + 1) % 3 == 0 or it is one of the
    epoch's last two; so D_content steps every iteration, the rest on a third.
    - content step (`update_D_content`): fresh batch, image 0 of each domain encoded
      (with the training noise), BCE(Dc(c_a), 0) + BCE(Dc(c_b), 1), gradient norm
      clipped to 5 (`clip_grad_norm_`), Adam at lr / 2.5.
    - full step: one forward pass (`forward`) on image 0 of each domain; then
      1. the image discriminators (BCE real 1 / fake 0 summed over scales; D_A2/D_B2's
         real is images 1: of the batch, their fakes the random-code fakes and, with
         mode seeking, the second random code's) and the content discriminator, on
         the forward's (held constant) fakes and content maps;
      2. `update_EG`: the EG loss (content adversarial BCE(Dc(c), 0.5), image
         adversarial against the updated D_A/D_B, 0.01·KL(z_a) as a sum, 0.01·mean(c²),
         10·cross-cycle L1, 10·self-reconstruction L1) steps both content encoders,
         attribute encoders and generators; then the G-alone loss (random-code
         adversarial against D_A2/D_B2, 10·latent regression |μ(E_a(G(c, z))) − z|,
         mode seeking 1 / (mean|G(c, z₂) − G(c, z₁)| / mean|z₂ − z₁| + 1e-5)) steps the
         content encoders and generators once more. Both losses come from the same
         forward pass, and their gradients are both taken at the weights before the EG
         step (one persistent tape): the second Adam step applies gradients of the
         pre-step weights, as the reference's `backward(retain_graph=True)` followed by
         a second backward through the same graph did on the torch versions it was
         written for. The attribute encoders get no latent-regression or mode-seeking
         update (the reference never steps enc_a after the second backward).
    Every optimizer is Adam (0.5, 0.999) with PyTorch's L2 weight decay 1e-4; the image
    Ds share one optimizer (each variable's update is the same as with four), as do the
    content encoders and generators (stepped twice per full step, as the reference's
    enc_c_opt and gen_opt). The learning rate decays per epoch: factor
    1 − max(0, epoch − E/2) / (E/2 + 1) for a run of E epochs (the reference's 1200
    epochs, decay from 600).

    Batch: at least 2 (reference 2). Image 0 is the encoded one, the rest are the real
    samples of D_A2 and D_B2 only (`half_size = 1`; a larger batch does not enlarge the
    main path, reference issues #18, #54).

    Differences from the reference: BCE is computed from logits (the reference's
    sigmoid + `binary_cross_entropy` clamps the log at −100, i.e. differs only for
    |logit| > 100); its `max_it = 500000` cap (and the crash at it, #39) is not ported,
    --steps / --epochs set the length; in the second backward, torch before 1.5 read the
    updated weights wherever autograd had saved a weight (the conv input gradients) but
    the pre-step activations everywhere else; here that gradient is the clean pre-step
    one (torch ≥ 1.5 refuses the reference's update, #48, #62).

    Args:
        image_size: training crop (reference `--crop_size` 216; `--resize_size` 256: pass
            --load-size 256 for its resize); a multiple of 4 of at least 212 (the content
            discriminator's minimum) unless `content_discriminator_layers` is lowered.
        concat: the concat attribute encoder and generator (`--concat 1`, default) or the
            feature-wise variant (`--concat 0`; the README recommends it for shape changes).
        mode_seeking: DRIT++'s mode-seeking term and second random code (`--no_ms` off).
        filters, attribute_filters, attribute_size, discriminator_filters,
            content_discriminator_filters: the reference's hard-coded 64, 64, `nz` 8, 64, 256.
        discriminator_layers, discriminator_scales: `n_layer` 4, `--dis_scale` 3.
        content_discriminator_layers: 3 (fewer only to test at small sizes).
        discriminator_norm: "none" (released: `--dis_norm` does nothing) or "instance".
        content_discriminator_norm: "none" (released) or "instance" (the code's intent).
        discriminator_negative_slope: 0.01 (released) or 0.2 (paper), every discriminator.
        learning_rate, content_learning_rate, beta_1, beta_2, weight_decay: 1e-4, 4e-5
            (lr / 2.5), 0.5, 0.999, 1e-4.
        content_clip_norm: 5. content_period: `--d_iter` 3.
        seed: seed of the training noise and codes and of the translators' random codes.
    Reference: `DRIT` in HsinYingLee/DRIT `src/model.py`; `src/train.py`.
    """

    reference_run = ReferenceRun(image_size=216, batch_size=2, epochs=1200)

    def __init__(self, image_size=216, concat=True, mode_seeking=True, filters=64, attribute_filters=64,
                 attribute_size=8, discriminator_filters=64, discriminator_layers=4, discriminator_scales=3,
                 content_discriminator_filters=256, content_discriminator_layers=3, discriminator_norm="none",
                 content_discriminator_norm="none", discriminator_negative_slope=0.01, learning_rate=1e-4,
                 content_learning_rate=4e-5, beta_1=0.5, beta_2=0.999, weight_decay=1e-4, content_clip_norm=5.0,
                 content_period=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.concat = bool(concat)
        self.mode_seeking = bool(mode_seeking)
        self.filters = filters
        self.attribute_filters = attribute_filters
        self.attribute_size = attribute_size
        self.discriminator_filters = discriminator_filters
        self.discriminator_layers = discriminator_layers
        self.discriminator_scales = discriminator_scales
        self.content_discriminator_filters = content_discriminator_filters
        self.content_discriminator_layers = content_discriminator_layers
        self.discriminator_norm = discriminator_norm
        self.content_discriminator_norm = content_discriminator_norm
        self.discriminator_negative_slope = float(discriminator_negative_slope)
        self.learning_rate = learning_rate
        self.content_learning_rate = content_learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.weight_decay = weight_decay
        self.content_clip_norm = content_clip_norm
        self.content_period = content_period
        self.seed = seed
        self.steps_per_epoch = None  # set by compile: the epoch tail rule and the decay need it

        content = filters * 4
        self.content_shared_block = DRITResidualBlock(content, name="content_shared")
        self.content_encoder_a = DRITContentEncoder(filters, self.content_shared_block, name="content_encoder_a")
        self.content_encoder_b = DRITContentEncoder(filters, self.content_shared_block, name="content_encoder_b")
        attribute = dict(filters=attribute_filters, attribute_size=attribute_size, concat=self.concat)
        self.attribute_encoder_a = DRITAttributeEncoder(**attribute, name="attribute_encoder_a")
        self.attribute_encoder_b = DRITAttributeEncoder(**attribute, name="attribute_encoder_b")
        self.generator_shared_block = DRITResidualBlock(content, name="generator_shared") if self.concat else None
        generator = dict(content_channels=content, attribute_size=attribute_size, concat=self.concat,
                         shared_block=self.generator_shared_block)
        self.generator_a = DRITGenerator(**generator, name="generator_a")
        self.generator_b = DRITGenerator(**generator, name="generator_b")
        if self.generators_only:
            for network in (self.content_encoder_a, self.content_encoder_b, self.attribute_encoder_a,
                            self.attribute_encoder_b):
                network.build((None, None, None, 3))
            for network in (self.generator_a, self.generator_b):
                network.build((None, None, None, content), (None, attribute_size))
            self.built = True
            return
        discriminator = dict(filters=discriminator_filters, num_layers=discriminator_layers,
                             num_scales=discriminator_scales, norm=discriminator_norm,
                             negative_slope=self.discriminator_negative_slope)
        self.discriminator_a = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_a")
        self.discriminator_b = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_b")
        self.discriminator_a2 = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_a2")
        self.discriminator_b2 = DRITMultiScaleDiscriminator(**discriminator, name="discriminator_b2")
        self.content_discriminator = DRITContentDiscriminator(
            content_discriminator_filters, content, content_discriminator_layers, content_discriminator_norm,
            self.discriminator_negative_slope, name="content_discriminator")
        minimum = max(content_min_image_size(self.content_discriminator), self.discriminator_a.min_size())
        minimum = -(-minimum // 4) * 4
        if image_size % 4 or image_size < minimum:
            raise ValueError(f"DRIT needs an image size that is a multiple of 4 and at least {minimum} px (the "
                             f"content discriminator's {content_discriminator_layers} stride-2 7x7 convs and 4x4 "
                             f"conv on the 1/4-size content map; reference crop 216), got {image_size}")
        self.noise_seed = keras.random.SeedGenerator(seed, name="training_noise")

        image = (None, None, None, 3)
        for network in (self.content_encoder_a, self.content_encoder_b, self.attribute_encoder_a,
                        self.attribute_encoder_b, self.discriminator_a, self.discriminator_b,
                        self.discriminator_a2, self.discriminator_b2):
            network.build(image)
        for network in (self.generator_a, self.generator_b):
            network.build((None, None, None, content), (None, attribute_size))
        self.content_discriminator.build((None, None, None, content))
        self.built = True

    # --- optimizers and schedule -------------------------------------------------------

    def compile(self, total_steps=None, steps_per_epoch=None, jit_compile=True, **optimizers):
        """As `TranslationModel.compile`; `steps_per_epoch` (loader iterations of an epoch)
        also places the reference's epoch tail of full steps. None: an endless loader,
        a full step every `content_period` iterations and no decay."""
        self.steps_per_epoch = steps_per_epoch
        super().compile(total_steps, steps_per_epoch, jit_compile, **optimizers)

    def default_optimizers(self, total_steps, steps_per_epoch):
        # Optimizer steps per epoch: D_content one per iteration; the image Ds and the
        # attribute encoders one per full step; content encoders + generators two.
        full = full_iterations(steps_per_epoch, self.content_period) if steps_per_epoch else None

        def adam(rate, steps_per_iteration):
            if total_steps and steps_per_epoch:
                epochs = max(2, -(-total_steps // steps_per_epoch))
                rate = LinearDecay(rate, epochs // 2 + 1, epochs - epochs // 2, steps_per_iteration)
            return make_adam(rate, self.beta_1, self.beta_2)

        # D_content first: it steps every iteration, so its count is the run's.
        return {"content_d_optimizer": adam(self.content_learning_rate, steps_per_epoch),
                "d_optimizer": adam(self.learning_rate, full),
                "g_optimizer": adam(self.learning_rate, 2 * full if full else None),
                "attribute_optimizer": adam(self.learning_rate, full)}

    def optimizer_variables(self):
        return {
            "content_d_optimizer": self.content_discriminator.trainable_variables,
            "d_optimizer": (self.discriminator_a.trainable_variables + self.discriminator_b.trainable_variables
                            + self.discriminator_a2.trainable_variables
                            + self.discriminator_b2.trainable_variables),
            "g_optimizer": unique(self.content_encoder_a.trainable_variables
                                  + self.content_encoder_b.trainable_variables
                                  + self.generator_a.trainable_variables + self.generator_b.trainable_variables),
            "attribute_optimizer": (self.attribute_encoder_a.trainable_variables
                                    + self.attribute_encoder_b.trainable_variables),
        }

    # --- inference ---------------------------------------------------------------------

    def generators(self):
        """{"a2b": E_c^A, G_B (and E_a^B for attribute transfer), "b2a": the reverse};
        each draws a random code per image unless given one (`DRITTranslator`)."""
        seeds = (None, None) if self.seed is None else (self.seed, self.seed + 1)
        translators = {
            "a2b": DRITTranslator(self.content_encoder_a, self.generator_b, self.attribute_encoder_b, seeds[0],
                                  name="a2b"),
            "b2a": DRITTranslator(self.content_encoder_b, self.generator_a, self.attribute_encoder_a, seeds[1],
                                  name="b2a")}
        for translator in translators.values():
            translator.build((None, None, None, 3))  # its parts are built: this only marks it
        return translators

    def sample_rows(self, batch):
        real_a, real_b = batch
        real_a, real_b = real_a[:1], real_b[:1]
        content_a, content_b = self.content_encoder_a(real_a), self.content_encoder_b(real_b)
        mean_a = self.attribute_encoder_a.encode(real_a)[0]
        mean_b = self.attribute_encoder_b.encode(real_b)[0]
        # Fixed codes, so that grids of successive steps are comparable.
        codes = tf.random.stateless_normal((3, self.attribute_size), seed=[0, self.seed or 0])
        rows = []
        for name, other, real, content, own, gen_own, gen_other, other_content, other_mean in (
                ("A", "B", real_a, content_a, mean_a, self.generator_a, self.generator_b, content_b, mean_b),
                ("B", "A", real_b, content_b, mean_b, self.generator_b, self.generator_a, content_a, mean_a)):
            rows.append((f"real {name}", real))
            rows += [(f"fake {other}, random code {i + 1}", gen_other(content, codes[i:i + 1])) for i in range(3)]
            rows += [(f"fake {other}, attribute of real {other}", gen_other(content, other_mean)),
                     (f"reconstructed {name}", gen_own(content, own))]
        return rows

    # --- the training step -------------------------------------------------------------

    def noise(self, shape, name):
        """N(0, 1) of `shape`, a fresh draw from the model's seed stream.

        `name` says what it is for: "content_a", "content_b" (the training noise of the
        content maps), "attribute_a", "attribute_b" (ε of z_a = μ + σε), "random",
        "random2" (the random codes), "content_recon_a", "content_recon_b",
        "attribute_recon_a", "attribute_recon_b" (the second translation's). The stream
        ignores it; it lets a test substitute known noise.
        """
        del name
        return keras.random.normal(shape, seed=self.noise_seed)

    def encode_content(self, encoder, images, name):
        content = encoder(images, training=True)
        return content + ops.cast(self.noise(ops.shape(content), name), content.dtype)

    def encode_attribute(self, encoder, images, name):
        """(z, μ, log σ²): z = μ + σε (concat) or the code itself (log σ² None)."""
        mean, log_variance = encoder.encode(images, training=True)
        if log_variance is None:
            return mean, mean, None
        return mean + ops.exp(0.5 * log_variance) * self.noise(ops.shape(mean), name), mean, log_variance

    def forward(self, real_a, real_b):
        """The reference's `forward` on the encoded images (image 0 of each domain)."""
        f = {}
        f["content_a"] = self.encode_content(self.content_encoder_a, real_a, "content_a")
        f["content_b"] = self.encode_content(self.content_encoder_b, real_b, "content_b")
        f["attribute_a"], f["mean_a"], f["log_variance_a"] = self.encode_attribute(
            self.attribute_encoder_a, real_a, "attribute_a")
        f["attribute_b"], f["mean_b"], f["log_variance_b"] = self.encode_attribute(
            self.attribute_encoder_b, real_b, "attribute_b")
        batch = ops.shape(real_a)[0]
        f["random"] = self.noise((batch, self.attribute_size), "random")
        draws = ["encoded", "self", "random"]
        codes_a = [f["attribute_a"], f["attribute_a"], f["random"]]
        codes_b = [f["attribute_b"], f["attribute_b"], f["random"]]
        if self.mode_seeking:
            f["random2"] = self.noise((batch, self.attribute_size), "random2")
            draws.append("random2")
            codes_a.append(f["random2"])
            codes_b.append(f["random2"])
        # One call per generator on all its inputs, as the reference (per-image norms only).
        contents_a = [f["content_b"], f["content_a"]] + [f["content_b"]] * (len(draws) - 2)
        contents_b = [f["content_b"] if draw == "self" else self.content_a_for_b(f["content_a"], code)
                      for draw, code in zip(draws, codes_b)]
        fakes_a = self.generator_a(ops.concatenate(contents_a, 0), ops.concatenate(codes_a, 0), training=True)
        fakes_b = self.generator_b(ops.concatenate(contents_b, 0), ops.concatenate(codes_b, 0), training=True)
        for draw, fake_a, fake_b in zip(draws, ops.split(fakes_a, len(draws)), ops.split(fakes_b, len(draws))):
            f[f"fake_a_{draw}"], f[f"fake_b_{draw}"] = fake_a, fake_b
        # Second translation: the fakes' content and attributes swapped back.
        f["content_recon_b"] = self.encode_content(self.content_encoder_a, f["fake_a_encoded"], "content_recon_b")
        f["content_recon_a"] = self.encode_content(self.content_encoder_b, f["fake_b_encoded"], "content_recon_a")
        attribute_recon_a = self.encode_attribute(self.attribute_encoder_a, f["fake_a_encoded"], "attribute_recon_a")[0]
        attribute_recon_b = self.encode_attribute(self.attribute_encoder_b, f["fake_b_encoded"], "attribute_recon_b")[0]
        f["recon_a"] = self.generator_a(f["content_recon_a"], attribute_recon_a, training=True)
        f["recon_b"] = self.generator_b(f["content_recon_b"], attribute_recon_b, training=True)
        # Latent regression: the codes re-encoded from the random-code fakes (μ only).
        f["regressed_a"] = self.attribute_encoder_a.encode(f["fake_a_random"], training=True)[0]
        f["regressed_b"] = self.attribute_encoder_b.encode(f["fake_b_random"], training=True)[0]
        return f

    def content_a_for_b(self, content, codes):
        """The content map of A that generator_b decodes with `codes`: A's own here; DUNIT's
        paper variant merges its instance features into it."""
        del codes
        return content

    @staticmethod
    def image_gan_loss(discriminator, images, target):
        """Σ over scales of mean BCE(sigmoid(D(images)), target)."""
        return tf.add_n([bce_with_logits(logits, target) for logits in discriminator(images, training=True)])

    def content_discriminator_loss(self, content_a, content_b):
        dc = self.content_discriminator
        return (bce_with_logits(dc(tf.stop_gradient(content_a), training=True), 0.0)
                + bce_with_logits(dc(tf.stop_gradient(content_b), training=True), 1.0))

    def update_content_discriminator(self, content_a, content_b):
        """One D_content update (`backward_contentD`, `clip_grad_norm_(5)`, step); its loss."""
        with tf.GradientTape() as tape:
            loss = self.content_discriminator_loss(content_a, content_b)
        grads = self.gradients("content_d_optimizer", tape, loss)
        # torch's clip_grad_norm_: g · min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ of the whole
        # network, on the gradient before the L2 term (Adam adds it inside its step).
        # The loss scale (mixed float16) is taken out of the norm; under several
        # replicas each clips its own gradient.
        unit = tf.cast(self.content_d_optimizer.scale_loss(tf.constant(1.0 / self.replicas())), tf.float32)
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads]) / unit
        coefficient = tf.minimum(1.0, self.content_clip_norm / (norm + 1e-6))
        grads = [g * tf.cast(coefficient, g.dtype) for g in grads]
        self.apply_gradients("content_d_optimizer", self.with_weight_decay("content_d_optimizer", grads))
        return loss

    def discriminator_losses(self, f, real_a, real_b, random_a, random_b):
        """The four image discriminators' losses (`backward_D`) on held-constant fakes."""
        fake = lambda key: tf.stop_gradient(f[key])

        def loss(discriminator, real, fake_images):
            return self.image_gan_loss(discriminator, real, 1.0) + self.image_gan_loss(discriminator, fake_images, 0.0)

        d_a = loss(self.discriminator_a, real_a, fake("fake_a_encoded"))
        d_b = loss(self.discriminator_b, real_b, fake("fake_b_encoded"))
        d_a2 = loss(self.discriminator_a2, random_a, fake("fake_a_random"))
        d_b2 = loss(self.discriminator_b2, random_b, fake("fake_b_random"))
        if self.mode_seeking:  # the real term counts twice, as the reference's two backward_D calls
            d_a2 += loss(self.discriminator_a2, random_a, fake("fake_a_random2"))
            d_b2 += loss(self.discriminator_b2, random_b, fake("fake_b_random2"))
        return {"d_a_loss": d_a, "d_b_loss": d_b, "d_a2_loss": d_a2, "d_b2_loss": d_b2}

    def eg_losses(self, f, real_a, real_b):
        """The reference's `backward_EG` terms (weights applied), by name."""
        dc = self.content_discriminator
        f32 = lambda t: tf.cast(t, tf.float32)
        losses = {
            "content_adversarial_loss": (bce_with_logits(dc(f["content_a"], training=True), 0.5)
                                         + bce_with_logits(dc(f["content_b"], training=True), 0.5)),
            "adversarial_loss": (self.image_gan_loss(self.discriminator_a, f["fake_a_encoded"], 1.0)
                                 + self.image_gan_loss(self.discriminator_b, f["fake_b_encoded"], 1.0)),
            "content_kl_loss": 0.01 * (tf.reduce_mean(tf.square(f32(f["content_a"])))
                                       + tf.reduce_mean(tf.square(f32(f["content_b"])))),
            "cycle_loss": 10.0 * (l1_loss(f["recon_a"], real_a) + l1_loss(f["recon_b"], real_b)),
            "recon_loss": 10.0 * (l1_loss(f["fake_a_self"], real_a) + l1_loss(f["fake_b_self"], real_b)),
        }
        if self.concat:  # −0.5 Σ (1 + log σ² − μ² − σ²): a sum over the batch and the code
            kl = lambda mean, log_variance: -0.5 * tf.reduce_sum(
                1.0 + log_variance - tf.square(mean) - tf.exp(log_variance))
            losses["kl_loss"] = 0.01 * (kl(f["mean_a"], f["log_variance_a"]) + kl(f["mean_b"], f["log_variance_b"]))
        else:
            losses["kl_loss"] = 0.01 * (tf.reduce_mean(tf.square(f["attribute_a"]))
                                        + tf.reduce_mean(tf.square(f["attribute_b"])))
        return losses

    def g_alone_losses(self, f):
        """The reference's `backward_G_alone` terms (weights applied), by name."""
        adversarial = (self.image_gan_loss(self.discriminator_a2, f["fake_a_random"], 1.0)
                       + self.image_gan_loss(self.discriminator_b2, f["fake_b_random"], 1.0))
        losses = {"latent_regression_loss": 10.0 * (l1_loss(f["regressed_a"], f["random"])
                                                    + l1_loss(f["regressed_b"], f["random"]))}
        if self.mode_seeking:
            adversarial += (self.image_gan_loss(self.discriminator_a2, f["fake_a_random2"], 1.0)
                            + self.image_gan_loss(self.discriminator_b2, f["fake_b_random2"], 1.0))
            codes = l1_loss(f["random2"], f["random"])
            losses["mode_seeking_loss"] = (
                1.0 / (l1_loss(f["fake_b_random2"], f["fake_b_random"]) / codes + 1e-5)
                + 1.0 / (l1_loss(f["fake_a_random2"], f["fake_a_random"]) / codes + 1e-5))
        losses["random_adversarial_loss"] = adversarial
        return losses

    def full_step(self, real_a, real_b):
        """`update_D` then `update_EG` on one batch; the logs."""
        encoded_a, encoded_b, random_a, random_b = real_a[:1], real_b[:1], real_a[1:], real_b[1:]
        with tf.GradientTape(persistent=True) as tape:
            f = self.forward(encoded_a, encoded_b)
            with tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    d_logs = self.discriminator_losses(f, encoded_a, encoded_b, random_a, random_b)
                    d_loss = tf.add_n(list(d_logs.values()))
                self.update("d_optimizer", d_tape, d_loss)
                content_d_loss = self.update_content_discriminator(f["content_a"], f["content_b"])
            # Against the updated discriminators, on the forward pass above.
            eg = self.eg_losses(f, encoded_a, encoded_b)
            eg_loss = tf.add_n(list(eg.values()))
            alone = self.g_alone_losses(f)
            alone_loss = tf.add_n(list(alone.values()))
        # Both phases' gradients at the pre-step weights, before anything is applied.
        eg_grads = self.gradients("g_optimizer", tape, eg_loss)
        attribute_grads = self.gradients("attribute_optimizer", tape, eg_loss)
        alone_grads = self.gradients("g_optimizer", tape, alone_loss)
        del tape
        self.apply_gradients("g_optimizer", self.with_weight_decay("g_optimizer", eg_grads))
        self.apply_gradients("attribute_optimizer", self.with_weight_decay("attribute_optimizer", attribute_grads))
        # Adam's L2 term reads the weights as they are now (after the EG step), as
        # torch's does at its second step.
        self.apply_gradients("g_optimizer", self.with_weight_decay("g_optimizer", alone_grads))
        return {"g_loss": eg_loss + alone_loss, "eg_loss": eg_loss, "g_alone_loss": alone_loss, "d_loss": d_loss,
                "content_d_loss": content_d_loss, **d_logs, **eg, **alone}

    def content_step(self, real_a, real_b):
        """`update_D_content`: a fresh encoding of image 0 of each domain, one D_content update."""
        content_a = self.encode_content(self.content_encoder_a, real_a[:1], "content_a")
        content_b = self.encode_content(self.content_encoder_b, real_b[:1], "content_b")
        return self.update_content_discriminator(content_a, content_b)

    def is_full_iteration(self, iteration):
        """Whether loader iteration `iteration` (counted from 0 over the run) is a full step:
        `(it + 1) % d_iter == 0 or it >= len(loader) - 2` with it counted in the epoch."""
        iteration = tf.cast(iteration, tf.int64)
        if not self.steps_per_epoch:
            return tf.equal((iteration + 1) % self.content_period, 0)
        it = iteration % self.steps_per_epoch
        return tf.logical_or(tf.equal((it + 1) % self.content_period, 0), it >= self.steps_per_epoch - 2)

    def log_names(self):
        names = ["g_loss", "eg_loss", "g_alone_loss", "d_loss", "content_d_loss", "d_a_loss", "d_b_loss",
                 "d_a2_loss", "d_b2_loss", "content_adversarial_loss", "adversarial_loss", "content_kl_loss",
                 "cycle_loss", "recon_loss", "kl_loss", "latent_regression_loss", "random_adversarial_loss"]
        return names + (["mode_seeking_loss"] if self.mode_seeking else [])

    def train_step(self, data):
        real_a, real_b, _ = keras.utils.unpack_x_y_sample_weight(data)
        if real_a.shape[0] is not None and real_a.shape[0] < 2:
            raise ValueError(f"DRIT trains on batches of at least 2 (image 0 is encoded, the others are the real "
                             f"samples of the random-code discriminators; reference 2), got {real_a.shape[0]}")
        learning_rate = current_learning_rate(self.g_optimizer)  # the rate this step's EG update uses
        iteration = self.content_d_optimizer.iterations
        names = self.log_names()
        held = self.held_logs()

        def full():
            logs = self.full_step(real_a, real_b)
            for name in names:
                held[name].assign(tf.cast(logs[name], tf.float32))
            return [tf.cast(logs[name], tf.float32) for name in names] + [tf.constant(1.0)]

        def content_only():
            loss = self.content_step(real_a, real_b)
            return [tf.cast(loss, tf.float32) if name == "content_d_loss" else held[name].read_value()
                    for name in names] + [tf.constant(0.0)]

        values = tf.cond(self.is_full_iteration(iteration), full, content_only)
        logs = dict(zip(names + ["full_step"], values))
        return {**logs, "learning_rate": learning_rate}

    def held_logs(self):
        """The last full step's losses, shown (and logged) during content-only steps.
        Plain tf.Variables, made on first use outside any traced function's scope."""
        if getattr(self, "_held", None) is None:
            with tf.init_scope():
                self._held = {name: tf.Variable(0.0, trainable=False, name=f"held_{name}")
                              for name in self.log_names()}
        return self._held

    def get_config(self):
        return {"image_size": self.image_size, "concat": self.concat, "mode_seeking": self.mode_seeking,
                "filters": self.filters, "attribute_filters": self.attribute_filters,
                "attribute_size": self.attribute_size, "discriminator_filters": self.discriminator_filters,
                "discriminator_layers": self.discriminator_layers, "discriminator_scales": self.discriminator_scales,
                "content_discriminator_filters": self.content_discriminator_filters,
                "content_discriminator_layers": self.content_discriminator_layers,
                "discriminator_norm": self.discriminator_norm,
                "content_discriminator_norm": self.content_discriminator_norm,
                "discriminator_negative_slope": self.discriminator_negative_slope,
                "learning_rate": self.learning_rate, "content_learning_rate": self.content_learning_rate,
                "beta_1": self.beta_1, "beta_2": self.beta_2, "weight_decay": self.weight_decay,
                "content_clip_norm": self.content_clip_norm, "content_period": self.content_period,
                "seed": self.seed}
