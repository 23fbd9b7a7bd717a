"""Importer for photo2cartoon (minivision `ResnetGenerator`). See the package docstring."""

import re
from collections import OrderedDict

from tf_translate.torch_import.common import assign, check_keys, conv_layers, listing, strip_data_parallel


def photo2cartoon_generator_from_state_dict(state, name="generator_ab"):
    """A Photo2CartoonGenerator holding the weights of a minivision photo2cartoon
    `genA2B` / `genB2A` state dict (`photo2cartoon_weights.pt`).

    Width (`--ch`), light or full and the full model's size are read from the weights.
    Every reference `ConvBlock` also builds a 1x1 projection (`ConvBlock4`) that its
    forward pass never uses (all blocks keep their width); those weights are skipped.

    Reference: `ResnetGenerator`, `HourGlass`, `HourGlassBlock`, `ConvBlock`,
    `ResnetSoftAdaLINBlock`, `SoftAdaLIN`, `LIN` in photo2cartoon `models/networks.py`.
    """
    from tf_translate.models.photo2cartoon import HourGlass, Photo2CartoonGenerator

    state = strip_data_parallel(state)
    if "ConvBlock1.1.weight" not in state or "FC.0.weight" not in state:
        raise ValueError("not a photo2cartoon ResnetGenerator state dict: no 'ConvBlock1.1.weight' or "
                         f"'FC.0.weight' (keys start: {listing(list(state)[:6])})")
    unused = [key for key in state if re.search(r"\.ConvBlock4\.2\.weight$", key)]
    state = OrderedDict((key, value) for key, value in state.items() if key not in unused)
    filters = state["ConvBlock1.1.weight"].shape[0]
    width = 4 * filters
    mlp_inputs = state["FC.0.weight"].shape[1]
    light = mlp_inputs == width
    quarter = int(round((mlp_inputs / width) ** 0.5))
    if not light and quarter * quarter * width != mlp_inputs:
        raise ValueError(f"FC.0.weight {tuple(state['FC.0.weight'].shape)} fits neither the light "
                         f"model ({width} inputs) nor a full model's flattened square map")
    image_size = 256 if light else 4 * quarter
    generator = Photo2CartoonGenerator(filters=filters, image_size=image_size, light=light, name=name)
    generator.build((None, None if light else image_size, None if light else image_size, 3))

    spec = []  # (Keras variable, kind, reference key)

    def conv_weight(layer, key, bias=False):
        conv = conv_layers([layer])[0]
        spec.append((conv.kernel, "conv", f"{key}.weight"))
        if bias:
            spec.append((conv.bias, "bias", f"{key}.bias"))

    def dense(layer, key):
        spec.extend([(layer.kernel, "dense", f"{key}.weight"), (layer.bias, "bias", f"{key}.bias")])

    def conv_block(block, key):  # HourGlassConvBlock <- ConvBlock (steps 1-3: IN, ReLU, pad, conv)
        for index, step in enumerate(block.steps, start=1):
            conv_weight(step[2], f"{key}.ConvBlock{index}.3")

    def hourglass(layer, key):
        hourglass_block, block, projection = layer.body[:3]
        for level, (skip, down) in enumerate(hourglass_block.levels, start=1):
            conv_block(skip, f"{key}.HG.0.ConvBlock{level}_1")
            conv_block(down, f"{key}.HG.0.ConvBlock{level}_2")
        conv_block(hourglass_block.center, f"{key}.HG.0.ConvBlock5")
        for index, up in enumerate(hourglass_block.up_blocks, start=6):
            conv_block(up, f"{key}.HG.0.ConvBlock{index}")
        conv_block(block, f"{key}.HG.1")
        conv_weight(projection, f"{key}.HG.2")
        conv_weight(layer.side_output, f"{key}.Conv1", bias=True)
        if layer.use_residual:
            conv_weight(layer.features_back, f"{key}.Conv2", bias=True)
            conv_weight(layer.side_back, f"{key}.Conv3", bias=True)

    def lin(layer, key):
        spec.extend((getattr(layer, p), "per_channel", f"{key}.{p}") for p in ("rho", "gamma", "beta"))

    hourglasses = iter(["HourGlass1", "HourGlass2"])
    convs = iter(["ConvBlock1.1", "DownBlock1.1", "DownBlock2.1"])
    for layer in generator.stem:
        if isinstance(layer, HourGlass):
            hourglass(layer, next(hourglasses))
        elif conv_layers([layer]):
            conv_weight(layer, next(convs))
    for index, block in enumerate(generator.encoder_blocks, start=1):
        conv_weight(block.body[0], f"EncodeBlock{index}.conv_block.1")
        conv_weight(block.body[3], f"EncodeBlock{index}.conv_block.5")
    cam = generator.cam
    dense(cam.gap_fc, "gap_fc")
    dense(cam.gmp_fc, "gmp_fc")
    conv_weight(cam.conv1x1, "conv1x1", bias=True)
    first_fc = len(spec)
    dense(generator.mlp[1], "FC.0")
    dense(generator.mlp[2], "FC.2")
    for index, block in enumerate(generator.decoder_blocks, start=1):
        for number, conv, norm in ((1, block.conv1, block.norm1), (2, block.conv2, block.norm2)):
            key = f"DecodeBlock{index}.norm{number}"
            conv_weight(conv, f"DecodeBlock{index}.conv{number}")
            dense(norm.content_gamma[0], f"{key}.c_gamma.0")
            dense(norm.content_gamma[1], f"{key}.c_gamma.2")
            dense(norm.content_beta[0], f"{key}.c_beta.0")
            dense(norm.content_beta[1], f"{key}.c_beta.2")
            dense(norm.style_gamma, f"{key}.s_gamma")
            dense(norm.style_beta, f"{key}.s_beta")
            spec.extend([(norm.w_gamma, "per_channel", f"{key}.w_gamma"),
                         (norm.w_beta, "per_channel", f"{key}.w_beta"),
                         (norm.norm.rho, "per_channel", f"{key}.norm.rho")])
    upsampler = [layer for layer in generator.upsampler if layer.weights]
    up_keys = iter(["UpBlock1", "UpBlock2"])
    hourglasses = iter(["HourGlass3", "HourGlass4"])
    for layer in upsampler:
        if isinstance(layer, HourGlass):
            hourglass(layer, next(hourglasses))
        elif hasattr(layer, "rho"):
            lin(layer, f"{up_key}.3")
        elif layer is upsampler[-1]:
            conv_weight(layer, "ConvBlock2.1")
        else:
            up_key = next(up_keys)
            conv_weight(layer, f"{up_key}.2")

    what = (f"a{' light' if light else ' full'} photo2cartoon generator with ch {filters}"
            + ("" if light else f", {image_size} px"))
    check_keys(state, [key for _, _, key in spec], what)
    arrays = {key: state[key] for _, _, key in spec}
    if not light:  # (out, C*H*W) -> (out, H*W*C): Keras flattens NHWC
        key = spec[first_fc][2]
        arrays[key] = arrays[key].reshape(width, width, quarter, quarter).transpose(0, 2, 3, 1).reshape(width, -1)
    assign([(variable, kind, key, arrays[key]) for variable, kind, key in spec], what)
    return generator


def photo2cartoon_run_config(generator):
    config = generator.get_config()
    return {key: config[key] for key in ("filters", "image_size", "light")}
