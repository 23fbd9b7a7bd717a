"""TuiGAN: one-shot unpaired translation from one image of each domain, by two pyramids
of small generators trained coarse to fine.

Reference: Lin et al., "TuiGAN: Learning Versatile Image-to-Image Translation with Two
Unpaired Images", ECCV 2020; linjx-ustc1106/TuiGAN-PyTorch (`models/model.py`,
`models/TuiGAN.py`, `utils/functions.py`, `utils/imresize.py`, `utils/manipulate.py`,
`options/config.py`).

The package: `pyramid` (the pyramid rule and the reference's MATLAB-style resize,
`imresize`), `networks` (the per-scale generator and critic), `losses` (TV, the
per-pixel gradient penalty, the step schedule), `serving` (`TuiGANPyramid`: the whole
A->B or B->A chain as one network, for translate and export), `model` (the `TuiGAN`
training model: one graph-compiled iteration per step, one training phase per scale,
so `training.train` trains it as any other model) and `data` (the two images as
pyramid levels). Every name is importable from here.
"""

from tf_translate.models.tuigan.data import pyramid_data, pyramid_dataset, read_image_pair
from tf_translate.models.tuigan.losses import MultiStepDecay, channel_gradient_penalty, tv_loss
from tf_translate.models.tuigan.model import TuiGAN
from tf_translate.models.tuigan.networks import (ConvBlock, TuiGANDiscriminator, TuiGANGenerator, attention_blend,
                                                 body_widths, output_conv, seeded)
from tf_translate.models.tuigan.pyramid import (PyramidRule, channels, cubic, imresize, resize_in_graph,
                                                resize_matrix, resized_length, to_model_range, to_pixels)
from tf_translate.models.tuigan.serving import PyramidModule, TuiGANPyramid, chain, export_pyramid

__all__ = ["ConvBlock", "MultiStepDecay", "PyramidModule", "PyramidRule", "TuiGAN", "TuiGANDiscriminator",
           "TuiGANGenerator", "TuiGANPyramid", "attention_blend", "body_widths", "channel_gradient_penalty",
           "channels", "chain", "cubic", "export_pyramid", "imresize", "output_conv", "pyramid_data",
           "pyramid_dataset", "read_image_pair", "resize_in_graph", "resize_matrix", "resized_length", "seeded",
           "to_model_range", "to_pixels", "tv_loss"]
