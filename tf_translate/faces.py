"""Face preparation for selfie-to-anime: detect, align and crop faces as photo2cartoon's
data preparation does, optionally on a white background, and paste translations back.

Detection is MTCNN (Zhang et al., 2016) from the `mtcnn` package (1.0.0, MIT; TensorFlow
P/R/O-Nets whose weights it ships): a box and 5 landmarks (eye centres, nose tip, mouth
corners) per face. photo2cartoon aligns with dlib's 68 landmarks instead; the 68-point box
that its crop rule needs is estimated from the 5 points through the mean 68-point face
(see `TEMPLATE`).

Reference: minivision-ai/photo2cartoon `utils/preprocess.py` (`Preprocess.__crop`),
`utils/face_detect.py` (`FaceDetect.__rotate`), `data_process.py` (white background).
"""

import os
import sys

import numpy as np
from PIL import Image

# The mean 68-landmark face (dlib's iBUG layout, as OpenFace's align_dlib TEMPLATE) in
# units of the eye-centre distance, origin between the eye centres, y down, made
# left-right symmetric: its 5 MTCNN points (eye centres = means of points 36-41 and
# 42-47, nose tip 30, mouth corners 48 and 54) ...
TEMPLATE = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.595], [-0.453, 1.090], [0.453, 1.090]])
# ... and the box of all 68 points (jaw to jaw, eyebrows to chin): left, top, right, bottom.
TEMPLATE_BOX = (-1.166, -0.375, 1.166, 1.922)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image left/right


def reference_crop(box):
    """The reference's crop square (left, top, side) around a landmark box.

    The box grows by 0.8 of its height above, 0.3 below and 0.3 of its width each side,
    then the shorter side grows to the longer, centred (`Preprocess.__crop`).
    """
    left, top, right, bottom = box
    height, width = bottom - top, right - left
    top, bottom = top - 0.8 * height, bottom + 0.3 * height
    left, right = left - 0.3 * width, right + 0.3 * width
    side = max(bottom - top, right - left)
    return (left + right - side) / 2, (top + bottom - side) / 2, side


CROP = reference_crop(TEMPLATE_BOX)  # in template units: eyes at 46% of the height, 52 px apart at 256


def similarity_transform(source, target):
    """The 2x3 rotation-scale-translation M (no reflection) minimising
    Σ |M [s; 1] − t|² over the point pairs (Umeyama, 1991)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, singular, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(singular) @ d) / s.var(0).sum()
    return np.hstack([scale * rotation, (mu_t - scale * rotation @ mu_s)[:, None]])


class Face:
    """One detected face: box (x, y, width, height), confidence, and landmarks [5, 2] in
    pixel coordinates (x, y) of the photo, in LANDMARK_NAMES order."""

    def __init__(self, box, confidence, landmarks):
        self.box = tuple(float(v) for v in box)
        self.confidence = float(confidence)
        self.landmarks = np.asarray(landmarks, np.float64)

    @property
    def area(self):
        return self.box[2] * self.box[3]

    def crop_matrix(self, size):
        """2x3 affine map from pixel coordinates of the aligned size x size crop to the
        photo's: rotated so the face is upright, scaled and placed by the reference rule."""
        to_photo = similarity_transform(TEMPLATE, self.landmarks)
        left, top, side = CROP
        unit = side / size
        from_crop = np.array([[unit, 0.0, left], [0.0, unit, top], [0.0, 0.0, 1.0]])
        return to_photo @ from_crop

    def __repr__(self):
        return f"Face(box={self.box}, confidence={self.confidence:.3f})"


class FaceDetector:
    """MTCNN on uint8 RGB photos -> faces, largest first.

    Args:
        min_confidence: faces scoring below are dropped (the O-Net's score).
    """

    def __init__(self, min_confidence=0.9):
        try:
            from mtcnn import MTCNN
        except ImportError as error:  # one line (the CLI's), naming what is really missing
            missing = getattr(error, "name", None)
            if missing in (None, "mtcnn"):
                raise ValueError("face detection needs the mtcnn package: pip install 'tf_translate[face]'") from None
            raise ValueError(f"the mtcnn package is installed but cannot import {missing!r} ({error}): "
                             f"pip install {missing.split('.')[0]}") from None
        self.min_confidence = min_confidence
        self.mtcnn = MTCNN(device="CPU:0")

    def __call__(self, photo):
        if photo.ndim != 3 or photo.shape[2] != 3 or min(photo.shape[:2]) < 12:
            return []
        faces = []
        for found in self.mtcnn.detect_faces(np.ascontiguousarray(photo)):
            if found["confidence"] < self.min_confidence:
                continue
            points = found["keypoints"]
            # MTCNN gives integer pixel indices; +0.5 makes them coordinates of pixel centres.
            landmarks = [np.asarray(points[name], np.float64) + 0.5 for name in LANDMARK_NAMES]
            faces.append(Face(found["box"], found["confidence"], landmarks))
        return sorted(faces, key=lambda face: -face.area)


def warp(image, matrix, size, fill=(255, 255, 255), resample=Image.BILINEAR):
    """`image` sampled at `matrix` @ [x, y, 1] for each pixel centre of a size x size output.

    A crop much smaller than its source region is warped at the region's resolution and
    then box-filtered down (the reference rotates at full size and resizes with INTER_AREA),
    which avoids the aliasing of sampling a large photo at a few points.
    """
    image = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    native = int(round(size * scale))
    if native > size:
        fine = matrix @ np.diag([size / native, size / native, 1.0])
        return np.asarray(Image.fromarray(warp(image, fine, native, fill, resample)).resize((size, size), Image.BOX))
    # PIL samples its input at M @ (x + 0.5, y + 0.5) in coordinates where pixel centres
    # sit at +0.5, the convention used here.
    data = tuple(matrix[0]) + tuple(matrix[1])
    return np.asarray(image.transform((size, size), Image.AFFINE, data, resample=resample, fillcolor=fill))


def align_face(photo, face, size=256):
    """The aligned size x size uint8 crop of `face` in `photo`; outside the photo is white
    (the reference pads its crop with 255)."""
    return warp(photo, face.crop_matrix(size), size)


def white_background(face, mask):
    """face · mask + 255 · (1 − mask), uint8 (the reference's `data_process.py`)."""
    mask = np.asarray(mask, np.float32)[..., None]
    return np.clip(np.round(face * mask + 255.0 * (1.0 - mask)), 0, 255).astype(np.uint8)


def feather(size, width=0.08):
    """[size, size] weights: 1 inside, falling to 0 over the outer `width` of each side (cosine)."""
    ramp = max(1, int(round(size * width)))
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5
    edge = np.where(distance < ramp, 0.5 - 0.5 * np.cos(np.pi * distance / ramp), 1.0)
    return np.outer(edge, edge)


def paste_back(photo, translated, face, mask=None):
    """`photo` with the translated aligned crop of `face` warped back into place.

    The crop's edges are feathered into the photo; `mask` ([S, S] in [0, 1], e.g. the
    person segmentation of the crop) limits the pasted pixels further.
    """
    size = translated.shape[0]
    to_photo = np.vstack([face.crop_matrix(size), [0.0, 0.0, 1.0]])
    to_crop = np.linalg.inv(to_photo)[:2]
    height, width = photo.shape[:2]
    # Only the photo region the crop covers is resampled.
    corners = to_photo[:2] @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]], np.float64)
    x0, y0 = np.maximum(np.floor(corners.min(1)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int), [width, height])
    if x1 <= x0 or y1 <= y0:
        return photo.copy()
    weights = feather(size) if mask is None else feather(size) * np.asarray(mask, np.float64)
    region = to_crop @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    layers = np.dstack([translated.astype(np.float32), (weights * 255).astype(np.float32)])
    warped = [sample(layers[..., c], region, (x1 - x0, y1 - y0)) for c in range(4)]
    alpha = warped[3][..., None] / 255.0
    out = photo.astype(np.float32).copy()
    out[y0:y1, x0:x1] = np.stack(warped[:3], -1) * alpha + out[y0:y1, x0:x1] * (1.0 - alpha)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def sample(channel, matrix, size):
    """One float channel sampled bilinearly at `matrix` @ [x, y, 1] (0 outside)."""
    data = tuple(matrix[0]) + tuple(matrix[1])
    return np.asarray(Image.fromarray(channel, mode="F").transform(size, Image.AFFINE, data, resample=Image.BILINEAR))


def segmenter(source):
    """The person segmentation (`face_model.PersonSegmenter`) of the npm package at `source`."""
    from tf_translate.face_model import PersonSegmenter
    return PersonSegmenter(source)


def prepare_faces(input_path, output, size=256, background=None, detector=None, log=print):
    """Writes the aligned face crop of the largest face of each photo to `output`/NAME.png.

    Args:
        input_path: an image or a folder of images.
        output: the output folder (created).
        size: crop side in pixels (the reference trains at 256).
        background: None to keep it, or a `PersonSegmenter` to make it white.
        detector: a FaceDetector (default: a new one).
    Returns:
        {"written": [paths], "no_face": [inputs], "skipped": [(input, reason)]}.
    """
    from tf_translate.data import check_images, read_rgb
    from tf_translate.files import (DiskFullError, check_no_overwrite, input_paths, one_line, output_names,
                                    write_atomically)

    paths = input_paths(input_path)
    if size < 16:
        raise ValueError(f"--size must be at least 16, got {size}")
    targets = [os.path.join(output, name) for name in output_names(paths)]
    check_no_overwrite(targets, paths, output)
    detector = detector or FaceDetector()
    good, bad = check_images(paths)
    report = {"written": [], "no_face": [], "skipped": list(bad)}
    os.makedirs(output, exist_ok=True)
    for path, target in zip(paths, targets):
        if path not in good:
            continue
        try:
            photo = read_rgb(path)
            faces = detector(photo)
            if not faces:
                report["no_face"].append(path)
                continue
            face = align_face(photo, faces[0], size)
            if background is not None:
                face = white_background(face, background(face))
            write_atomically(target, lambda file: Image.fromarray(face).save(file, format="PNG"))
            report["written"].append(target)
        except DiskFullError:
            raise
        except Exception as error:  # Pillow and TensorFlow raise many types; name the file, go on
            report["skipped"].append((path, one_line(error)))
    for path in report["no_face"]:
        log(f"tf_translate: no face in {path}", file=sys.stderr)
    for path, reason in report["skipped"]:
        log(f"tf_translate: skipped {path}: {reason}", file=sys.stderr)
    return report
