"""TuiGAN's training data: two image files, one per domain, as the levels of the pyramid."""

import os

import numpy as np
import tensorflow as tf


def read_image_pair(paths, input_size=None):
    """(A, B) uint8 RGB arrays from two image files. B takes A's size (`input_size`, or
    A's own): centre-cropped to A's aspect ratio, then resized (bicubic). The reference
    requires equal sizes and crashes otherwise (its issue #9)."""
    from PIL import Image

    from tf_translate.data import read_rgb

    if isinstance(paths, str) or len(paths) != 2:
        raise ValueError(f"--data for tuigan takes two image files (domain A, then domain B), got {paths!r}")
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"--data {path!r} is not an image file (tuigan trains on two image files)")
    try:
        a, b = (read_rgb(path) for path in paths)
    except Exception as error:  # Pillow's many types
        raise ValueError(f"--data: cannot read the images ({str(error).splitlines()[0]})") from None
    height, width = input_size or a.shape[:2]
    if a.shape[:2] != (height, width):
        a = np.asarray(Image.fromarray(a).resize((width, height), Image.BICUBIC))
    if b.shape[:2] != (height, width):
        bh, bw = b.shape[:2]
        crop_h, crop_w = (bh, round(bh * width / height)) if bw * height > bh * width else (round(bw * height / width), bw)
        top, left = (bh - crop_h) // 2, (bw - crop_w) // 2
        b = np.asarray(Image.fromarray(b[top:top + crop_h, left:left + crop_w]).resize((width, height), Image.BICUBIC))
    return a, b


def pyramid_data(model, a, b):
    """(levels of A, levels of B) as tuples of [1, h, w, 3] float32 tensors."""
    return tuple(tuple(tf.constant(level[None]) for level in model.rule.levels(image)) for image in (a, b))


def pyramid_dataset(model, data, **unused):
    """`training.train`'s dataset for a TuiGAN model (`TuiGAN.dataset_function`): the two
    images of `data` as one element of pyramid levels, repeated; (dataset, steps per
    epoch = iterations per scale, an empty skip report). Batch size, crop and load size
    do not apply: the pyramid is the batch."""
    from tf_translate.data import SkipReport

    a, b = read_image_pair(data, model.input_size)
    return tf.data.Dataset.from_tensors(pyramid_data(model, a, b)).repeat(), model.iterations, SkipReport()
