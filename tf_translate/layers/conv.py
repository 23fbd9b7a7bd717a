"""Convolutions computed the cheaper way: small maps as one matrix product of their
patches, nearest-upsample + 3x3 convolution as four 2x2 convolutions."""

import keras
import tensorflow as tf
from keras import layers, ops

from tf_translate.layers.xnnpack import mirror_pad

# Output maps of at most this many positions (8x8) use the patch product. Measured on a
# 2-core CPU, forward + backward, batch 4, 4x4 kernel, stride 2 (TF 2.21, XLA):
#   4x4 -> 2x2, 1024 -> 2048 channels: convolution 2,629 ms (its input gradient alone
#   2,446 ms, ~1 GFLOPS), patch product 139 ms;
#   16x16 -> 8x8, 256 -> 512: 41.7 vs 26.5 ms; 32x32 -> 16x16, 128 -> 256: 33.6 vs 30.5 ms;
#   64x64 -> 32x32, 64 -> 128: 44.3 vs 54.8 ms (the convolution wins on large maps).
PATCH_PRODUCT_MAX_POSITIONS = 64
# ... and only wide layers (kernel taps x input channels, e.g. 4x4 x 256): narrow ones are
# fast as convolutions, and slicing their patches only adds tracing and compile time.
PATCH_PRODUCT_MIN_FEATURES = 4096


@keras.saving.register_keras_serializable(package="tf_translate")
class Conv2D(layers.Conv2D):
    """`keras.layers.Conv2D` whose small output maps are computed as im2col x kernel.

    The discriminators of StarGAN, U-GAT-IT and NICE-GAN end in 4x4 convolutions with
    1,024-4,096 channels on maps of a few pixels. TF's and XLA's CPU convolution kernels
    are very slow there (above all the input gradient, which WGAN-GP's double backward
    also needs), while the same arithmetic as a matrix product runs at memory speed. The
    kernel variable, its layout, the outputs and the parameter count are those of the
    plain layer, so checkpoints and imported PyTorch weights are unaffected. Maps of at
    most PATCH_PRODUCT_MAX_POSITIONS positions with at least PATCH_PRODUCT_MIN_FEATURES
    patch features take the patch path, with
    "valid" padding (the models pad explicitly), channels-last, no dilation or groups;
    unknown map sizes (export with free height and width) use the convolution.
    """

    def convolution_op(self, inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if (self.padding != "valid" or self.data_format != "channels_last" or self.groups != 1
                or tuple(self.dilation_rate) != (1, 1) or tuple(self.kernel_size) == (1, 1)
                or height is None or width is None):
            return super().convolution_op(inputs, kernel)
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        if (out_h * out_w > PATCH_PRODUCT_MAX_POSITIONS
                or kh * kw * inputs.shape[-1] < PATCH_PRODUCT_MIN_FEATURES):
            return super().convolution_op(inputs, kernel)
        # Patch features in (row, column, channel) order, the kernel's HWIO flattening:
        # the kernel rows' slices stacked, then the kernel columns' slices of those
        # (kh + kw slices instead of kh * kw: half the ops to trace and compile, measured
        # as fast or faster per layer).
        rows = ops.stack([inputs[:, i:i + sh * (out_h - 1) + 1:sh] for i in range(kh)], axis=3)
        patches = ops.stack([rows[:, :, j:j + sw * (out_w - 1) + 1:sw] for j in range(kw)], axis=4)
        patches = ops.reshape(patches, (-1, kh * kw * inputs.shape[-1]))
        outputs = ops.matmul(patches, ops.reshape(kernel, (-1, kernel.shape[-1])))
        return ops.reshape(outputs, (-1, out_h, out_w, kernel.shape[-1]))


@keras.saving.register_keras_serializable(package="tf_translate")
class NearestUpsampleConv2D(Conv2D):
    """Nearest ×2 upsampling, reflection pad 1 and a 3x3 convolution, as one layer.

    The U-GAT-IT and photo2cartoon decoders upsample and then convolve; on the
    upsampled map each output pixel sees only 2x2 distinct input pixels, so the same
    result is four 2x2 convolutions on the input map, one per output phase (row and
    column parity), with the 3x3 kernel's taps summed into 2x2 kernels: 16 instead of
    36 multiply-adds per 2x2 output block and per channel pair (2.25x fewer), and no
    upsampled tensor in memory. Reflecting the upsampled map by one pixel repeats the
    input's edge, hence the symmetric (edge) padding of the input. The kernel variable
    is the 3x3 kernel of the plain layers it replaces (same weights, parameter count,
    PyTorch import).

    Args:
        filters: output channels. Other Conv2D arguments except kernel size, strides
            and padding (fixed by what the layer computes) pass through; dilation and
            groups other than 1 and channels-first are refused when called.
    Reference: `nn.Upsample(scale_factor=2, mode='nearest'), nn.ReflectionPad2d(1),
    nn.Conv2d(..., 3)` in UGATIT-pytorch's and photo2cartoon's decoders.
    """

    # PHASE_TAPS[a][u][r]: output row parity a, 2x2 tap u, 3x3 kernel row r. Row 2i + a
    # of the upsampled, reflect-padded map reads input rows (i - 1, i, i) for a = 0 and
    # (i, i, i + 1) for a = 1, i.e. rows (i + a, i + a + 1) of the edge-padded input with
    # kernel rows {0}, {1, 2} (a = 0) or {0, 1}, {2} (a = 1). The same holds for columns.
    PHASE_TAPS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))

    def __init__(self, filters, **kwargs):
        super().__init__(filters, 3, strides=1, padding="valid", **kwargs)

    def convolution_op(self, inputs, kernel):
        if self.data_format != "channels_last" or self.groups != 1 or tuple(self.dilation_rate) != (1, 1):
            raise ValueError("NearestUpsampleConv2D supports channels_last, groups=1 and no dilation only")
        taps = ops.convert_to_tensor(self.PHASE_TAPS, dtype=kernel.dtype)
        channels, filters = kernel.shape[2], kernel.shape[3]
        # (2, 2, C, [a, b, O]): the four phase kernels side by side in the output channels.
        phase_kernel = ops.reshape(ops.einsum("aur,bvs,rsco->uvcabo", taps, taps, kernel),
                                   (2, 2, channels, 4 * filters))
        padded = mirror_pad(inputs, 1, "symmetric")
        # Every phase at every position of the padded map: (B, H + 1, W + 1, 4 O).
        outputs = ops.conv(padded, phase_kernel, strides=1, padding="valid")
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        phases = [outputs[:, a:a + height, b:b + width, (2 * a + b) * filters:(2 * a + b + 1) * filters]
                  for a in (0, 1) for b in (0, 1)]
        # Channels ordered (row parity, column parity, O): depth_to_space interleaves them.
        return tf.nn.depth_to_space(ops.concatenate(phases, axis=-1), 2)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        double = lambda n: None if n is None else 2 * n
        return (batch, double(height), double(width), self.filters)

    def get_config(self):
        config = super().get_config()
        for fixed in ("kernel_size", "strides", "padding"):  # set by __init__
            config.pop(fixed)
        return config
