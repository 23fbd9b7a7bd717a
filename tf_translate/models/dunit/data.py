"""The tf.data pipeline of box runs: unpaired trainA/trainB images with their boxes.

Each folder may hold `boxes.json` (preferred) or DUNIT's `init.txt`; domain B may have
neither (its boxes are all padding). Boxes follow every resize, crop and flip of their
image — the released code leaves them untouched (REFERENCE-WAVE4 §2.5 D2; fixed here).
Images decode as in `tf_translate.data` (Pillow, unreadable files skipped and named);
training squash-resizes to the load size, crops and flips at random (seeded like
`data.random_crop_and_flip`), otherwise resizes straight to the image size.

Batch element: {"a", "b": float32 [-1, 1] (B, S, S, 3); "boxes_a", "boxes_b": float32
(B, M, 4) xyxy pixels of the final crop, zero rows for padding; "labels_a", "labels_b":
int32 (B, M), 0 = padding}, M = `max_boxes`.
"""

import io
import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_translate.data import (SkipReport, decoded_images, domain_folders, list_images, usable_images,
                               reference_load_size, to_unit_range)
from tf_translate.models.dunit.boxes import (BoxWarnings, clip_record, crop_boxes, flip_boxes_left_right,
                                             make_record, pad_record, read_box_json, read_init_annotations)

BOX_FILES = ("boxes.json", "init.txt")  # looked for in each image folder, in this order
EXIF_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height (read_rgb turns images upright)


class BoxReport(SkipReport):
    """The skipped files of a box pipeline, its counted box warnings (`boxes`) and the
    usable images per domain (`image_counts`: (A, B), set by `box_dataset`)."""

    def __init__(self, stream=None):
        super().__init__(stream)
        self.boxes = BoxWarnings(stream)
        self.image_counts = None


def annotation_file(folder):
    """The box file of an image folder (boxes.json, else init.txt), or None."""
    for name in BOX_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def read_annotations(path, num_classes=None, warnings=None):
    """({file name: record}, class names or None) from a boxes.json or INIT text file."""
    if path.endswith(".json"):
        records, classes = read_box_json(path, warnings)
        if num_classes is not None and len(classes) != num_classes:
            raise ValueError(f"{path}: {len(classes)} classes, but the model has {num_classes}")
        return records, classes
    return read_init_annotations(path, num_classes, warnings), None


def upright_size(path):
    """(width, height) of an image as `read_rgb` returns it (EXIF orientation applied)."""
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in EXIF_TRANSPOSED:
            width, height = height, width
    return width, height


def folder_boxes(folder, paths, decode_size, max_boxes, warnings, num_classes=None):
    """(boxes (n, M, 4) in `decode_size` pixels, labels (n, M), class names or None) for
    the images `paths` of `folder`: clipped to each image (counted), padded to `max_boxes`
    (extra boxes counted). Images with no record have no boxes and records with no image
    are ignored, both counted; a folder without a box file has no boxes, uncounted."""
    path = annotation_file(folder)
    records, classes = read_annotations(path, num_classes, warnings) if path else ({}, None)
    names = [os.path.basename(p) for p in paths]
    if path:
        orphans = sorted(set(records) - {os.path.basename(p) for p in list_images(folder)})
        if orphans:
            warnings.add("records without an image", f"{path}: no image for {', '.join(orphans[:3])}"
                         f"{' ...' if len(orphans) > 3 else ''}", len(orphans))
        missing = [name for name in names if name not in records]
        if missing:
            warnings.add("images without a record", f"{path}: no boxes for {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''} (read as images without boxes)", len(missing))
    all_boxes = np.zeros((len(paths), max_boxes, 4), np.float32)
    all_labels = np.zeros((len(paths), max_boxes), np.int32)
    for i, (image_path, name) in enumerate(zip(paths, names)):
        record = records.get(name)
        if record is None or not len(record["labels"]):
            continue
        width, height = upright_size(image_path)
        record = clip_record(record, width, height, os.path.join(folder, name), warnings)
        scale = np.array([decode_size / width, decode_size / height] * 2, np.float32)
        record = make_record(record["boxes"] * scale, record["labels"])
        all_boxes[i], all_labels[i] = pad_record(record, max_boxes, os.path.join(folder, name), warnings)
    return all_boxes, all_labels, classes


def random_crop_and_flip_with_boxes(dataset, image_size, seed):
    """`data.random_crop_and_flip` for (image, boxes, labels) elements: the same crop and
    flip moves the boxes (clipped; boxes the crop leaves empty become padding). Draws come
    from a seeded stream zipped in order, as there."""
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)

    def augment(element, seeds):
        image, boxes, labels = element
        room = tf.shape(image)[0] - image_size + 1  # decoded images are square
        offset_y, offset_x = tf.unstack(tf.random.stateless_uniform((2,), seeds[:2], 0, room, tf.int32))
        image = tf.slice(image, [offset_y, offset_x, 0], [image_size, image_size, 3])
        boxes, labels = crop_boxes(boxes, labels, offset_x, offset_y, image_size, image_size)
        flip = tf.random.stateless_uniform((), seeds[2:]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        flipped_boxes, _ = flip_boxes_left_right(boxes, labels, image_size)
        return image, tf.where(flip, flipped_boxes, boxes), labels
    return tf.data.Dataset.zip(dataset, draws).map(augment, num_parallel_calls=tf.data.AUTOTUNE)


def box_folder_dataset(folder, image_size=256, load_size=None, training=True, report=None, seed=None,
                       max_boxes=16, num_classes=None):
    """A dataset of (float32 [-1, 1] image, boxes (M, 4), labels (M,)) from one folder.

    Returns:
        (dataset, number of usable images, class names from boxes.json or None)
    """
    report = report or BoxReport()
    paths = usable_images(folder, report)
    decode_size = (load_size or reference_load_size(image_size)) if training else image_size
    boxes, labels, classes = folder_boxes(folder, paths, decode_size, max_boxes, report.boxes, num_classes)
    dataset = decoded_images(paths, decode_size, report, not training or seed is not None, boxes, labels)
    if training:
        dataset = dataset.shuffle(min(len(paths), 10_000), seed=seed, reshuffle_each_iteration=True)
        dataset = random_crop_and_flip_with_boxes(dataset, image_size, seed)
    dataset = dataset.map(lambda image, boxes, labels: (to_unit_range(image), boxes, labels),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, len(paths), classes


def box_dataset(data, batch_size=1, image_size=256, load_size=None, split="train", seed=None, max_boxes=16,
                num_classes=None):
    """The box-run dataset for `fit`: dict batches (module docstring), the two domains
    shuffled independently and repeated; one epoch is max(len(A), len(B)) // batch_size
    steps, as `data.unpaired_dataset`.

    Args:
        data: DIR with {split}A/{split}B, or two folders.
        max_boxes: M, boxes kept per image (more: counted warning, extras dropped).
        num_classes: when given, labels above it are refused (one-line error).

    Returns:
        (dataset, steps per epoch, BoxReport)
    """
    folder_a, folder_b = domain_folders(data, split)
    report = BoxReport()
    training = split == "train"
    batch_size = batch_size or 1
    a, count_a, classes_a = box_folder_dataset(folder_a, image_size, load_size, training, report, seed, max_boxes,
                                               num_classes)
    b, count_b, classes_b = box_folder_dataset(folder_b, image_size, load_size, training, report,
                                               None if seed is None else seed + 1, max_boxes, num_classes)
    if classes_a and classes_b and classes_a != classes_b:
        raise ValueError(f"--data {data}: the box files of {folder_a} and {folder_b} name different classes "
                         f"({classes_a} vs {classes_b})")
    if report.boxes.summary():
        print(report.boxes.summary(), file=report.stream or sys.stderr)
    report.image_counts = (count_a, count_b)
    steps_per_epoch = max(1, max(count_a, count_b) // batch_size)

    def as_dict(a, b):
        return {"a": a[0], "b": b[0], "boxes_a": a[1], "boxes_b": b[1], "labels_a": a[2], "labels_b": b[2]}
    dataset = tf.data.Dataset.zip((a.repeat(), b.repeat())).map(as_dict)
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return dataset, steps_per_epoch, report


def box_classes(data, split="train"):
    """The class names of a box run's data (domain A's boxes.json, else B's), or None when
    only INIT text files (which carry no names) or no box files are found."""
    for folder in domain_folders(data, split):
        path = annotation_file(folder)
        if path and path.endswith(".json"):
            return read_box_json(path, BoxWarnings(stream=io.StringIO()))[1]  # warnings come with the dataset
    return None
