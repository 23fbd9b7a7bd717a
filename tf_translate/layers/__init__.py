"""Layers shared by the networks: padding, normalisation, attention."""

from tf_translate.layers.normalization import InstanceNormalization
from tf_translate.layers.padding import ReflectionPadding2D

__all__ = ["InstanceNormalization", "ReflectionPadding2D"]
