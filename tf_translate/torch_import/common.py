"""What every PyTorch importer shares: reading a checkpoint safely, key checks with
every problem listed, the layout conversions, assignment, and walks of a Keras stack in
the reference's module order. See the package docstring."""

import os
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
    if os.path.getsize(path) == 0:
        raise ValueError(f"checkpoint {path!r} is empty (0 bytes): download or copy it again")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for arbitrary objects, RuntimeError for bad files
        from tf_translate.files import one_line

        raise ValueError(f"cannot read {path!r} as a weights-only PyTorch checkpoint ({one_line(error)})") from None
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
