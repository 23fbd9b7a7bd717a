"""Official CUT / FastCUT PyTorch weights into our networks (`latest_net_G.pth`).

The reference's generator, discriminator and netF name their modules by index into one
`nn.Sequential` (`model.<i>`; residual blocks `model.<i>.conv_block.<j>`; netF `mlp_<l>.0`
and `mlp_<l>.2`). Our stacks keep those indices (`CUTGenerator`, `PatchGANDiscriminator`),
so each weight's name follows from its layer's position. It reads a state dict of arrays
or tensors (`import-torch --model cut` loads the file with torch).

Reference: taesungp/contrastive-unpaired-translation `models/networks.py`
(`ResnetGenerator`, `NLayerDiscriminator`, `PatchSampleF`); checkpoints are written by
`BaseModel.save_networks` (`<epoch>_net_G.pth`, a plain `state_dict`).
"""

import keras
import numpy as np


def weighted_modules(stack, prefix="model"):
    """[(reference module name, Keras layer with a kernel)] for a stack whose index i is
    the reference's module i: a padded conv or a transposed conv is a `Sequential` holding
    one weighted layer, a residual block's `body` is the reference's `conv_block`."""
    found = []
    for index, layer in enumerate(stack):
        name = f"{prefix}.{index}"
        if isinstance(layer, keras.Sequential):
            found += [(name, inner) for inner in layer.layers if hasattr(inner, "kernel")]
        elif hasattr(layer, "body"):
            found += [(f"{name}.conv_block.{j}", inner) for j, inner in enumerate(layer.body)
                      if hasattr(inner, "kernel")]
        elif hasattr(layer, "kernel"):
            found.append((name, layer))
    return found


def mlp_modules(patch_sampler):
    """[(reference module name, Dense)] of netF: `mlp_<l>.0` and `mlp_<l>.2` per layer."""
    found = []
    for index, mlp in enumerate(patch_sampler.mlps):
        first, second = mlp.layers
        found += [(f"mlp_{index}.0", first), (f"mlp_{index}.2", second)]
    return found


def to_keras_layout(array, layer):
    """A PyTorch weight in the layout of `layer.kernel`: conv (out, in, kh, kw) and
    transposed conv (in, out, kh, kw) both -> (kh, kw, ·, ·) by the same transpose;
    linear (out, in) -> (in, out)."""
    array = np.asarray(array)
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    if array.ndim == 2:
        return array.T
    return array


def as_numpy_state(state_dict):
    """{name: float array} from a state dict of torch tensors or arrays, without a
    `module.` (DataParallel) prefix."""
    state = {}
    for key, value in state_dict.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        state[key[len("module."):] if key.startswith("module.") else key] = np.asarray(value)
    return state


def module_pairs(modules, state):
    """[(variable, array in Keras layout, key)] for `modules` = [(name, layer)]; a missing
    or misshapen weight is named in one ValueError with all the others."""
    pairs, problems = [], []
    for name, layer in modules:
        for attribute, suffix in (("kernel", "weight"), ("bias", "bias")):
            variable = getattr(layer, attribute, None)
            if variable is None:
                continue
            key = f"{name}.{suffix}"
            if key not in state:
                problems.append(f"{key} missing")
                continue
            value = to_keras_layout(state[key], layer) if attribute == "kernel" else state[key]
            if tuple(value.shape) != tuple(variable.shape):
                problems.append(f"{key} {tuple(np.shape(state[key]))} (needs {tuple(variable.shape)} in Keras layout)")
                continue
            pairs.append((variable, value, key))
    if problems:
        raise ValueError(f"the weights do not match the network: {'; '.join(problems[:8])}"
                         + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""))
    return pairs


def assign_pairs(pairs):
    for variable, value, _ in pairs:
        variable.assign(value.astype(variable.dtype))


def generator_layout(state):
    """(filters, blocks, output channels, no_antialias, no_antialias_up) read off the
    module names and shapes of a reference `ResnetGenerator` state dict."""
    if "model.1.weight" not in state:
        raise ValueError("not a CUT ResnetGenerator state dict: model.1.weight (the first 7x7 conv) is missing")
    filters = int(state["model.1.weight"].shape[0])
    blocks = sorted({int(k.split(".")[1]) for k in state if ".conv_block." in k})
    if not blocks:
        raise ValueError("not a CUT ResnetGenerator state dict: it has no residual blocks (model.<i>.conv_block)")
    # Anti-aliased downs put their second conv at 8 (pad, conv, IN, ReLU, conv, IN, ReLU, blur, conv);
    # strided ones at 7.
    no_antialias = "model.7.weight" in state
    up = blocks[-1] + 1
    no_antialias_up = np.ndim(state.get(f"model.{up}.weight")) == 4  # a transposed conv right after the blocks
    last = max(int(k.split(".")[1]) for k in state if k.startswith("model.") and k.endswith(".weight"))
    return filters, len(blocks), int(state[f"model.{last}.weight"].shape[0]), no_antialias, no_antialias_up


def cut_generator_from_state_dict(state_dict, name="generator_ab"):
    """A `CUTGenerator` holding the weights of the official `latest_net_G.pth`.

    Args:
        state_dict: the loaded file (`torch.load(path, map_location="cpu")`), tensors or
            arrays; any generator width, block count and `--no_antialias` /
            `--no_antialias_up` setting is read from its names and shapes.
        name: the Keras model's name.
    Returns:
        the built generator, mapping [-1, 1] NHWC images A -> B.
    """
    from tf_translate.models.cut import CUTGenerator

    state = as_numpy_state(state_dict)
    filters, blocks, channels, no_antialias, no_antialias_up = generator_layout(state)
    generator = CUTGenerator(filters, blocks, channels, no_antialias=no_antialias, no_antialias_up=no_antialias_up,
                             name=name)
    generator.build((None, None, None, int(state["model.1.weight"].shape[1])))
    pairs = module_pairs(weighted_modules(generator.stack), state)
    weights = {key for key in state if key.endswith((".weight", ".bias"))}
    unused = sorted(weights - {key for _, _, key in pairs})
    if unused:
        raise ValueError(f"the state dict has weights a CUT generator with {blocks} blocks does not use: "
                         f"{', '.join(unused[:8])}")
    assign_pairs(pairs)
    return generator


def cut_run_config(generator):
    """The CUT training-model arguments that rebuild `generator`'s architecture."""
    return {"filters": generator.filters, "num_residual_blocks": generator.num_residual_blocks,
            "no_antialias": generator.no_antialias, "no_antialias_up": generator.no_antialias_up}
