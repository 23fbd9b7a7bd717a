"""A small one-stage box detector (RetinaNet-style), built from config with no downloads:
DUNIT's detection network.

The released DUNIT code pretrains a detector on domain A's ground-truth boxes, then
freezes it and reads its detections on translations (REFERENCE-WAVE4 §2.2). keras-hub's
RetinaNet would do, but keras-hub 0.32.0 requires `tensorflow-text` on Linux, and every
`tensorflow-text` wheel requires the full `tensorflow` wheel: `pip install --dry-run
keras-hub` here would add tensorflow 2.21.0 (572 MB) beside tensorflow-cpu, plus
tensorflow-text 2.21.1, tokenizers, sentencepiece, kagglehub, kagglesdk and
huggingface_hub (measured 2026-12). keras-hub itself does not need tensorflow-text to
build and train a RetinaNet (installed with `--no-deps` next to tokenizers,
sentencepiece, kagglehub, kagglesdk and huggingface_hub, it imported, built one from
config and ran a `fit` step), but a package extra cannot say `--no-deps`. So this module
holds an own detector of the same family.

How it differs from the released detector (torchvision `fasterrcnn_resnet50_fpn`,
41,808,406 parameters from scratch; §2.2):
- One stage, not two: a class head and a box head shared over the FPN levels predict
  sigmoid class scores and box deltas for every anchor (RetinaNet, Lin et al. 2017);
  there is no region proposal network, no RoIAlign and no second box head.
- Much smaller: 5,233,311 parameters at the defaults for 3 classes (filters 32, levels
  P3-P5, 2 head convolutions), 374,575 in the 64-px test configuration; the released
  model has 41,808,406 (ResNet-50 + FPN + RPN + RoI heads).
- D8: GroupNorm in the backbone, so training and frozen inference compute the same
  function and there is no choice between BatchNorm and the identity FrozenBatchNorm.
- D3: inputs are [0, 1] images at their own size; no resize to 800 px and no ImageNet
  normalisation (the network maps [0, 1] to [-1, 1] itself). Anchor sizes scale with the
  levels (`anchor_scale` × stride), so pick levels and scale to suit the object sizes.
- Kept from the released evaluation settings (D7): score threshold 0.05, per-class NMS at
  IoU 0.5, at most 100 detections per image.
`detect` runs inside jit-compiled functions (XLA) and converts to TFLite with builtin ops
only (export with `keras.export.ExportArchive`: a plain tf.Module leaves the weights as
uninitialised resource variables in the .tflite file).
Losses: sigmoid focal loss (alpha 0.25, gamma 2) over positive and negative anchors, and
smooth L1 (beta 1/9, Detectron's RetinaNet) on the (dx, dy, dw, dh) deltas of positive
anchors; each summed and divided by the number of positive anchors in the batch (at
least 1). Anchors match a ground-truth box at IoU >= 0.5, are background below 0.4 and
ignored in between; each box's best anchors are positive too (torchvision's
`allow_low_quality_matches`), so boxes smaller than every anchor still train.
Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017; torchvision
`models/detection/retinanet.py` (box coder weights 1, focal loss, NMS trick of
`batched_nms`); IVRL/Dunit `src/models/object_detection/mixin.py` (the detector it replaces).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
SMOOTH_L1_BETA = 1.0 / 9.0
# The class head's bias starts at the prior probability 0.01 of an object (RetinaNet).
PRIOR_PROBABILITY = 0.01
# torchvision's BoxCoder clamp of dw, dh before exp.
MAX_LOG_SCALE = math.log(1000.0 / 16)
# The best (anchor, class) scores kept per image before NMS (torchvision: 1000 per level).
NMS_CANDIDATES = 1000


def anchor_boxes(height, width, min_level, max_level, anchor_scale, scales_per_octave, aspect_ratios):
    """The anchors of every level, (A, 4) float32 xyxy pixels, in the heads' output order.

    Level l has stride s = 2**l and a ceil(height / s) x ceil(width / s) grid (the
    backbone's "same" stride-2 convolutions). At each cell, centred at ((x + 0.5) s,
    (y + 0.5) s), one anchor per aspect ratio r (height / width) and octave scale
    i = 0 .. scales_per_octave - 1, ratios outer: size = anchor_scale * s * 2**(i /
    scales_per_octave), width size / sqrt(r), height size * sqrt(r). Levels in order,
    cells row-major. `height` and `width` may be tensors (free-size export).
    """
    levels = []
    for level in range(min_level, max_level + 1):
        stride = 2 ** level
        sizes = [(anchor_scale * stride * 2.0 ** (octave / scales_per_octave), ratio)
                 for ratio in aspect_ratios for octave in range(scales_per_octave)]
        half = np.array([[size / math.sqrt(ratio) / 2, size * math.sqrt(ratio) / 2] for size, ratio in sizes],
                        np.float32)
        rows, cols = (height + stride - 1) // stride, (width + stride - 1) // stride
        ys = (tf.range(tf.cast(rows, tf.float32)) + 0.5) * stride
        xs = (tf.range(tf.cast(cols, tf.float32)) + 0.5) * stride
        ys, xs = tf.meshgrid(ys, xs, indexing="ij")
        centres = tf.reshape(tf.stack([xs, ys], axis=-1), (-1, 1, 2))
        levels.append(tf.reshape(tf.concat([centres - half, centres + half], axis=-1), (-1, 4)))
    return tf.concat(levels, axis=0)


def box_iou(boxes1, boxes2):
    """IoU of every pair: (..., N, 4) and (..., M, 4) xyxy -> (..., N, M); 0 for empty unions."""
    b1, b2 = boxes1[..., :, None, :], boxes2[..., None, :, :]
    overlap_w = tf.maximum(tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0]), 0.0)
    overlap_h = tf.maximum(tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1]), 0.0)
    intersection = overlap_w * overlap_h
    area = lambda b: tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)
    union = area(b1) + area(b2) - intersection
    return tf.math.divide_no_nan(intersection, union)


def _centre_form(boxes):
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return width, height, boxes[..., 0] + width / 2, boxes[..., 1] + height / 2


def encode_boxes(boxes, anchors):
    """(dx, dy, dw, dh) = ((cx - cx_a) / w_a, (cy - cy_a) / h_a, log(w / w_a), log(h / h_a)):
    torchvision's BoxCoder with weights (1, 1, 1, 1), as its RetinaNet."""
    anchor_w, anchor_h, anchor_cx, anchor_cy = _centre_form(anchors)
    w, h, cx, cy = _centre_form(boxes)
    return tf.stack([(cx - anchor_cx) / anchor_w, (cy - anchor_cy) / anchor_h,
                     tf.math.log(w / anchor_w), tf.math.log(h / anchor_h)], axis=-1)


def decode_boxes(deltas, anchors):
    """The inverse of `encode_boxes`, dw and dh clamped at log(1000 / 16) as torchvision's."""
    anchor_w, anchor_h, anchor_cx, anchor_cy = _centre_form(anchors)
    dx, dy, dw, dh = tf.unstack(deltas, axis=-1)
    cx, cy = dx * anchor_w + anchor_cx, dy * anchor_h + anchor_cy
    w = tf.exp(tf.minimum(dw, MAX_LOG_SCALE)) * anchor_w
    h = tf.exp(tf.minimum(dh, MAX_LOG_SCALE)) * anchor_h
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def match_anchors(anchors, boxes, labels, positive_iou=POSITIVE_IOU, negative_iou=NEGATIVE_IOU):
    """Each anchor's ground-truth box and its state, for padded ground truth.

    Args:
        anchors: (A, 4) xyxy. boxes: (B, M, 4) xyxy; labels: (B, M) int, 0 = padding.
    Returns:
        matched (B, A) int32, the index of the anchor's highest-IoU real box (0 when the
        image has none); positive (B, A) bool: IoU >= positive_iou, or the anchor has the
        highest IoU (> 0) of some box (ties all count; the anchor keeps its own best
        box, as torchvision's Matcher); negative (B, A) bool: not positive and IoU <
        negative_iou. Anchors that are neither are ignored.
    """
    real = labels > 0
    iou = tf.where(real[:, None, :], box_iou(anchors, boxes), -1.0)
    best_iou = tf.reduce_max(iou, axis=2)
    matched = tf.argmax(iou, axis=2, output_type=tf.int32)
    best_per_box = tf.reduce_max(iou, axis=1, keepdims=True)
    low_quality = tf.reduce_any((iou == best_per_box) & (best_per_box > 0.0) & real[:, None, :], axis=2)
    positive = (best_iou >= positive_iou) | low_quality
    negative = ~positive & (best_iou < negative_iou)
    return matched, positive, negative


def sigmoid_focal_loss(logits, targets, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA):
    """Elementwise -alpha_t (1 - p_t)^gamma log(p_t), p = sigmoid(logits), p_t = p for
    target 1 and 1 - p for target 0, alpha_t = alpha for 1 and 1 - alpha for 0
    (torchvision.ops.sigmoid_focal_loss, reduction "none"); float32."""
    logits, targets = tf.cast(logits, tf.float32), tf.cast(targets, tf.float32)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    p = tf.sigmoid(logits)
    p_t = p * targets + (1.0 - p) * (1.0 - targets)
    alpha_t = alpha * targets + (1.0 - alpha) * (1.0 - targets)
    return alpha_t * (1.0 - p_t) ** gamma * cross_entropy


def smooth_l1(x, beta=SMOOTH_L1_BETA):
    """Elementwise 0.5 x^2 / beta where |x| < beta, else |x| - 0.5 beta."""
    absolute = tf.abs(x)
    return tf.where(absolute < beta, 0.5 * tf.square(x) / beta, absolute - 0.5 * beta)


def retinanet_losses(class_logits, box_deltas, anchors, boxes, labels):
    """(focal classification loss, smooth-L1 box loss), float32 scalars, for padded
    ground truth `boxes` (B, M, 4) and `labels` (B, M) (0 = padding) against the head
    outputs (B, A, K) and (B, A, 4); see the module docstring for the normalisation."""
    class_logits, box_deltas = tf.cast(class_logits, tf.float32), tf.cast(box_deltas, tf.float32)
    boxes, labels = tf.cast(boxes, tf.float32), tf.cast(labels, tf.int32)
    matched, positive, negative = match_anchors(anchors, boxes, labels)
    num_positive = tf.maximum(tf.reduce_sum(tf.cast(positive, tf.float32)), 1.0)
    matched_labels = tf.gather(labels, matched, batch_dims=1)
    targets = tf.one_hot(matched_labels - 1, class_logits.shape[-1]) * tf.cast(positive, tf.float32)[..., None]
    counted = tf.cast(positive | negative, tf.float32)[..., None]
    classification = tf.reduce_sum(sigmoid_focal_loss(class_logits, targets) * counted) / num_positive
    # Non-positive anchors regress onto themselves (zero targets, masked out): padding
    # rows would give log(0).
    matched_boxes = tf.where(positive[..., None], tf.gather(boxes, matched, batch_dims=1), anchors)
    box_targets = encode_boxes(matched_boxes, anchors)
    regression = smooth_l1(box_deltas - box_targets) * tf.cast(positive, tf.float32)[..., None]
    return classification, tf.reduce_sum(regression) / num_positive


def per_class_nms(boxes, scores, score_threshold, iou_threshold, max_detections):
    """Per-class NMS of decoded boxes (B, A, 4), coordinates >= 0 (`detect` clips them to
    the image), and class scores (B, A, K), padded.

    Per image: the NMS_CANDIDATES best (anchor, class) scores, each class's boxes shifted
    by class x (largest coordinate + 1) so that classes never overlap (torchvision's
    `batched_nms`), one NMS over them, highest scores first. The op is NonMaxSuppressionV4
    with padded output: it has an XLA kernel (so a jit-compiled train step can log
    detections; V5, `non_max_suppression_with_scores`, has none) and is a TFLite builtin.
    Returns a dict: boxes (B, D, 4), scores (B, D), labels (B, D) int32 1..K with 0 for
    padding, num_detections (B,) int32; D = max_detections, padding rows all zero.
    """
    num_classes = scores.shape[-1]

    def one_image(inputs):
        image_boxes, image_scores = inputs
        flat_scores = tf.reshape(image_scores, [-1])
        size = flat_scores.shape[0]
        count = min(NMS_CANDIDATES, size) if size is not None else tf.minimum(NMS_CANDIDATES, tf.size(flat_scores))
        top_scores, top = tf.math.top_k(flat_scores, count)
        candidates, classes = tf.gather(image_boxes, top // num_classes), top % num_classes
        shift = tf.cast(classes, tf.float32) * (tf.reduce_max(candidates) + 1.0)
        selected, num_selected = tf.raw_ops.NonMaxSuppressionV4(
            boxes=candidates + shift[:, None], scores=top_scores, max_output_size=max_detections,
            iou_threshold=iou_threshold, score_threshold=score_threshold, pad_to_max_output_size=True)
        valid = tf.range(max_detections) < num_selected
        keep = lambda values: tf.where(tf.reshape(valid, [-1] + [1] * (values.shape.rank - 1)), values,
                                       tf.zeros_like(values))
        return (keep(tf.gather(candidates, selected)), keep(tf.gather(top_scores, selected)),
                keep(tf.gather(classes, selected) + 1), num_selected)

    signature = (tf.TensorSpec((max_detections, 4), tf.float32), tf.TensorSpec((max_detections,), tf.float32),
                 tf.TensorSpec((max_detections,), tf.int32), tf.TensorSpec((), tf.int32))
    detected = tf.map_fn(one_image, (tf.cast(boxes, tf.float32), tf.cast(scores, tf.float32)),
                         fn_output_signature=signature)
    return dict(zip(("boxes", "scores", "labels", "num_detections"), detected))


@keras.saving.register_keras_serializable(package="tf_translate")
class DetectorResidualStage(layers.Layer):
    """relu(GN(conv3x3(relu(GN(conv3x3 stride 2 (x))))) + GN(conv1x1 stride 2 (x))): one
    backbone stage halving the map (a ResNet basic block with GroupNorm)."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        groups = math.gcd(8, filters)
        self.body = [layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False),
                     layers.GroupNormalization(groups), layers.ReLU(),
                     layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.GroupNormalization(groups)]
        self.shortcut = [layers.Conv2D(filters, 1, strides=2, use_bias=False), layers.GroupNormalization(groups)]

    def build(self, input_shape):
        for stack in (self.body, self.shortcut):
            shape = tuple(input_shape)
            for layer in stack:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))

    def call(self, x):
        body, shortcut = x, x
        for layer in self.body:
            body = layer(body)
        for layer in self.shortcut:
            shortcut = layer(shortcut)
        return ops.relu(body + shortcut)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        half = lambda n: None if n is None else (n + 1) // 2
        return (b, half(h), half(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class BoxDetector(keras.Model):
    """A RetinaNet-style detector: residual backbone, FPN, anchor heads shared by levels.

    Backbone: a 3x3 stride-2 stem (`filters`, GroupNorm, ReLU) and one `DetectorResidualStage`
    per further level up to `max_level`, level l having filters * 2**(l - 1) channels.
    FPN: 1x1 laterals to `fpn_filters` on levels min_level..max_level, top-down nearest x2
    upsampling (cropped to the lateral's size, so any image size works) added to them,
    a 3x3 conv on each sum. Heads: `head_convs` 3x3 convs + ReLU, then a 3x3 conv to
    anchors x classes (bias at the 0.01 prior) or anchors x 4; weights N(0, 0.01), bias 0.
    Class logits and deltas are float32 under any precision policy.

    Args:
        num_classes: object classes K (labels 1..K; 0 is padding).
        filters: stem width; each level doubles it.
        fpn_filters: FPN and head width.
        head_convs: convs before each head's output conv (RetinaNet: 4).
        min_level, max_level: FPN levels (stride 2**level); 3..5 by default, e.g. 2..4
            for 64-px scenes with objects of 4-30 px.
        anchor_scale: anchor size / stride at octave 0 (RetinaNet: 4).
        scales_per_octave: anchor sizes per level (RetinaNet: 3).
        aspect_ratios: anchor height / width ratios (RetinaNet: 0.5, 1, 2).
        image_size: the training image size (height = width) that `build` uses; calls
            take any size.
    Reference: see the module docstring.
    """

    def __init__(self, num_classes=3, filters=32, fpn_filters=64, head_convs=2, min_level=3, max_level=5,
                 anchor_scale=4.0, scales_per_octave=3, aspect_ratios=(0.5, 1.0, 2.0), image_size=216, **kwargs):
        if num_classes < 1:
            raise ValueError(f"BoxDetector needs num_classes >= 1, got {num_classes}")
        if not 2 <= min_level <= max_level:
            raise ValueError(f"BoxDetector needs 2 <= min_level <= max_level, got {min_level}, {max_level}")
        if anchor_scale <= 0 or scales_per_octave < 1 or not aspect_ratios or min(aspect_ratios) <= 0:
            raise ValueError("BoxDetector needs anchor_scale > 0, scales_per_octave >= 1 and positive aspect_ratios")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.filters = filters
        self.fpn_filters = fpn_filters
        self.head_convs = head_convs
        self.min_level = min_level
        self.max_level = max_level
        self.anchor_scale = float(anchor_scale)
        self.scales_per_octave = scales_per_octave
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.image_size = image_size
        self.anchors_per_cell = scales_per_octave * len(self.aspect_ratios)
        self.stem = [layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False),
                     layers.GroupNormalization(math.gcd(8, filters)), layers.ReLU()]
        self.stages = [DetectorResidualStage(filters * 2 ** (level - 1)) for level in range(2, max_level + 1)]
        num_levels = max_level - min_level + 1
        self.laterals = [layers.Conv2D(fpn_filters, 1) for _ in range(num_levels)]
        self.outputs_convs = [layers.Conv2D(fpn_filters, 3, padding="same") for _ in range(num_levels)]
        head_conv = lambda n, bias="zeros": layers.Conv2D(
            n, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            bias_initializer=bias)
        prior = keras.initializers.Constant(-math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
        self.class_head = [layer for _ in range(head_convs) for layer in (head_conv(fpn_filters), layers.ReLU())]
        self.class_head.append(head_conv(self.anchors_per_cell * num_classes, prior))
        self.box_head = [layer for _ in range(head_convs) for layer in (head_conv(fpn_filters), layers.ReLU())]
        self.box_head.append(head_conv(self.anchors_per_cell * 4))

    def build(self, input_shape=None):
        if input_shape is None:
            input_shape = (None, self.image_size, self.image_size, 3)
        shape, features = tuple(input_shape), {}
        for level, stack in enumerate([self.stem] + [[stage] for stage in self.stages], start=1):
            for layer in stack:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            features[level] = shape
        for index, level in enumerate(range(self.min_level, self.max_level + 1)):
            self.laterals[index].build(features[level])
            self.outputs_convs[index].build(features[level][:3] + (self.fpn_filters,))
        for stack in (self.class_head, self.box_head):
            shape = features[self.min_level][:3] + (self.fpn_filters,)
            for layer in stack:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
        self.built = True

    def pyramid(self, images):
        """The FPN maps of levels min_level..max_level for [0, 1] images."""
        x, features = images * 2.0 - 1.0, []
        for layer in self.stem:
            x = layer(x)
        for level, stage in enumerate(self.stages, start=2):
            x = stage(x)
            if level >= self.min_level:
                features.append(x)
        merged = [lateral(feature) for lateral, feature in zip(self.laterals, features)]
        for index in range(len(merged) - 2, -1, -1):
            finer = merged[index]
            coarser = ops.repeat(ops.repeat(merged[index + 1], 2, axis=1), 2, axis=2)
            merged[index] = finer + coarser[:, :ops.shape(finer)[1], :ops.shape(finer)[2]]
        return [conv(x) for conv, x in zip(self.outputs_convs, merged)]

    def call(self, images):
        """[0, 1] images (B, H, W, 3) -> class logits (B, A, K) and box deltas (B, A, 4),
        float32, anchors in `anchors(H, W)` order."""
        class_logits, box_deltas = [], []
        for x in self.pyramid(images):
            logits, deltas = x, x
            for layer in self.class_head:
                logits = layer(logits)
            for layer in self.box_head:
                deltas = layer(deltas)
            batch = ops.shape(x)[0]
            class_logits.append(ops.reshape(logits, (batch, -1, self.num_classes)))
            box_deltas.append(ops.reshape(deltas, (batch, -1, 4)))
        return (ops.cast(ops.concatenate(class_logits, axis=1), "float32"),
                ops.cast(ops.concatenate(box_deltas, axis=1), "float32"))

    def anchors(self, height, width):
        """(A, 4) xyxy anchors for images of height x width (see `anchor_boxes`)."""
        return anchor_boxes(height, width, self.min_level, self.max_level, self.anchor_scale,
                            self.scales_per_octave, self.aspect_ratios)

    def _image_anchors(self, images, boxes=None, labels=None):
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"BoxDetector takes (batch, height, width, 3) images in [0, 1], got shape {images.shape}")
        if boxes is not None and (boxes.shape.rank != 3 or boxes.shape[-1] != 4 or labels.shape.rank != 2):
            raise ValueError(f"BoxDetector takes padded boxes (batch, max_boxes, 4) and labels (batch, max_boxes), "
                             f"got shapes {boxes.shape} and {labels.shape}")
        shape = tf.shape(images)
        height = images.shape[1] if images.shape[1] is not None else shape[1]
        width = images.shape[2] if images.shape[2] is not None else shape[2]
        return height, width, self.anchors(height, width)

    def detection_loss(self, images, boxes, labels, training=True):
        """Focal classification + smooth-L1 box regression loss (float32 scalar, their
        sum) of [0, 1] `images` against padded ground truth: `boxes` (B, M, 4) xyxy
        pixels, `labels` (B, M) int 1..K with 0 = padding (data.py's batches)."""
        images, boxes, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(boxes), tf.convert_to_tensor(labels)
        _, _, anchors = self._image_anchors(images, boxes, labels)
        class_logits, box_deltas = self(images, training=training)
        classification, regression = retinanet_losses(class_logits, box_deltas, anchors, boxes, labels)
        return classification + regression

    def detect(self, images, score_threshold=0.05, iou_threshold=0.5, max_detections=100):
        """Boxes of [0, 1] images: a dict of boxes (B, D, 4) xyxy pixels clipped to the
        image, scores (B, D), labels (B, D) int32 1..K (0 = padding) and
        num_detections (B,), best first; defaults are the released detector's (D7)."""
        images = tf.convert_to_tensor(images)
        height, width, anchors = self._image_anchors(images)
        class_logits, box_deltas = self(images, training=False)
        boxes = decode_boxes(box_deltas, anchors)
        limits = tf.cast(tf.stack([width, height, width, height]), tf.float32)
        boxes = tf.clip_by_value(boxes, 0.0, limits)
        return per_class_nms(boxes, tf.sigmoid(class_logits), score_threshold, iou_threshold, max_detections)

    def get_config(self):
        return {"num_classes": self.num_classes, "filters": self.filters, "fpn_filters": self.fpn_filters,
                "head_convs": self.head_convs, "min_level": self.min_level, "max_level": self.max_level,
                "anchor_scale": self.anchor_scale, "scales_per_octave": self.scales_per_octave,
                "aspect_ratios": self.aspect_ratios, "image_size": self.image_size, "name": self.name}
