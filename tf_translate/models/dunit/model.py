"""DUNIT as released (IVRL/Dunit `--model DRITObjectDetection`), on the project's DRIT++."""

import io
import os
import threading

import keras
import numpy as np
import tensorflow as tf

from tf_translate.models.base import ReferenceRun
from tf_translate.models.drit import DRIT
from tf_translate.models.dunit.boxes import instance_consistency_tf
from tf_translate.models.dunit.detector import BoxDetector
from tf_translate.optimizers import current_learning_rate, make_adam

DETECTOR_PHASE = 0  # `phases()`: 0 detector pretraining, 1 translation
# Eval-mode detections as torchvision's Faster R-CNN keeps them in the released code (D7).
DETECTION = dict(score_threshold=0.05, iou_threshold=0.5, max_detections=100)


def to_unit_range(images):
    """[-1, 1] -> [0, 1], the detector's input range (D3), float32."""
    return (tf.cast(images, tf.float32) + 1.0) / 2.0


@keras.saving.register_keras_serializable(package="tf_translate")
class DUNIT(DRIT):
    """DUNIT as its code was released: DRIT plus a box detector, trained in two phases.

    1. "detector": a `BoxDetector` is trained alone on domain A's images and ground-truth
       boxes (the released `pretrain()`: `--nb-pretraining-epochs` 10 over the first
       domain, Adam lr 2e-4, betas (0.5, 0.999), no weight decay, constant rate), then
       frozen for good (not trainable; run in inference mode).
    2. "translation": DRIT++ exactly as `DRIT` trains it. Each full step also runs the
       frozen detector on the translation A→B (content of A, encoded attribute of B: the
       released `data[A][B]["fake"]`) and on A's self-reconstruction (content and
       attribute of A: `data[A]["reconstruction"]`, not the cross-cycle image) and
       compares its detections with A's ground-truth boxes by the released instance
       consistency (per image, mean over the classes present of 1 − multibox IoU; batch
       mean): `ic_loss` (weight 2, `--object-detection-loss-weight`) and `ic_cycle_loss`
       (weight 1, `--cycle-object-detection-loss-weight`). As in the released code they
       add to the generator loss's value (logged `eg_loss`, `g_loss`) and carry no
       gradient: the released term is rebuilt from Python floats (REFERENCE-WAVE4 §2.2);
       here it is computed after DRIT++'s updates, outside their tapes (the NMS has no
       gradient to give), so every update equals DRIT++'s. The step, detections included,
       compiles with XLA as DRIT++'s does.
    At test time the detector is unused, as released: `generators()` are DRIT++'s
    (translate and export as for `DRIT`); `sample_rows` draws the ground-truth boxes on A
    and the detector's boxes on the translations, and `evaluate` adds the detector's
    instance IoU on the translations (`instance_iou`).
    Both phases read the same dict batches (`dunit.data.box_dataset`, data kind
    "unpaired_boxes": trainA/trainB with boxes.json or init.txt, B's optional); the
    detector phase trains on every A image of the batch, and the step number counts
    detector steps, then DRIT++ iterations (`completed_steps`).

    What differs from the released code, and why:
    - The backbone is HsinYingLee's two-domain DRIT++ (the project's `DRIT`: concat
      attribute code, mode seeking, three-scale discriminators, its schedule and
      per-epoch decay), not IVRL's multi-domain DRIT (one-hot domain codes, D
      domain-classification heads, `--concat` off, one scale, StepLR(50, 0.1)).
    - The detector is the project's small one-stage `BoxDetector` (RetinaNet-style FPN
      and anchor head, focal loss), not torchvision's Faster R-CNN ResNet-50 (41.8 M
      weights, short side resized to 800); thresholds 0.05 / NMS 0.5 / 100 as released.
    - D1: the released SourceTarget loader builds the target domain from the source
      folder; here B is B. D2: boxes follow every resize, crop and flip of their image
      (`dunit.data`). D3: the detector reads [0, 1] images, not [−1, 1]. D4: the detector
      and its optimizer are in the checkpoint, and a resumed run continues in its phase
      (the released `--resume` skips pretraining and uses an untrained detector).
    - The released G step also takes the D loss's gradient (one backward of G_loss after
      D_loss's, retained graph; REFERENCE-WAVE4 §2.3): an unintended leak that torch ≥ 1.5
      refuses. It is not reproduced; DRIT++'s update order is kept.
    - An image without ground-truth boxes and without detections gives NaN in the
      released log (the mean of no classes); here it counts 0, so a finite log never
      stops a run. Only domain A's terms: the released code adds B's when B has boxes too
      (its run script's boxes on both sides came from D1's source folder).

    Args:
        num_classes: object classes K (labels 1..K); None: read from the training data's
            box files (`options_from_data`).
        detector_filters, detector_fpn_filters, detector_levels: the `BoxDetector`'s stem
            width, FPN and head width, and (min, max) FPN levels (3, 5; e.g. (2, 4) at 64 px).
        detector_epochs: length of the detector phase in epochs of domain A at the run's
            batch size (`--nb-pretraining-epochs` 10).
        detector_steps: the detector phase's length in steps instead (None: from epochs).
        detector_learning_rate: `--learning-rate-detection` 2e-4.
        ic_weight, ic_cycle_weight: 2 and 1, the factors of the logged terms.
        max_boxes: boxes per image the data keeps (padding rows beyond the file's).
        image_size, concat, ..., seed: `DRIT`'s options, with its defaults.
    Reference: Bhattacharjee et al., "DUNIT: Detection-based Unsupervised Image-to-Image
    Translation", CVPR 2020; IVRL/Dunit `src/models/object_detection/{drit,mixin}.py`,
    `src/models/losses/{iou_loss,multibox_intersection_over_union}.py`.
    """

    # The released defaults: 100 epochs, 216 px (the run script); batch 2 (DRIT++ needs
    # at least 2; the released default 1 only works in IVRL's DRIT).
    reference_run = ReferenceRun(image_size=216, batch_size=2, epochs=100)
    data_kind = "unpaired_boxes"

    # DRIT's options come through **kwargs (`models.constructor_options` offers them to --option).
    def __init__(self, num_classes=None, detector_filters=32, detector_fpn_filters=64, detector_levels=(3, 5),
                 detector_epochs=10, detector_steps=None, detector_learning_rate=2e-4, ic_weight=2.0,
                 ic_cycle_weight=1.0, max_boxes=16, **kwargs):
        if num_classes is None or int(num_classes) < 1:
            raise ValueError(f"DUNIT needs num_classes >= 1 (the object classes of the box files), got {num_classes}")
        if detector_steps is not None and int(detector_steps) < 0:
            raise ValueError(f"detector_steps must be >= 0, got {detector_steps}")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.detector_filters = detector_filters
        self.detector_fpn_filters = detector_fpn_filters
        self.detector_levels = tuple(int(level) for level in detector_levels)
        self.detector_epochs = detector_epochs
        self.detector_steps = None if detector_steps is None else int(detector_steps)
        self.detector_learning_rate = detector_learning_rate
        self.ic_weight = float(ic_weight)
        self.ic_cycle_weight = float(ic_cycle_weight)
        self.max_boxes = int(max_boxes)
        self.detector = BoxDetector(num_classes=self.num_classes, filters=detector_filters,
                                    fpn_filters=detector_fpn_filters, min_level=self.detector_levels[0],
                                    max_level=self.detector_levels[1], image_size=self.image_size, name="detector")
        self.detector.build()
        self.phase = DETECTOR_PHASE
        self.epoch_steps_a = None  # domain A's steps per epoch, set when the training data is read
        # What a train step hands its full step: the encoded image's (boxes, labels) and the
        # forward pass's images (`forward`); per thread, as replicas trace in threads.
        self.step_inputs = threading.local()

    # --- the contract (base.py) ----------------------------------------------------------

    @classmethod
    def options_from_data(cls, data, options):
        """`num_classes` from domain A's box file, unless given (or kept by the run)."""
        if options.get("num_classes") is not None:
            return {}
        return {"num_classes": count_classes(domain_a_folder(data))}

    def dataset_function(self):
        return self.make_dataset

    def make_dataset(self, data, batch_size=1, image_size=256, load_size=None, seed=None):
        """`dunit.data.box_dataset` (dict batches: a, b, boxes_a, labels_a, boxes_b, labels_b);
        also counts domain A's steps per epoch, the detector phase's unit."""
        from tf_translate.models.dunit.data import box_dataset

        dataset, steps_per_epoch, report = box_dataset(data, batch_size=batch_size, image_size=image_size,
                                                       load_size=load_size, seed=seed, max_boxes=self.max_boxes,
                                                       num_classes=self.num_classes)
        self.epoch_steps_a = max(1, report.image_counts[0] // batch_size)
        return dataset, steps_per_epoch, report

    def detector_phase_steps(self):
        if self.detector_steps is not None:
            return self.detector_steps
        if self.epoch_steps_a is None:
            raise ValueError("DUNIT's detector phase is counted in epochs of domain A: read the data first "
                             "(`make_dataset`) or give detector_steps")
        return self.detector_epochs * self.epoch_steps_a

    def phases(self, total_steps):
        """Detector pretraining on domain A's boxes, then DRIT++ for `total_steps`."""
        return [("detector pretraining on domain A's boxes", self.detector_phase_steps()),
                ("translation (DRIT++)", total_steps)]

    def start_phase(self, index):
        """The detector trains in phase 0 and is frozen from phase 1 on."""
        self.phase = index
        self.detector.trainable = index == DETECTOR_PHASE
        self.train_function = None

    def compile(self, total_steps=None, steps_per_epoch=None, jit_compile=True, **optimizers):
        """As `DRIT.compile`; `total_steps` counts both phases, and DRIT++'s decay spans the
        translation phase only (when the detector phase's length is known)."""
        if total_steps:
            try:
                total_steps = max(1, total_steps - self.detector_phase_steps())
            except ValueError:
                pass  # no data read (`runs.load_run`): the decay spans the whole run
        super().compile(total_steps, steps_per_epoch, jit_compile, **optimizers)

    def default_optimizers(self, total_steps, steps_per_epoch):
        optimizers = super().default_optimizers(total_steps, steps_per_epoch)
        optimizers["detector_optimizer"] = make_adam(self.detector_learning_rate, self.beta_1, self.beta_2)
        return optimizers

    def optimizer_variables(self):
        variables = super().optimizer_variables()
        # The detector's own trainable variables whether it is frozen or not: its optimizer
        # is built (and its state checkpointed) in every phase.
        variables["detector_optimizer"] = [v for v in self.detector.weights if v.trainable]
        return variables

    def completed_steps(self):
        """Detector steps plus DRIT++ iterations (D_content steps every iteration)."""
        return int(self.detector_optimizer.iterations.numpy()) + int(self.content_d_optimizer.iterations.numpy())

    # --- training ------------------------------------------------------------------------

    def train_step(self, data):
        if self.phase == DETECTOR_PHASE:
            return self.detector_step(data)
        # The encoded image is image 0 (DRIT++'s half_size 1): its boxes are the reference.
        self.step_inputs.ground_truth = (data["boxes_a"][:1], data["labels_a"][:1])
        try:
            return super().train_step((data["a"], data["b"]))
        finally:
            self.step_inputs.ground_truth = None

    def detector_step(self, data):
        """One detector update on the batch's A images and boxes (`pretrain()`): no L2
        term (the released detector's Adam has weight decay 0)."""
        with tf.GradientTape() as tape:
            loss = self.detector.detection_loss(to_unit_range(data["a"]), data["boxes_a"], data["labels_a"])
        self.apply_gradients("detector_optimizer", self.gradients("detector_optimizer", tape, loss))
        return {"detection_loss": tf.cast(loss, tf.float32),
                "learning_rate": current_learning_rate(self.detector_optimizer)}

    def instance_consistency(self, images, boxes, labels):
        """The released consistency of the frozen detector's detections on `images` with
        the ground truth, float32, without gradient. `images` is the one encoded image, so
        the batch mean is its value; with neither boxes nor detections it is 0 (released: NaN)."""
        detections = self.detector.detect(tf.stop_gradient(to_unit_range(images)), **DETECTION)
        value = instance_consistency_tf(boxes, labels, detections["boxes"], detections["labels"], self.num_classes)
        return tf.stop_gradient(tf.where(tf.math.is_nan(value), 0.0, tf.cast(value, tf.float32)))

    def forward(self, real_a, real_b):
        """DRIT++'s forward pass; keeps the images the consistency reads."""
        f = super().forward(real_a, real_b)
        self.step_inputs.images = (f["fake_b_encoded"], f["fake_a_self"])
        return f

    def full_step(self, real_a, real_b):
        """DRIT++'s full step, then the two consistency terms on its forward pass's A→B
        and self-reconstruction of A, outside every gradient tape (the released terms
        carry no gradient; the detector's NMS has none to give: inside a graph-mode tape
        it raised LookupError even behind stop_gradient), added to the logged
        `eg_loss` and `g_loss` as the released code adds them to G's loss value."""
        logs = super().full_step(real_a, real_b)
        translation, reconstruction = self.step_inputs.images
        boxes, labels = self.step_inputs.ground_truth
        ic = self.ic_weight * self.instance_consistency(translation, boxes, labels)
        ic_cycle = self.ic_cycle_weight * self.instance_consistency(reconstruction, boxes, labels)
        return {**logs, "ic_loss": ic, "ic_cycle_loss": ic_cycle, "eg_loss": logs["eg_loss"] + ic + ic_cycle,
                "g_loss": logs["g_loss"] + ic + ic_cycle}

    def log_names(self):
        return super().log_names() + ["ic_loss", "ic_cycle_loss"]

    # --- samples -------------------------------------------------------------------------

    def sample_rows(self, batch):
        """Ground-truth boxes drawn on real A, the detector's boxes on its translations and
        reconstruction (the detector phase: real A with ground truth, then detections)."""
        real_a, real_b = batch["a"][:1], batch["b"][:1]
        gt = (batch["boxes_a"][:1].numpy(), batch["labels_a"][:1].numpy())
        if self.phase == DETECTOR_PHASE:
            return [("real A, ground-truth boxes", draw_boxes(real_a, *gt)),
                    ("real A, detected boxes", self.with_detections(real_a))]
        rows = []
        for title, images in super().sample_rows((real_a, real_b)):
            if title == "real A":
                rows.append(("real A, ground-truth boxes", draw_boxes(images, *gt)))
            elif title.startswith("fake B") or title == "reconstructed A":
                rows.append((title + ", detected boxes", self.with_detections(images)))
            else:
                rows.append((title, images))
        return rows

    def with_detections(self, images):
        detections = self.detector.detect(to_unit_range(images), **DETECTION)
        return draw_boxes(images, detections["boxes"].numpy(), detections["labels"].numpy())

    # --- evaluation ----------------------------------------------------------------------

    def instance_iou(self, translate, folder, limit=None, score_threshold=DETECTION["score_threshold"]):
        """DUNIT's domain-adaptation view, with the released formula: the frozen detector's
        boxes on the translations of `folder`'s images that have ground-truth boxes (the
        first `limit` images), against those boxes: per image the mean over its classes of
        multibox IoU (1 − the released consistency), then the mean over images.

        Args:
            translate: uint8 [1, H, W, 3] -> uint8 translation of the same size.
            score_threshold: detections kept (the released 0.05 keeps every weak box,
                and each extra box lowers the multibox IoU).
        Returns:
            (mean instance IoU, images scored); (nan, 0) when no image has boxes.
        """
        from tf_translate.data import check_images, list_images, read_rgb
        from tf_translate.models.dunit.boxes import BoxWarnings, instance_consistency
        from tf_translate.models.dunit.data import annotation_file, read_annotations

        path = annotation_file(folder)
        if path is None:
            raise ValueError(f"--data: {folder} has no boxes.json or init.txt: the instance IoU needs its boxes")
        records, _ = read_annotations(path, self.num_classes, BoxWarnings(stream=io.StringIO()))
        scores = []
        for image_path in check_images(list_images(folder))[0][:limit]:
            record = records.get(os.path.basename(image_path))
            if record is None or not len(record["labels"]):
                continue
            translation = translate(read_rgb(image_path)[None])
            detections = self.detector.detect(tf.cast(translation, tf.float32) / 255.0,
                                              **{**DETECTION, "score_threshold": score_threshold})
            scores.append(1.0 - instance_consistency([record["boxes"]], [record["labels"]],
                                                     detections["boxes"].numpy(), detections["labels"].numpy()))
        return (float(np.mean(scores)) if scores else float("nan")), len(scores)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "detector_filters": self.detector_filters,
                "detector_fpn_filters": self.detector_fpn_filters, "detector_levels": list(self.detector_levels),
                "detector_epochs": self.detector_epochs, "detector_steps": self.detector_steps,
                "detector_learning_rate": self.detector_learning_rate, "ic_weight": self.ic_weight,
                "ic_cycle_weight": self.ic_cycle_weight, "max_boxes": self.max_boxes}


def domain_a_folder(data):
    """Domain A's training folder of `--data` (DIR/trainA, or the first of two folders)."""
    from tf_translate.data import domain_folders
    return domain_folders(data)[0]


def count_classes(folder):
    """Object classes of a domain folder's box file: the class list of boxes.json, else
    the largest label of init.txt (one-line errors name the file)."""
    from tf_translate.models.dunit.boxes import BoxWarnings
    from tf_translate.models.dunit.data import annotation_file, read_annotations

    path = annotation_file(folder)
    if path is None:
        raise ValueError(f"--data: {folder} has no boxes.json or init.txt (dunit trains its detector on "
                         "domain A's boxes)")
    records, classes = read_annotations(path, warnings=BoxWarnings(stream=io.StringIO()))  # the data warns
    if classes is not None:
        return len(classes)
    return max([int(label) for record in records.values() for label in record["labels"]], default=1)


# One colour per class (1, 2, 3, ...), cycling; RGB in [-1, 1].
BOX_COLOURS = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1], [1, -1, 1]], np.float32)


def draw_boxes(images, boxes, labels):
    """Copies of [-1, 1] `images` (N, H, W, 3) with each box (labels > 0) outlined 1 px
    wide in its class colour; boxes in xyxy pixels, clipped to the image."""
    images = np.array(images, np.float32)
    height, width = images.shape[1:3]
    for image, image_boxes, image_labels in zip(images, np.asarray(boxes), np.asarray(labels)):
        for (x1, y1, x2, y2), label in zip(image_boxes, image_labels):
            if label <= 0:
                continue
            left, top = int(np.clip(np.floor(x1), 0, width - 1)), int(np.clip(np.floor(y1), 0, height - 1))
            right, bottom = int(np.clip(np.ceil(x2) - 1, 0, width - 1)), int(np.clip(np.ceil(y2) - 1, 0, height - 1))
            colour = BOX_COLOURS[(int(label) - 1) % len(BOX_COLOURS)]
            image[top:bottom + 1, [left, right]] = colour
            image[[top, bottom], left:right + 1] = colour
    return images
