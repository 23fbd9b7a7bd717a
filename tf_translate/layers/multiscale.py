"""The multi-scale discriminator of UNIT and DRIT++, and its average pooling.

One plain stack of 4x4 stride-2 convolutions judges the image, a second (with its own
weights) judges it downsampled by 2, a third by 4, ...; the outputs are one logit map
per scale. UNIT (`MsImageDis`) and DRIT++ (`MultiScaleDis`) build the same layers and
differ in the LeakyReLU slope (0.2 and 0.01) and in the initialisation.
"""

import keras
from keras import layers, ops

from tf_translate.layers.blocks import conv

INITS = ("junyanz", "torch")


@keras.saving.register_keras_serializable(package="tf_translate")
class ExcludePadAveragePooling2D(layers.Layer):
    """Average pooling over zero-padded windows that divides by the real pixels only.

    `nn.AvgPool2d(k, stride, padding, count_include_pad=False)`: each window of the
    input padded by `padding` on every side averages the input pixels it covers, so a
    border window of a 3x3 pool averages 4 or 6 values, not 9. (Keras' "same" pooling
    pads asymmetrically and on even sizes pads only the bottom and right, which moves
    every window.) Computed as pool(padded x) / pool(padded ones), any H and W.

    Args:
        pool_size, strides: square window and step (reference 3, 2).
        padding: pixels added on each side (reference 1).
    Reference: `self.downsample` of `MsImageDis` in mingyuliutw/UNIT `networks.py`.
    """

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides)
        self.padding = int(padding)

    def call(self, x):
        p = self.padding
        pads = [[0, 0], [p, p], [p, p], [0, 0]]
        pool = lambda t: ops.average_pool(t, self.pool_size, self.strides, padding="valid")
        total = pool(ops.pad(x, pads))
        count = pool(ops.pad(ops.ones_like(x[..., :1]), pads))  # share of each window inside x
        return total / count

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        out = lambda n: None if n is None else (n + 2 * self.padding - self.pool_size) // self.strides + 1
        return (b, out(h), out(w), c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


@keras.saving.register_keras_serializable(package="tf_translate")
class MultiScaleDiscriminator(keras.Model):
    """`num_scales` discriminators, each on the image downsampled once more.

    Each scale: `num_layers` × [pad 1, 4x4 stride-2 conv with bias, LeakyReLU], widths
    filters, 2·filters, ..., then a 1x1 conv (with bias) to one logit; no normalisation.
    Between scales `ExcludePadAveragePooling2D(3, 2, 1)`. At UNIT's defaults (64
    filters, 4 layers, 3 scales, reflect padding) 8,271,171 parameters, outputs 16², 8²
    and 4² at 256 px. Returns a list of float32 logit maps, finest first.

    Reflection padding needs every padded map to be at least 2 pixels wide, so the
    input must be at least `min_size()` a side (64 at the defaults).

    Args:
        filters: width of the first layer (UNIT `dis.dim`, DRIT++ `--dis_ndf`... 64).
        num_layers: strided convolutions per scale (UNIT `dis.n_layer` 4).
        num_scales: UNIT `dis.num_scales` 3.
        negative_slope: LeakyReLU slope (UNIT 0.2; DRIT++ 0.01, the PyTorch default its
            `LeakyReLUConv2d` uses).
        padding_mode: "reflect" (UNIT `pad_type: reflect`, DRIT++) or "zeros".
        init: "junyanz": kernels N(0, 0.02), biases 0 (UNIT's `weights_init('gaussian')`
            re-initialisation of the discriminators); "torch": PyTorch's default init of
            kernel and bias.
        input_channels: image channels (the fan-in of the first layer's torch init).
    Reference: `MsImageDis` in mingyuliutw/UNIT `networks.py`; `MultiScaleDis` in
    HsinYingLee/DRIT `src/networks.py`.
    """

    def __init__(self, filters=64, num_layers=4, num_scales=3, negative_slope=0.2, padding_mode="reflect",
                 init="junyanz", input_channels=3, **kwargs):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if num_layers < 1 or num_scales < 1:
            raise ValueError(f"num_layers and num_scales must be positive, got {num_layers}, {num_scales}")
        super().__init__(**kwargs)
        self.filters = filters
        self.num_layers = num_layers
        self.num_scales = num_scales
        self.negative_slope = float(negative_slope)
        self.padding_mode = padding_mode
        self.init = init
        self.input_channels = input_channels
        self.scales = [keras.Sequential(self._scale_layers(), name=f"scale_{s}") for s in range(num_scales)]
        self.downsample = ExcludePadAveragePooling2D(3, 2, 1, name="downsample")

    def _scale_layers(self):
        stack, channels = [], self.input_channels
        for i in range(self.num_layers):
            width = self.filters * 2 ** i
            stack += [conv(width, 4, strides=2, padding=1, padding_mode=self.padding_mode, use_bias=True,
                           init=self.init, fan_in=channels * 16),
                      layers.LeakyReLU(negative_slope=self.negative_slope)]
            channels = width
        stack += [conv(1, 1, use_bias=True, init=self.init, fan_in=channels),
                  layers.Activation("linear", dtype="float32")]
        return stack

    def min_size(self):
        """The smallest input height and width every scale accepts."""
        size = 1
        while True:
            side, ok = size, True
            for _ in range(self.num_scales):
                ok = ok and side >= 2 ** self.num_layers  # the last conv pads a map of side // 2^(n-1)
                side = (side - 1) // 2 + 1
            if ok:
                return size
            size += 1

    def build(self, input_shape):
        shape = tuple(input_shape)
        for scale in self.scales:
            scale.build(shape)
            shape = self.downsample.compute_output_shape(shape)
        self.built = True

    def __call__(self, x, *args, **kwargs):
        # Checked here: Keras' __call__ would wrap a reflect-padding failure in a long report.
        small = [d for d in tuple(x.shape)[1:3] if d is not None and d < self.min_size()]
        if small:
            raise ValueError(f"MultiScaleDiscriminator(num_layers={self.num_layers}, num_scales={self.num_scales}) "
                             f"needs images of at least {self.min_size()}x{self.min_size()}, "
                             f"got {x.shape[1]}x{x.shape[2]}")
        return super().__call__(x, *args, **kwargs)

    def call(self, x):
        outputs = []
        for index, scale in enumerate(self.scales):
            outputs.append(scale(x))
            if index + 1 < len(self.scales):
                x = self.downsample(x)
        return outputs

    def compute_output_shape(self, input_shape):
        shapes, shape = [], tuple(input_shape)
        for _ in self.scales:
            side = lambda n: None if n is None else n // 2 ** self.num_layers
            shapes.append((shape[0], side(shape[1]), side(shape[2]), 1))
            shape = self.downsample.compute_output_shape(shape)
        return shapes

    def get_config(self):
        return {"filters": self.filters, "num_layers": self.num_layers, "num_scales": self.num_scales,
                "negative_slope": self.negative_slope, "padding_mode": self.padding_mode, "init": self.init,
                "input_channels": self.input_channels, "name": self.name}
