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
    # Six steps teach the generator nothing about the label yet. A generator blind to the
    # label scores at most 1/9 (one image per input, and its 9 targets are 9 classes);
    # one that changes nothing scores the untranslated share. Measured (AMD EPYC): 10.3 %,
    # the untranslated inputs 1.7 %.
    assert result["untranslated_inputs_classified_as_target"] + 0.03 < result["translated_to_target"] < 1 / 9 + 0.05
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


def test_pix2pix_edges_tiny_run(tmp_path):
    pytest.importorskip("skimage")
    example = load_example("pix2pix_edges")
    flat = np.full((8, 8, 3), 90, np.uint8)
    assert np.all(example.edge_map(flat) == 255)  # no gradient: white
    step = np.zeros((8, 8, 3), np.uint8)
    step[:, 4:] = 200
    edges = example.edge_map(step)[..., 0]
    assert np.all(edges[:, 3:5] == 0) and np.all(edges[:, :2] == 255)  # black along the step only

    run_dir = str(tmp_path / "run")
    result = example.main(["--run-dir", run_dir, "--steps", "3", "--train-count", "8", "--test-count", "4",
                           "--filters", "4", "--no-xla"])
    assert result["train_pairs"] == 8 and result["test_pairs"] == 4
    # The held-out pairs are crops of the cat: the right half of each file is the photo crop,
    # the left its edge map.
    pair = np.asarray(Image.open(os.path.join(run_dir + "_data", "test", "00000.png")))
    np.testing.assert_array_equal(pair[:, :64], example.edge_map(pair[:, 64:]))
    cat = example.photo("chelsea")
    found = any(np.array_equal(cat[y:y + 64, x:x + 64], pair[:, 64:])
                for y in range(cat.shape[0] - 63) for x in range(cat.shape[1] - 63))
    assert found
    # A baseline checked by hand: the mean training colour everywhere, its L1 in [-1, 1] units.
    folder = os.path.join(run_dir + "_data", "{}")
    photos = lambda split: [np.asarray(Image.open(os.path.join(folder.format(split), name)))[:, 64:]
                            for name in sorted(os.listdir(folder.format(split)))]
    colour = np.round(np.mean([p.reshape(-1, 3).mean(0) for p in photos("train")], axis=0))
    targets = photos("test")
    by_hand = np.mean([np.abs(colour - t.astype(np.float64)).mean() / 127.5 for t in targets])
    assert result["baselines"]["the mean training colour"]["l1"] == pytest.approx(by_hand, rel=1e-9)
    with open(os.path.join(run_dir, "run.json")) as file:
        assert json.load(file)["model"] == "pix2pix"
    # Three steps move the untrained generator's scores little, and the scores are of the
    # trained weights; a near-grey output lies between the two baselines. Measured (AMD
    # EPYC): L1 untrained 0.288 / 0.289, trained 0.295 / 0.288 (reference / eval mode), SSIM
    # 0.261 / 0.346 and 0.276 / 0.348; baselines: the mean colour 0.225, the edge map 0.654.
    colour, edges = (result["baselines"][name]["l1"] for name in ("the mean training colour", "the edge map itself"))
    for mode in ("reference", "eval"):
        before, after = result["untrained"][mode], result["trained"][mode]
        assert colour < after["l1"] < edges
        assert abs(after["l1"] - before["l1"]) < 0.1 * before["l1"] and after["l1"] != before["l1"]
        assert abs(after["ssim"] - before["ssim"]) < 0.05
    assert len(targets) == 4


def test_tuigan_photos_tiny_run(tmp_path, capsys):
    pytest.importorskip("skimage")
    example = load_example("tuigan_photos")
    run_dir = str(tmp_path / "run")
    result = example.main(["--run-dir", run_dir, "--size", "48", "--min-size", "31", "--steps", "2", "--eager",
                           "--progress-every", "1"])
    # Before: nothing was printed until the end (a "small" run was silent for 7 minutes and more).
    progress = [line.rsplit(", elapsed ", 1) for line in capsys.readouterr().out.splitlines()
                if line.startswith("scale ")]
    assert [text for text, _ in progress] == ["scale 1 of 2, iteration 1 of 2", "scale 1 of 2, iteration 2 of 2",
                                              "scale 2 of 2, iteration 1 of 2", "scale 2 of 2, iteration 2 of 2"]
    elapsed = [float(seconds.removesuffix(" s")) for _, seconds in progress]
    assert elapsed == sorted(elapsed)
    # chelsea is 451x300: finest 48x32 (ceil(300·48/451) = 32), ratio 31/32, two scales.
    assert result["scales"] == [[31, 47], [32, 48]] and result["iterations_per_scale"] == 2
    assert len(result["seconds_per_scale"]) == 2 and all(s > 0 for s in result["seconds_per_scale"])
    image = np.asarray(Image.open(result["output"]))
    assert image.shape == (32, 96, 3)  # the source and its translation side by side
    with open(os.path.join(run_dir, "run.json")) as file:
        assert json.load(file)["config"]["input_size"] == [300, 451]
