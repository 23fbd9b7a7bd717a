"""Importer for U-GAT-IT (UGATIT-pytorch `ResnetGenerator`, light and full). See the package
docstring."""

from tf_translate.torch_import.common import assign, check_keys, conv_layers, listing, strip_data_parallel


def ugatit_generator_from_state_dict(state, name="generator_ab", light=None):
    """A UGATITGenerator holding the weights of an UGATIT-pytorch `genA2B` / `genB2A`.

    Width (`--ch`), residual blocks (`--n_res`), light or full and, for the full model,
    the image size (from the first MLP layer's input width) are read from the weights.
    The full model's first MLP layer flattens an NCHW map in torch and an NHWC map here,
    so its rows are permuted from (C, H, W) to (H, W, C) order.

    Parity holds with the reference's current normalisation (`torch.var` over H, W and
    over C, H, W). UGATIT-pytorch before its fix of issue #30 (August 2019) took a
    variance of variances in adaILN/ILN; generators trained with that code carry the
    same weights but were trained under a different normalisation.

    Args:
        state: {key: array} of one generator (the `genA2B` entry of the `.pt` file).
        light: expected variant (None accepts either); a mismatch is an error.
    Reference: `ResnetGenerator`, `ResnetBlock`, `ResnetAdaILNBlock`, `adaILN`, `ILN` in
    UGATIT-pytorch `networks.py`.
    """
    from tf_translate.models.ugatit import UGATITGenerator

    state = strip_data_parallel(state)
    if "DownBlock.1.weight" not in state or "FC.0.weight" not in state:
        raise ValueError("not an UGATIT-pytorch ResnetGenerator state dict: no 'DownBlock.1.weight' "
                         f"or 'FC.0.weight' (keys start: {listing(list(state)[:6])})")
    filters = state["DownBlock.1.weight"].shape[0]
    width = 4 * filters
    blocks = sorted({int(key.split(".")[1]) for key in state
                     if key.startswith("DownBlock.") and ".conv_block." in key})
    num_blocks = len(blocks)
    mlp_inputs = state["FC.0.weight"].shape[1]
    is_light = mlp_inputs == width
    quarter = int(round((mlp_inputs / width) ** 0.5))
    if not is_light and quarter * quarter * width != mlp_inputs:
        raise ValueError(f"FC.0.weight {tuple(state['FC.0.weight'].shape)} fits neither the light "
                         f"model ({width} inputs) nor a full model's flattened square map")
    if light is not None and light != is_light:
        raise ValueError(f"the checkpoint holds a {'light' if is_light else 'full'} U-GAT-IT generator; "
                         f"use --model {'ugatit_light' if is_light else 'ugatit'}")
    image_size = 4 * quarter if not is_light else 256

    # (kind, key) in the order the Keras weights are paired below
    encoder = ["DownBlock.1", "DownBlock.5", "DownBlock.9"]
    for index in range(12, 12 + num_blocks):
        encoder += [f"DownBlock.{index}.conv_block.1", f"DownBlock.{index}.conv_block.5"]
    decoder = [f"UpBlock1_{i}" for i in range(1, num_blocks + 1)]
    expected = [f"{module}.weight" for module in encoder]
    expected += ["gap_fc.weight", "gmp_fc.weight", "conv1x1.weight", "conv1x1.bias",
                 "FC.0.weight", "FC.2.weight", "gamma.weight", "beta.weight"]
    for block in decoder:
        expected += [f"{block}.conv1.weight", f"{block}.norm1.rho", f"{block}.conv2.weight", f"{block}.norm2.rho"]
    for conv_index, norm_index in ((2, 3), (7, 8)):
        expected += [f"UpBlock2.{conv_index}.weight"] + [f"UpBlock2.{norm_index}.{p}" for p in ("rho", "gamma", "beta")]
    expected.append("UpBlock2.11.weight")
    what = (f"a{' light' if is_light else ' full'} U-GAT-IT generator with {num_blocks} residual blocks, "
            f"ch {filters}" + ("" if is_light else f", {image_size} px"))
    check_keys(state, expected, what)

    generator = UGATITGenerator(filters=filters, num_residual_blocks=num_blocks, image_size=image_size,
                                light=is_light, name=name)
    generator.build((None, None if is_light else image_size, None if is_light else image_size, 3))
    first_fc = state["FC.0.weight"]
    if not is_light:  # (out, C*H*W) -> (out, H*W*C): Keras flattens NHWC
        first_fc = first_fc.reshape(width, width, quarter, quarter).transpose(0, 2, 3, 1).reshape(width, -1)
    pairs = [(layer.kernel, "conv", f"{key}.weight", state[f"{key}.weight"])
             for layer, key in zip(conv_layers(generator.encoder), encoder)]
    cam = generator.cam
    pairs += [(cam.gap_fc.kernel, "dense", "gap_fc.weight", state["gap_fc.weight"]),
              (cam.gmp_fc.kernel, "dense", "gmp_fc.weight", state["gmp_fc.weight"]),
              (cam.conv1x1.kernel, "conv", "conv1x1.weight", state["conv1x1.weight"]),
              (cam.conv1x1.bias, "bias", "conv1x1.bias", state["conv1x1.bias"]),
              (generator.mlp[1].kernel, "dense", "FC.0.weight", first_fc),
              (generator.mlp[2].kernel, "dense", "FC.2.weight", state["FC.2.weight"]),
              (generator.gamma_fc.kernel, "dense", "gamma.weight", state["gamma.weight"]),
              (generator.beta_fc.kernel, "dense", "beta.weight", state["beta.weight"])]
    for block, key in zip(generator.decoder_blocks, decoder):
        for conv, norm, index in ((block.conv1, block.norm1, 1), (block.conv2, block.norm2, 2)):
            pairs += [(conv_layers([conv])[0].kernel, "conv", f"{key}.conv{index}.weight",
                       state[f"{key}.conv{index}.weight"]),
                      (norm.rho, "per_channel", f"{key}.norm{index}.rho", state[f"{key}.norm{index}.rho"])]
    up_convs = conv_layers(generator.upsampler)
    lins = [layer for layer in generator.upsampler if hasattr(layer, "gamma")]
    for conv, lin, (conv_index, norm_index) in zip(up_convs, lins, ((2, 3), (7, 8))):
        pairs.append((conv.kernel, "conv", f"UpBlock2.{conv_index}.weight", state[f"UpBlock2.{conv_index}.weight"]))
        pairs += [(getattr(lin, p), "per_channel", f"UpBlock2.{norm_index}.{p}", state[f"UpBlock2.{norm_index}.{p}"])
                  for p in ("rho", "gamma", "beta")]
    pairs.append((up_convs[-1].kernel, "conv", "UpBlock2.11.weight", state["UpBlock2.11.weight"]))
    assign(pairs, what)
    return generator


def ugatit_run_config(generator):
    config = generator.get_config()
    return {key: config[key] for key in ("filters", "num_residual_blocks", "image_size", "light")}
