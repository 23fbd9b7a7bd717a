"""ONNX export: onnxruntime against the SavedModel's serving functions on real photographs.

The generators are small (8 filters, seeded random weights); the photographs come from
scikit-image, at sizes that are not a multiple of 4 so that the padding and cropping inside
the file are exercised. The tests that convert need the `onnx` extra (tf2onnx, onnx,
onnxruntime) and skip without it (allowed in tests/allowed_skips.txt); the refusal without
it and the flag checks run everywhere.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image
from helpers import TINY_CYCLEGAN

from tf_translate.export import GeneratorModule, LabelGeneratorModule
from tf_translate.models import ResNetGenerator

PHOTOS = ("astronaut", "coffee")


def photos(height, width):
    data = pytest.importorskip("skimage.data")
    return np.stack([np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize(
        (width, height), Image.BICUBIC)) for name in PHOTOS])


def session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def export(generator, path, **kwargs):
    pytest.importorskip("tf2onnx")
    from tf_translate.export_onnx import export_onnx

    return export_onnx(generator, path, **kwargs)


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    network = ResNetGenerator(filters=8, num_residual_blocks=2)
    network.build((None, None, None, 3))
    return network


def test_uint8_file_matches_the_savedmodel_pixels_at_any_size(generator, tmp_path):
    """Measured: at most 1 grey level apart (0.004 % of the values at 64 px, none at 38 x 50):
    float32 differences of ~1e-6 flip a rounding now and then."""
    path = tmp_path / "g.onnx"
    export(generator, path)
    run = session(path)
    assert [(i.name, i.type) for i in run.get_inputs()] == [("images", "tensor(uint8)")]
    assert [(o.name, o.type) for o in run.get_outputs()] == [("translated", "tensor(uint8)")]
    module = GeneratorModule(generator)  # kept: its tf.functions hold it weakly
    for height, width in ((38, 50), (64, 64)):
        images = photos(height, width)
        (translated,) = run.run(None, {"images": images})
        expected = module.serving_default(images)["images"].numpy()
        assert translated.shape == images.shape
        assert np.abs(translated.astype(int) - expected.astype(int)).max() <= 1


def test_float_file_matches_keras(generator, tmp_path):
    """Measured max abs 1.5e-6 (bound 1e-5)."""
    path = tmp_path / "g.onnx"
    export(generator, path, io="float")
    images = photos(48, 48).astype(np.float32) / 127.5 - 1.0
    (translated,) = session(path).run(["translated"], {"images": images})
    assert np.abs(translated - generator(images).numpy()).max() <= 1e-5


def test_ugatit_light_adalin_image_and_heatmap_match_the_savedmodel(tmp_path):
    """Measured: 0 grey levels, heatmap max abs 7.7e-7 (bound 1e-5)."""
    from tf_translate.models.ugatit import UGATITGenerator

    keras.utils.set_random_seed(4)
    generator = UGATITGenerator(filters=8, num_residual_blocks=1, image_size=32, light=True)
    generator.build((None, 32, 32, 3))
    path = tmp_path / "u.onnx"
    export(generator, path, heatmap=True)
    images = photos(34, 42)
    outputs = dict(zip(["heatmap", "translated"], session(path).run(["heatmap", "translated"], {"images": images})))
    module = GeneratorModule(generator, heatmap=True)
    expected = module.serving_default(images)
    assert np.abs(outputs["translated"].astype(int) - expected["images"].numpy().astype(int)).max() <= 1
    assert np.abs(outputs["heatmap"] - expected["heatmap"].numpy()).max() <= 1e-5


def test_stargan_file_takes_the_target_labels(tmp_path):
    from tf_translate.models.stargan import StarGANGenerator

    keras.utils.set_random_seed(5)
    generator = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    generator.build([(None, None, None, 3), (None, 3)])
    path = tmp_path / "s.onnx"
    export(generator, path)
    images = photos(36, 40)
    run = session(path)
    assert [i.name for i in run.get_inputs()] == ["images", "labels"]
    module = LabelGeneratorModule(generator)
    for target in range(3):
        labels = np.eye(3, dtype=np.float32)[[target, (target + 1) % 3]]
        (translated,) = run.run(None, {"images": images, "labels": labels})
        expected = module.serving_default(images, labels)["images"].numpy()
        assert np.abs(translated.astype(int) - expected.astype(int)).max() <= 1


@keras.saving.register_keras_serializable(package="tests")
class MatrixInverseNet(keras.Model):
    """A generator using an op that tf2onnx does not convert (MatrixInverse)."""

    def call(self, x):
        import tensorflow as tf

        return x * tf.reduce_sum(tf.linalg.inv(x[0, :3, :3, 0]))


def test_op_without_conversion_is_named_and_nothing_is_written(tmp_path):
    network = MatrixInverseNet()
    network.build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"^cannot export inverse to ONNX: TensorFlow op\(s\) MatrixInverse have no "
                       r"ONNX conversion in tf2onnx [0-9.]+ \(opset 17\)$"):
        export(network, tmp_path / "g.onnx", io="float", model_name="inverse")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    pytest.importorskip("tf2onnx")  # its only user exports
    from tf_translate.data import write_demo_dataset
    from tf_translate.training import train

    root = tmp_path_factory.mktemp("run")
    data = write_demo_dataset(str(root / "data"), size=32, train_count=2, test_count=1)
    tiny = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
    train("cyclegan", data, str(root / "run"), steps=1, batch_size=1, image_size=32, load_size=32, seed=0,
          model_overrides=tiny, verbose=0, xla=False)
    return root / "run"


def cli_error(capsys, argv):
    from tf_translate.cli import main

    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_cli_exports_onnx_and_refuses_to_replace_it(trained_run, tmp_path, capsys):
    from tf_translate.cli import main
    from tf_translate.runs import CHECKPOINT, load_generators

    output = tmp_path / "g.onnx"
    argv = ["export", "--run-dir", str(trained_run), "--format", "onnx", "--output", str(output)]
    assert main(argv + ["--opset", "15"]) == 0
    assert f"ONNX (opset 15, uint8 in/out, any size) written to {output}" in capsys.readouterr().out
    assert "exists: pass --overwrite" in cli_error(capsys, argv)
    assert main(argv + ["--overwrite", "--io", "float"]) == 0
    model, _ = load_generators(str(trained_run), CHECKPOINT)
    images = photos(32, 32).astype(np.float32) / 127.5 - 1.0
    (translated,) = session(output).run(None, {"images": images})
    assert np.abs(translated - model.generators()["a2b"](images).numpy()).max() <= 1e-5


@pytest.mark.parametrize("flags, message", [
    (["--format", "onnx", "--quantize", "int8"], "--quantize is not for --format onnx"),
    (["--format", "onnx", "--image-size", "64"], "--image-size is not for --format onnx"),
    (["--format", "onnx", "--version", "2"], "--version is not for --format onnx"),
    (["--opset", "17"], "--opset is for --format onnx"),
    (["--format", "tflite", "--opset", "17"], "--opset is for --format onnx"),
    (["--format", "onnx", "--opset", "0"], "--opset must be a positive ONNX opset number, got 0"),
])
def test_onnx_flags_that_do_not_apply_are_one_line(tmp_path, capsys, flags, message):
    argv = ["export", "--run-dir", str(tmp_path / "run"), "--output", str(tmp_path / "out"), *flags]
    assert message in cli_error(capsys, argv)
    assert not os.path.exists(tmp_path / "out")


def test_missing_extra_is_named_before_the_run_loads(tmp_path, capsys, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tf2onnx" else find_spec(name, *args))
    argv = ["export", "--run-dir", str(tmp_path / "no_such_run"), "--format", "onnx",
            "--output", str(tmp_path / "g.onnx")]
    assert cli_error(capsys, argv) == ('tf-translate: error: --format onnx needs the onnx extra (tf2onnx is not '
                                       'installed): pip install "tf_translate[onnx]"')
