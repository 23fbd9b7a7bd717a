"""Padding layers that PyTorch references use and Keras core lacks."""

import keras

from tf_translate.layers.xnnpack import mirror_pad


@keras.saving.register_keras_serializable(package="tf_translate")
class ReflectionPadding2D(keras.layers.Layer):
    """Mirror-pads H and W of an NHWC tensor, like `torch.nn.ReflectionPad2d`.

    The edge pixel is not repeated (`mode="reflect"`), so `padding` must be smaller
    than the spatial size.

    Args:
        padding: int, pixels added on each side of H and W.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        return mirror_pad(inputs, self.padding, "reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        grow = lambda n: None if n is None else n + 2 * self.padding
        return (b, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
