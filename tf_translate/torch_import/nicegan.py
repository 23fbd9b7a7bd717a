"""Importer for NICE-GAN (alpc91/NICE-GAN-pytorch: disA's encoder + gen2B, disB's encoder +
gen2A). See the package docstring."""

import re
from collections import OrderedDict

import keras
import numpy as np

from tf_translate.torch_import.common import assign, check_keys, conv_layers, listing, strip_data_parallel


NICEGAN_HEADS = ("Dis0_0.", "Dis0_1.", "Dis1_0.", "Dis1_1.", "conv0.", "conv1.")  # the D heads, not the encoder


def shaped_as(variable):
    """Reshapes a torch array to `variable`'s shape when the sizes agree (λ (1,) -> (),
    ρ (1, C, 2) -> (C, 2)); otherwise leaves it for `assign` to report."""
    shape = tuple(variable.shape)
    return lambda array: array.reshape(shape) if array.size == int(np.prod(shape)) else array


def torch_v_order(kernel_shape):
    """torch `weight_v` runs over `weight.flatten(1)`'s (in, kh, kw); our `SpectralNorm.v`
    over the Keras kernel's (kh, kw, in). A Linear's v needs no change (None)."""
    if len(kernel_shape) != 4:
        return None
    kh, kw, cin = kernel_shape[:3]
    return lambda v: v.reshape(cin, kh, kw).transpose(1, 2, 0).reshape(-1) if v.size == kh * kw * cin else v


def nicegan_encoder_spec(encoder):
    """[(variable, kind, key, convert)] of a `NICEGANEncoder` in the key names of a NICE-GAN
    `Discriminator` state dict: `model.1`, `model.4` (spectral-norm convs), `fc`,
    `conv1x1`, `lamda`. `convert` (or None) maps the torch array first."""
    cam = encoder.cam
    stem = [layer.layers[1] for layer in encoder.stem if isinstance(layer, keras.Sequential)]
    spec = []
    for layer, key in [*zip(stem, ("model.1", "model.4"), strict=True), (cam.fc, "fc")]:
        kernel = layer.layer.kernel
        spec.append((kernel, "conv" if len(kernel.shape) == 4 else "dense", f"{key}.weight_orig", None))
        if layer.layer.use_bias:
            spec.append((layer.layer.bias, "bias", f"{key}.bias", None))
        spec += [(layer.u, "bias", f"{key}.weight_u", None),
                 (layer.v, "bias", f"{key}.weight_v", torch_v_order(tuple(kernel.shape)))]
    return spec + [(cam.conv1x1.kernel, "conv", "conv1x1.weight", None),
                   (cam.conv1x1.bias, "bias", "conv1x1.bias", None), (cam.lamda, "bias", "lamda", shaped_as(cam.lamda))]


def nicegan_decoder_spec(generator):
    """[(variable, kind, key, convert)] of a `NICEGANGenerator` in the key names of a
    NICE-GAN `ResnetGenerator` state dict (gen2B / gen2A)."""
    from tf_translate.layers import LIN

    norm = lambda layer, key: [(layer.rho, "bias", f"{key}.rho", shaped_as(layer.rho)),
                               (layer.gamma, "per_channel", f"{key}.gamma", None),
                               (layer.beta, "per_channel", f"{key}.beta", None)]
    (entry,) = conv_layers(generator.entry)
    spec = [(entry.kernel, "conv", "UpBlock0.1.weight", None), (entry.bias, "bias", "UpBlock0.1.bias", None),
            *norm(generator.entry[1], "UpBlock0.2")]
    first_fc = None
    if not generator.light:  # (out, C*H*W) -> (out, H*W*C): Keras flattens NHWC
        width, quarter = 4 * generator.filters, generator.image_size // 4
        first_fc = lambda w: (w.reshape(width, width, quarter, quarter).transpose(0, 2, 3, 1).reshape(width, -1)
                              if w.shape == (width, width * quarter * quarter) else w)
    spec += [(generator.mlp[1].kernel, "dense", "FC.0.weight", first_fc),
             (generator.mlp[2].kernel, "dense", "FC.2.weight", None),
             (generator.gamma_fc.kernel, "dense", "gamma.weight", None),
             (generator.beta_fc.kernel, "dense", "beta.weight", None)]
    for i, block in enumerate(generator.blocks, start=1):
        for index, (conv, adaptive) in enumerate(((block.conv1, block.norm1), (block.conv2, block.norm2)), start=1):
            spec += [(conv_layers([conv])[0].kernel, "conv", f"UpBlock1_{i}.conv{index}.weight", None),
                     (adaptive.rho, "bias", f"UpBlock1_{i}.norm{index}.rho", shaped_as(adaptive.rho))]
    # UpBlock2: (0 pad, 1 conv, 2 ILN, 3 ReLU, 4 1x1 conv, 5 PixelShuffle, 6 ILN, 7 ReLU) twice, 16 pad, 17 conv
    for conv, index in zip(conv_layers(generator.upsampler), (1, 4, 9, 12, 17), strict=True):
        spec.append((conv.kernel, "conv", f"UpBlock2.{index}.weight", None))
        if conv.use_bias:
            spec.append((conv.bias, "bias", f"UpBlock2.{index}.bias", None))
    lins = [layer for layer in generator.upsampler if isinstance(layer, LIN)]
    for layer, index in zip(lins, (2, 6, 10, 14), strict=True):
        spec += norm(layer, f"UpBlock2.{index}")
    return spec


def assign_spec(spec, state, what):
    """Checks the keys of `spec` against `state` (every missing and unexpected key listed),
    then assigns the converted arrays."""
    check_keys(state, [key for _, _, key, _ in spec], what)
    assign([(variable, kind, key, convert(state[key]) if convert else state[key])
            for variable, kind, key, convert in spec], what)


def nicegan_translator_from_state_dict(encoder_state, decoder_state, name="a2b", light=None):
    """One NICE-GAN direction (`NICEGANTranslator`) from the reference's checkpoint: the
    source domain discriminator's encoder stem (disA for A→B) and the target decoder
    (gen2B), as the reference's test phase runs them (`gen2B(disA(x)[4])`, eval mode).

    Width (`--ch`), AdaILN blocks (`--n_res`), light or full and the full model's size
    come from the weights. The encoder's spectral norms keep the checkpoint's u, v: in
    eval mode torch divides by σ = uᵀ W v without a power iteration, as ours does
    outside training; v is permuted from torch's (in, kh, kw) order. The discriminator
    heads (`Dis0_*`, `Dis1_*`, `conv0`, `conv1`) take no part in a translation and are not
    imported; their depth (`--n_dis`) is read for a run's configuration.

    Args:
        encoder_state, decoder_state: {key: array} of the `disA` and `gen2B` entries (or
            `disB` and `gen2A`) of the reference's `<dataset>_params_*.pt`.
        light: expected variant (None accepts either); a mismatch is an error.
    Reference: `Discriminator`, `ResnetGenerator`, `ResnetAdaILNBlock`, `adaILN`, `ILN`
    in NICE-GAN-pytorch `networks.py`; `NICE.save`, `NICE.test` in `NICE.py`.
    """
    from tf_translate.models.nicegan import NICEGANEncoder, NICEGANGenerator, NICEGANTranslator

    encoder_state, decoder_state = strip_data_parallel(encoder_state), strip_data_parallel(decoder_state)
    if np.ndim(encoder_state.get("model.1.weight_orig")) != 4 or "lamda" not in encoder_state:
        raise ValueError("not a NICE-GAN Discriminator state dict (disA / disB): no 4-D 'model.1.weight_orig' "
                         f"or 'lamda' (keys start: {listing(list(encoder_state)[:6])})")
    if np.ndim(decoder_state.get("UpBlock0.1.weight")) != 4 or "FC.0.weight" not in decoder_state:
        raise ValueError("not a NICE-GAN ResnetGenerator state dict (gen2B / gen2A): no 4-D "
                         f"'UpBlock0.1.weight' or 'FC.0.weight' (keys start: {listing(list(decoder_state)[:6])})")
    filters = int(encoder_state["model.1.weight_orig"].shape[0])
    code_channels = int(decoder_state["UpBlock0.1.weight"].shape[1])
    if code_channels != 2 * filters:
        raise ValueError(f"the NICE-GAN generator decodes {code_channels}-channel codes but the "
                         f"discriminator's encoder (ch {filters}) makes {2 * filters}")
    width = 4 * filters
    num_blocks = len({key.split(".")[0] for key in decoder_state if re.match(r"UpBlock1_\d+\.", key)})
    mlp_inputs = decoder_state["FC.0.weight"].shape[1]
    is_light = mlp_inputs == width
    quarter = int(round((mlp_inputs / width) ** 0.5))
    if not is_light and quarter * quarter * width != mlp_inputs:
        raise ValueError(f"FC.0.weight {tuple(decoder_state['FC.0.weight'].shape)} fits neither the light "
                         f"model ({width} inputs) nor a full model's flattened square map")
    if light is not None and light != is_light:
        raise ValueError(f"the checkpoint holds a {'light' if is_light else 'full'} NICE-GAN generator; "
                         f"use --model {'nicegan_light' if is_light else 'nicegan'}")
    image_size = 256 if is_light else 4 * quarter
    heads = [key for key in encoder_state if key.startswith(NICEGAN_HEADS)]
    encoder_state = OrderedDict((key, value) for key, value in encoder_state.items() if key not in set(heads))

    encoder = NICEGANEncoder(filters, name="encoder")
    encoder.build((None, None, None, 3))
    decoder = NICEGANGenerator(filters, num_blocks, image_size, is_light, name="decoder")
    decoder.build((None, None if is_light else quarter, None if is_light else quarter, 2 * filters))
    assign_spec(nicegan_encoder_spec(encoder), encoder_state, f"a NICE-GAN discriminator's encoder with ch {filters}")
    assign_spec(nicegan_decoder_spec(decoder), decoder_state,
                f"a{' light' if is_light else ' full'} NICE-GAN generator with {num_blocks} residual blocks, "
                f"ch {filters}" + ("" if is_light else f", {image_size} px"))
    translator = NICEGANTranslator(encoder, decoder, name=name)
    translator.build((None, None, None, 3))
    # --n_dis for a run: Dis0_0 holds n_dis - 6 spectral-norm convs (the default 7 without heads)
    translator.discriminator_layers = (6 + sum(key.startswith("Dis0_0.") and key.endswith(".weight_orig")
                                               for key in heads)) if heads else 7
    return translator


def nicegan_run_config(translator):
    """The NICEGAN training-model arguments that rebuild an imported translator."""
    config = translator.decoder.get_config()
    return {**{key: config[key] for key in ("filters", "num_residual_blocks", "image_size", "light")},
            "discriminator_layers": getattr(translator, "discriminator_layers", 7)}
