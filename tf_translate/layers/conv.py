"""Conv2D that computes small feature maps as one matrix product of their patches."""

import keras
from keras import layers, ops

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
        # Patch features in (row, column, channel) order: the kernel's HWIO flattening.
        patches = ops.concatenate(
            [inputs[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]
             for i in range(kh) for j in range(kw)], axis=-1)
        flat = ops.reshape(patches, (-1, patches.shape[-1]))
        outputs = ops.matmul(flat, ops.reshape(kernel, (-1, kernel.shape[-1])))
        return ops.reshape(outputs, (-1, out_h, out_w, kernel.shape[-1]))
