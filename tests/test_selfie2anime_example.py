"""examples/selfie2anime_tflite.py with a tiny generator: the face it crops and the pixels
it pastes back, end to end from a photo file."""

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


def keras_cartoon(generator, crop):
    out = generator(np.asarray(crop, np.float32)[None] / 127.5 - 1.0).numpy()[0]
    return np.clip(np.round((out + 1.0) * 127.5), 0, 255).astype(np.uint8)


def photo_file(tmp_path, name):
    data = pytest.importorskip("skimage.data")
    photo = getattr(data, name)()
    Image.fromarray(photo).save(tmp_path / f"{name}.png")
    return photo, str(tmp_path / f"{name}.png")


def test_the_face_is_translated_and_pasted_back_into_the_photo(model, tmp_path, capsys):
    pytest.importorskip("mtcnn", reason="face detection needs the face extra: pip install -e '.[face]'")
    from tf_translate.faces import FaceDetector, align_face, paste_back

    example = load_example()
    generator, path = model
    photo, photo_path = photo_file(tmp_path, "astronaut")
    output = str(tmp_path / "anime.png")
    assert example.main(["--model", path, "--input", photo_path, "--output", output]) == 0
    assert "replaced by its cartoon" in capsys.readouterr().out
    written = np.asarray(Image.open(output)).astype(np.int32)
    assert written.shape == photo.shape  # the whole photo comes back
    face = FaceDetector()(photo)[0]
    expected = paste_back(photo, keras_cartoon(generator, align_face(photo, face, SIZE)), face)
    assert np.abs(written - expected).max() <= 2  # TFLite vs Keras rounding, through the blend
    assert np.abs(written[90:150, 190:260] - photo[90:150, 190:260]).mean() > 20  # the face changed
    np.testing.assert_array_equal(written[420:], photo[420:])  # the suit below did not

    face_only = str(tmp_path / "face.png")
    assert example.main(["--model", path, "--input", photo_path, "--output", face_only, "--face-only"]) == 0
    cartoon = np.asarray(Image.open(face_only)).astype(np.int32)
    assert np.abs(cartoon - keras_cartoon(generator, align_face(photo, face, SIZE))).max() <= 1


def test_centre_square_without_a_face(model, tmp_path, capsys):
    example = load_example()
    generator, path = model
    photo, photo_path = photo_file(tmp_path, "chelsea")  # 300 x 451, a cat: no human face
    output = str(tmp_path / "anime.png")
    assert example.main(["--model", path, "--input", photo_path, "--output", output, "--no-face"]) == 0
    assert "centre square" in capsys.readouterr().out
    written = np.asarray(Image.open(output)).astype(np.int32)
    crop = Image.fromarray(photo[0:300, 75:375]).resize((SIZE, SIZE), Image.BICUBIC)
    assert np.abs(written - keras_cartoon(generator, crop)).max() <= 1


def test_float_io_model_is_refused(model, tmp_path):
    example = load_example()
    generator, _ = model
    path = str(tmp_path / "float.tflite")
    export_tflite(generator, path, SIZE, io="float")
    with pytest.raises(ValueError, match="takes float input; export it with the default --io uint8"):
        example.cartoonize(path, np.zeros((40, 40, 3), np.uint8))
