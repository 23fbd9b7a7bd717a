"""TFLite export: parity with Keras per quantization mode, signature, and clear errors.

The generator is small (8 filters, 2 blocks, 32 px, seeded random weights) and the images
are real photographs from scikit-image. Bounds were measured on this setup (see each
test) and set about 2-4x above the measured error; the full-size figures are printed
by benchmarks/export.py.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_translate.export import GeneratorModule, TFLiteTranslator, export_tflite, tflite_interpreter
from tf_translate.models import ResNetGenerator

SIZE = 32
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "camera")


def photo(name, size=SIZE):
    data = pytest.importorskip("skimage.data")
    array = getattr(data, name)()
    return np.asarray(Image.fromarray(array).convert("RGB").resize((size, size), Image.BICUBIC))


@pytest.fixture(scope="module")
def generator():
    keras.utils.set_random_seed(0)
    network = ResNetGenerator(filters=8, num_residual_blocks=2)
    network.build((None, None, None, 3))
    return network


@pytest.fixture(scope="module")
def pixels():
    """Two photographs to translate and four others for int8 calibration."""
    return np.stack([photo(name) for name in PHOTOS[:2]]), [photo(name) for name in PHOTOS[2:]]


def keras_float(generator, images):
    return generator(images.astype(np.float32) / 127.5 - 1.0).numpy()


def keras_uint8(generator, images):
    module = GeneratorModule(generator)
    return module.serving_default(images)["images"].numpy().astype(np.int32)


def translate_each(path, images):
    translator = TFLiteTranslator(path)
    return np.concatenate([translator(image[None]) for image in images])


def errors(generator, pixels, tmp_path, quantize, io):
    images, calibration = pixels
    path = tmp_path / f"g_{quantize}_{io}.tflite"
    size = export_tflite(generator, path, SIZE, quantize=quantize, representative_images=calibration, io=io)
    if io == "float":
        out = translate_each(path, images.astype(np.float32) / 127.5 - 1.0)
        diff = np.abs(out - keras_float(generator, images))
    else:
        diff = np.abs(translate_each(path, images).astype(np.int32) - keras_uint8(generator, images))
    return size, diff.max(), diff.mean()


def test_float32_matches_keras(generator, pixels, tmp_path):
    """Measured 1.5e-6; the issue's bound is 1e-4."""
    images, _ = pixels
    assert np.abs(keras_float(generator, images)).mean() > 0.1  # a non-trivial output
    _, worst, _ = errors(generator, pixels, tmp_path, "none", "float")
    assert worst <= 1e-4


def test_float32_uint8_io_matches_the_savedmodel_pixels(generator, pixels, tmp_path):
    """Measured 0 grey levels; 1 allows a rounding flip at .5."""
    _, worst, _ = errors(generator, pixels, tmp_path, "none", "uint8")
    assert worst <= 1


@pytest.mark.parametrize("quantize, io, max_bound, mean_bound, size_ratio", [
    ("fp16", "float", 5e-3, 1e-3, 0.65),   # measured max 1.2e-3, mean 2.1e-4; file 0.60x
    ("int8", "float", 0.1, 0.02, 0.45),    # dynamic range: measured max 0.043, mean 0.008; 0.39x
    ("int8-full", "float", 0.6, 0.12, 0.5),  # measured max 0.34, mean 0.058; 0.45x
    # Grey levels: the float-io bounds above (0.6 and 0.12 of [-1, 1] are 76 and 15
    # levels). A constant mid-grey output scores max 113, mean 30.3 here and each
    # image's mean colour 97 / 21.0, so both fail; the uint8 file misses by max 82, mean
    # 29.4 (AMD EPYC; the same with XNNPACK off): as far from Keras as a constant grey
    # image while the same quantization with float io is 6.8 levels off on average.
    pytest.param("int8-full", "uint8", 76, 15, 0.5, marks=pytest.mark.xfail(
        strict=True, reason="int8-full with uint8 io misses Keras by 29 grey levels on average (float io: 6.8)")),
])
def test_quantized_error_within_measured_bounds(generator, pixels, tmp_path, quantize, io,
                                                max_bound, mean_bound, size_ratio):
    float_size, _, _ = errors(generator, pixels, tmp_path, "none", io)
    size, worst, mean = errors(generator, pixels, tmp_path, quantize, io)
    assert size < size_ratio * float_size  # the weights really were quantized
    assert worst <= max_bound and mean <= mean_bound


def test_signature_names_dtypes_and_fixed_shape(generator, pixels, tmp_path):
    for quantize, io, dtype in [("none", "uint8", np.uint8), ("none", "float", np.float32),
                                ("int8-full", "uint8", np.uint8), ("int8-full", "float", np.float32)]:
        path = tmp_path / f"{quantize}_{io}.tflite"
        export_tflite(generator, path, SIZE, quantize=quantize, representative_images=pixels[1], io=io)
        interpreter = tflite_interpreter(str(path))
        assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"],
                                                                        "outputs": ["images"]}}
        runner = interpreter.get_signature_runner("serving_default")
        for details in (runner.get_input_details()["images"], runner.get_output_details()["images"]):
            assert details["dtype"] == dtype
            assert list(details["shape"]) == [1, SIZE, SIZE, 3]
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops  # builtins only
        assert not {"VAR_HANDLE", "READ_VARIABLE"} & ops  # weights frozen into the file


def test_wrong_input_size_and_dtype_give_clear_errors(generator, tmp_path):
    path = tmp_path / "g.tflite"
    export_tflite(generator, path, SIZE)
    translator = TFLiteTranslator(path)
    with pytest.raises(ValueError, match=r"takes 32x32 RGB images .* got shape \(1, 48, 40, 3\)"):
        translator(np.zeros((48, 40, 3), np.uint8))
    with pytest.raises(ValueError, match=r"takes uint8 input \(pixels 0-255\); got float32"):
        translator(np.zeros((SIZE, SIZE, 3), np.float32))


def test_export_argument_errors(generator, tmp_path):
    with pytest.raises(ValueError, match="multiple of 4"):
        export_tflite(generator, tmp_path / "g.tflite", 30)
    with pytest.raises(ValueError, match="int8-full quantization needs representative images"):
        export_tflite(generator, tmp_path / "g.tflite", SIZE, quantize="int8-full")
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_tflite(generator, tmp_path / "g.tflite", SIZE, quantize="int4")


@keras.saving.register_keras_serializable(package="tests")
class MatrixInverseNet(keras.Model):
    """A generator using an op that has no TFLite builtin (MatrixInverse)."""

    def call(self, x):
        return x * tf.reduce_sum(tf.linalg.inv(x[0, :3, :3, 0]))


def test_op_without_builtin_is_named(tmp_path):
    network = MatrixInverseNet()
    network.build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"builtin ops only: TensorFlow op\(s\) MatrixInverse have no TFLite builtin"):
        export_tflite(network, tmp_path / "g.tflite", SIZE, io="float")


def test_cli_exports_int8_full_calibrated_on_the_training_folder(pixels, tmp_path, capsys):
    """`export --format tflite --quantize int8-full` reads the run's trainA for calibration."""
    from tf_translate.cli import main
    from tf_translate.models import build_model
    from tf_translate.runs import save_checkpoint, write_run

    images, calibration = pixels
    for domain, photos in (("trainA", calibration), ("trainB", [image[::-1, ::-1] // 2 for image in calibration])):
        (tmp_path / "data" / domain).mkdir(parents=True)
        for index, image in enumerate(photos):
            Image.fromarray(image).save(tmp_path / "data" / domain / f"{index}.png")
    keras.utils.set_random_seed(1)
    model = build_model("cyclegan", image_size=SIZE, filters=8, num_residual_blocks=1,
                        discriminator_filters=8, pool_size=4)
    model.compile()
    model.build_optimizers()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_checkpoint(model, str(run_dir))
    write_run(str(run_dir), "cyclegan", model.get_config(), {"data": str(tmp_path / "data")})

    output = tmp_path / "g.tflite"
    assert main(["export", "--run-dir", str(run_dir), "--output", str(output), "--format", "tflite",
                 "--quantize", "int8-full"]) == 0
    assert "int8-full, uint8 in/out, 32x32" in capsys.readouterr().out
    out = translate_each(output, images).astype(np.int32)
    # Calibrated on trainA: the very file export_tflite makes from that folder, and not the
    # one from trainB (other pixels, other ranges). Its distance to Keras is the uint8
    # int8-full defect marked above (mean 25.0 grey levels here; a constant mid-grey
    # image 23.9), so a bound on it would test nothing.
    for domain, same in (("trainA", True), ("trainB", False)):
        direct = tmp_path / f"{domain}.tflite"
        export_tflite(model.generator_ab, direct, SIZE, quantize="int8-full",
                      representative_images=str(tmp_path / "data" / domain), io="uint8")
        assert np.array_equal(translate_each(direct, images).astype(np.int32), out) == same, domain
    assert json.loads((run_dir / "run.json").read_text())["model"] == "cyclegan"


def test_stargan_generator_takes_the_target_label(tmp_path):
    """A label-conditioned generator: `labels` is a second input; each label gives its own output."""
    from tf_translate.models.stargan import StarGANGenerator

    keras.utils.set_random_seed(2)
    generator = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    generator.build([(None, None, None, 3), (None, 3)])
    images = np.stack([photo("astronaut")]).astype(np.float32) / 127.5 - 1.0
    path = tmp_path / "stargan.tflite"
    export_tflite(generator, path, SIZE, io="float")
    runner = tflite_interpreter(str(path)).get_signature_runner("serving_default")
    labels_details = runner.get_input_details()["labels"]
    assert labels_details["dtype"] == np.float32 and list(labels_details["shape"]) == [1, 3]
    translator = TFLiteTranslator(path)
    outputs = []
    for label in np.eye(3, dtype=np.float32):
        out = translator(images, label)
        expected = generator([images, label[None]]).numpy()
        assert np.abs(out - expected).max() <= 1e-4
        outputs.append(out)
    assert np.abs(outputs[0] - outputs[1]).mean() > 1e-3  # the label reaches the network
    with pytest.raises(ValueError, match="also takes the target label: 3 floats"):
        translator(images)


@pytest.mark.parametrize("light", [True, False])
def test_ugatit_generator_image_output_matches_keras(light, tmp_path):
    from tf_translate.models.ugatit import UGATITGenerator

    keras.utils.set_random_seed(4)
    generator = UGATITGenerator(filters=8, num_residual_blocks=1, image_size=SIZE, light=light)
    generator.build((None, SIZE, SIZE, 3))
    images = np.stack([photo("coffee")]).astype(np.float32) / 127.5 - 1.0
    path = tmp_path / "ugatit.tflite"
    export_tflite(generator, path, SIZE, io="float")
    assert np.abs(TFLiteTranslator(path)(images) - generator(images)[0].numpy()).max() <= 1e-4
    if not light:
        with pytest.raises(ValueError, match="runs only at 32x32: export it with image size 32"):
            export_tflite(generator, tmp_path / "other.tflite", 64)


@pytest.mark.parametrize("model_name", ["photo2cartoon", "nicegan_light"])
def test_other_generators_convert_with_builtins_and_match_keras(model_name, tmp_path):
    """photo2cartoon's hourglass generator and NICE-GAN's encoder + decoder translator.

    64 px: photo2cartoon's hourglasses pool 4 times, and at 32 px instance norm over their
    2x2 centre amplifies float32 rounding to ~3e-4 in TFLite as well as in PyTorch.
    """
    from tf_translate.models import MODELS, build_model

    keras.utils.set_random_seed(6)
    if model_name == "photo2cartoon":
        from tf_translate.models.photo2cartoon import Photo2CartoonGenerator

        generator = Photo2CartoonGenerator(filters=8, image_size=64, light=True)
        generator.build((None, None, None, 3))
    else:
        if model_name not in MODELS:
            pytest.skip(f"{model_name} is not registered")
        model = build_model(model_name, image_size=64, filters=8, num_residual_blocks=1, discriminator_layers=6)
        generator = model.generators()["a2b"]
    images = np.stack([photo("chelsea", 64)]).astype(np.float32) / 127.5 - 1.0
    path = tmp_path / "g.tflite"
    export_tflite(generator, path, 64, io="float")
    expected = generator(images)
    expected = (expected[0] if isinstance(expected, (tuple, list)) else expected).numpy()
    assert np.abs(TFLiteTranslator(path)(images) - expected).max() <= 1e-4
