"""Import generators from the reference PyTorch checkpoints.

`tf-translate import-torch --model cyclegan --checkpoint latest_net_G_A.pth --output RUN`
turns a junyanz CycleGAN generator state dict into a run directory (run.json + checkpoint,
usable by `translate` and `export`), a generator `.weights.h5`, or a `.keras` file.
`--model ugatit` / `ugatit_light` reads the `genA2B` (and, for a run, `genB2A`) entries
of an UGATIT-pytorch `.pt` checkpoint, `--model photo2cartoon` those of a minivision
photo2cartoon `.pt`, and `--model stargan` a yunjey `*-G.ckpt`.
`--model nicegan` / `nicegan_light` reads a NICE-GAN-pytorch `<dataset>_params_*.pt`:
a direction is a discriminator's encoder stem and a generator (A→B: `disA` + `gen2B`).
`--model unit` reads a mingyuliutw/UNIT `gen_XXXXXXXX.pt` ({'a': gen_a, 'b': gen_b}): a
direction is one VAEGen's encoder and the other's decoder (A→B: `a`'s enc + `b`'s dec).

Checkpoints are read with `torch.load(..., weights_only=True)`, which refuses to unpickle
anything but tensors and plain containers: a checkpoint cannot run code here. PyTorch is
an optional extra (`pip install 'tf_translate[torch]'`).

Weights are matched by name against the key layout the reference code produces for the
architecture read from the checkpoint itself; a key that is missing, unexpected or of
the wrong shape is an error that lists every such key.

Layout conversions: a conv weight (out, in, kh, kw) becomes a Keras kernel
(kh, kw, in, out); a ConvTranspose weight (in, out, kh, kw) becomes a Conv2DTranspose
kernel (kh, kw, out, in). Both are the same axis permutation (2, 3, 1, 0). Neither
kernel is flipped: PyTorch's ConvTranspose2d and TF's conv2d_transpose are both the
adjoint of the corresponding convolution.
"""

import os
import re
from collections import OrderedDict

import keras
import numpy as np

# Buffers PyTorch < 0.4 (and junyanz versions with track_running_stats=True) saved for
# instance norm. The reference's loader drops them (`__patch_instance_norm_state_dict`
# in `models/base_model.py`) and its default test mode normalises with each image's own
# statistics, which is what our InstanceNormalization does.
INSTANCE_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
MAX_LISTED = 12


def listing(keys):
    """A short, readable list of keys for an error message."""
    keys = list(keys)
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")


class MissingEntryError(ValueError):
    """The checkpoint holds several networks, but not the one asked for."""


def load_state_dict(path, entry=None):
    """The tensors of a PyTorch checkpoint as an ordered {key: float32 ndarray}.

    Args:
        path: a `.pth` / `.pt` / `.ckpt` file written by `torch.save`.
        entry: for checkpoints that hold several networks in one dict (UGATIT-pytorch
            saves {"genA2B": ..., "genB2A": ..., ...}), the name of the one to read.
    """
    try:
        import torch
    except ImportError:
        raise ValueError("import-torch needs PyTorch: pip install 'tf_translate[torch]'") from None
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for arbitrary objects, RuntimeError for bad files
        raise ValueError(f"cannot read {path!r} as a weights-only PyTorch checkpoint "
                         f"({str(error).strip().splitlines()[0]})") from None
    if entry is not None:
        if not isinstance(loaded, dict) or entry not in loaded:
            found = listing(loaded) if isinstance(loaded, dict) else type(loaded).__name__
            raise MissingEntryError(f"{path!r} has no entry {entry!r} (found: {found})")
        loaded = loaded[entry]
    if not isinstance(loaded, dict):
        raise ValueError(f"{path!r} holds a {type(loaded).__name__}, not a state dict")
    state = OrderedDict()
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path!r}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                             "is this a state dict of a single network?")
        state[key] = value.detach().to(torch.float32).numpy() if value.is_floating_point() else value.numpy()
    return state


def strip_data_parallel(state):
    """Removes the `module.` prefix `nn.DataParallel` adds when a wrapped net is saved."""
    if state and all(key.startswith("module.") for key in state):
        return OrderedDict((key[len("module."):], value) for key, value in state.items())
    return state


def drop_instance_norm_buffers(state, norm_prefixes):
    """`state` without the running-statistics buffers of the instance norms listed."""
    norm_prefixes = set(norm_prefixes)
    return OrderedDict((key, value) for key, value in state.items()
                       if not (key.rsplit(".", 1)[-1] in INSTANCE_NORM_BUFFERS
                               and key.rsplit(".", 1)[0] in norm_prefixes))


def check_keys(state, expected, what):
    """Raises one ValueError naming every missing and every unexpected key."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in set(expected)]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {listing(unexpected)}")
        raise ValueError(f"the checkpoint does not match {what}; " + "; ".join(parts))


def torch_to_keras(kind, array):
    """A PyTorch parameter in the layout of the Keras weight it becomes.

    kind: "conv", "conv_transpose" or "dense" for the weight of such a layer;
    "per_channel" for a (1, C, 1, 1) or (1, C) parameter (rho, gamma, beta, w_gamma, ...); anything
    else (biases, norm parameters) is copied as it is. An array of the wrong rank is
    returned unchanged, for `assign` to report.
    """
    if kind in ("conv", "conv_transpose") and np.ndim(array) == 4:
        # conv (out, in, kh, kw) -> (kh, kw, in, out); transpose (in, out, kh, kw) -> (kh, kw, out, in)
        return np.transpose(array, (2, 3, 1, 0))
    if kind == "dense" and np.ndim(array) == 2:
        return np.transpose(array)  # Linear (out, in) -> Dense (in, out)
    if kind == "per_channel" and np.ndim(array) in (2, 4) and array.shape[0] == 1:
        return array.reshape(-1)  # a (1, C, 1, 1) or (1, C) Parameter -> (C,)
    return array


def assign(pairs, what):
    """Sets each Keras variable from its PyTorch array: [(variable, kind, key, array)].

    All shapes are checked first; every mismatch is listed in one ValueError.
    """
    converted, wrong = [], []
    for variable, kind, key, array in pairs:
        value = torch_to_keras(kind, array)
        if tuple(value.shape) != tuple(variable.shape):
            wrong.append(f"{key} {tuple(array.shape)} (needs {tuple(variable.shape)} in Keras layout)")
        converted.append((variable, value))
    if wrong:
        raise ValueError(f"the checkpoint does not match {what}; wrong shapes: {listing(wrong)}")
    for variable, value in converted:
        variable.assign(value.astype(variable.dtype))


# ---------------------------------------------------------------------------------------
# CycleGAN (junyanz `ResnetGenerator`)


def weighted_layers(stack):
    """The weighted layers of a list of layers in forward order: [(kind, layer)].

    kind is "conv", "conv_transpose" or "norm"; Sequentials and blocks (layers with a
    `body` list) are entered. For the generators here each is one module of the
    reference's `nn.Sequential`, in the same order.
    """
    from tf_translate.layers import InstanceNormalization

    found = []
    for layer in stack:
        if isinstance(layer, keras.Sequential):
            found += weighted_layers(layer.layers)
        elif hasattr(layer, "body"):
            found += weighted_layers(layer.body)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            found.append(("conv_transpose", layer))
        elif isinstance(layer, keras.layers.Conv2D):
            found.append(("conv", layer))
        elif isinstance(layer, InstanceNormalization):
            found.append(("norm", layer))
    return found


def sequential_pairs(layers, modules, state, biases):
    """(variable, kind, key, array) for Keras `layers` and the reference's `modules`, both
    [(kind, ...)] in forward order. `biases`: whether the convs carry one."""
    assert [kind for kind, _ in layers] == [kind for _, kind in modules], "layer order drifted"
    pairs = []
    for (kind, layer), (module, _) in zip(layers, modules):
        if kind == "norm":
            if layer.affine:
                pairs += [(layer.gamma, kind, f"{module}.weight", state[f"{module}.weight"]),
                          (layer.beta, kind, f"{module}.bias", state[f"{module}.bias"])]
        else:
            pairs.append((layer.kernel, kind, f"{module}.weight", state[f"{module}.weight"]))
            if biases:
                pairs.append((layer.bias, "bias", f"{module}.bias", state[f"{module}.bias"]))
    return pairs


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


# ---------------------------------------------------------------------------------------
# StarGAN (yunjey `Generator`)


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


# ---------------------------------------------------------------------------------------
# U-GAT-IT (UGATIT-pytorch `ResnetGenerator`, light and full)


def conv_layers(stack):
    """The Conv2D layers of a list of layers in forward order, inside Sequentials and blocks."""
    found = []
    for layer in stack:
        if isinstance(layer, keras.Sequential):
            found += conv_layers(layer.layers)
        elif hasattr(layer, "body"):
            found += conv_layers(layer.body)
        elif isinstance(layer, keras.layers.Conv2D):
            found.append(layer)
    return found


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


# ---------------------------------------------------------------------------------------
# photo2cartoon (minivision `ResnetGenerator`)


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


# ---------------------------------------------------------------------------------------
# pix2pix (junyanz `UnetGenerator`)


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


# ---------------------------------------------------------------------------------------
# UNIT (mingyuliutw/UNIT `VAEGen`: gen_a, gen_b)


def unit_conv_block_keys(block, key):
    """[(variable, kind, reference key)] of a `UNITConvBlock` (reference `Conv2dBlock`)."""
    from tf_translate.layers.normalization import UNITLayerNormalization

    spec = [(block.conv.kernel, "conv", f"{key}.conv.weight"), (block.conv.bias, "bias", f"{key}.conv.bias")]
    if isinstance(block.norm, UNITLayerNormalization):
        spec += [(block.norm.gamma, "norm", f"{key}.norm.gamma"), (block.norm.beta, "norm", f"{key}.norm.beta")]
    return spec


def unit_generator_keys(generator):
    """[(variable, kind, reference key)] of a `UNITGenerator` in the key names of the
    reference's `VAEGen` state dict.

    `enc.model`: 0 the 7x7 block, 1..d the downsampling blocks, d + 1 the `ResBlocks`
    (`.model.<j>.model.<0|1>` inside); `dec.model`: 0 the `ResBlocks`, then
    (Upsample, 5x5 block with `norm.gamma`, `norm.beta`) per upsampling, the 7x7 block
    last. Instance norms are non-affine: no weights.
    """
    spec = []
    encoder, decoder = generator.encoder, generator.decoder
    for index, block in enumerate(encoder.stem):
        spec += unit_conv_block_keys(block, f"enc.model.{index}")
    for j, block in enumerate(encoder.blocks):
        for k, conv_block in enumerate(block.body):
            spec += unit_conv_block_keys(conv_block, f"enc.model.{len(encoder.stem)}.model.{j}.model.{k}")
    for j, block in enumerate(decoder.blocks):
        for k, conv_block in enumerate(block.body):
            spec += unit_conv_block_keys(conv_block, f"dec.model.0.model.{j}.model.{k}")
    for index, layer in enumerate(decoder.upsampler, start=1):  # Upsample modules hold nothing
        if hasattr(layer, "conv"):
            spec += unit_conv_block_keys(layer, f"dec.model.{index}")
    return spec


def read_unit_architecture(state):
    """(filters, num_downsampling, num_residual_blocks, output channels) of a `VAEGen`
    state dict, from its keys and shapes."""
    if "enc.model.0.conv.weight" not in state or np.ndim(state["enc.model.0.conv.weight"]) != 4:
        raise ValueError("not a UNIT VAEGen state dict (the 'a' or 'b' entry of gen_XXXXXXXX.pt): no 4-D "
                         f"'enc.model.0.conv.weight' (keys start: {listing(list(state)[:6])})")
    filters, channels = state["enc.model.0.conv.weight"].shape[:2]
    if channels != 3:
        raise ValueError(f"the UNIT generator reads {channels}-channel images; import-torch reads RGB (3) only")
    downs = 0
    while f"enc.model.{downs + 1}.conv.weight" in state:
        downs += 1
    blocks = {int(m.group(1)) for m in (re.match(rf"enc\.model\.{downs + 1}\.model\.(\d+)\.", key)
                                         for key in state) if m}
    last = f"dec.model.{2 * downs + 1}.conv.weight"
    output_channels = state[last].shape[0] if last in state and np.ndim(state[last]) == 4 else 3
    return int(filters), downs, len(blocks), int(output_channels)


def unit_generator_from_state_dict(state, name="generator_a"):
    """A UNITGenerator holding the weights of one UNIT `VAEGen` state dict (the 'a' or
    'b' entry of the reference's `gen_XXXXXXXX.pt`); width, downsampling and residual
    blocks come from the checkpoint.

    Reference: `VAEGen`, `ContentEncoder`, `Decoder`, `ResBlocks`, `ResBlock`,
    `Conv2dBlock`, `LayerNorm` in mingyuliutw/UNIT `networks.py`; `UNIT_Trainer.save`.
    """
    from tf_translate.models.unit import UNITGenerator

    state = strip_data_parallel(state)
    filters, downs, blocks, output_channels = read_unit_architecture(state)
    generator = UNITGenerator(filters, downs, blocks, output_channels, name=name)
    generator.build((None, None, None, 3))
    spec = unit_generator_keys(generator)
    what = (f"a UNIT VAEGen with dim {filters}, {downs} downsamplings, {blocks} residual blocks, "
            f"{output_channels} output channels")
    check_keys(state, [key for _, _, key in spec], what)
    assign([(variable, kind, key, state[key]) for variable, kind, key in spec], what)
    return generator


def unit_translator_from_state_dict(source_state, target_state, name="a2b"):
    """One UNIT direction (`UNITTranslator`): the source `VAEGen`'s encoder and the
    target's decoder, each read whole from its state dict (so every key is checked)."""
    from tf_translate.models.unit import UNITTranslator

    source = unit_generator_from_state_dict(source_state, name="source")
    target = unit_generator_from_state_dict(target_state, name="target")
    if source.get_config() | {"name": None} != target.get_config() | {"name": None}:
        raise ValueError(f"the checkpoint's two UNIT generators differ in architecture "
                         f"({source.get_config()} vs {target.get_config()})")
    translator = UNITTranslator(source.encoder, target.decoder, name=name)
    translator.build((None, None, None, 3))
    return translator


def unit_run_config(translator):
    config = translator.encoder.get_config()
    return {key: config[key] for key in ("filters", "num_downsampling", "num_residual_blocks")}


# ---------------------------------------------------------------------------------------
# NICE-GAN (alpc91/NICE-GAN-pytorch: disA's encoder + gen2B, disB's encoder + gen2A)

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


# name -> (generator from a state dict, training-model config for it, the checkpoint's
# entries for the A->B and B->A generators: None when the file holds one state dict)
IMPORTERS = {
    "cyclegan": (cyclegan_generator_from_state_dict, cyclegan_run_config, None, None),
    "ugatit": (lambda state, name: ugatit_generator_from_state_dict(state, name, light=False),
               ugatit_run_config, "genA2B", "genB2A"),
    "ugatit_light": (lambda state, name: ugatit_generator_from_state_dict(state, name, light=True),
                     ugatit_run_config, "genA2B", "genB2A"),
    "stargan": (stargan_generator_from_state_dict, stargan_run_config, None, None),
    "photo2cartoon": (photo2cartoon_generator_from_state_dict, photo2cartoon_run_config, "genA2B", "genB2A"),
    "pix2pix": (pix2pix_generator_from_state_dict, pix2pix_run_config, None, None),
    # UNIT: a direction is one VAEGen's encoder and the other's decoder: (source, target) entries
    "unit": (unit_translator_from_state_dict, unit_run_config, ("a", "b"), ("b", "a")),
    # NICE-GAN: a direction is the source discriminator's encoder and the target decoder
    "nicegan": (lambda enc, dec, name: nicegan_translator_from_state_dict(enc, dec, name, light=False),
                nicegan_run_config, ("disA", "gen2B"), ("disB", "gen2A")),
    "nicegan_light": (lambda enc, dec, name: nicegan_translator_from_state_dict(enc, dec, name, light=True),
                      nicegan_run_config, ("disA", "gen2B"), ("disB", "gen2A")),
}


def import_generator(model_name, checkpoint, name="generator_ab", direction="a2b"):
    """The Keras generator for `model_name` with the weights of a PyTorch `checkpoint`."""
    if model_name not in IMPORTERS:
        raise ValueError(f"import-torch supports --model {', '.join(sorted(IMPORTERS))}; got {model_name!r}")
    from_state_dict, _, entry_ab, entry_ba = IMPORTERS[model_name]
    entry = entry_ab if direction == "a2b" else entry_ba
    if isinstance(entry, tuple):  # several networks' state dicts make one direction (UNIT, NICE-GAN)
        return from_state_dict(*[load_state_dict(checkpoint, part) for part in entry], name=name)
    return from_state_dict(load_state_dict(checkpoint, entry), name=name)


def import_torch(model_name, checkpoint, output, checkpoint_b=None):
    """Converts a reference checkpoint into a run directory or a Keras file.

    Args:
        model_name: "cyclegan", "ugatit", "ugatit_light", "stargan" or "photo2cartoon".
        checkpoint: the A→B generator: junyanz `latest_net_G_A.pth`, or an UGATIT-pytorch
            `.pt` (its `genA2B` entry; its `genB2A` entry becomes the B→A generator of
            a run directory), or a yunjey StarGAN `*-G.ckpt`.
        output: `*.weights.h5` (generator weights), `*.keras` (generator with its
            config) or a new run directory (run.json + checkpoint.weights.h5).
        checkpoint_b: for CycleGAN run directories, the B→A generator
            (`latest_net_G_B.pth`). Without it the run's B→A generator keeps its initial
            weights and run.json records that it was not imported.
    Returns:
        the path written.
    """
    generator = import_generator(model_name, checkpoint)
    if output.endswith(".weights.h5") or output.endswith(".keras"):
        if checkpoint_b:
            raise ValueError("--checkpoint-b needs a run directory as --output (a file holds one generator)")
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        if output.endswith(".keras"):
            generator.save(output)
        else:
            generator.save_weights(output)
        return output
    from tf_translate.models import MODELS

    if model_name not in MODELS:
        raise ValueError(f"there is no {model_name!r} training model to hold a run yet: write a "
                         "generator file (--output NAME.keras or NAME.weights.h5)")
    if IMPORTERS[model_name][3] is not None:  # both generators are in the one file
        if checkpoint_b:
            raise ValueError(f"--checkpoint-b is for CycleGAN: a {model_name} checkpoint holds both generators")
        try:
            generator_ba = import_generator(model_name, checkpoint, "generator_ba", "b2a")
        except MissingEntryError:  # e.g. photo2cartoon's released weights hold genA2B only
            generator_ba = None
        return write_imported_run(model_name, output, generator, checkpoint, generator_ba,
                                  checkpoint if generator_ba is not None else None)
    return write_imported_run(model_name, output, generator, checkpoint,
                              import_generator(model_name, checkpoint_b, "generator_ba") if checkpoint_b else None,
                              checkpoint_b)


def write_imported_run(model_name, run_dir, generator_ab, checkpoint, generator_ba=None, checkpoint_b=None):
    """A run directory whose a2b (and b2a, when given) generators hold imported weights."""
    from tf_translate.models import build_model
    from tf_translate.runs import is_run, save_checkpoint, write_run

    if is_run(run_dir):
        raise ValueError(f"{run_dir!r} already holds a run: choose a new --output")
    run_config = IMPORTERS[model_name][1]
    model = build_model(model_name, **run_config(generator_ab))
    model.compile()
    model.build_optimizers()  # load_run loads optimizer state too; fresh slots keep the file complete
    # The model's generators by direction: ("a2b", "b2a"), or ("label",) for StarGAN.
    directions = list(model.generators())
    imported = {directions[0]: os.path.abspath(checkpoint)}
    model.generators()[directions[0]].set_weights(generator_ab.get_weights())
    if len(directions) > 1:
        imported[directions[1]] = os.path.abspath(checkpoint_b) if checkpoint_b else None
        if generator_ba is not None:
            model.generators()[directions[1]].set_weights(generator_ba.get_weights())
    elif checkpoint_b:
        raise ValueError(f"a {model_name} run has one generator: --checkpoint-b does not apply")
    os.makedirs(run_dir, exist_ok=True)
    save_checkpoint(model, run_dir)
    write_run(run_dir, model_name, model.get_config(), {}, imported=imported)
    return run_dir
