"""Importer for UNIT (mingyuliutw/UNIT `VAEGen`: gen_a, gen_b). See the package docstring."""

import re

import numpy as np

from tf_translate.torch_import.common import assign, check_keys, listing, strip_data_parallel


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
