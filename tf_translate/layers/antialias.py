"""Anti-aliased resampling (Zhang, "Making Convolutional Networks Shift-Invariant Again",
ICML 2019) as CUT's generator and discriminator use it.

`BlurDownsampling2D` is the reference's `Downsample(C)` (filt_size 3): reflect pad 1, then
the fixed [1, 2, 1]ᵀ[1, 2, 1] / 16 blur with stride 2, channel by channel. `BilinearUpsampling2D`
is its `Upsample(C)` (filt_size 4): replicate pad 1, a stride-2 transposed depthwise conv with
[1, 3, 3, 1]ᵀ[1, 3, 3, 1] / 16, cropped, which is exactly bilinear ×2 with half-pixel centres
and edge clamping: every output pixel is 3/4 of its source pixel plus 1/4 of the neighbour
on its side (the edge pixel itself at the border). Both filters are constants (registered
buffers in the reference), so neither layer has weights.

Reference: taesungp/contrastive-unpaired-translation `models/networks.py` (`get_filter`,
`Downsample`, `Upsample`).
"""

import keras
import numpy as np
from keras import ops

from tf_translate.layers.xnnpack import mirror_pad

BLUR_TAPS = np.array([1.0, 2.0, 1.0])


@keras.saving.register_keras_serializable(package="tf_translate")
class BlurDownsampling2D(keras.layers.Layer):
    """Reflect pad 1, 3x3 binomial blur, stride 2: H x W -> ceil(H/2) x ceil(W/2).

    Reference: `Downsample(channels)` (pad_type "reflect", filt_size 3, stride 2).
    """

    def build(self, input_shape):
        kernel = np.outer(BLUR_TAPS, BLUR_TAPS)
        kernel = kernel / kernel.sum()
        self.taps = np.tile(kernel[:, :, None, None], (1, 1, int(input_shape[-1]), 1)).astype(np.float32)

    def call(self, x):
        kernel = ops.cast(self.taps, x.dtype)
        return ops.depthwise_conv(mirror_pad(x, 1, "reflect"), kernel, strides=2, padding="valid")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        half = lambda n: None if n is None else (n + 1) // 2
        return (b, half(h), half(w), c)


def _bilinear_double(x, axis):
    """x doubled along `axis` (1 or 2): out[2i] = ¾x[i] + ¼x[i-1], out[2i+1] = ¾x[i] + ¼x[i+1],
    the neighbours clamped at the edges; the two phases are interleaved by a reshape."""
    first = (lambda t: t[:, :1]) if axis == 1 else (lambda t: t[:, :, :1])
    last = (lambda t: t[:, -1:]) if axis == 1 else (lambda t: t[:, :, -1:])
    head = (lambda t: t[:, :-1]) if axis == 1 else (lambda t: t[:, :, :-1])
    tail = (lambda t: t[:, 1:]) if axis == 1 else (lambda t: t[:, :, 1:])
    previous = ops.concatenate([first(x), head(x)], axis=axis)
    following = ops.concatenate([tail(x), last(x)], axis=axis)
    even = 0.75 * x + 0.25 * previous
    odd = 0.75 * x + 0.25 * following
    stacked = ops.stack([even, odd], axis=axis + 1)  # (..., n, 2, ...)
    shape = ops.shape(x)
    new_shape = [shape[0], shape[1], shape[2], shape[3]]
    new_shape[axis] = new_shape[axis] * 2
    return ops.reshape(stacked, new_shape)


@keras.saving.register_keras_serializable(package="tf_translate")
class BilinearUpsampling2D(keras.layers.Layer):
    """Bilinear ×2 with half-pixel centres and edge clamping (PyTorch
    `interpolate(scale_factor=2, mode="bilinear", align_corners=False)`), from slices.

    Written as slices rather than `tf.image.resize` so that the same ops train under XLA,
    export to TFLite and stay inside its XNNPACK delegate.

    Reference: `Upsample(channels)` (pad_type "repl", filt_size 4, stride 2), whose fixed
    transposed conv computes exactly these values.
    """

    def call(self, x):
        return _bilinear_double(_bilinear_double(x, 1), 2)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        double = lambda n: None if n is None else 2 * n
        return (b, double(h), double(w), c)
