"""Layers shared by the networks: convolution, padding, normalisation, attention, and
the blocks several papers build from them (`blocks.py`)."""

from tf_translate.layers.blocks import AdaLINResidualBlock, UGATITResidualBlock
from tf_translate.layers.cam import CAMAttention
from tf_translate.layers.conv import Conv2D, NearestUpsampleConv2D
from tf_translate.layers.normalization import LIN, AdaLIN, Clipper, InstanceNormalization, SoftAdaLIN
from tf_translate.layers.multiscale import ExcludePadAveragePooling2D, MultiScaleDiscriminator
from tf_translate.layers.normalization import UNITLayerNormalization
from tf_translate.layers.padding import ReflectionPadding2D
from tf_translate.layers.spectral_norm import SpectralNorm

__all__ = ["AdaLIN", "AdaLINResidualBlock", "CAMAttention", "Clipper", "Conv2D", "InstanceNormalization", "LIN",
           "NearestUpsampleConv2D", "ReflectionPadding2D", "SoftAdaLIN", "SpectralNorm", "UGATITResidualBlock"]
__all__ += ["ExcludePadAveragePooling2D", "MultiScaleDiscriminator", "UNITLayerNormalization"]
