"""TuiGAN's pyramid rule and the reference's MATLAB-style resize (`utils/imresize.py`,
`utils/functions.py` `adjust_scales2image`, `creat_reals_pyramid`): NumPy, constants of
the graph, and the same resize as two matrix products in the graph."""

import math

import numpy as np
import tensorflow as tf


def cubic(x):
    """Keys' cubic kernel, a = -0.5 (`imresize.py` `cubic`)."""
    absx = np.abs(x)
    return ((1.5 * absx ** 3 - 2.5 * absx ** 2 + 1) * (absx <= 1)
            + (-0.5 * absx ** 3 + 2.5 * absx ** 2 - 4 * absx + 2) * ((1 < absx) & (absx <= 2)))


def resize_matrix(in_length, out_length, scale):
    """[out_length, in_length] float64 matrix of the reference's `imresize` along one axis.

    `contributions` with the cubic kernel, antialiased (stretched by 1/scale) only when
    downscaling; the weights of each output pixel sum to 1. A scale of exactly 1 leaves
    the axis alone (the reference skips it). Boundaries as the reference computes them on
    x86-64: taps past the far end reflect (`mirror`, the edge pixel repeated), but taps
    before the first pixel are cast with `np.uint` before the weights are computed, wrap
    to ~1.8e19 and so get weight 0; the kernel is renormalised over the taps left.
    (REFERENCE-WAVE3 T7 says reflect on both sides; the near side is truncation.)
    """
    if scale == 1.0:
        if in_length != out_length:
            raise ValueError(f"a scale of 1 keeps the length: {in_length} -> {out_length}")
        return np.eye(in_length)
    antialias = scale < 1
    kernel = (lambda t: scale * cubic(scale * t)) if antialias else cubic
    width = 4.0 / scale if antialias else 4.0
    match = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1.0 / scale)
    left = np.floor(match - width / 2)
    taps = left[:, None] + np.arange(np.ceil(width) + 2) - 1
    before = taps < 0
    weights = np.where(before, 0.0, kernel(match[:, None] - taps - 1))
    sums = weights.sum(axis=1)
    sums[sums == 0] = 1.0
    weights = weights / sums[:, None]
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index = mirror[np.mod(np.where(before, 0, taps).astype(np.int64), 2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps.shape[1]), index.ravel()), weights.ravel())
    return matrix


def to_model_range(pixels):
    """`np2torch`: pixel values (float64, 0-255) / 255 -> float32 -> (x - 0.5)·2, clamped."""
    x = (np.asarray(pixels, np.float64) / 255.0).astype(np.float32)
    return np.clip((x - np.float32(0.5)) * np.float32(2.0), -1.0, 1.0)


def to_pixels(images):
    """`torch2uint8`: 255·clamp((x + 1) / 2, 0, 1) in float32, *truncated* to uint8."""
    x = np.clip((np.asarray(images, np.float32) + np.float32(1.0)) / np.float32(2.0), 0.0, 1.0)
    return (np.float32(255.0) * x).astype(np.uint8)


def resized_length(length, scale):
    """The reference's output length, ceil(length·scale) in float64."""
    return int(np.ceil(np.float64(length) * np.float64(scale)))


def imresize(image, scale):
    """The reference's `imresize(x, scale)` of one [-1, 1] float32 HWC image: to uint8
    (truncating), resized along H and W (float64), back to [-1, 1] float32."""
    pixels = to_pixels(image).astype(np.float64)
    h, w = image.shape[:2]
    mh = resize_matrix(h, resized_length(h, scale), scale)
    mw = resize_matrix(w, resized_length(w, scale), scale)
    return to_model_range(np.einsum("oh,hwc,pw->opc", mh, pixels, mw))


class PyramidRule:
    """The scales of a TuiGAN run, from the size of image A (`adjust_scales2image`,
    `creat_reals_pyramid`).

    num_scales = ceil(log_{0.75}(min_size / short side)) + 1; stop_scale = num_scales -
    ceil(log_{0.75}(min(max_size, long side) / long side)); the image is first resized
    by scale1 = min(max_size / long side, 1) (the finest level), then the ratio is
    recomputed as (min_size / finest short side)^(1 / stop_scale) and level i is made
    from the finest image by `imresize(finest, ratio^(stop_scale - i))`, ceil sizes.
    Attributes: `scale1`, `factor` (the recomputed ratio), `stop_scale`, `sizes`
    ([(h, w)] coarse to fine) and `finest` (h, w).
    """

    def __init__(self, height, width, min_size=100, max_size=250, scale_factor=0.75):
        short, long = min(height, width), max(height, width)
        num_scales = math.ceil(math.log(min_size / short, scale_factor)) + 1
        stop = num_scales - math.ceil(math.log(min(max_size, long) / long, scale_factor))
        if stop < 1:
            raise ValueError(f"a {width}x{height} px image A gives no pyramid with min_size {min_size} and "
                             f"max_size {max_size}: its short side must exceed {min_size} px")
        self.scale1 = min(max_size / long, 1)
        self.finest = (resized_length(height, self.scale1), resized_length(width, self.scale1))
        self.factor = math.pow(min_size / min(self.finest), 1 / stop)
        self.stop_scale = stop
        self.sizes = [tuple(resized_length(n, math.pow(self.factor, stop - i)) for n in self.finest)
                      for i in range(stop + 1)]

    def levels(self, pixels):
        """float32 [-1, 1] HWC levels, coarse to fine, of uint8 RGB `pixels` (A's size)."""
        finest = imresize(to_model_range(pixels), self.scale1)
        return [imresize(finest, math.pow(self.factor, self.stop_scale - i)) for i in range(self.stop_scale + 1)]

    def upsample_matrices(self, level):
        """(rows, columns) matrices taking level `level` to the next: the reference's
        `imresize(x, 1 / factor)` followed by its top-left crop to the next level."""
        (h, w), (nh, nw) = self.sizes[level], self.sizes[level + 1]
        up = 1 / self.factor
        mh, mw = resize_matrix(h, resized_length(h, up), up), resize_matrix(w, resized_length(w, up), up)
        if mh.shape[0] < nh or mw.shape[0] < nw:
            raise ValueError(f"level {level} upsampled is smaller than level {level + 1}")
        return mh[:nh], mw[:nw]

    def level_matrices(self, level):
        """(rows, columns) matrices making level `level` from the finest image."""
        scale = math.pow(self.factor, self.stop_scale - level)
        return tuple(resize_matrix(n, m, scale) for n, m in zip(self.finest, self.sizes[level]))


def resize_in_graph(images, rows, columns):
    """The reference's `imresize` as two matrix products on [B, H, W, C] [-1, 1] images:
    truncation to uint8 levels, the resize (float32 here, float64 in the reference), and
    the clamp back to [-1, 1]. Not differentiable (the reference's is NumPy)."""
    images = tf.stop_gradient(tf.cast(images, tf.float32))
    pixels = tf.floor(255.0 * tf.clip_by_value((images + 1.0) / 2.0, 0.0, 1.0))
    resized = tf.einsum("oh,bhwc,pw->bopc", tf.constant(rows, tf.float32), pixels, tf.constant(columns, tf.float32))
    return tf.clip_by_value((resized / 255.0 - 0.5) * 2.0, -1.0, 1.0)


def channels(scale, filters=32, min_filters=32):
    """`nfc` and `min_nfc` at a scale: doubled every 4 scales, at most 128 (TuiGAN.py:54-55)."""
    factor = 2 ** (scale // 4)
    return min(filters * factor, 128), min(min_filters * factor, 128)
