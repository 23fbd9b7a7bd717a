"""Import generators from the reference PyTorch checkpoints.

`tf-translate import-torch --model cyclegan --checkpoint latest_net_G_A.pth --output RUN`
turns a junyanz CycleGAN generator state dict into a run directory (run.json + checkpoint,
usable by `translate` and `export`), a generator `.weights.h5`, or a `.keras` file.
`--model ugatit` / `ugatit_light` reads the `genA2B` (and, for a run, `genB2A`) entries
of an UGATIT-pytorch `.pt` checkpoint, `--model photo2cartoon` those of a minivision
photo2cartoon `.pt`, and `--model stargan` a yunjey `*-G.ckpt`.

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
}


def import_generator(model_name, checkpoint, name="generator_ab", direction="a2b"):
    """The Keras generator for `model_name` with the weights of a PyTorch `checkpoint`."""
    if model_name not in IMPORTERS:
        raise ValueError(f"import-torch supports --model {', '.join(sorted(IMPORTERS))}; got {model_name!r}")
    from_state_dict, _, entry_ab, entry_ba = IMPORTERS[model_name]
    entry = entry_ab if direction == "a2b" else entry_ba
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
