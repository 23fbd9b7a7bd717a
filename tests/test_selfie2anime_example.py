"""examples/selfie2anime_tflite.py with a tiny generator: the crop it picks and the pixels it writes."""

import importlib.util
import os

import keras
import numpy as np
import pytest
from PIL import Image

from tf_translate.export import export_tflite
from tf_translate.models import ResNetGenerator

SIZE = 32
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "selfie2anime_tflite.py")


def load_example():
    spec = importlib.util.spec_from_file_location("selfie2anime_tflite", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    keras.utils.set_random_seed(5)
    generator = ResNetGenerator(filters=8, num_residual_blocks=1)
    generator.build((None, None, None, 3))
    path = tmp_path_factory.mktemp("model") / "selfie2anime.tflite"
    export_tflite(generator, path, SIZE)
    return generator, str(path)


def keras_cartoon(generator, photo, left, top, side):
    crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((SIZE, SIZE), Image.BICUBIC)
    out = generator(np.asarray(crop, np.float32)[None] / 127.5 - 1.0).numpy()[0]
    return np.clip(np.round((out + 1.0) * 127.5), 0, 255).astype(np.int32)


def photo_file(tmp_path, name):
    data = pytest.importorskip("skimage.data")
    photo = getattr(data, name)()
    Image.fromarray(photo).save(tmp_path / f"{name}.png")
    return photo, str(tmp_path / f"{name}.png")


def test_face_is_cropped_with_margin_when_opencv_is_installed(model, tmp_path, capsys):
    pytest.importorskip("cv2")
    example = load_example()
    if example.face_detector() is None:
        pytest.skip("this OpenCV ships no Haar cascades (OpenCV 5); the face extra pins 4.x")
    generator, path = model
    photo, photo_path = photo_file(tmp_path, "astronaut")  # one frontal face near (177-272, 66-161)
    output = str(tmp_path / "anime.png")
    assert example.main(["--model", path, "--input", photo_path, "--output", output]) == 0
    assert "around the face" in capsys.readouterr().out
    _, (left, top, side), found = example.cartoonize(path, photo)
    assert found
    assert left <= 177 and top <= 66 and left + side >= 272 and top + side >= 161  # the whole face
    assert 150 <= side <= 200  # about 1.8 face widths, not the whole 512 px photo
    written = np.asarray(Image.open(output)).astype(np.int32)
    assert written.shape == (SIZE, SIZE, 3)
    assert np.abs(written - keras_cartoon(generator, photo, left, top, side)).max() <= 1


def test_whole_image_centre_square_without_a_face(model, tmp_path, capsys):
    example = load_example()
    generator, path = model
    photo, photo_path = photo_file(tmp_path, "chelsea")  # 300 x 451, a cat: no human face
    output = str(tmp_path / "anime.png")
    assert example.main(["--model", path, "--input", photo_path, "--output", output, "--no-face"]) == 0
    assert "centre square" in capsys.readouterr().out
    written = np.asarray(Image.open(output)).astype(np.int32)
    assert np.abs(written - keras_cartoon(generator, photo, 75, 0, 300)).max() <= 1


def test_float_io_model_is_refused(model, tmp_path):
    example = load_example()
    generator, _ = model
    path = str(tmp_path / "float.tflite")
    export_tflite(generator, path, SIZE, io="float")
    with pytest.raises(ValueError, match="takes float input; export it with the default --io uint8"):
        example.cartoonize(path, np.zeros((40, 40, 3), np.uint8))
