"""Importer for CycleGAN (junyanz `ResnetGenerator`). See the package docstring."""

import re

import numpy as np

from tf_translate.torch_import.common import (assign, check_keys, drop_instance_norm_buffers, listing, sequential_pairs,
                                              strip_data_parallel,
                                              weighted_layers)


def cyclegan_module_names(num_blocks, block_attribute="conv_block"):
    """Module names of junyanz `ResnetGenerator` (reflect padding, no dropout, transposed
    up-sampling) in forward order, each with its kind.

    Sequential indices: 0 pad, 1 conv, 2 norm, 3 relu, then (conv, norm, relu) twice for
    the down-sampling, the blocks (inside each: 0 pad, 1 conv, 2 norm, 3 relu, 4 pad,
    5 conv, 6 norm), (transpose conv, norm, relu) twice, pad, conv, tanh.
    """
    names = [("model.1", "conv"), ("model.2", "norm"), ("model.4", "conv"), ("model.5", "norm"),
             ("model.7", "conv"), ("model.8", "norm")]
    for index in range(10, 10 + num_blocks):
        block = f"model.{index}.{block_attribute}"
        names += [(f"{block}.1", "conv"), (f"{block}.2", "norm"), (f"{block}.5", "conv"), (f"{block}.6", "norm")]
    up = 10 + num_blocks
    names += [(f"model.{up}", "conv_transpose"), (f"model.{up + 1}", "norm"),
              (f"model.{up + 3}", "conv_transpose"), (f"model.{up + 4}", "norm"),
              (f"model.{up + 7}", "conv")]
    return names


def read_cyclegan_architecture(state):
    """(filters, num_blocks, block attribute, norm_affine, output channels) from the keys.

    Residual blocks are `model.<i>.<attribute>.<j>.*` (the reference names the attribute
    `conv_block`; some projects built on it use another name). Affine instance norm shows
    as weights on `model.2`, the norm after the first conv.
    """
    if "model.1.weight" not in state or np.ndim(state["model.1.weight"]) != 4:
        raise ValueError("not a junyanz CycleGAN ResnetGenerator state dict: no 4-D 'model.1.weight' "
                         f"(keys start: {listing(list(state)[:6])})")
    block_keys = [re.match(r"model\.(\d+)\.([A-Za-z_]\w*)\.\d+\.", key) for key in state]
    blocks = sorted({int(m.group(1)) for m in block_keys if m})
    attributes = [m.group(2) for m in block_keys if m]
    attribute = max(set(attributes), key=attributes.count) if attributes else "conv_block"
    num_blocks = len(blocks)
    if blocks != list(range(10, 10 + num_blocks)):
        raise ValueError(f"residual blocks at unexpected positions model.{blocks} "
                         "(expected model.10, model.11, ...)")
    last = f"model.{17 + num_blocks}.weight"
    output_channels = state[last].shape[0] if last in state and np.ndim(state[last]) == 4 else 3
    filters = state["model.1.weight"].shape[0]
    return filters, num_blocks, attribute, "model.2.weight" in state, output_channels


def cyclegan_generator_from_state_dict(state, name="generator_ab"):
    """A ResNetGenerator holding the weights of a junyanz `netG_A` / `netG_B` state dict.

    Both variants load: non-affine instance norm (the reference default; each conv has a
    bias) and affine instance norm (older checkpoints, vintagify), detected from the keys.
    Width (`--ngf`) and block count come from the checkpoint too.

    Args:
        state: {key: array} from `load_state_dict`.
    Returns:
        the built generator.
    Reference: `ResnetGenerator` / `ResnetBlock` in junyanz `models/networks.py`.
    """
    from tf_translate.models.cyclegan import ResNetGenerator

    state = strip_data_parallel(state)
    filters, num_blocks, attribute, affine, output_channels = read_cyclegan_architecture(state)
    modules = cyclegan_module_names(num_blocks, attribute)
    state = drop_instance_norm_buffers(state, [m for m, kind in modules if kind == "norm"])
    expected = []
    for module, kind in modules:
        if kind != "norm" or affine:
            expected += [f"{module}.weight", f"{module}.bias"]
    what = (f"a CycleGAN ResnetGenerator with {num_blocks} blocks, ngf {filters}, "
            f"{'affine' if affine else 'non-affine'} instance norm")
    check_keys(state, expected, what)

    generator = ResNetGenerator(filters=filters, num_residual_blocks=num_blocks,
                                output_channels=output_channels, norm_affine=affine, name=name)
    generator.build((None, None, None, int(state["model.1.weight"].shape[1])))
    assign(sequential_pairs(weighted_layers(generator.stack), modules, state, biases=True), what)
    return generator


def cyclegan_run_config(generator):
    """The CycleGAN training-model arguments that rebuild `generator`'s architecture."""
    config = generator.get_config()
    return {"filters": config["filters"], "num_residual_blocks": config["num_residual_blocks"],
            "norm_affine": config["norm_affine"]}
