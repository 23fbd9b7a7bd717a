"""DUNIT as the paper's figure describes it ("dunit_paper"): `DUNIT` plus the instance
branch on domain A (`instance.InstanceBranch`) and a consistency term with a gradient.
No released code has either (REFERENCE-WAVE4 §2.6, §4.2); every choice is documented."""

import keras
import tensorflow as tf
from keras import ops

from tf_translate.models.drit.translator import DRITTranslator
from tf_translate.models.dunit.instance import InstanceBranch
from tf_translate.models.dunit.model import DETECTOR_PHASE, DUNIT, draw_boxes, to_unit_range


def detector_agreement(detector, source, translation):
    """How differently the frozen `detector` sees `translation` than `source` ([-1, 1]
    images), float32: mean |σ(logits(x)) − σ(logits(G(x)))| over anchors and classes,
    plus the mean |Δ(x) − Δ(G(x))| of the box deltas weighted by each anchor's best class
    score on x (background anchors' deltas say nothing). The paper names an L1 between
    detections ("L1^{ic}"); its exact form is unreadable, so this dense form is ours."""
    logits_x, deltas_x = detector(tf.stop_gradient(to_unit_range(source)), training=False)
    logits_y, deltas_y = detector(to_unit_range(translation), training=False)
    scores_x = tf.stop_gradient(tf.sigmoid(logits_x))
    classes = tf.reduce_mean(tf.abs(scores_x - tf.sigmoid(logits_y)))
    weight = tf.reduce_max(scores_x, axis=-1, keepdims=True)
    deltas = tf.abs(tf.stop_gradient(deltas_x) - deltas_y)
    boxes = tf.reduce_sum(weight * deltas) / (4.0 * tf.reduce_sum(weight) + 1e-6)
    return classes + boxes


@keras.saving.register_keras_serializable(package="tf_translate")
class DUNITPaper(DUNIT):
    """DUNIT with the paper's instance branch (labelled "from the paper's figure").

    Training: `DUNIT`'s two phases. In the translation phase every A→B translation
    (encoded and random codes) decodes A's content map with the instance features of
    A's ground-truth boxes merged in (`InstanceBranch`: RoIAlign on the stride-4 map,
    instance encoder, residual block with the target code, paste-back); B→A and the
    reconstructions stay global (the figure's branch exists for domain X only). The EG
    loss gains `instance_consistency_loss` = `instance_weight` × `detector_agreement`
    of the frozen detector on real A and its translation (a gradient into E_c^A, the
    branch and G_B; the detector stays frozen). The released terms `ic_loss` and
    `ic_cycle_loss` are still logged without gradient.
    Test time: boxes come from the detector on the input (scores ≥
    `test_score_threshold`, at most `max_boxes`), or from the caller (`generators()["a2b"]`
    takes `boxes=`, `labels=`). B→A is DRIT++'s.

    Args:
        roi_size: RoIAlign cells per side (8).
        instance_weight: factor of the differentiable consistency (1; the paper's weight
            is unreadable).
        test_score_threshold: detections kept at test time (0.5; training logs use the
            released 0.05).
        **kwargs: `DUNIT`'s options.
    Reference: Bhattacharjee et al., CVPR 2020, Fig. 2 and its caption (docs/DUNIT_detailed.png
    of IVRL/Dunit).
    """

    def __init__(self, roi_size=8, instance_weight=1.0, test_score_threshold=0.5, **kwargs):
        super().__init__(**kwargs)
        self.roi_size = int(roi_size)
        self.instance_weight = float(instance_weight)
        self.test_score_threshold = float(test_score_threshold)
        content = self.filters * 4
        self.instance_branch = InstanceBranch(content, self.attribute_size, self.roi_size, name="instance_branch")
        self.instance_branch.build((None, None, None, content))

    def optimizer_variables(self):
        variables = super().optimizer_variables()
        variables["g_optimizer"] = variables["g_optimizer"] + self.instance_branch.trainable_variables
        return variables

    def content_a_for_b(self, content, codes):
        boxes, labels = self.step_inputs.ground_truth
        return self.instance_branch(content, boxes, labels, codes)

    def eg_losses(self, f, real_a, real_b):
        losses = super().eg_losses(f, real_a, real_b)
        losses["instance_consistency_loss"] = self.instance_weight * detector_agreement(
            self.detector, real_a, f["fake_b_encoded"])
        return losses

    def log_names(self):
        return super().log_names() + ["instance_consistency_loss"]

    def generators(self):
        translators = super().generators()
        translators["a2b"] = DUNITPaperTranslator(
            self.content_encoder_a, self.generator_b, self.instance_branch, self.detector, self.attribute_encoder_b,
            seed=self.seed, score_threshold=self.test_score_threshold, max_boxes=self.max_boxes, name="a2b")
        translators["a2b"].build((None, None, None, 3))
        return translators

    def sample_rows(self, batch):
        """`DUNIT`'s rows (global decoding), then A→B through the instance branch with A's
        ground-truth boxes drawn."""
        rows = super().sample_rows(batch)
        if self.phase == DETECTOR_PHASE:
            return rows
        real_a, boxes, labels = batch["a"][:1], batch["boxes_a"][:1], batch["labels_a"][:1]
        code = tf.random.stateless_normal((1, self.attribute_size), seed=[0, self.seed or 0])  # DRIT's code 1
        merged = self.instance_branch(self.content_encoder_a(real_a), boxes, labels, code)
        fake = self.generator_b(merged, code)
        rows.append(("fake B, instance branch on the ground-truth boxes, random code 1",
                     draw_boxes(fake, boxes.numpy(), labels.numpy())))
        return rows

    def get_config(self):
        return {**super().get_config(), "roi_size": self.roi_size, "instance_weight": self.instance_weight,
                "test_score_threshold": self.test_score_threshold}


@keras.saving.register_keras_serializable(package="tf_translate")
class DUNITPaperTranslator(DRITTranslator):
    """A→B with the instance branch: `DRITTranslator` whose content map gets the instance
    features of the detector's boxes (or the caller's `boxes`/`labels`) merged in."""

    takes_boxes = "optional"

    def __init__(self, content_encoder, generator, instance_branch, detector, attribute_encoder=None, seed=None,
                 score_threshold=0.5, max_boxes=16, **kwargs):
        super().__init__(content_encoder, generator, attribute_encoder, seed, **kwargs)
        self.instance_branch = instance_branch
        self.detector = detector
        self.score_threshold = float(score_threshold)
        self.max_boxes = int(max_boxes)

    def detect(self, images):
        """(boxes, labels) of the detector's boxes on [-1, 1] `images`, at most `max_boxes`."""
        detections = self.detector.detect(to_unit_range(images), score_threshold=self.score_threshold,
                                          iou_threshold=0.5, max_detections=self.max_boxes)
        return detections["boxes"], detections["labels"]

    def call(self, inputs, boxes=None, labels=None):
        images, codes = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        if codes is None:
            codes = self.random_codes(ops.shape(images)[0])
        if boxes is None:
            boxes, labels = self.detect(images)
        content = self.content_encoder(images)
        return self.generator(self.instance_branch(content, boxes, labels, codes), codes)

    def get_config(self):
        return {**super().get_config(), "instance_branch": keras.saving.serialize_keras_object(self.instance_branch),
                "detector": keras.saving.serialize_keras_object(self.detector),
                "score_threshold": self.score_threshold, "max_boxes": self.max_boxes}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("instance_branch", "detector"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return super().from_config(config)
