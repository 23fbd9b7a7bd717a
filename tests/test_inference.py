"""Fast inference (issue 22): the TFLite rewrite equals the plain generator and keeps the
whole graph inside one XNNPACK partition; batched folder translation writes what the
one-by-one path writes."""

import os

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_CYCLEGAN
from tf_translate.cli import main
from tf_translate.data import write_demo_dataset
from tf_translate.export import TFLiteTranslator, export_tflite, tflite_interpreter
from tf_translate.layers import xnnpack
from tf_translate.layers.xnnpack import pad_by_slices, xnnpack_forms
from tf_translate.training import train


@pytest.mark.parametrize("shape", [(2, 5, 6, 3), (1, 9, 4, 2)])
@pytest.mark.parametrize("padding", [1, 2, 3])
@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_padding_by_slices_equals_numpy(shape, padding, mode):
    x = np.random.default_rng(padding).normal(size=shape).astype(np.float32)
    expected = np.pad(x, [(0, 0), (padding, padding), (padding, padding), (0, 0)], mode=mode)
    np.testing.assert_array_equal(pad_by_slices(x, padding, mode).numpy(), expected)


def test_nearest_upsampling_traced_for_xnnpack_equals_numpy_repeat():
    import tensorflow as tf

    from tf_translate.layers.xnnpack import NearestUpsampling2D

    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    layer = NearestUpsampling2D(2)
    with xnnpack_forms():
        graph = tf.function(layer).get_concrete_function(tf.TensorSpec(x.shape)).graph
        traced = tf.function(layer)(x).numpy()
    assert {"DepthToSpace"} <= {op.type for op in graph.get_operations()} and "Tile" not in str(
        [op.type for op in graph.get_operations()])
    expected = x.repeat(2, axis=1).repeat(2, axis=2)
    np.testing.assert_array_equal(traced, expected)
    np.testing.assert_array_equal(layer(x).numpy(), expected)


@pytest.mark.parametrize("kernel, stride, padding", [(4, 2, "same"), (4, 2, "valid"), (6, 3, "valid"), (3, 2, "valid")])
def test_transposed_conv_traced_as_one_convolution_equals_keras(kernel, stride, padding):
    """StarGAN's (same) and pix2pix's (valid) 4x4 stride-2 layers, a stride 3 case, and a
    3x3 stride 2 (CycleGAN, DRIT: not a multiple, keeps TRANSPOSE_CONV) at two sizes."""
    import keras
    import tensorflow as tf

    layer = xnnpack.Conv2DTranspose(5, kernel, strides=stride, padding=padding, bias_initializer="random_normal")
    for index, shape in enumerate([(2, 5, 7, 6), (1, 8, 8, 6)]):
        x = np.random.default_rng(index).normal(size=shape).astype(np.float32)
        plain = keras.layers.Conv2DTranspose(5, kernel, strides=stride, padding=padding)
        plain.build(shape)
        if index == 0:
            layer.build(shape)
        plain.set_weights(layer.get_weights())
        with xnnpack_forms():
            graph = tf.function(layer).get_concrete_function(tf.TensorSpec(shape)).graph
            traced = tf.function(layer)(x).numpy()
        backprop = "Conv2DBackpropInput" in {op.type for op in graph.get_operations()}
        assert backprop == bool(kernel % stride)
        np.testing.assert_allclose(traced, plain(x).numpy(), atol=1e-5)
        np.testing.assert_array_equal(layer(x).numpy(), plain(x).numpy())  # outside the switch: Keras' op


def test_weights_saved_with_keras_conv2d_transpose_load_into_the_traced_layer(tmp_path):
    """Weight files key layers by class name: a StarGAN or pix2pix run saved before the
    layer existed loads (a differently named class failed: "expected 2 variables")."""
    import keras

    def network(transposed):
        net = keras.Sequential([keras.layers.Conv2D(4, 3), transposed(3, 4, strides=2)])
        net.build((1, 8, 8, 3))
        return net

    saved = network(keras.layers.Conv2DTranspose)
    saved.save_weights(str(tmp_path / "old.weights.h5"))
    loaded = network(xnnpack.Conv2DTranspose)
    loaded.load_weights(str(tmp_path / "old.weights.h5"))
    for old, new in zip(saved.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(old, new)


def generators():
    from tf_translate.models import ResNetGenerator
    from tf_translate.models.photo2cartoon import Photo2CartoonGenerator
    from tf_translate.models.ugatit import UGATITGenerator

    return {"cyclegan": ResNetGenerator(filters=8, num_residual_blocks=2),
            "ugatit_light": UGATITGenerator(filters=8, num_residual_blocks=2, image_size=32, light=True),
            "photo2cartoon": Photo2CartoonGenerator(filters=8, image_size=32, light=True)}


@pytest.mark.parametrize("name", ["cyclegan", "ugatit_light", "photo2cartoon"])
def test_generators_traced_with_slices_equal_the_plain_generator_at_two_sizes(name):
    import tensorflow as tf

    generator = generators()[name]
    for index, size in enumerate([32, 64]):
        images = np.random.default_rng(index).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
        first = lambda out: out[0] if isinstance(out, (tuple, list)) else out
        plain = tf.function(lambda x: first(generator(x, training=False)))(images).numpy()
        with xnnpack_forms():
            traced = tf.function(lambda x: first(generator(x, training=False)))
            concrete = traced.get_concrete_function(tf.TensorSpec(images.shape))
        ops = {op.type for op in concrete.graph.get_operations()}
        assert not ops & {"MirrorPad", "Tile"} and "ConcatV2" in ops  # the switch took effect
        np.testing.assert_allclose(traced(images).numpy(), plain, atol=1e-6)


def delegated_ops(path):
    """The XNNPACK partitions of a .tflite file: each shows as one DELEGATE node in the
    interpreter's node list (`_get_ops_details`, private LiteRT API)."""
    interpreter = tflite_interpreter(path, num_threads=2)
    interpreter.allocate_tensors()
    names = [op["op_name"] for op in interpreter._get_ops_details()]
    return names.count("DELEGATE")


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_tflite_generator_runs_in_one_xnnpack_partition_and_matches_keras(quantize, tmp_path):
    from tf_translate.models import ResNetGenerator

    generator = ResNetGenerator(filters=8, num_residual_blocks=2)
    images = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    expected = generator(images, training=False).numpy()
    path = str(tmp_path / "g.tflite")
    export_tflite(generator, path, 32, quantize=quantize, io="float")
    # Each MIRROR_PAD (no XNNPACK kernel) used to split the graph: 6 partitions with 2 blocks.
    assert delegated_ops(path) == 1
    error = np.abs(TFLiteTranslator(path)(images) - expected).max()
    assert error <= (1e-4 if quantize == "none" else 0.1)  # int8: the measured bound of test_export_tflite


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = write_demo_dataset(str(tmp_path_factory.mktemp("demo")), size=32, train_count=2, test_count=1)
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    tiny = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
    train("cyclegan", data, run_dir, steps=2, batch_size=2, image_size=32, seed=0, model_overrides=tiny,
          checkpoint_every=100, sample_every=100, verbose=0, xla=False)
    return run_dir


def test_batched_translate_writes_the_images_the_one_by_one_path_writes(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    sizes = [(24, 32), (32, 32), (24, 32), (40, 28), (24, 32), (32, 32), (24, 32)]  # 3 sizes, batches of 3
    for index, (height, width) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"p{index}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    outputs = {}
    for batch_size in (1, 3):
        out = tmp_path / f"out{batch_size}"
        assert main(["translate", "--run-dir", run, "--input", str(folder), "--output", str(out),
                     "--batch-size", str(batch_size)]) == 0
        captured = capsys.readouterr()
        assert "translated 7 image(s)" in captured.out and "images/s" in captured.out
        assert "skipped 1" in captured.out and "broken.png" in captured.err
        outputs[batch_size] = {name: np.asarray(Image.open(out / name)) for name in sorted(os.listdir(out))}
    assert sorted(outputs[1]) == [f"p{index}.png" for index in range(7)]
    for name, image in outputs[1].items():
        assert image.shape == outputs[3][name].shape == (*sizes[int(name[1])], 3)
        # Per-image instance norm: a batch changes only the summation order of the convolutions.
        assert np.abs(image.astype(int) - outputs[3][name]).max() <= 1, name


def test_batch_size_below_one_is_a_one_line_error(run, tmp_path, capsys):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["translate", "--run-dir", run, "--input", str(tmp_path / "x.png"), "--output",
                 str(tmp_path / "out"), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err
