"""INIT (Shen et al., CVPR 2019), labelled "from the paper": no code was released, so
everything beyond the abstract's facts (REFERENCE-WAVE4 §3) is a documented choice."""

import threading

import keras
import tensorflow as tf
from keras import ops

from tf_translate.layers.roi import paste_instances, roi_align
from tf_translate.models.base import ReferenceRun
from tf_translate.models.drit import DRIT
from tf_translate.models.drit.networks import DRITAttributeEncoder, DRITMultiScaleDiscriminator
from tf_translate.models.drit.translator import DRITTranslator
from tf_translate.models.dunit.model import draw_boxes

SAMPLING_RATIO = 2  # RoIAlign samples per bin and axis (torchvision's detectors use 2)


def instance_crops(images, boxes, crop_size):
    """RoIAlign crops of `images` (B, H, W, 3) at `boxes` (B, M, 4) xyxy pixels, image level
    (spatial scale 1): (B·M, crop_size, crop_size, 3) and each crop's batch index (B·M,)."""
    batch, count = ops.shape(boxes)[0], ops.shape(boxes)[1]
    flat_boxes = ops.reshape(ops.cast(boxes, "float32"), (-1, 4))
    box_indices = ops.repeat(ops.arange(batch, dtype="int32"), count)
    crops = roi_align(images, flat_boxes, box_indices, crop_size, 1.0, SAMPLING_RATIO)
    return crops, flat_boxes, box_indices


def masked_mean(values, valid):
    """Mean of per-instance float32 `values` (N,) over the `valid` ones; 0 when none is."""
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(tf.cast(values, tf.float32) * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def per_instance_l1(x, y):
    """mean |x − y| of each instance (N, h, w, c) -> (N,), float32."""
    return tf.reduce_mean(tf.abs(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)), axis=[1, 2, 3])


def per_instance_gan_loss(discriminator, crops, target):
    """Σ over the discriminator's scales of each crop's mean BCE(σ(logits), target), (N,)."""
    losses = []
    for logits in discriminator(crops, training=True):
        logits = tf.cast(logits, tf.float32)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), float(target)), logits=logits)
        losses.append(tf.reduce_mean(bce, axis=[1, 2, 3]))
    return tf.add_n(losses)


@keras.saving.register_keras_serializable(package="tf_translate")
class INIT(DRIT):
    """INIT, instance-level translation with ground-truth boxes, on the project's DRIT++
    (labelled "from the paper": Shen et al. released no code; REFERENCE-WAVE4 §3).

    The paper's backbone is MUNIT-like; this port uses the project's DRIT++ (the
    disentangled content/attribute model the project has, and the one DUNIT compares
    with). DRIT++'s global model and every one of its terms and updates stay as they
    are; INIT adds an instance level on domain A's ground-truth boxes:
    - Instances: RoIAlign crops of A's encoded image (image 0 of the batch, as DRIT++'s
      main path) at its boxes, on the image (spatial scale 1), `crop_size` px square,
      2×2 samples per bin (`layers.roi.roi_align`, torchvision's aligned kernel).
      Padding rows (label 0) take part in no term.
    - Instance content: DRIT++'s content encoder A on the crops (shared with the global
      level, as INIT applies its encoders to the image and to the crops).
    - Instance style: a separate attribute encoder `instance_attribute_encoder_a` (INIT's
      instance styles are their own codes, not the global one; DRIT++'s encoder
      architecture, KL to N(0, 1) with DRIT++'s weight 0.01). Translated instances take
      random N(0, 1) codes, as DRIT++'s random-code path: the KL keeps the encoder's
      codes near that prior. (Using B's attribute encoder on B's crops was not chosen:
      B's boxes are optional in this project's data.)
    - Translated instances: generator_b(instance content, instance code), judged by a
      small instance discriminator `instance_discriminator_b` (DRIT++'s discriminator,
      one scale, `instance_discriminator_layers` layers) against real B crops of the same
      size: B's ground-truth boxes of image 0 (cycled when A has more) when B has any,
      otherwise boxes of A's box sizes at uniform random places in B.
    - Instance terms, added to DRIT++'s EG loss (so they step E_c, G and the instance
      attribute encoder with DRIT++'s optimizers; the instance discriminator steps with
      the image discriminators): `instance_recon_loss` = `instance_recon_weight` ×
      L1(G_A(E_c^A(crop), E_inst^A(crop)), crop); `instance_cycle_loss` =
      `instance_cycle_weight` × L1(G_A(E_c^B(translated crop), E_inst^A(crop)), crop)
      (0 turns it off); `instance_adversarial_loss` = `instance_adversarial_weight` ×
      BCE(D_inst(translated crop), 1); `instance_kl_loss` 0.01 × KL; the discriminator's
      `instance_d_loss` = BCE(D_inst(real B crop), 1) + BCE(D_inst(translated crop), 0).
      Each is a mean over the valid instances (0 without any). The weights are ours: the
      abstract gives none; they copy DRIT++'s (10 for reconstructions, 1 adversarial).
    Translation (`generators()["a2b"]`, `INITTranslator`): DRIT++'s global translation
    with each box's translated crop pasted back over its box (`paste_instances` at
    spatial scale 1; later boxes win where they overlap). Ground-truth boxes are required
    (INIT has no detector). B→A is DRIT++'s.

    Args:
        crop_size: instance crop side in px (32; a multiple of 4).
        instance_recon_weight, instance_cycle_weight, instance_adversarial_weight: 10, 10, 1.
        instance_discriminator_layers: strided convs of the instance discriminator (3).
        max_boxes: boxes per image the data keeps (padding rows beyond the file's).
        image_size, concat, ..., seed: `DRIT`'s options, with its defaults.
    Reference: Shen et al., "Towards Instance-level Image-to-Image Translation", CVPR 2019
    (abstract); DRIT++ as `DRIT`.
    """

    # The INIT dataset is high resolution; the size DUNIT trains INIT's data at (216) is
    # kept, with DRIT++'s batch; the length is DUNIT's (no INIT schedule is known).
    reference_run = ReferenceRun(image_size=216, batch_size=2, epochs=100)
    data_kind = "unpaired_boxes"

    # DRIT's options come through **kwargs (`models.constructor_options` offers them to --option).
    def __init__(self, crop_size=32, instance_recon_weight=10.0, instance_cycle_weight=10.0,
                 instance_adversarial_weight=1.0, instance_discriminator_layers=3, max_boxes=16, **kwargs):
        if int(crop_size) < 2 ** int(instance_discriminator_layers) or int(crop_size) % 4:
            raise ValueError(f"INIT's crop_size must be a multiple of 4 and at least 2^instance_discriminator_layers "
                             f"= {2 ** int(instance_discriminator_layers)}, got {crop_size}")
        super().__init__(**kwargs)
        self.crop_size = int(crop_size)
        self.instance_recon_weight = float(instance_recon_weight)
        self.instance_cycle_weight = float(instance_cycle_weight)
        self.instance_adversarial_weight = float(instance_adversarial_weight)
        self.instance_discriminator_layers = int(instance_discriminator_layers)
        self.max_boxes = int(max_boxes)
        self.instance_attribute_encoder_a = DRITAttributeEncoder(
            filters=self.attribute_filters, attribute_size=self.attribute_size, concat=self.concat,
            name="instance_attribute_encoder_a")
        self.instance_discriminator_b = DRITMultiScaleDiscriminator(
            filters=self.discriminator_filters, num_layers=self.instance_discriminator_layers, num_scales=1,
            norm=self.discriminator_norm, negative_slope=self.discriminator_negative_slope,
            name="instance_discriminator_b")
        for network in (self.instance_attribute_encoder_a, self.instance_discriminator_b):
            network.build((None, None, None, 3))
        # What a train step hands its full step (`step_boxes`); per thread, as replicas
        # trace in threads.
        self.step_inputs = threading.local()

    # --- the contract (base.py) ----------------------------------------------------------

    def dataset_function(self):
        return self.make_dataset

    def make_dataset(self, data, batch_size=1, image_size=256, load_size=None, seed=None):
        """`dunit.data.box_dataset` (dict batches: a, b, boxes_a, labels_a, boxes_b, labels_b)."""
        from tf_translate.models.dunit.data import box_dataset

        return box_dataset(data, batch_size=batch_size, image_size=image_size, load_size=load_size, seed=seed,
                           max_boxes=self.max_boxes)

    def optimizer_variables(self):
        variables = super().optimizer_variables()
        variables["d_optimizer"] = variables["d_optimizer"] + self.instance_discriminator_b.trainable_variables
        variables["attribute_optimizer"] = (variables["attribute_optimizer"]
                                            + self.instance_attribute_encoder_a.trainable_variables)
        return variables

    def generators(self):
        """DRIT++'s directions; a2b pastes translated instances (`INITTranslator`)."""
        translators = super().generators()
        translators["a2b"] = INITTranslator(self.content_encoder_a, self.generator_b, self.attribute_encoder_b,
                                            seed=self.seed, crop_size=self.crop_size, name="a2b")
        translators["a2b"].build((None, None, None, 3))
        return translators

    # --- training ------------------------------------------------------------------------

    @property
    def step_boxes(self):
        """(boxes_a, labels_a, boxes_b, labels_b) of the encoded images (image 0 of each domain)."""
        return getattr(self.step_inputs, "boxes", None)

    @step_boxes.setter
    def step_boxes(self, value):
        self.step_inputs.boxes = value

    def train_step(self, data):
        # The encoded images are image 0 of each domain (DRIT++'s half_size 1).
        self.step_boxes = (data["boxes_a"][:1], data["labels_a"][:1], data["boxes_b"][:1], data["labels_b"][:1])
        try:
            return super().train_step((data["a"], data["b"]))
        finally:
            self.step_boxes = None

    def real_instance_boxes_b(self, boxes_a, boxes_b, labels_b, image_shape):
        """(M, 4) boxes of real B crops for A's M boxes: B's valid boxes in turn when B has
        any, else A's box sizes at uniform random places inside B (no dynamic shapes)."""
        count = tf.reduce_sum(tf.cast(labels_b > 0, tf.int32))
        valid_first = tf.argsort(tf.cast(labels_b > 0, tf.int32), direction="DESCENDING", stable=True)
        rows = tf.range(tf.shape(boxes_a)[0]) % tf.maximum(count, 1)
        from_b = tf.gather(tf.gather(boxes_b, valid_first), rows)
        size = tf.cast(tf.stack([image_shape[1], image_shape[0]]), tf.float32)  # (W, H)
        extent = tf.clip_by_value(boxes_a[:, 2:] - boxes_a[:, :2], 1.0, size)
        corner = keras.random.uniform(tf.shape(extent), seed=self.noise_seed) * (size - extent)
        random = tf.concat([corner, corner + extent], axis=-1)
        return tf.where(count > 0, from_b, random)

    def forward(self, real_a, real_b):
        """DRIT++'s forward pass, plus the instance level on image 0's boxes of A."""
        f = super().forward(real_a, real_b)
        boxes_a, labels_a, boxes_b, labels_b = self.step_boxes
        crops, flat_boxes, _ = instance_crops(real_a, boxes_a, self.crop_size)
        f["instance_valid"] = ops.reshape(labels_a, (-1,)) > 0
        f["instance_crops_a"] = crops
        real_boxes = self.real_instance_boxes_b(flat_boxes, boxes_b[0], labels_b[0], tf.shape(real_b)[1:3])
        f["instance_crops_b"] = roi_align(real_b, real_boxes, tf.zeros_like(real_boxes[:, 0], tf.int32),
                                          self.crop_size, 1.0, SAMPLING_RATIO)
        count = ops.shape(crops)[0]
        content = self.encode_content(self.content_encoder_a, crops, "instance_content_a")
        style, f["instance_mean_a"], f["instance_log_variance_a"] = self.encode_attribute(
            self.instance_attribute_encoder_a, crops, "instance_attribute_a")
        f["instance_codes"] = self.noise((count, self.attribute_size), "instance_random")
        f["instance_fake_b"] = self.generator_b(content, f["instance_codes"], training=True)
        f["instance_self_a"] = self.generator_a(content, style, training=True)
        if self.instance_cycle_weight:
            content_fake = self.encode_content(self.content_encoder_b, f["instance_fake_b"], "instance_content_b")
            f["instance_cycle_a"] = self.generator_a(content_fake, style, training=True)
        return f

    def discriminator_losses(self, f, real_a, real_b, random_a, random_b):
        losses = super().discriminator_losses(f, real_a, real_b, random_a, random_b)
        d = self.instance_discriminator_b
        per_instance = (per_instance_gan_loss(d, f["instance_crops_b"], 1.0)
                        + per_instance_gan_loss(d, tf.stop_gradient(f["instance_fake_b"]), 0.0))
        losses["instance_d_loss"] = masked_mean(per_instance, f["instance_valid"])
        return losses

    def eg_losses(self, f, real_a, real_b):
        losses = super().eg_losses(f, real_a, real_b)
        valid, crops = f["instance_valid"], f["instance_crops_a"]
        losses["instance_recon_loss"] = self.instance_recon_weight * masked_mean(
            per_instance_l1(f["instance_self_a"], crops), valid)
        losses["instance_cycle_loss"] = (
            self.instance_cycle_weight * masked_mean(per_instance_l1(f["instance_cycle_a"], crops), valid)
            if self.instance_cycle_weight else tf.constant(0.0))
        losses["instance_adversarial_loss"] = self.instance_adversarial_weight * masked_mean(
            per_instance_gan_loss(self.instance_discriminator_b, f["instance_fake_b"], 1.0), valid)
        mean = tf.cast(f["instance_mean_a"], tf.float32)
        if self.concat:  # DRIT++'s KL, summed over the code, here per instance
            log_variance = tf.cast(f["instance_log_variance_a"], tf.float32)
            kl = -0.5 * tf.reduce_sum(1.0 + log_variance - tf.square(mean) - tf.exp(log_variance), axis=-1)
        else:
            kl = tf.reduce_mean(tf.square(mean), axis=-1)
        losses["instance_kl_loss"] = 0.01 * masked_mean(kl, valid)
        return losses

    def log_names(self):
        return super().log_names() + ["instance_d_loss", "instance_recon_loss", "instance_cycle_loss",
                                      "instance_adversarial_loss", "instance_kl_loss"]

    # --- samples -------------------------------------------------------------------------

    def sample_rows(self, batch):
        """DRIT++'s rows with A's ground-truth boxes drawn on real A, then INIT's A→B
        (translated instances pasted over the global translation) with the boxes drawn."""
        real_a, real_b = batch["a"][:1], batch["b"][:1]
        boxes, labels = batch["boxes_a"][:1], batch["labels_a"][:1]
        rows = []
        for title, images in super().sample_rows((real_a, real_b)):
            if title == "real A":
                rows.append(("real A, ground-truth boxes", draw_boxes(images, boxes.numpy(), labels.numpy())))
            else:
                rows.append((title, images))
        code = tf.random.stateless_normal((1, self.attribute_size), seed=[0, self.seed or 0])  # DRIT's code 1
        fake = self.generators()["a2b"]([real_a, code], boxes=boxes, labels=labels)
        rows.append(("fake B, instances pasted, random code 1", draw_boxes(fake, boxes.numpy(), labels.numpy())))
        return rows

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size,
                "instance_recon_weight": self.instance_recon_weight,
                "instance_cycle_weight": self.instance_cycle_weight,
                "instance_adversarial_weight": self.instance_adversarial_weight,
                "instance_discriminator_layers": self.instance_discriminator_layers, "max_boxes": self.max_boxes}


@keras.saving.register_keras_serializable(package="tf_translate")
class INITTranslator(DRITTranslator):
    """INIT's A→B: DRIT++'s global translation with each box's translated crop
    (generator(content_encoder(crop), code)) pasted back over the box.

    `translator([images, codes], boxes=..., labels=...)`: boxes (B, M, 4) xyxy pixels,
    labels (B, M), 0 = padding. Boxes are required (INIT has no detector). Each instance
    takes its image's code (one draw per image from N(0, 1), the prior of both the global
    and the instance styles; a design choice: INIT's test-time instance styles are not
    known)."""

    takes_boxes = "required"

    def __init__(self, content_encoder, generator, attribute_encoder=None, seed=None, crop_size=32, **kwargs):
        super().__init__(content_encoder, generator, attribute_encoder, seed, **kwargs)
        self.crop_size = int(crop_size)

    def call(self, inputs, boxes=None, labels=None):
        if boxes is None or labels is None:
            raise ValueError("init translates with ground-truth boxes: pass boxes= (B, M, 4) xyxy pixels and "
                             "labels= (B, M), 0 = padding (INIT has no detector)")
        images, codes = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        if codes is None:
            codes = self.random_codes(ops.shape(images)[0])
        translation = self.generator(self.content_encoder(images), codes)
        crops, flat_boxes, box_indices = instance_crops(images, boxes, self.crop_size)
        instances = self.generator(self.content_encoder(ops.cast(crops, images.dtype)),
                                   ops.take(codes, box_indices, axis=0))
        valid = ops.reshape(labels, (-1,)) > 0
        return paste_instances(translation, instances, flat_boxes, box_indices, 1.0, valid=valid)

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size}
