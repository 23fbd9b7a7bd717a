"""Selfie to anime on the phone's runtime: a photo in, a cartoon out, through a .tflite file only.

    tf-translate export --run-dir runs/selfie2anime --format tflite --quantize fp16 \\
        --image-size 256 --output selfie2anime.tflite
    python examples/selfie2anime_tflite.py --model selfie2anime.tflite --input me.jpg --output me_anime.png

The model is any generator exported with `--format tflite` and the default uint8 io:
its one signature, `serving_default`, takes `images`, uint8 RGB [1, S, S, 3] with pixels
0-255 as they come from the camera, and returns `images` of the same shape and type.
Scaling to [-1, 1] and back happens inside the file, so an app does no arithmetic: it
crops, resizes to S x S, runs, and shows the result. (An app that wants to do the
scaling itself exports with `--io float`: float32 in [-1, 1] in and out.)

Selfie-to-anime models are trained on faces framed like a passport photo with some
hair and neck. When OpenCV is installed (`pip install 'tf_translate[face]'`, which brings
`opencv-python-headless` 4.x and its bundled Haar cascades; everything is offline) the
largest frontal face is found and a square around it, enlarged to include hair and
chin, is translated. Without OpenCV, or when no face is found, the centre square of the
whole image is used.

Only the TFLite runtime runs the model: LiteRT (`ai-edge-litert`) when installed, else
TensorFlow's `tf.lite.Interpreter`.
"""

import argparse
import sys

import numpy as np
from PIL import Image

# How much larger than the detected face box the crop is, and how far (in face heights)
# its centre sits above the box centre: hair on top, chin and some neck below.
FACE_MARGIN = 1.8
FACE_SHIFT_UP = 0.1


def face_detector():
    """OpenCV's bundled frontal-face Haar cascade, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # OpenCV 5 wheels no longer ship the cascades
        return None

    def detect(rgb):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        smallest = max(24, min(gray.shape) // 10)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
        return [tuple(int(v) for v in face) for face in faces]  # (x, y, width, height)

    return detect


def crop_box(image_shape, faces):
    """The square (left, top, side) to translate: around the largest face, else the centre."""
    height, width = image_shape[:2]
    if not faces:
        side = min(height, width)
        return (width - side) // 2, (height - side) // 2, side
    x, y, w, h = max(faces, key=lambda face: face[2] * face[3])
    side = min(int(round(max(w, h) * FACE_MARGIN)), height, width)
    centre_x, centre_y = x + w / 2, y + h / 2 - FACE_SHIFT_UP * h
    left = int(round(min(max(centre_x - side / 2, 0), width - side)))
    top = int(round(min(max(centre_y - side / 2, 0), height - side)))
    return left, top, side


def cartoonize(model_path, photo, use_face_detector=True):
    """(cartoon uint8 [S, S, 3], crop box, whether a face was found) for an RGB photo."""
    from tf_translate.export import TFLiteTranslator

    translator = TFLiteTranslator(model_path)
    if translator.input_dtype != np.uint8:
        raise ValueError(f"{model_path!r} takes float input; export it with the default --io uint8")
    detect = face_detector() if use_face_detector else None
    faces = detect(photo) if detect else []
    left, top, side = crop_box(photo.shape, faces)
    crop = Image.fromarray(photo[top:top + side, left:left + side])
    size = translator.image_size
    cartoon = translator(np.asarray(crop.resize((size, size), Image.BICUBIC)))[0]
    return cartoon, (left, top, side), bool(faces)


def main(argv=None):
    parser = argparse.ArgumentParser(description="photo in, cartoon out, through a TFLite file")
    parser.add_argument("--model", required=True, help="a .tflite file exported with uint8 io")
    parser.add_argument("--input", required=True, help="the photo")
    parser.add_argument("--output", required=True, help="the cartoon (PNG)")
    parser.add_argument("--no-face", action="store_true", help="translate the centre square, no face search")
    args = parser.parse_args(argv)

    with Image.open(args.input) as image:
        photo = np.asarray(image.convert("RGB"))
    cartoon, (left, top, side), found = cartoonize(args.model, photo, use_face_detector=not args.no_face)
    Image.fromarray(cartoon).save(args.output)
    where = "around the face" if found else "centre square (no face found or no detector)"
    print(f"{args.output}: {cartoon.shape[1]}x{cartoon.shape[0]} cartoon of the {side}x{side} crop "
          f"at ({left}, {top}), {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
