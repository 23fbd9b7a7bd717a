"""Importer for StarGAN (yunjey `Generator`). See the package docstring."""

import re

import numpy as np

from tf_translate.torch_import.common import (assign, check_keys, drop_instance_norm_buffers, listing, sequential_pairs,
                                              strip_data_parallel,
                                              weighted_layers)


def stargan_module_names(num_blocks):
    """Module names of yunjey's StarGAN `Generator` in forward order, each with its kind.

    `main` indices: 0 conv, 1 norm, 2 relu, then (conv, norm, relu) twice down, the
    blocks (inside each `main`: 0 conv, 1 norm, 2 relu, 3 conv, 4 norm), (transposed
    conv, norm, relu) twice, conv, tanh.
    """
    names = [("main.0", "conv"), ("main.1", "norm"), ("main.3", "conv"), ("main.4", "norm"),
             ("main.6", "conv"), ("main.7", "norm")]
    for index in range(9, 9 + num_blocks):
        names += [(f"main.{index}.main.0", "conv"), (f"main.{index}.main.1", "norm"),
                  (f"main.{index}.main.3", "conv"), (f"main.{index}.main.4", "norm")]
    up = 9 + num_blocks
    names += [(f"main.{up}", "conv_transpose"), (f"main.{up + 1}", "norm"),
              (f"main.{up + 3}", "conv_transpose"), (f"main.{up + 4}", "norm"), (f"main.{up + 6}", "conv")]
    return names


def stargan_generator_from_state_dict(state, name="generator"):
    """A StarGANGenerator holding the weights of a yunjey `*-G.ckpt` state dict.

    Width (`--g_conv_dim`), label length (`--c_dim`) and residual blocks
    (`--g_repeat_num`) are read from the weights. The instance norms' running statistics
    (the reference declares `track_running_stats=True`) are dropped: its solver never
    puts G in eval mode, so it always normalises with each image's own statistics.

    Reference: `Generator`, `ResidualBlock` in yunjey `model.py`.
    """
    from tf_translate.models.stargan import StarGANGenerator

    state = strip_data_parallel(state)
    if "main.0.weight" not in state or np.ndim(state["main.0.weight"]) != 4:
        raise ValueError("not a yunjey StarGAN Generator state dict: no 4-D 'main.0.weight' "
                         f"(keys start: {listing(list(state)[:6])})")
    filters, channels = state["main.0.weight"].shape[:2]
    num_domains = channels - 3
    blocks = sorted({int(m.group(1)) for m in (re.match(r"main\.(\d+)\.main\.", key) for key in state) if m})
    num_blocks = len(blocks)
    if blocks != list(range(9, 9 + num_blocks)):
        raise ValueError(f"residual blocks at unexpected positions main.{blocks} (expected main.9, main.10, ...)")
    modules = stargan_module_names(num_blocks)
    state = drop_instance_norm_buffers(state, [m for m, kind in modules if kind == "norm"])
    expected = []
    for module, kind in modules:
        expected += [f"{module}.weight", f"{module}.bias"] if kind == "norm" else [f"{module}.weight"]
    what = f"a StarGAN Generator with {num_blocks} blocks, conv_dim {filters}, c_dim {num_domains}"
    check_keys(state, expected, what)

    generator = StarGANGenerator(filters=filters, num_domains=num_domains, num_residual_blocks=num_blocks,
                                 name=name)
    generator.build([(None, None, None, 3), (None, num_domains)])
    assign(sequential_pairs(weighted_layers(generator.stack), modules, state, biases=False), what)
    return generator


def stargan_run_config(generator):
    config = generator.get_config()
    return {key: config[key] for key in ("filters", "num_domains", "num_residual_blocks")}
