"""Selfie-to-anime measurements on photographs that ship offline (skimage.data): face
detection rate, identity similarity through a briefly trained photo2cartoon light
generator, and the phone pipeline's latency per TFLite format.

    python benchmarks/faces.py --human-models ~/.cache/tf_translate/human-models-3.0.4

Detection: MTCNN (`tf_translate.faces.FaceDetector`) on the astronaut and on skimage's
`lfw_subset` (100 LFW faces and 100 non-face patches, 25x25 grayscale, upscaled to
100x100 with 30 px of edge padding so the face is not the whole picture).
Identity: cosine of HSE FaceRec descriptors (the converted face model, on the loss's own
112x112 `face_crop`) between each test face and its translation, untrained and after
`--steps` photo2cartoon steps (A: LFW faces, B: the same faces posterised, a stand-in
cartoon domain, since no anime data ships offline), face-identity loss on.
Latency: examples/selfie2anime_tflite.py's stages on the astronaut photo (detect, align,
translate, paste back) with a photo2cartoon light generator exported at 256 px.

Run it alone on the machine: two heavy jobs on 2 cores make the timings worthless.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from PIL import Image, ImageFilter


def lfw_photos():
    """(100 faces, 100 non-faces) as RGB uint8 160x160 photos."""
    from skimage import data
    images = (data.lfw_subset() * 255).astype(np.uint8)
    photos = [np.asarray(Image.fromarray(x).resize((100, 100), Image.BICUBIC).convert("RGB")) for x in images]
    photos = [np.pad(x, ((30, 30), (30, 30), (0, 0)), mode="edge") for x in photos]
    return photos[:100], photos[100:]


def detection(detector):
    from skimage import data
    faces, others = lfw_photos()
    found = [bool(detector(x)) for x in faces]
    false = [bool(detector(x)) for x in others]
    astronaut = detector(data.astronaut())
    return [("astronaut (512x512 RGB)", f"{len(astronaut)} face, eyes at "
             + ", ".join(f"({x:.0f}, {y:.0f})" for x, y in astronaut[0].landmarks[:2]) if astronaut else "missed"),
            ("LFW faces found", f"{sum(found)} / {len(found)}"),
            ("LFW non-faces with a 'face'", f"{sum(false)} / {len(false)}")]


def posterise(faces):
    """The stand-in cartoon domain: smoothed, 4 levels per channel, in [-1, 1]."""
    out = []
    for x in faces:
        smooth = np.asarray(Image.fromarray(x).filter(ImageFilter.ModeFilter(5)), np.float32)
        out.append(np.round(smooth / 255 * 3) / 3 * 2 - 1)
    return np.stack(out).astype(np.float32)


def identity(face_model, steps, size):
    from tf_translate import build_model
    from tf_translate.models.photo2cartoon import FaceEmbedder, cosine_distance, face_crop

    faces, _ = lfw_photos()
    faces = [np.asarray(Image.fromarray(x[30:130, 30:130]).resize((size, size), Image.BICUBIC)) for x in faces]
    photos = np.stack(faces).astype(np.float32) / 127.5 - 1
    train, test = photos[:80], photos[80:]
    cartoons = posterise(faces[:80])
    embed = FaceEmbedder(face_model)
    similarity = lambda x, y: 1 - cosine_distance(embed(face_crop(x)), embed(face_crop(y))).numpy()
    model = build_model("photo2cartoon", image_size=size, filters=16, discriminator_filters=16, global_layers=5,
                        local_layers=4, face_model=face_model, seed=0)
    model.compile(jit_compile=False)
    rows = [("input vs itself, mirrored", similarity(test, test[:, :, ::-1])),
            ("input vs another LFW person", similarity(test, np.roll(test, 1, axis=0)))]
    rows.append(("input vs untrained G_AB(input)", similarity(test, model.generator_ab(test)[0])))
    rng = np.random.default_rng(0)
    start, logs = time.perf_counter(), {}
    for _ in range(steps):
        logs = model.train_on_batch(train[rng.integers(80, size=1)], cartoons[rng.integers(80, size=1)],
                                    return_dict=True)
    seconds = time.perf_counter() - start
    rows.append((f"input vs G_AB(input) after {steps} steps", similarity(test, model.generator_ab(test)[0])))
    return [(name, f"{np.mean(s):.3f} (min {np.min(s):.3f})") for name, s in rows], logs, seconds, model


def latency(generator, size, formats, repeats):
    from skimage import data

    from tf_translate.export import TFLiteTranslator, export_tflite
    from tf_translate.faces import FaceDetector, align_face, paste_back

    photo = data.astronaut()
    detector = FaceDetector()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for quantize in formats:
            path = os.path.join(folder, f"{quantize}.tflite")
            export_tflite(generator, path, size, quantize=quantize)
            translator = TFLiteTranslator(path)
            stages = {"detect": [], "align": [], "translate": [], "paste": []}
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                face = detector(photo)[0]
                t1 = time.perf_counter()
                crop = align_face(photo, face, size)
                t2 = time.perf_counter()
                cartoon = translator(crop)[0]
                t3 = time.perf_counter()
                paste_back(photo, cartoon, face)
                t4 = time.perf_counter()
                if i:  # the first run warms up
                    for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                        stages[name].append(seconds * 1000)
            median = {name: statistics.median(v) for name, v in stages.items()}
            rows.append((quantize, os.path.getsize(path) / 1e6, median, sum(median.values())))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--human-models", default=os.path.expanduser("~/.cache/tf_translate/human-models-3.0.4"))
    parser.add_argument("--steps", type=int, default=200, help="photo2cartoon training steps for the identity rows")
    parser.add_argument("--train-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="phone pipeline crop / model size")
    parser.add_argument("--formats", default="none,fp16,int8")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from tf_translate.face_model import convert_face_model
    from tf_translate.faces import FaceDetector
    from tf_translate.models.photo2cartoon import Photo2CartoonGenerator

    print("| detection (MTCNN) | result |\n|---|---|")
    for name, value in detection(FaceDetector()):
        print(f"| {name} | {value} |")

    face_model = convert_face_model(args.human_models, os.path.join(tempfile.mkdtemp(), "faceres"))
    rows, logs, seconds, _ = identity(face_model, args.steps, args.train_size)
    print(f"\n| identity: HSE FaceRec cosine, 20 held-out LFW faces ({args.train_size} px) | mean (min) |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n{args.steps} steps in {seconds:.0f} s; last face_id_loss {float(logs.get('face_id_loss', 0)):.3f}, "
          f"cycle_loss {float(logs.get('cycle_loss', 0)):.3f}")

    generator = Photo2CartoonGenerator(filters=32, image_size=args.size, light=True)
    generator.build((None, args.size, args.size, 3))
    print(f"\n| phone pipeline, {args.size} px photo2cartoon light | MB | detect ms | align ms | translate ms "
          "| paste ms | total ms |\n|---|---|---|---|---|---|---|")
    for quantize, size, median, total in latency(generator, args.size, args.formats.split(","), args.repeats):
        print(f"| {quantize} | {size:.1f} | " + " | ".join(f"{median[k]:.0f}" for k in median) + f" | {total:.0f} |")


if __name__ == "__main__":
    main()
