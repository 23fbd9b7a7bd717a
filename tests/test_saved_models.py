"""The ready model in saved_models/ loads without tf_translate and has learnt its mapping."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_translate.cli import main

ROOT = os.path.join(os.path.dirname(__file__), "..", "saved_models", "demo_cyclegan")


def pixels(folder):
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"))
                     for n in sorted(os.listdir(folder))])


def test_the_shipped_demo_cyclegan_translates_close_to_the_truth():
    """Its examples' true translations are known (channels rotated): the served output is
    far closer to them than the input is (the untrained network is not: it is near grey)."""
    inputs, truth = pixels(os.path.join(ROOT, "examples", "testA")), pixels(os.path.join(ROOT, "examples", "testB"))
    assert len(inputs) == 8 and not np.array_equal(inputs, truth)
    served = tf.saved_model.load(os.path.join(ROOT, "1"))
    out = served.signatures["serving_default"](images=tf.constant(inputs))["images"].numpy()
    assert out.shape == inputs.shape and out.dtype == np.uint8
    error = np.abs(out.astype(float) - truth).mean()
    copy_error = np.abs(inputs.astype(float) - truth).mean()
    assert error < 0.5 * copy_error, (error, copy_error)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(ROOT) for f in files)
    assert size < 20e6


def test_translate_model_dir_uses_the_shipped_model(tmp_path, capsys):
    folder = os.path.join(ROOT, "examples", "testA")
    assert main(["translate", "--model-dir", os.path.join(ROOT, "1"), "--input", folder,
                 "--output", str(tmp_path)]) == 0
    assert "translated 8 image(s)" in capsys.readouterr().out
    served = tf.saved_model.load(os.path.join(ROOT, "1"))
    expected = served.signatures["serving_default"](images=tf.constant(pixels(folder)))["images"].numpy()
    np.testing.assert_array_equal(pixels(str(tmp_path)), expected)
    with pytest.raises(SystemExit):  # one of --run-dir / --model-dir is required
        main(["translate", "--input", folder, "--output", str(tmp_path)])
