"""The examples, run with tiny flags (the full runs are in their docstrings)."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # AutoGraph looks functions up by module
    spec.loader.exec_module(module)
    return module


def test_stargan_fashion_mnist_tiny_run(tmp_path):
    example = load_example("stargan_fashion_mnist")
    if not os.path.exists(os.path.join(example.DATA_DIR, "t10k-labels-idx1-ubyte.gz")):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    test_images, test_labels = example.load_split(example.DATA_DIR, "t10k")
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10

    run_dir = str(tmp_path / "run")
    result = example.main(["--run-dir", run_dir, "--steps", "6", "--filters", "8", "--residual-blocks", "1",
                           "--discriminator-filters", "8", "--classifier-steps", "150", "--test-count", "40",
                           "--no-xla"])
    assert result["steps"] == 6 and result["translations"] == 40 * 9
    # The judge learnt from correctly labelled images: far above chance (10 %).
    assert result["classifier_accuracy_on_real_test_images"] > 0.6
    assert 0.0 <= result["translated_to_target"] <= 1.0
    assert result["untranslated_inputs_classified_as_target"] < 0.1  # inputs are not their targets
    with open(os.path.join(run_dir, "run.json")) as file:
        assert json.load(file)["config"]["domain_names"] == example.CLASSES
    grid = np.asarray(Image.open(os.path.join(run_dir, "samples", "step_0000006.png")))
    from tf_translate.training import TITLE_HEIGHT

    row = TITLE_HEIGHT + 32  # a title strip above each row of images
    assert grid.shape == (16 * row, 11 * 32, 3)  # 16 inputs x (input + 10 classes)
    images = np.concatenate([grid[i * row + TITLE_HEIGHT:(i + 1) * row] for i in range(16)])
    # The first column is the (upsampled, grey) input itself.
    assert np.all(images[:, :32, 0] == images[:, :32, 1])

    # The metric, checked with generators whose answer is known: one that ignores the label
    # (returns its input) scores how often inputs already are the target, and one that
    # returns a real test image of the target class scores the classifier's accuracy.
    x = np.asarray(example.to_model_images(test_images[:200], 32))
    y = test_labels[:200]
    classifier = example.train_classifier(*example.load_split(example.DATA_DIR, "train"), 32, 150)
    predicted = example.predict(classifier, x)
    identity = lambda inputs, training=False: inputs[0]
    assert example.target_fraction(classifier, identity, x, y) == pytest.approx(np.mean(predicted == y))
    source, targets = example.other_classes(y)
    assert np.all(targets != y[source]) and len(targets) == 9 * len(y)
    exemplar = {k: x[np.flatnonzero(y == k)[0]] for k in range(10)}
    exemplars = tf.constant(np.stack([exemplar[k] for k in range(10)]))

    def oracle(inputs, training=False):
        return tf.gather(exemplars, tf.argmax(inputs[1], -1))

    correct = {k: example.predict(classifier, exemplar[k][None])[0] == k for k in range(10)}
    assert example.target_fraction(classifier, oracle, x[source], targets) == pytest.approx(
        np.mean([correct[int(k)] for k in targets]))
