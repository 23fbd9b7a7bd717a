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

The package: `common` (checkpoint reading, key checks, layout conversion, assignment)
and one module per paper (`cyclegan`, `stargan`, `ugatit`, `photo2cartoon`, `pix2pix`,
`unit`, `nicegan`); `IMPORTERS` names each model's `Importer`. Every function is
importable from here.
"""

import dataclasses
import functools
import os
from collections.abc import Callable

import keras
import numpy as np

from tf_translate.torch_import.common import (INSTANCE_NORM_BUFFERS, MAX_LISTED, MissingEntryError, assign, check_keys,
                                              conv_layers, drop_instance_norm_buffers, listing, load_state_dict,
                                              sequential_pairs, strip_data_parallel, torch_to_keras, weighted_layers)
from tf_translate.torch_import.cut import cut_generator_from_state_dict, cut_run_config
from tf_translate.torch_import.cyclegan import (cyclegan_generator_from_state_dict, cyclegan_module_names,
                                                cyclegan_run_config, read_cyclegan_architecture)
from tf_translate.torch_import.nicegan import (NICEGAN_HEADS, assign_spec, nicegan_decoder_spec, nicegan_encoder_spec,
                                               nicegan_run_config, nicegan_translator_from_state_dict, shaped_as,
                                               torch_v_order)
from tf_translate.torch_import.photo2cartoon import photo2cartoon_generator_from_state_dict, photo2cartoon_run_config
from tf_translate.torch_import.pix2pix import pix2pix_generator_from_state_dict, pix2pix_run_config, unet_module_names
from tf_translate.torch_import.stargan import (stargan_generator_from_state_dict, stargan_module_names,
                                               stargan_run_config)
from tf_translate.torch_import.ugatit import ugatit_generator_from_state_dict, ugatit_run_config
from tf_translate.torch_import.unit import (read_unit_architecture, unit_conv_block_keys,
                                            unit_generator_from_state_dict, unit_generator_keys, unit_run_config,
                                            unit_translator_from_state_dict)


@dataclasses.dataclass(frozen=True)
class Importer:
    """How `import-torch` reads one model's reference checkpoint.

    Attributes:
        from_state_dict: (state dict(s), name=...) -> the Keras generator or translator;
            several state dicts when `entry_ab` is a tuple.
        run_config: generator -> the training-model arguments that rebuild its architecture.
        entry_ab, entry_ba: the checkpoint's entries for the A->B and B->A generators: None
            when the file holds one state dict, a tuple when several networks' state
            dicts make one direction (UNIT: (source VAEGen, target VAEGen); NICE-GAN:
            (source discriminator's encoder, target generator)).
    """
    from_state_dict: Callable
    run_config: Callable
    entry_ab: str | tuple | None = None
    entry_ba: str | tuple | None = None


IMPORTERS = {
    "cyclegan": Importer(cyclegan_generator_from_state_dict, cyclegan_run_config),
    "cut": Importer(cut_generator_from_state_dict, cut_run_config),
    "fastcut": Importer(cut_generator_from_state_dict, cut_run_config),
    "ugatit": Importer(functools.partial(ugatit_generator_from_state_dict, light=False), ugatit_run_config,
                       entry_ab="genA2B", entry_ba="genB2A"),
    "ugatit_light": Importer(functools.partial(ugatit_generator_from_state_dict, light=True), ugatit_run_config,
                             entry_ab="genA2B", entry_ba="genB2A"),
    "stargan": Importer(stargan_generator_from_state_dict, stargan_run_config),
    "photo2cartoon": Importer(photo2cartoon_generator_from_state_dict, photo2cartoon_run_config,
                              entry_ab="genA2B", entry_ba="genB2A"),
    "pix2pix": Importer(pix2pix_generator_from_state_dict, pix2pix_run_config),
    "unit": Importer(unit_translator_from_state_dict, unit_run_config, entry_ab=("a", "b"), entry_ba=("b", "a")),
    "nicegan": Importer(functools.partial(nicegan_translator_from_state_dict, light=False), nicegan_run_config,
                        entry_ab=("disA", "gen2B"), entry_ba=("disB", "gen2A")),
    "nicegan_light": Importer(functools.partial(nicegan_translator_from_state_dict, light=True), nicegan_run_config,
                              entry_ab=("disA", "gen2B"), entry_ba=("disB", "gen2A")),
}


def import_generator(model_name, checkpoint, name="generator_ab", direction="a2b"):
    """The Keras generator for `model_name` with the weights of a PyTorch `checkpoint`."""
    if model_name not in IMPORTERS:
        raise ValueError(f"import-torch supports --model {', '.join(sorted(IMPORTERS))}; got {model_name!r}")
    importer = IMPORTERS[model_name]
    entry = importer.entry_ab if direction == "a2b" else importer.entry_ba
    if isinstance(entry, tuple):  # several networks' state dicts make one direction (UNIT, NICE-GAN)
        return importer.from_state_dict(*[load_state_dict(checkpoint, part) for part in entry], name=name)
    return importer.from_state_dict(load_state_dict(checkpoint, entry), name=name)


def import_torch(model_name, checkpoint, output, checkpoint_b=None, overwrite=False):
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
        overwrite: replace an existing generator file (never a run directory's own files).
    Returns:
        the path written.
    """
    from tf_translate.files import check_output

    to_file = output.endswith(".weights.h5") or output.endswith(".keras")
    check_output(output, "file", overwrite) if to_file else (
        os.path.isfile(output) and check_output(output, "folder"))
    generator = import_generator(model_name, checkpoint)
    check_finite_weights(generator, checkpoint)
    if to_file:
        if checkpoint_b:
            raise ValueError("--checkpoint-b needs a run directory as --output (a file holds one generator)")
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        suffix = ".keras" if output.endswith(".keras") else ".weights.h5"
        temporary = output[:-len(suffix)] + f".tmp-{os.getpid()}" + suffix  # Keras reads the kind from the suffix
        try:
            generator.save(temporary) if suffix == ".keras" else generator.save_weights(temporary)
            os.replace(temporary, output)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return output
    from tf_translate.models import MODELS

    if model_name not in MODELS:
        raise ValueError(f"there is no {model_name!r} training model to hold a run yet: write a "
                         "generator file (--output NAME.keras or NAME.weights.h5)")
    if IMPORTERS[model_name].entry_ba is not None:  # both generators are in the one file
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


def check_finite_weights(generator, checkpoint):
    """Refuses a checkpoint whose weights are NaN or infinite (a diverged run): it would
    translate every image to black."""
    bad = [w.path for w in generator.weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
    if bad:
        raise ValueError(f"{checkpoint!r} holds non-finite weights (NaN or inf) in {len(bad)} variable(s), "
                         f"first {bad[0]}: nothing was written")


def write_imported_run(model_name, run_dir, generator_ab, checkpoint, generator_ba=None, checkpoint_b=None):
    """A run directory whose a2b (and b2a, when given) generators hold imported weights."""
    from tf_translate.models import build_model
    from tf_translate.runs import is_run, save_checkpoint, write_run

    if is_run(run_dir):
        raise ValueError(f"{run_dir!r} already holds a run: choose a new --output")
    run_config = IMPORTERS[model_name].run_config
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


__all__ = ["IMPORTERS", "INSTANCE_NORM_BUFFERS", "Importer", "MAX_LISTED", "MissingEntryError", "NICEGAN_HEADS",
           "assign", "assign_spec", "check_keys", "conv_layers", "cyclegan_generator_from_state_dict",
           "cyclegan_module_names", "cyclegan_run_config", "drop_instance_norm_buffers", "import_generator",
           "import_torch", "listing", "load_state_dict", "nicegan_decoder_spec", "nicegan_encoder_spec",
           "nicegan_run_config", "nicegan_translator_from_state_dict", "photo2cartoon_generator_from_state_dict",
           "photo2cartoon_run_config", "pix2pix_generator_from_state_dict", "pix2pix_run_config",
           "read_cyclegan_architecture", "read_unit_architecture", "sequential_pairs", "shaped_as",
           "stargan_generator_from_state_dict", "stargan_module_names", "stargan_run_config", "strip_data_parallel",
           "torch_to_keras", "torch_v_order", "ugatit_generator_from_state_dict", "ugatit_run_config",
           "unet_module_names", "unit_conv_block_keys", "unit_generator_from_state_dict", "unit_generator_keys",
           "unit_run_config", "unit_translator_from_state_dict", "weighted_layers", "write_imported_run"]
