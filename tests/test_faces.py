"""Face preparation: MTCNN on the astronaut, the reference's crop rule, warping and
pasting back, the white background, and `tf-translate prepare-faces`."""

import numpy as np
import pytest
from PIL import Image

from helpers import human_models
from tf_translate import faces
from tf_translate.cli import main

data = pytest.importorskip("skimage.data")
pytest.importorskip("mtcnn", reason="face detection needs the face extra: pip install -e '.[face]'")

# Read off a plot of skimage's 512x512 astronaut (Eileen Collins), in pixel coordinates:
# her eyes (image left, image right), nose tip and mouth corners.
ASTRONAUT_LANDMARKS = [(205, 101), (245, 103), (225, 127), (203, 140), (245, 141)]


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


@pytest.fixture(scope="module")
def astronaut_face(detector):
    found = detector(data.astronaut())
    assert len(found) == 1
    return found[0]


def test_finds_the_astronaut_with_her_landmarks(astronaut_face):
    assert astronaut_face.confidence > 0.99
    np.testing.assert_allclose(astronaut_face.landmarks, ASTRONAUT_LANDMARKS, atol=5)


def test_finds_no_face_in_a_cat_or_a_cup(detector):
    assert detector(data.chelsea()) == []
    assert detector(data.coffee()) == []


def test_crop_is_the_reference_rule_around_the_mean_face():
    """By hand from the reference's rule on the mean-face box (eye distance 1, box x ±1.166,
    y −0.375 to 1.922): the square is 2.1 box heights (4.8237) with its top 0.8 heights
    above the box, so at 256 px the eyes sit at y = 256 · 2.2126 / 4.8237 = 117.4 and
    x = 128 ± 256 · 0.5 / 4.8237 = 128 ± 26.5."""
    np.testing.assert_allclose(faces.CROP, (-2.41185, -2.2126, 4.8237), atol=1e-4)
    # A face at an angle: landmarks = the template rotated 30°, scaled 40 and moved.
    angle = np.radians(30)
    rotation = 40 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    face = faces.Face((0, 0, 1, 1), 1.0, faces.TEMPLATE @ rotation.T + [300, 200])
    matrix = np.vstack([face.crop_matrix(256), [0, 0, 1]])
    to_crop = np.linalg.inv(matrix)
    eyes = (to_crop @ np.vstack([face.landmarks[:2].T, [1, 1]]))[:2].T
    np.testing.assert_allclose(eyes, [(101.5, 117.4), (154.5, 117.4)], atol=0.1)


def test_warp_and_sample_reproduce_a_linear_ramp():
    """Bilinear sampling reproduces a linear image: pixel (u, v) of the output holds
    f(M · (u + ½, v + ½) − ½) for f(x, y) = x + 2y (inside the photo; pixel centres at +½)."""
    ys, xs = np.mgrid[0:80, 0:80]
    ramp = (xs + 2 * ys).astype(np.float32)  # at most 237: fits uint8
    matrix = np.array([[0.8, -0.3, 20.0], [0.3, 0.8, 10.0]])
    out = faces.sample(ramp, matrix, (40, 40))
    v, u = np.mgrid[0:40, 0:40] + 0.5
    x = matrix[0, 0] * u + matrix[0, 1] * v + matrix[0, 2] - 0.5
    y = matrix[1, 0] * u + matrix[1, 1] * v + matrix[1, 2] - 0.5
    np.testing.assert_allclose(out, x + 2 * y, atol=1e-3)
    photo = ramp.astype(np.uint8)[..., None].repeat(3, -1)
    warped = faces.warp(photo, matrix, 40)  # scale 0.85: one step, no box filter
    error = warped[..., 1] - (x + 2 * y)
    assert -1 < error.min() and error.max() <= 0  # PIL's 8-bit resampling truncates


def test_white_background_blends_by_the_mask():
    face = np.array([[[10, 20, 30], [200, 100, 0]]], np.uint8)
    mask = np.array([[1.0, 0.25]])
    np.testing.assert_array_equal(faces.white_background(face, mask),
                                  [[[10, 20, 30], [241, 216, 191]]])  # 0.25·x + 0.75·255


def test_pasting_the_crop_back_restores_the_photo(astronaut_face):
    photo = data.astronaut()
    crop = faces.align_face(photo, astronaut_face, 256)
    assert crop.shape == (256, 256, 3)
    pasted = faces.paste_back(photo, crop, astronaut_face)
    diff = np.abs(pasted.astype(int) - photo.astype(int))
    assert np.median(diff[60:200, 170:280]) <= 3  # the face: resampled twice, about the same
    assert diff[400:, :].max() == 0 and diff[:, :100].max() == 0  # far from the crop: untouched
    inverted = faces.paste_back(photo, 255 - crop, astronaut_face)
    assert np.abs(inverted[110:150, 200:250].astype(int) - 255 + photo[110:150, 200:250]).mean() < 8


def test_prepare_faces_writes_the_face_and_counts_the_rest(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "faces"
    assert main(["prepare-faces", "--input", str(photos), "--output", str(out), "--size", "128"]) == 0
    captured = capsys.readouterr()
    assert "wrote 1 face(s)" in captured.out and "no face in 1" in captured.out and "skipped 1" in captured.out
    assert "no face in " + str(photos / "chelsea.png") in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.png"]
    crop = np.asarray(Image.open(out / "astronaut.png"))
    assert crop.shape == (128, 128, 3)
    assert crop[:8, :8].min() < 240  # the studio backdrop is kept without --white-background
    assert main(["prepare-faces", "--input", str(photos / "chelsea.png"), "--output", str(out)]) == 2
    assert "no face found" in capsys.readouterr().err


def test_white_background_with_the_selfie_segmentation(tmp_path, capsys):
    package = human_models()
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    out = tmp_path / "faces"
    assert main(["prepare-faces", "--input", str(tmp_path / "astronaut.png"), "--output", str(out),
                 "--white-background", package]) == 0
    crop = np.asarray(Image.open(out / "astronaut.png")).astype(int)
    assert crop[:20, :20].min() >= 250 and crop[:20, -20:].min() >= 250  # backdrop: white
    plain = faces.align_face(data.astronaut(), faces.FaceDetector()(data.astronaut())[0], 256).astype(int)
    assert np.abs(crop[100:160, 100:160] - plain[100:160, 100:160]).max() <= 3  # the face: kept
