"""Weights and .keras files written by an earlier tf_translate still load, with the
same outputs: one tiny model per family, written by main before issue 32 moved DRIT++,
TuiGAN and the PyTorch importers into packages (`fixtures/make_checkpoints.py` says
how). Class names, registered names and layer names are the keys of those files."""

import gzip
import json
import os
import shutil
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import make_checkpoints  # noqa: E402
from tf_translate.models import build_model  # noqa: E402
from tf_translate.runs import CHECKPOINT, load_generators, save_checkpoint, write_run  # noqa: E402

CHECKPOINTS = os.path.join(FIXTURES, "checkpoints")
with open(os.path.join(CHECKPOINTS, "manifest.json")) as _file:
    MANIFEST = json.load(_file)
TOLERANCE = 1e-6


def unpacked(name, tmp_path):
    """The fixture file `name` (gzipped) unpacked into tmp_path, without its .gz."""
    target = os.path.join(tmp_path, name[:-len(".gz")])
    with gzip.open(os.path.join(CHECKPOINTS, name), "rb") as source, open(target, "wb") as file:
        shutil.copyfileobj(source, file)
    return target


def recorded(family):
    with np.load(os.path.join(CHECKPOINTS, f"{family}.npz")) as data:
        values = {key[len("input/"):]: data[key] for key in data.files if key.startswith("input/")}
        expected = {key: data[key] for key in data.files if not key.startswith("input/")}
    return values, expected


def assert_same(outputs, expected, prefix):
    keys = sorted(key for key in expected if key.split("/")[0] in prefix)
    assert keys and sorted(outputs) == keys
    for key in keys:
        np.testing.assert_allclose(outputs[key], expected[key], rtol=0, atol=TOLERANCE, err_msg=key)


def test_every_family_has_a_fixture():
    assert sorted(MANIFEST) == sorted(make_checkpoints.FAMILIES)


@pytest.mark.parametrize("family", sorted(make_checkpoints.FAMILIES))
def test_old_files_load_with_the_same_outputs(family, tmp_path):
    entry = MANIFEST[family]
    assert (entry["model"], entry["config"]) == (make_checkpoints.FAMILIES[family][0],
                                                 json.loads(json.dumps(make_checkpoints.FAMILIES[family][1])))
    values, expected = recorded(family)
    model = make_checkpoints.build(family, seed=entry["seed"] + 1)  # other initial weights: the file must set them
    before = make_checkpoints.outputs(model, values)
    assert any(not np.allclose(before[key], expected[key]) for key in before)
    model.load_weights(unpacked(entry["weights"], tmp_path))
    assert_same(make_checkpoints.outputs(model, values), expected, set(model.generators()))
    if entry["keras"]:
        network = keras.saving.load_model(unpacked(entry["keras"], tmp_path))
        outputs = {f"keras/{i}": np.asarray(t) for i, t in enumerate(make_checkpoints.keras_outputs(network, values))}
        assert_same(outputs, expected, {"keras"})


# -- translate, export and evaluate build only the generators (issue 39, case 11) ------------

# What a generators-only model creates besides its generators' variables and random
# streams' seeds: state the training model keeps at its own level (StarGAN's last
# generator losses, 4 numbers; the checkpoint holds them there, so they are read back).
NOT_GENERATOR_VARIABLES = {"stargan": ["last_generator_losses"]}


def fixture_run(family, tmp_path):
    """A run directory of the family's fixture checkpoint (written by the full training
    model) with a run.json of its config, as training leaves them."""
    entry = MANIFEST[family]
    run_dir = os.path.join(tmp_path, "run")
    os.makedirs(run_dir)
    os.replace(unpacked(entry["weights"], tmp_path), os.path.join(run_dir, CHECKPOINT))
    write_run(run_dir, entry["model"], {**entry["config"], "seed": entry["seed"]}, flags={})
    return run_dir


def created_variables(function, *args):
    """(function's result, [tf.Variable created while it ran])."""
    created = []

    def record(next_creator, **kwargs):
        created.append(next_creator(**kwargs))
        return created[-1]

    with tf.variable_creator_scope(record):
        return function(*args), created


@pytest.mark.parametrize("family", sorted(make_checkpoints.FAMILIES))
def test_a_run_loads_only_its_generators_with_the_recorded_outputs(family, tmp_path):
    """`runs.load_generators` (translate, export, evaluate) builds the generators and
    nothing else: every variable it creates is a generator's. Loaded from a checkpoint
    the full training model wrote, they give what that model's generators gave."""
    run_dir = fixture_run(family, tmp_path)
    (model, _), created = created_variables(load_generators, run_dir)
    generator_variables = {id(v.value) for network in model.generators().values() for v in network.variables}
    others = [v.name.split(":")[0].split("/")[-1] for v in created
              if id(v) not in generator_variables and not v.name.endswith("seed_generator_state:0")]
    assert others == NOT_GENERATOR_VARIABLES.get(family, [])
    values, expected = recorded(family)
    assert_same(make_checkpoints.outputs(model, values), expected, set(model.generators()))

# Translate's tiny runs: the fixture families' models, and CUT (which has no fixture).
# photo2cartoon is left out: its generator alone takes 25 s to build on a 2-core CPU, it
# is built by U-GAT-IT's constructor (ugatit_light is here), and the test above loads it.
# TuiGAN without its test-time noise, which is drawn unseeded for every translation.
TRANSLATE_RUNS = {**{family: make_checkpoints.FAMILIES[family] for family in make_checkpoints.FAMILIES
                     if family != "photo2cartoon"},
                  "cut": ("cut", dict(image_size=32, filters=2, num_residual_blocks=1, discriminator_filters=2,
                                      mlp_units=4, num_patches=4))}
TRANSLATE_RUNS["tuigan"] = ("tuigan", {**TRANSLATE_RUNS["tuigan"][1], "noise_amp": 0.0})
TRANSLATE_FLAGS = {"stargan": ["--domain", "domain 1"], "drit": ["--code-seed", "0"]}


def trained_run(family, tmp_path):
    """(run directory, full training model): a tiny model whose weights are moved off
    their initial values, saved as training saves a run."""
    name, config = TRANSLATE_RUNS[family]
    keras.mixed_precision.set_global_policy("float32")
    model = build_model(name, **config, seed=0)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0, 0.1, variable.shape).astype(np.float32))
    run_dir = os.path.join(tmp_path, "run")
    write_run(run_dir, name, model.get_config(), flags={})
    save_checkpoint(model, run_dir)
    return run_dir, model


@pytest.mark.parametrize("family", sorted(TRANSLATE_RUNS))
def test_translate_writes_the_pixels_the_full_training_model_writes(family, tmp_path, monkeypatch):
    """`translate --run-dir`, which now builds the generators alone, writes exactly the
    image the same command writes with the whole training model that saved the run."""
    from PIL import Image

    from tf_translate import runs
    from tf_translate.cli import main

    run_dir, full_model = trained_run(family, tmp_path)
    os.makedirs(tmp_path / "in")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
        tmp_path / "in" / "photo.png")

    def translate(output):
        assert main(["translate", "--run-dir", run_dir, "--input", str(tmp_path / "in"), "--output", str(output),
                     *TRANSLATE_FLAGS.get(family, [])]) == 0
        (name,) = os.listdir(output)
        return np.asarray(Image.open(os.path.join(output, name)))

    generators_only = translate(tmp_path / "generators_only")
    record = runs.read_run(run_dir)
    monkeypatch.setattr(runs, "load_generators", lambda run_dir, name=CHECKPOINT: (full_model, record))
    with_full_model = translate(tmp_path / "full_model")
    assert generators_only.shape == (40, 48, 3) and generators_only.std() > 5
    np.testing.assert_array_equal(generators_only, with_full_model)


def test_a_generators_only_model_keeps_the_config_and_cannot_train():
    """generators_only is how the model is built, not part of its config: the config is
    the full model's, run.json cannot set it, and such a model refuses to compile."""
    from tf_translate.runs import check_config

    config = dict(image_size=32, filters=2, num_residual_blocks=1, discriminator_filters=2, pool_size=1)
    model = build_model("cyclegan", **config, generators_only=True)
    assert model.get_config() == build_model("cyclegan", **config).get_config()
    assert not hasattr(model, "discriminator_a") and not hasattr(model, "pool_a")
    with pytest.raises(ValueError, match="generators_only=True .* no discriminators to train"):
        model.compile()
    with pytest.raises(ValueError, match="run.json: cyclegan has no option 'generators_only'"):
        check_config("cyclegan", {**config, "generators_only": True}, "run.json")
