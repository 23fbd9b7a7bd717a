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

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import make_checkpoints  # noqa: E402

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
