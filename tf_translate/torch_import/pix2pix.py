"""Importer for pix2pix (junyanz `UnetGenerator`). See the package docstring."""

from collections import OrderedDict

import numpy as np

from tf_translate.torch_import.common import (INSTANCE_NORM_BUFFERS, assign, check_keys, listing, strip_data_parallel,
                                              weighted_layers)


def unet_module_names(downs):
    """{(level, part): module name} of junyanz `UnetGenerator` for part "down_conv",
    "down_norm", "up_conv", "up_norm".

    The generator nests one `UnetSkipConnectionBlock` per level: the outermost's
    Sequential is [down conv, sub-block, ReLU, up conv, tanh]; a middle one's
    [LeakyReLU, down conv, down norm, sub-block, ReLU, up conv, up norm(, dropout)];
    the innermost's [LeakyReLU, down conv, ReLU, up conv, up norm].
    """
    names = {(0, "down_conv"): "model.model.0", (0, "up_conv"): "model.model.3"}
    for level in range(1, downs):
        prefix = "model.model.1.model." + "3.model." * (level - 1)
        if level == downs - 1:
            names.update({(level, "down_conv"): prefix + "1", (level, "up_conv"): prefix + "3",
                          (level, "up_norm"): prefix + "4"})
        else:
            names.update({(level, "down_conv"): prefix + "1", (level, "down_norm"): prefix + "2",
                          (level, "up_conv"): prefix + "5", (level, "up_norm"): prefix + "6"})
    return names


def pix2pix_generator_from_state_dict(state, name="generator"):
    """A UNetGenerator holding the weights of a junyanz pix2pix `latest_net_G.pth`.

    The variant (8 downs: unet_256, 7: unet_128), `--ngf`, the norm (batch norm shows as
    running statistics) and the channels come from the keys; dropout leaves no weights,
    so the generator has it on (pix2pix's default; `--no_dropout` runs differ only at
    test time in "reference" mode). Batch norm's running averages are imported too, for
    `--inference-mode eval`.
    Reference: `UnetGenerator`, `UnetSkipConnectionBlock` in junyanz `models/networks.py`.
    """
    from tf_translate.models.pix2pix import UNET_DOWNS, UNetGenerator

    state = strip_data_parallel(state)
    if "model.model.0.weight" not in state or np.ndim(state["model.model.0.weight"]) != 4:
        raise ValueError("not a junyanz pix2pix UnetGenerator state dict: no 4-D 'model.model.0.weight' "
                         f"(keys start: {listing(list(state)[:6])})")
    downs = max(key.count("model.") for key in state if key.startswith("model.model.1.")) - 1
    variants = {count: variant for variant, count in UNET_DOWNS.items()}
    if downs not in variants:
        raise ValueError(f"a U-Net with {downs} down levels: import-torch reads unet_256 (8) and unet_128 (7)")
    batch_norm = any(key.endswith("running_mean") for key in state)
    modules = unet_module_names(downs)
    norm_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = []
    for (level, part), module in modules.items():
        if part.endswith("norm"):
            expected += [f"{module}.{key}" for key in norm_keys] if batch_norm else []
        else:
            has_bias = (not batch_norm) or (level, part) == (0, "up_conv")
            expected += [f"{module}.weight"] + ([f"{module}.bias"] if has_bias else [])
    state = OrderedDict((key, value) for key, value in state.items()
                        if batch_norm or key.rsplit(".", 1)[-1] not in INSTANCE_NORM_BUFFERS)
    filters = int(state["model.model.0.weight"].shape[0])
    output_channels = int(state["model.model.3.weight"].shape[1])
    what = (f"a pix2pix {variants[downs]} with ngf {filters}, {'batch' if batch_norm else 'instance'} norm")
    check_keys(state, expected, what)

    generator = UNetGenerator(variants[downs], filters, "batch" if batch_norm else "instance",
                              output_channels=output_channels, name=name)
    generator.build((None, 2 ** downs, 2 ** downs, int(state["model.model.0.weight"].shape[1])))
    pairs = []
    for (level, part), module in modules.items():
        if part.endswith("norm"):
            if not batch_norm:  # non-affine instance norm: nothing to import
                continue
            layer = (generator.down_norms if part == "down_norm" else generator.up_norms)[level]
            pairs += [(layer.gamma, "norm", f"{module}.weight", state[f"{module}.weight"]),
                      (layer.beta, "norm", f"{module}.bias", state[f"{module}.bias"]),
                      (layer.moving_mean, "norm", f"{module}.running_mean", state[f"{module}.running_mean"]),
                      (layer.moving_variance, "norm", f"{module}.running_var", state[f"{module}.running_var"])]
            continue
        if part == "down_conv":
            layer, kind = weighted_layers([generator.down_convs[level]])[0][1], "conv"
        else:
            layer, kind = generator.up_convs[level].layers[0], "conv_transpose"
        pairs.append((layer.kernel, kind, f"{module}.weight", state[f"{module}.weight"]))
        if layer.use_bias:
            pairs.append((layer.bias, "bias", f"{module}.bias", state[f"{module}.bias"]))
    assign(pairs, what)
    return generator


def pix2pix_run_config(generator):
    """The Pix2Pix training-model arguments that rebuild `generator`'s architecture."""
    config = generator.get_config()
    return {key: config[key] for key in ("variant", "filters", "norm")}
