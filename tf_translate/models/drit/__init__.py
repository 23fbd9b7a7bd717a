"""DRIT++: diverse translation from a content code and an attribute code.

Each domain has a content encoder (the domains share its last residual block), an
attribute encoder (a Gaussian code z of 8 values: μ and log σ² in the default concat
variant) and a generator decoding (content, z) into that domain. A→B with a random
z ~ N(0, 1) gives a different translation for every z; with z taken from an example of
domain B (`attribute`) it transfers that example's attributes. Four multi-scale
discriminators judge images (D_A, D_B: fakes with encoded attributes; D_A2, D_B2: fakes
with random z) and a content discriminator tells A's content codes from B's.

Follows the official code (REFERENCE-WAVE2.md §4), including where it differs from the
paper: the discriminators' instance norm is dead code there (`'norm' == 'Instance'`
compares two literals) and their LeakyReLU slope is PyTorch's default 0.01. Those are the
defaults here; `discriminator_norm="instance"`, `content_discriminator_norm="instance"`
and `discriminator_negative_slope=0.2` (preset `drit_paper`) build what the paper and the
code's intent describe. Mode seeking (DRIT++; `mode_seeking=False` is DRIT) is on.

Reference: Lee et al., "DRIT++: Diverse Image-to-Image Translation via Disentangled
Representations", IJCV 2020 (and ECCV 2018); Mao et al., "Mode Seeking Generative
Adversarial Networks", CVPR 2019; HsinYingLee/DRIT `src/` (`networks.py`, `model.py`,
`train.py`, `test.py`, `test_transfer.py`, `options.py`).

The package: `networks` (encoders, generators, discriminators: `networks.py`),
`translator` (one direction as one model, for translate and export) and `model` (the
`DRIT` training model: `model.py`, `train.py`). Every name is importable from here.
"""
from tf_translate.models.base import unique
from tf_translate.models.drit.model import DRIT, full_iterations
from tf_translate.models.drit.networks import (NORMS, DRITAttributeBlock, DRITAttributeEncoder,
                                              DRITContentDiscriminator, DRITContentEncoder, DRITFeatureResidualBlock,
                                              DRITGenerator, DRITLayerNormalization, DRITMultiScaleDiscriminator,
                                              DRITResidualBlock, TransposedConv, build_once, content_min_image_size,
                                              drit_conv, tile_code, torch_dense, upsample_layers)
from tf_translate.models.drit.translator import DRITTranslator

__all__ = ["DRIT", "DRITAttributeBlock", "DRITAttributeEncoder", "DRITContentDiscriminator", "DRITContentEncoder",
           "DRITFeatureResidualBlock", "DRITGenerator", "DRITLayerNormalization", "DRITMultiScaleDiscriminator",
           "DRITResidualBlock", "DRITTranslator", "NORMS", "TransposedConv", "build_once", "content_min_image_size",
           "drit_conv", "full_iterations", "tile_code", "torch_dense", "unique", "upsample_layers"]
