"""Graph forms that TFLite's XNNPACK delegate runs, for ops it has no kernel for.

XNNPACK (TFLite's CPU delegate) runs a graph in one multi-threaded piece only if it has a
kernel for every op. It has none for MIRROR_PAD (reflection and edge padding) or TILE
(Keras' nearest upsampling), so each such op split CycleGAN's graph into 20 delegated
pieces, U-GAT-IT light's into 3 and photo2cartoon's into 35, with the ops between them run
single-threaded by TFLite itself: at 256 px on 2 threads, CycleGAN's float32 file ran
757 ms with its 20 mirror pads and 600 ms without. Inside `xnnpack_forms()` these ops trace
as slices, concatenations and depth_to_space instead: the same values, in ops XNNPACK runs
(benchmarks/RESULTS.md); transposed convolutions whose kernel is a multiple of the stride
(StarGAN, pix2pix) trace as one ordinary convolution, which XNNPACK runs faster. A
trace-time switch: it acts while a function is being traced (TFLite export) and changes
nothing else (training keeps TF's MirrorPad kernel and its gradient).
"""

import contextlib

import keras
import tensorflow as tf
from keras import layers, ops

_active = False


@contextlib.contextmanager
def xnnpack_forms():
    """Functions traced inside this context use the slice/concatenation forms below."""
    global _active
    previous, _active = _active, True
    try:
        yield
    finally:
        _active = previous


def pad_by_slices(x, padding, mode="reflect"):
    """Reflection (`mode="reflect"`, `torch.nn.ReflectionPad2d`: the edge is not repeated)
    or edge-including mirror padding (`"symmetric"`) of H and W of NHWC `x`, from slices
    and concatenations of at most 3 tensors (a 7-input concatenation, reflect pad 3 in one
    go, stayed outside the delegate)."""
    first = 1 if mode == "reflect" else 0  # the row mirrored next to the edge
    for axis in (1, 2):
        end = lambda i: i + 1 or None  # the slice of row i alone, also for i = -1
        take = (lambda i, x=x: x[:, i:end(i)]) if axis == 1 else (lambda i, x=x: x[:, :, i:end(i)])
        near = [take(i) for i in range(padding - 1 + first, first - 1, -1)]
        far = [take(-1 - first - i) for i in range(padding)]
        side = lambda parts: parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=axis)
        x = ops.concatenate([side(near), x, side(far)], axis=axis)
    return x


def mirror_pad(x, padding, mode="reflect"):
    """`ops.pad(x, ..., mode)` on H and W, or `pad_by_slices` inside `xnnpack_forms()`."""
    if _active:
        return pad_by_slices(x, padding, mode)
    return ops.pad(x, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode=mode)


@keras.saving.register_keras_serializable(package="tf_translate")
class NearestUpsampling2D(layers.UpSampling2D):
    """`UpSampling2D(size, interpolation="nearest")` that traces, inside `xnnpack_forms()`,
    as size² copies concatenated on channels and depth_to_space (Keras repeats with TILE)."""

    def __init__(self, size=2, **kwargs):
        kwargs.pop("interpolation", None)
        super().__init__(size, interpolation="nearest", **kwargs)

    def call(self, inputs):
        factor = self.size[0]
        if not _active or self.size[1] != factor or self.data_format != "channels_last":
            return super().call(inputs)
        return tf.nn.depth_to_space(ops.concatenate([inputs] * (factor * factor), axis=-1), factor)


@keras.saving.register_keras_serializable(package="tf_translate")
class Conv2DTranspose(layers.Conv2DTranspose):
    """`Conv2DTranspose` that traces, inside `xnnpack_forms()`, as one ordinary convolution
    and depth_to_space when the kernel size is a multiple of the stride (StarGAN's and
    pix2pix's 4x4 stride 2): each of the stride² output phases is a (kernel / stride)²
    convolution of the same zero-padded input, so the stride² kernels stack on output
    channels. The same multiply-adds; TFLite's TRANSPOSE_CONV ran the 64² x 256 -> 128²
    x 128 layer in 49 ms on 2 threads, the stacked convolution in 30 ms. Weights and
    values are Keras' Conv2DTranspose's, and so is the class name: weight files key a
    layer by it, so runs saved before this layer existed still load."""

    def _phased(self):
        stride, size = self.strides[0], self.kernel_size[0]
        return (_active and self.strides[1] == stride and self.kernel_size[1] == size and size % stride == 0
                and self.output_padding is None and self.dilation_rate == (1, 1)
                and self.data_format == "channels_last")

    def call(self, inputs):
        if not self._phased():
            return super().call(inputs)
        stride, size = self.strides[0], self.kernel_size[0]
        taps = size // stride
        kernel = ops.cast(self.kernel, self.compute_dtype)  # (k, k, out, in)
        # Output row stride·q + r takes input rows q − m with tap r + stride·m, m < taps: a
        # correlation over the input padded by taps − 1 with the taps reversed.
        phases = [kernel[r::stride, c::stride][::-1, ::-1] for r in range(stride) for c in range(stride)]
        stacked = tf.transpose(tf.concat(phases, axis=2), [0, 1, 3, 2])  # (taps, taps, in, stride²·out)
        padded = ops.pad(inputs, [[0, 0], [taps - 1, taps - 1], [taps - 1, taps - 1], [0, 0]])
        full = tf.nn.depth_to_space(tf.nn.conv2d(padded, stacked, 1, "VALID"), stride)  # "valid" output
        if self.padding == "same":  # TF's "same": drop (k − s) // 2 first rows, keep H·s
            crop = (size - stride) // 2
            height, width = tf.shape(inputs)[1] * stride, tf.shape(inputs)[2] * stride
            full = full[:, crop:crop + height, crop:crop + width]
        if self.use_bias:
            full = full + ops.cast(self.bias, self.compute_dtype)
        return self.activation(full) if self.activation is not None else full
