"""`tf-translate evaluate` and the training-time evaluation callback, on tiny runs with a
small feature model, checked against the metrics computed by hand on the same features."""

import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_CYCLEGAN, loop_torch_fidelity_kid
from tf_translate import metrics
from tf_translate.cli import main
from tf_translate.data import list_images, read_rgb, write_demo_dataset
from tf_translate.export import GeneratorModule
from tf_translate.runs import BEST_WEIGHTS, load_generators
from tf_translate.training import train

TINY = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_dataset(str(tmp_path_factory.mktemp("demo")), size=32, train_count=6, test_count=8)


@pytest.fixture(scope="module")
def feature_model(tmp_path_factory):
    """A fixed 6-d feature model (mean and max colour): any Keras model file is accepted."""
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(inputs),
                                          keras.layers.GlobalMaxPooling2D()(inputs)])
    path = str(tmp_path_factory.mktemp("features") / "colour.keras")
    keras.Model(inputs, outputs).save(path)
    return path


def colour_features(images, size):
    """The feature model's output by hand: [-1, 1] images resized to `size`, mean and max."""
    rows = []
    for image in images:
        x = tf.image.resize(tf.cast(image, tf.float32)[None], (size, size))[0].numpy() / 127.5 - 1.0
        rows.append(np.concatenate([x.mean(axis=(0, 1)), x.max(axis=(0, 1))]))
    return np.array(rows, np.float64)


def tiny_run(data, run_dir, **kwargs):
    return train("cyclegan", data, run_dir, batch_size=2, image_size=32, load_size=36, seed=0,
                 model_overrides=TINY, checkpoint_every=100, sample_every=100, verbose=0, xla=False, **kwargs)


def test_evaluate_reports_fid_and_kid_of_the_translations(data, feature_model, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    tiny_run(data, run_dir, steps=2)
    assert main(["evaluate", "--run-dir", run_dir, "--data", data, "--features", feature_model,
                 "--feature-size", "32", "--metrics", "fid", "kid", "kid_blocks", "--kid-subsets", "20",
                 "--kid-subset-size", "5"]) == 0
    out = capsys.readouterr().out
    assert "8 translations vs 8 real images, features of colour.keras" in out and "KID x 100" in out
    [record] = json.load(open(os.path.join(run_dir, "evaluation.json")))

    model, _ = load_generators(run_dir)
    module = GeneratorModule(model.generator_ab)
    sources = [read_rgb(p) for p in list_images(os.path.join(data, "testA"))]
    fake = [module.serving_default(image[None])["images"].numpy()[0] for image in sources]
    real = [read_rgb(p) for p in list_images(os.path.join(data, "testB"))]
    fake_features, real_features = colour_features(fake, 32), colour_features(real, 32)
    np.testing.assert_allclose(record["fid"], metrics.frechet_distance(fake_features, real_features), rtol=1e-4)
    np.testing.assert_allclose(record["kid"], metrics.kernel_distance(fake_features, real_features, subsets=20,
                                                                      subset_size=5, seed=2020), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(record["kid_blocks"], metrics.kernel_distance_blocks(fake_features, real_features),
                               rtol=1e-4, atol=1e-7)
    assert record["fid"] > 0.01  # a barely trained model does not translate A into B

    # The defaults on these 8 images: 100 subsets of 4 (half the set), so the ± is a spread, not 0.
    assert main(["evaluate", "--run-dir", run_dir, "--data", data, "--features", feature_model,
                 "--feature-size", "32", "--metrics", "kid"]) == 0
    assert "± 0.000" not in capsys.readouterr().out
    default = json.load(open(os.path.join(run_dir, "evaluation.json")))[-1]
    assert default["kid_subset_size"] == 4
    expected = loop_torch_fidelity_kid(fake_features, real_features, 100, 4, 2020)
    np.testing.assert_allclose(default["kid"], expected, rtol=1e-4, atol=1e-7)
    assert default["kid"][1] > 1e-6

    # The real test images against themselves (b2a of a copy would need a model): FID 0.
    np.testing.assert_allclose(metrics.frechet_distance(real_features, real_features), 0.0, atol=1e-6)

    assert main(["evaluate", "--run-dir", run_dir, "--data", data, "--metrics", "psnr"]) == 2
    assert "--metrics: unknown psnr" in capsys.readouterr().err
    assert main(["evaluate", "--run-dir", run_dir, "--data", data, "--features", "resnet"]) == 2
    assert "--features 'resnet'" in capsys.readouterr().err


def test_the_evaluation_callback_logs_kid_and_keeps_the_best_weights(data, feature_model, tmp_path):
    run_dir = str(tmp_path / "run")
    model = tiny_run(data, run_dir, steps=4, eval_every=2, eval_features=feature_model, eval_samples=8)
    values = {}
    for path in glob.glob(os.path.join(run_dir, "logs", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "eval/kid":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(values) == [2, 4]
    # The best weights are the final ones exactly when the last KID is the lowest.
    best, _ = load_generators(run_dir, BEST_WEIGHTS)
    final = [w.numpy() for w in model.generator_ab.weights]
    is_final = all(np.array_equal(a.numpy(), b) for a, b in zip(best.generator_ab.weights, final))
    assert is_final == (values[4] < values[2])
    assert os.path.exists(os.path.join(run_dir, BEST_WEIGHTS))
