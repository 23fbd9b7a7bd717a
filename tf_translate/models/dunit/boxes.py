"""Box records, their two file formats, box transforms and the released multibox IoU.

A record is {"boxes": float32 (N, 4) xyxy pixels, "labels": int32 (N,)} with labels 1..K
(0 is reserved for padding). Pixel i spans [i, i + 1), so a shape filling columns 3..7
has x1 = 3, x2 = 8; resizing scales the corners, a flip maps x to W - x.

Files: DUNIT's INIT annotation text (REFERENCE-WAVE4 §2.4) and a per-folder
`boxes.json` ({"classes": [...], "images": {name: {"boxes": [[x1, y1, x2, y2]], "labels":
[1]}}}). Records are keyed by file name (the basename of the INIT path line), which is
how `data.py` matches them with the images of a folder.

The IoU functions restate IVRL/Dunit `src/models/losses/multibox_intersection_over_union.py`
and `iou_loss.py` (§2.2): per image, over the classes present in either list, the mean of
1 - multiboxIoU(GT boxes of the class, detected boxes of the class); an image with neither
GT nor detections gives NaN, as released.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf


class BoxWarnings:
    """Counts the box problems a reader or pipeline fixed (clipped, dropped, missing), and
    prints the first few of each kind with their file."""

    shown_per_kind = 3

    def __init__(self, stream=None):
        self.counts = {}
        self.stream = stream

    def summary(self):
        """One line of all counts, or None when nothing was counted."""
        if self.counts:
            return "tf_translate: box files: " + ", ".join(f"{kind}: {n}" for kind, n in self.counts.items())
        return None

    def add(self, kind, message, count=1):
        self.counts[kind] = self.counts.get(kind, 0) + count
        if self.counts[kind] - count < self.shown_per_kind:
            print(f"tf_translate: {message} ({kind}: {self.counts[kind]} so far)", file=self.stream or sys.stderr)


def make_record(boxes=(), labels=()):
    """A record with the dtypes and shapes every function here expects."""
    return {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": np.asarray(labels, np.int32).reshape(-1)}


def drop_degenerate(record, where, warnings):
    """The record without boxes of no width or height (x2 <= x1 or y2 <= y1), counted."""
    boxes = record["boxes"]
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if not keep.all():
        warnings.add("degenerate boxes dropped", f"{where}: {int((~keep).sum())} box(es) of no width or height "
                     "dropped", int((~keep).sum()))
    return make_record(boxes[keep], record["labels"][keep])


def clip_record(record, width, height, where, warnings):
    """The record clipped to a `width` x `height` image (counted), then without the boxes
    the clipping left degenerate (counted)."""
    boxes = record["boxes"]
    clipped = np.stack([np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height),
                        np.clip(boxes[:, 2], 0, width), np.clip(boxes[:, 3], 0, height)], axis=1).astype(np.float32)
    moved = int(np.any(clipped != boxes, axis=1).sum())
    if moved:
        warnings.add("boxes clipped", f"{where}: {moved} box(es) outside the {width}x{height} image clipped", moved)
    return drop_degenerate(make_record(clipped, record["labels"]), where, warnings)


def pad_record(record, max_boxes, where, warnings):
    """(boxes (max_boxes, 4), labels (max_boxes,)) with zero rows for padding; boxes past
    `max_boxes` are dropped (counted)."""
    count = len(record["labels"])
    if count > max_boxes:
        warnings.add("boxes over max_boxes dropped", f"{where}: {count} boxes, only the first {max_boxes} kept",
                     count - max_boxes)
    boxes = np.zeros((max_boxes, 4), np.float32)
    labels = np.zeros((max_boxes,), np.int32)
    kept = min(count, max_boxes)
    boxes[:kept], labels[:kept] = record["boxes"][:kept], record["labels"][:kept]
    return boxes, labels


def check_label(label, num_classes, where):
    if label < 1 or (num_classes is not None and label > num_classes):
        known = "1 or more" if num_classes is None else f"1..{num_classes}"
        raise ValueError(f"{where}: unknown label {label} (labels are {known}; 0 is reserved for padding)")


# ---------------------------------------------------------------------------------
# INIT text: per image an index line, the image path, a size line (ignored), a line "0"
# (ignored), the box count N, N lines `label x1 y1 x2 y2`, then two blank lines.

def read_init_annotations(path, num_classes=None, warnings=None):
    """{file name: record} from an INIT annotation file.

    Blank lines between records are skipped (the released reader needs exactly two).
    Malformed lines and labels outside 1..`num_classes` raise a one-line error naming the
    file and line; degenerate boxes are dropped with a counted warning.
    """
    warnings = warnings or BoxWarnings()
    with open(path) as f:
        lines = f.read().splitlines()
    records, index = {}, 0

    def take(what):
        nonlocal index
        if index >= len(lines):
            raise ValueError(f"{path}:{index + 1}: file ends where {what} was expected")
        index += 1
        return lines[index - 1].strip()

    while True:
        while index < len(lines) and not lines[index].strip():
            index += 1
        if index >= len(lines):
            return records
        take("the index line")
        name_line = index + 1
        name = os.path.basename(take("the image path"))
        if not name:
            raise ValueError(f"{path}:{name_line}: empty image path")
        if name in records:
            raise ValueError(f"{path}:{name_line}: {name} has a second record")
        take("the image size line")
        take("the line '0'")
        count_text = take("the box count")
        if not count_text.isdigit():
            raise ValueError(f"{path}:{index}: box count {count_text!r} is not a whole number")
        boxes, labels = [], []
        for _ in range(int(count_text)):
            fields = take("a box line 'label x1 y1 x2 y2'").split()
            where = f"{path}:{index}"
            try:
                if len(fields) != 5:
                    raise ValueError
                label, corners = int(fields[0]), [float(value) for value in fields[1:]]
            except ValueError:
                raise ValueError(f"{where}: expected 'label x1 y1 x2 y2', got {' '.join(fields)!r}") from None
            if not np.all(np.isfinite(corners)):
                raise ValueError(f"{where}: box corners must be finite numbers, got {' '.join(fields[1:])!r}")
            check_label(label, num_classes, where)
            boxes.append(corners)
            labels.append(label)
        records[name] = drop_degenerate(make_record(boxes, labels), f"{path}:{name_line} ({name})", warnings)


def write_init_annotations(path, records, image_sizes=None):
    """Writes {file name: record} as INIT text; the size line holds `image_sizes[name]`
    (width, height) when given, else "0 0" (readers ignore it)."""
    def number(value):
        return np.format_float_positional(np.float32(value), trim="-")

    with open(path, "w") as f:
        for index, (name, record) in enumerate(records.items()):
            width, height = (image_sizes or {}).get(name, (0, 0))
            f.write(f"{index}\n{name}\n{width} {height}\n0\n{len(record['labels'])}\n")
            for label, box in zip(record["labels"], record["boxes"]):
                f.write(f"{int(label)} {' '.join(number(value) for value in box)}\n")
            f.write("\n\n")


# ---------------------------------------------------------------------------------
# boxes.json

def read_box_json(path, warnings=None):
    """({file name: record}, class names) from a boxes.json; structure errors and labels
    outside 1..len(classes) raise a one-line error naming the file, the line of the image
    entry and the entry."""
    warnings = warnings or BoxWarnings()
    with open(path) as f:
        text = f.read()
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(content, dict) or not isinstance(content.get("classes"), list) \
            or not isinstance(content.get("images"), dict):
        raise ValueError(f"{path}: expected {{\"classes\": [names], \"images\": {{name: {{\"boxes\": ..., "
                         "\"labels\": ...}}}}")
    classes = [str(name) for name in content["classes"]]
    records = {}
    for name, entry in content["images"].items():
        key = text.find(json.dumps(name)) if isinstance(name, str) else -1
        where = f"{path}:{text.count(chr(10), 0, key) + 1} (images[{name!r}])" if key >= 0 else \
            f"{path}: images[{name!r}]"
        try:
            boxes = np.asarray(entry["boxes"], np.float64).reshape(-1, 4)
            labels = np.asarray(entry["labels"])
            if labels.ndim != 1 or len(labels) != len(boxes) or not np.all(np.isfinite(boxes)) \
                    or (labels.size and (labels.dtype.kind not in "iu")):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: expected \"boxes\": [[x1, y1, x2, y2], ...] (finite numbers) and as many "
                             "whole-number \"labels\"") from None
        for label in labels:
            check_label(int(label), len(classes), where)
        records[os.path.basename(name)] = drop_degenerate(make_record(boxes, labels), where, warnings)
    return records, classes


def write_box_json(path, records, classes):
    """Writes {file name: record} and the class names as boxes.json."""
    images = {name: {"boxes": [[float(v) for v in box] for box in record["boxes"]],
                     "labels": [int(label) for label in record["labels"]]} for name, record in records.items()}
    with open(path, "w") as f:
        json.dump({"classes": list(classes), "images": images}, f, indent=1)


# ---------------------------------------------------------------------------------
# Transforms of padded boxes (..., M, 4) with labels (..., M); 0 labels are padding.

def compact_boxes(boxes, labels, valid):
    """Zeroes the rows that are not `valid` and moves the valid rows first, in order."""
    valid = valid & (labels > 0)
    order = tf.argsort(tf.cast(tf.logical_not(valid), tf.int32), axis=-1, stable=True)
    boxes = tf.where(valid[..., None], boxes, 0.0)
    labels = tf.where(valid, labels, 0)
    return tf.gather(boxes, order, batch_dims=len(labels.shape) - 1), tf.gather(labels, order,
                                                                                  batch_dims=len(labels.shape) - 1)


def resize_boxes(boxes, labels, scale_x, scale_y):
    """Boxes of an image resized by (`scale_x`, `scale_y`) (new size / old size)."""
    scale = tf.cast(tf.stack([scale_x, scale_y, scale_x, scale_y]), boxes.dtype)
    return boxes * scale * tf.cast(labels > 0, boxes.dtype)[..., None], labels


def crop_boxes(boxes, labels, offset_x, offset_y, width, height):
    """Boxes of the `width` x `height` crop at (`offset_x`, `offset_y`): shifted, clipped
    to the crop; boxes left with no width or height become padding."""
    offset = tf.cast(tf.stack([offset_x, offset_y, offset_x, offset_y]), boxes.dtype)
    limit = tf.cast(tf.stack([width, height, width, height]), boxes.dtype)
    moved = tf.clip_by_value(boxes - offset, 0.0, limit)
    valid = (moved[..., 2] > moved[..., 0]) & (moved[..., 3] > moved[..., 1])
    return compact_boxes(moved, labels, valid)


def flip_boxes_left_right(boxes, labels, width):
    """Boxes of the image mirrored left-right: x -> width - x."""
    width = tf.cast(width, boxes.dtype)
    flipped = tf.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], axis=-1)
    return tf.where((labels > 0)[..., None], flipped, 0.0), labels


# ---------------------------------------------------------------------------------
# The released multibox IoU and instance consistency (§2.2).

def iou_matrix(boxes1, boxes2):
    """IoU of every pair, (n1, n2); boxes that only touch give 0 (as released), and so do
    pairs whose union has no area (the released code divides by zero there)."""
    boxes1, boxes2 = np.asarray(boxes1, np.float64).reshape(-1, 4), np.asarray(boxes2, np.float64).reshape(-1, 4)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    width = np.maximum(0.0, np.minimum(boxes1[:, None, 2], boxes2[None, :, 2]) - np.maximum(boxes1[:, None, 0],
                                                                                             boxes2[None, :, 0]))
    height = np.maximum(0.0, np.minimum(boxes1[:, None, 3], boxes2[None, :, 3]) - np.maximum(boxes1[:, None, 1],
                                                                                              boxes2[None, :, 1]))
    inter = width * height
    union = area1[:, None] + area2[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def multibox_iou(boxes1, boxes2):
    """½·[Σ_j max_i M_ij / (n1 + |n1 − n2|) + Σ_i max_j M_ij / (n2 + |n1 − n2|)] for the
    IoU matrix M of two box lists; 0 when either is empty."""
    matrix = iou_matrix(boxes1, boxes2)
    n1, n2 = matrix.shape
    if n1 == 0 or n2 == 0:
        return 0.0
    diff = abs(n1 - n2)
    return 0.5 * (matrix.max(axis=0).sum() / (n1 + diff) + matrix.max(axis=1).sum() / (n2 + diff))


def instance_consistency(gt_boxes, gt_labels, det_boxes, det_labels):
    """The released IoU "loss": per image, the mean over the classes in either list of
    1 − multibox_iou(GT boxes of the class, detections of the class); then the batch mean.

    Args take one entry per image (lists of arrays, or padded arrays): boxes (N, 4),
    labels (N,); label 0 marks padding. An image with no GT and no detections is NaN, and
    so is the batch mean then, as released.
    """
    per_image = []
    for boxes1, labels1, boxes2, labels2 in zip(gt_boxes, gt_labels, det_boxes, det_labels):
        boxes1, labels1 = np.asarray(boxes1).reshape(-1, 4), np.asarray(labels1).reshape(-1)
        boxes2, labels2 = np.asarray(boxes2).reshape(-1, 4), np.asarray(labels2).reshape(-1)
        classes = sorted(set(labels1[labels1 > 0].tolist()) | set(labels2[labels2 > 0].tolist()))
        values = [1.0 - multibox_iou(boxes1[labels1 == c], boxes2[labels2 == c]) for c in classes]
        per_image.append(np.mean(values) if values else np.nan)
    return float(np.mean(per_image))


def iou_matrix_tf(boxes1, boxes2):
    """Batched `iou_matrix`: (B, M1, 4), (B, M2, 4) -> (B, M1, M2), float32."""
    boxes1, boxes2 = tf.cast(boxes1, tf.float32), tf.cast(boxes2, tf.float32)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    a, b = boxes1[:, :, None, :], boxes2[:, None, :, :]
    width = tf.maximum(0.0, tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]))
    height = tf.maximum(0.0, tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]))
    inter = width * height
    return tf.math.divide_no_nan(inter, area1[:, :, None] + area2[:, None, :] - inter)


def instance_consistency_tf(gt_boxes, gt_labels, det_boxes, det_labels, num_classes):
    """`instance_consistency` on padded tensors (labels 0 = padding) for logging inside a
    tf.function (XLA too): classes 1..`num_classes`; float32 scalar, NaN as released."""
    matrix = iou_matrix_tf(gt_boxes, det_boxes)[:, None]  # (B, 1, M1, M2)
    classes = tf.range(1, num_classes + 1, dtype=tf.int32)[None, :, None]
    in1 = tf.cast(gt_labels, tf.int32)[:, None, :] == classes  # (B, K, M1)
    in2 = tf.cast(det_labels, tf.int32)[:, None, :] == classes  # (B, K, M2)
    pairs = in1[..., :, None] & in2[..., None, :]
    masked = tf.where(pairs, matrix, 0.0)  # IoU >= 0, so 0 outside the class leaves the maxima
    n1 = tf.reduce_sum(tf.cast(in1, tf.float32), -1)
    n2 = tf.reduce_sum(tf.cast(in2, tf.float32), -1)
    diff = tf.abs(n1 - n2)
    over_gt = tf.reduce_sum(tf.reduce_max(masked, axis=-2), -1)  # Σ_j max_i M_ij
    over_det = tf.reduce_sum(tf.reduce_max(masked, axis=-1), -1)  # Σ_i max_j M_ij
    multibox = 0.5 * (tf.math.divide_no_nan(over_gt, n1 + diff) + tf.math.divide_no_nan(over_det, n2 + diff))
    present = tf.cast((n1 + n2) > 0, tf.float32)  # (B, K)
    per_image = tf.reduce_sum(present * (1.0 - multibox), -1) / tf.reduce_sum(present, -1)  # 0/0 = NaN
    return tf.reduce_mean(per_image)
