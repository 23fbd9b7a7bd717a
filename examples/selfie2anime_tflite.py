"""Selfie to anime on the phone's runtime: a photo in, the photo with an anime face out,
through a .tflite file only.

    tf-translate export --run-dir runs/selfie2anime --format tflite --quantize fp16 \\
        --image-size 256 --output selfie2anime.tflite
    python examples/selfie2anime_tflite.py --model selfie2anime.tflite --input me.jpg --output me_anime.png

The model is any generator exported with `--format tflite` and the default uint8 io:
its one signature, `serving_default`, takes `images`, uint8 RGB [1, S, S, 3] with pixels
0-255 as they come from the camera, and returns `images` of the same shape and type.
Scaling to [-1, 1] and back happens inside the file, so an app does no arithmetic: it
crops, runs, and shows the result. (An app that wants to do the scaling itself exports
with `--io float`: float32 in [-1, 1] in and out.)

Selfie-to-anime models are trained on faces framed as photo2cartoon's data preparation
frames them, so the example frames the photo the same way as `tf-translate prepare-faces`
(`tf_translate.faces`, `pip install 'tf_translate[face]'`, everything offline): MTCNN finds
the largest face and its eyes, nose and mouth; the face is cropped upright, with hair and
chin, straight to S x S; the model translates the crop; and the cartoon is rotated and
scaled back into the photo with feathered edges. `--face-only` writes the S x S cartoon
instead. With `--no-face`, without mtcnn, or when no face is found, the centre square of
the photo is translated and written.

Only the TFLite runtime runs the model: LiteRT (`ai-edge-litert`) when installed, else
TensorFlow's `tf.lite.Interpreter`.
"""

import argparse
import sys

import numpy as np
from PIL import Image


def face_detector():
    """`tf_translate.faces.FaceDetector` (MTCNN), or None with a note naming the missing
    extra when mtcnn is not installed."""
    try:
        from tf_translate.faces import FaceDetector
        return FaceDetector()
    except ValueError as error:  # the face extra is missing: say so, translate the centre
        print(f"note: {error}; translating the centre square instead", file=sys.stderr)
        return None


def centre_square(photo):
    """(left, top, side) of the largest centred square."""
    height, width = photo.shape[:2]
    side = min(height, width)
    return (width - side) // 2, (height - side) // 2, side


def cartoonize(model_path, photo, use_face_detector=True, face_only=False):
    """(picture uint8, the face or None) for an RGB photo: the photo with the cartoon face
    pasted in (or the S x S cartoon with `face_only`); without a face, the cartoon of the
    centre square."""
    from tf_translate.export import TFLiteTranslator
    from tf_translate.faces import align_face, paste_back

    translator = TFLiteTranslator(model_path)
    if translator.input_dtype != np.uint8:
        raise ValueError(f"{model_path!r} takes float input; export it with the default --io uint8")
    size = translator.image_size
    detect = face_detector() if use_face_detector else None
    faces = detect(photo) if detect else []
    if not faces:
        left, top, side = centre_square(photo)
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BICUBIC)
        return translator(np.asarray(crop))[0], None
    face = faces[0]
    cartoon = translator(align_face(photo, face, size))[0]
    return (cartoon if face_only else paste_back(photo, cartoon, face)), face


def main(argv=None):
    parser = argparse.ArgumentParser(description="photo in, photo with an anime face out, through a TFLite file")
    parser.add_argument("--model", required=True, help="a .tflite file exported with uint8 io")
    parser.add_argument("--input", required=True, help="the photo")
    parser.add_argument("--output", required=True, help="the result (PNG)")
    parser.add_argument("--face-only", action="store_true", help="write the S x S cartoon of the face, not the photo")
    parser.add_argument("--no-face", action="store_true", help="translate the centre square, no face search")
    args = parser.parse_args(argv)

    with Image.open(args.input) as image:
        photo = np.asarray(image.convert("RGB"))
    picture, face = cartoonize(args.model, photo, use_face_detector=not args.no_face, face_only=args.face_only)
    Image.fromarray(picture).save(args.output)
    if face is None:
        print(f"{args.output}: {picture.shape[1]}x{picture.shape[0]} cartoon of the centre square "
              + ("(--no-face)" if args.no_face else "(no face found)"))
    else:
        x, y, w, h = (int(round(v)) for v in face.box)
        print(f"{args.output}: {picture.shape[1]}x{picture.shape[0]}, the face at ({x}, {y}, {w}x{h}) "
              + ("as a cartoon" if args.face_only else "replaced by its cartoon"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
