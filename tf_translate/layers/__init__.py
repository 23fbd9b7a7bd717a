"""Layers shared by the networks: convolution, padding, normalisation, attention."""

from tf_translate.layers.cam import CAMAttention
from tf_translate.layers.conv import Conv2D, NearestUpsampleConv2D
from tf_translate.layers.normalization import LIN, AdaLIN, Clipper, InstanceNormalization, SoftAdaLIN
from tf_translate.layers.padding import ReflectionPadding2D
from tf_translate.layers.spectral_norm import SpectralNorm, consecutive_calls

__all__ = ["AdaLIN", "CAMAttention", "Clipper", "Conv2D", "InstanceNormalization", "LIN", "NearestUpsampleConv2D",
           "ReflectionPadding2D", "SoftAdaLIN", "SpectralNorm", "consecutive_calls"]
