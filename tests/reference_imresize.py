"""TuiGAN's `imresize` (utils/imresize.py, from SinGAN) re-stated in NumPy, with its `np.uint`
casts: the reference resize that tests/torch_tuigan.py and test_tuigan.py's resize check use.
Needs no torch."""

import numpy as np


def cubic(x):
    absx = np.abs(x)
    absx2, absx3 = absx ** 2, absx ** 3
    return ((1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
            + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((1 < absx) & (absx <= 2)))


def contributions(in_length, out_length, scale):
    antialiasing = scale < 1
    kernel = (lambda arg: scale * cubic(scale * arg)) if antialiasing else cubic
    kernel_width = 4.0 * (1.0 / scale if antialiasing else 1.0)
    out_coordinates = np.arange(1, out_length + 1)
    match = 1.0 * out_coordinates / scale + 0.5 * (1 - 1.0 / scale)
    left = np.floor(match - kernel_width / 2)
    expanded = np.ceil(kernel_width) + 2
    with np.errstate(all="ignore"):
        field = np.squeeze(np.uint(np.expand_dims(left, axis=1) + np.arange(expanded) - 1))
        weights = kernel(1.0 * np.expand_dims(match, axis=1) - field - 1)
    sums = np.sum(weights, axis=1)
    sums[sums == 0] = 1.0
    weights = 1.0 * weights / np.expand_dims(sums, axis=1)
    mirror = np.uint(np.concatenate((np.arange(in_length), np.arange(in_length - 1, -1, step=-1))))
    field = mirror[np.mod(field, mirror.shape[0])]
    return weights, field


def resize_along(image, dim, weights, field):
    tmp = np.swapaxes(image, dim, 0)
    weights = np.reshape(weights.T, list(weights.T.shape) + (np.ndim(image) - 1) * [1])
    return np.swapaxes(np.sum(tmp[field.T] * weights, axis=0), dim, 0)


def imresize_pixels(pixels, scale):
    """`imresize_in(uint8 HWC, scale_factor=scale)`: float64 HWC."""
    out = np.copy(pixels)
    for dim in (0, 1):
        if scale == 1.0:
            continue
        out_length = int(np.uint(np.ceil(pixels.shape[dim] * scale)))
        weights, field = contributions(pixels.shape[dim], out_length, scale)
        out = resize_along(out, dim, weights, field)
    return out
