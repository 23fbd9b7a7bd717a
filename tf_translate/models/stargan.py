"""StarGAN: one label-conditioned generator for many domains, and a discriminator with
a real/fake head and a domain-classification head.

Reference: Choi et al., "StarGAN: Unified Generative Adversarial Networks for
Multi-Domain Image-to-Image Translation", CVPR 2018; yunjey/stargan (`model.py`,
`solver.py`, `main.py`).
"""

import math

import keras
from keras import layers, ops

from tf_translate.layers import InstanceNormalization
from tf_translate.models.cyclegan import conv


def torch_default_init(conv_or_padded, fan_in, use_bias=True):
    """Gives a layer from `conv()` PyTorch's default initialisation; returns it.

    yunjey/stargan never re-initialises its modules, so weights keep PyTorch's default:
    `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The Keras VarianceScaling below is the same
    distribution, and Keras computes a Conv2DTranspose kernel's fan-in from its output
    channels exactly as PyTorch does for ConvTranspose2d. `conv()` fixes the junyanz
    N(0, 0.02) initialiser, so we swap the initialisers before the layer is built.
    """
    inner = conv_or_padded.layers[-1] if isinstance(conv_or_padded, keras.Sequential) else conv_or_padded
    inner.kernel_initializer = keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
    if use_bias:
        bound = 1.0 / math.sqrt(fan_in)
        inner.bias_initializer = keras.initializers.RandomUniform(-bound, bound)
    return conv_or_padded


def _build_stack(stack, shape):
    for layer in stack:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANResidualBlock(layers.Layer):
    """x + [3x3 conv, IN, ReLU, 3x3 conv, IN](x), zero padding 1, no conv bias.

    Differs from CycleGAN's block: zero instead of reflection padding, affine instance
    norm, and no conv biases (the affine IN offset makes them redundant).

    Reference: `ResidualBlock` in yunjey `model.py`.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        fan_in = filters * 9
        self.body = [
            torch_default_init(conv(filters, 3, padding=1, use_bias=False), fan_in, use_bias=False),
            InstanceNormalization(affine=True), layers.ReLU(),
            torch_default_init(conv(filters, 3, padding=1, use_bias=False), fan_in, use_bias=False),
            InstanceNormalization(affine=True),
        ]

    def build(self, input_shape):
        _build_stack(self.body, input_shape)

    def call(self, x):
        y = x
        for layer in self.body:
            y = layer(y)
        return x + y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANGenerator(keras.Model):
    """The StarGAN generator: translates an image to the domain a label vector names.

    Called as `generator([images, labels])`: images NHWC in [-1, 1], labels float
    [batch, num_domains] (0/1 attribute vector or one-hot; for multi-dataset training the
    unified `[c1, c2, mask]`, so `num_domains` is then c1 + c2 + 2). The label is tiled
    over the image and concatenated after the image channels (the reference order, so
    imported weights line up). The list form keeps one `inputs` argument, which
    `.keras` saving, `build()` and SavedModel export all expect.

    c7s1-64, d128, d256 (4x4 s2), 6 residual blocks, u128, u64 (4x4 s2 transposed),
    c7s1-3, tanh; affine instance norm, zero padding, no conv biases (8,430,528
    parameters with the defaults). The reference notes that this label conditioning
    fails with reflection padding, since IN removes the constant label planes.
    H and W must be multiples of 4. Instance norm always uses the instance's statistics:
    the reference declares `track_running_stats=True` but never calls `G.eval()`, so
    its running averages are never used (they are buffers, not parameters).

    Args:
        filters: width of the first layer (reference `--g_conv_dim`, 64).
        num_domains: length of the label vector (reference `--c_dim`, 5).
        num_residual_blocks: bottleneck blocks (reference `--g_repeat_num`, 6).
    Reference: `Generator` in yunjey `model.py`.
    """

    def __init__(self, filters=64, num_domains=5, num_residual_blocks=6, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.num_domains = num_domains
        self.num_residual_blocks = num_residual_blocks

        stack = [torch_default_init(conv(filters, 7, padding=3, use_bias=False),
                                    (3 + num_domains) * 49, use_bias=False),
                 InstanceNormalization(affine=True), layers.ReLU()]
        width = filters
        for _ in range(2):
            stack += [torch_default_init(conv(width * 2, 4, strides=2, padding=1, use_bias=False),
                                         width * 16, use_bias=False),
                      InstanceNormalization(affine=True), layers.ReLU()]
            width *= 2
        stack += [StarGANResidualBlock(width) for _ in range(num_residual_blocks)]
        for _ in range(2):
            # PyTorch ConvTranspose2d(k4, s2, padding 1) gives 2H and crops one pixel on
            # each side of the full (2H + 2) output; Keras "same" pads (1, 1) here, the
            # same grid (checked against a NumPy scatter in the tests).
            up = layers.Conv2DTranspose(width // 2, 4, strides=2, padding="same", use_bias=False)
            stack += [torch_default_init(up, (width // 2) * 16, use_bias=False),
                      InstanceNormalization(affine=True), layers.ReLU()]
            width //= 2
        stack += [torch_default_init(conv(3, 7, padding=3, use_bias=False), width * 49, use_bias=False),
                  layers.Activation("tanh", dtype="float32")]
        self.stack = stack

    def build(self, input_shape):
        image_shape, label_shape = input_shape
        if label_shape[-1] is not None and label_shape[-1] != self.num_domains:
            raise ValueError(f"labels have {label_shape[-1]} entries; this generator takes "
                             f"num_domains={self.num_domains}")
        _build_stack(self.stack, tuple(image_shape[:-1]) + (image_shape[-1] + self.num_domains,))
        self.built = True

    def call(self, inputs):
        images, labels = inputs
        labels = ops.cast(labels, images.dtype)
        # [B, C] -> [B, H, W, C] by broadcasting against a ones plane of the image.
        planes = labels[:, None, None, :] * ops.ones_like(images[..., :1])
        x = ops.concatenate([images, planes], axis=-1)
        for layer in self.stack:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0]
        return tuple(image_shape[:-1]) + (3,)

    def get_config(self):
        return {"filters": self.filters, "num_domains": self.num_domains,
                "num_residual_blocks": self.num_residual_blocks, "name": self.name}


@keras.saving.register_keras_serializable(package="tf_translate")
class StarGANDiscriminator(keras.Model):
    """The StarGAN discriminator: PatchGAN real/fake logits and domain-class logits.

    `num_layers` 4x4 stride-2 convs (64 -> 2048 with the defaults), zero padding 1,
    LeakyReLU 0.01, biases, no normalisation. Two bias-free heads on the last map: `src`,
    a 3x3 conv to 1 channel (2x2 logits at 128 px), and `cls`, a conv whose kernel covers
    the whole remaining map (image_size / 2**num_layers) to `num_domains` logits.
    Returns `(src_logits [B, h, w, 1], class_logits [B, num_domains])`, both float32.
    44,762,048 parameters at 128 px, 44,884,928 at 256 px (5 domains).
    Images must be `image_size` square: the class head's kernel is sized for it.

    Args:
        image_size: training resolution (reference `--image_size`, 128).
        filters: width of the first layer (reference `--d_conv_dim`, 64).
        num_domains: class logits (reference `--c_dim`; c_dim + c2_dim with two datasets).
        num_layers: stride-2 convs (reference `--d_repeat_num`, 6).
    Reference: `Discriminator` in yunjey `model.py`.
    """

    def __init__(self, image_size=128, filters=64, num_domains=5, num_layers=6, **kwargs):
        if image_size % (2 ** num_layers):
            raise ValueError(f"image_size {image_size} must be a multiple of 2**num_layers "
                             f"= {2 ** num_layers}")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.num_domains = num_domains
        self.num_layers = num_layers

        stack, width, in_channels = [], filters, 3
        for _ in range(num_layers):
            stack += [torch_default_init(conv(width, 4, strides=2, padding=1), in_channels * 16),
                      layers.LeakyReLU(0.01)]
            in_channels, width = width, width * 2
        self.stack = stack
        self.src_head = torch_default_init(conv(1, 3, padding=1, use_bias=False),
                                           in_channels * 9, use_bias=False)
        kernel = image_size // 2 ** num_layers
        self.cls_head = torch_default_init(conv(num_domains, kernel, use_bias=False),
                                           in_channels * kernel * kernel, use_bias=False)

    def build(self, input_shape):
        shape = _build_stack(self.stack, tuple(input_shape))
        self.src_head.build(shape)
        self.cls_head.build(shape)
        self.built = True

    def call(self, x):
        for layer in self.stack:
            x = layer(x)
        src = ops.cast(self.src_head(x), "float32")
        cls = ops.cast(self.cls_head(x), "float32")
        # A reshape, not a slice: fails loudly if the image was not `image_size`.
        cls = ops.reshape(cls, (ops.shape(cls)[0], self.num_domains))
        return src, cls

    def get_config(self):
        return {"image_size": self.image_size, "filters": self.filters,
                "num_domains": self.num_domains, "num_layers": self.num_layers, "name": self.name}
