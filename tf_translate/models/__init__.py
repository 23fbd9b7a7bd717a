"""The training models by name: one table, one `build_model`."""

from tf_translate.models.cut import CUT, FastCUT
from tf_translate.models.cyclegan import CycleGAN, PatchGANDiscriminator, ResNetGenerator
from tf_translate.models.drit import DRIT
from tf_translate.models.dunit.init_model import INIT
from tf_translate.models.dunit.paper import DUNITPaper
from tf_translate.models.dunit.model import DUNIT
from tf_translate.models.nicegan import NICEGAN
from tf_translate.models.photo2cartoon import Photo2Cartoon
from tf_translate.models.pix2pix import Pix2Pix
from tf_translate.models.stargan import StarGAN
from tf_translate.models.tuigan import TuiGAN
from tf_translate.models.ugatit import UGATIT
from tf_translate.models.unit import UNIT

# name -> (training model class, preset keyword arguments). Overrides win over presets.
MODELS = {
    "cyclegan": (CycleGAN, {}),
    "cut": (CUT, {}),  # CUT as released: anti-aliased G and D, NCE identity, 200 + 200 epochs
    "fastcut": (FastCUT, {}),  # --CUT_mode FastCUT: lambda_NCE 10, flip equivariance, 150 + 50 epochs
    "stargan": (StarGAN, {}),
    "nicegan": (NICEGAN, {"light": False}),
    "nicegan_light": (NICEGAN, {"light": True}),
    "ugatit": (UGATIT, {"light": False}),
    "ugatit_light": (UGATIT, {"light": True}),
    "photo2cartoon": (Photo2Cartoon, {}),
    "unit": (UNIT, {}),
    "pix2pix": (Pix2Pix, {}),
    "drit": (DRIT, {}),  # DRIT++ as released: --concat 1, mode seeking, no norm / LeakyReLU 0.01 in the Ds
    "drit_concat0": (DRIT, {"concat": False}),  # --concat 0, the README's choice for shape changes
    "drit_paper": (DRIT, {"discriminator_norm": "instance", "content_discriminator_norm": "instance",
                          "discriminator_negative_slope": 0.2}),  # the Ds as the paper describes them
    "tuigan": (TuiGAN, {}),
    "dunit": (DUNIT, {}),  # DUNIT as released: DRIT++ + a detector pretrained on A's boxes, IoU consistency logged
    "dunit_paper": (DUNITPaper, {}),  # + the instance branch and a detector consistency with gradient (paper figure)
    "init": (INIT, {}),  # INIT from the paper (no code): DRIT++ + instance crops at ground-truth boxes
}


def model_class(name):
    """The training model class registered as `name` (a one-line error for unknown names)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    return MODELS[name][0]


def constructor_options(name):
    """{option: inspect.Parameter} of the model registered as `name`: its constructor's
    keyword arguments and, while a constructor passes **kwargs on, its bases' (a variant
    such as `DUNITPaper` need not repeat `DUNIT`'s), except those the model sets for its base
    itself (`fixed_options`: photo2cartoon's `num_residual_blocks`); `TranslationModel`'s
    **kwargs go to keras.Model and are not options."""
    import inspect

    from tf_translate.models.base import TranslationModel

    options = {}
    fixed = set(model_class(name).fixed_options)
    for cls in model_class(name).__mro__:
        if cls is TranslationModel:
            break
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters
        for option, parameter in parameters.items():
            if option not in fixed | {"self"} and parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
                options.setdefault(option, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
    return options


def build_model(name, **overrides):
    """Builds the training model registered as `name` with the reference defaults.

    Args:
        name: a key of `MODELS` (e.g. "cyclegan").
        **overrides: constructor arguments replacing the defaults (e.g. image_size=128).
    """
    return model_class(name)(**{**MODELS[name][1], **overrides})


__all__ = ["MODELS", "build_model", "constructor_options", "model_class", "CycleGAN", "PatchGANDiscriminator", "ResNetGenerator"]
