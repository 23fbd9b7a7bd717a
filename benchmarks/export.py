"""Export table: file size, error against Keras float32 and latency per generator and format,
beside the PyTorch reference generator's eager inference, in one run.

    python benchmarks/export.py                      # CycleGAN at 256 px
    python benchmarks/export.py --models cyclegan ugatit_light stargan photo2cartoon

For each generator: the Keras generator in a `tf.function`, the SavedModel as TF Serving
runs it (`tf.saved_model.load`, the `translate_float` signature: any size, padding inside)
every TFLite format (float32, fp16 weights, int8 dynamic range, int8-full) exported
with float [-1, 1] io at a fixed size and run with the TFLite interpreter, and the ONNX
file (float io, any size) run by ONNX Runtime when the `onnx` extra is installed, all on real
photographs from scikit-image. Errors are against the Keras float32 output: max abs (in
[-1, 1] units; x127.5 for grey levels) and PSNR over the [-1, 1] range (peak-to-peak 2).
Latency is the median of `--runs` single-image calls after warm-up, on `--threads`
threads (default: all cores). The PyTorch row runs `benchmarks/torch_step.py --mode infer`
(the reference generator re-stated in tests/, `eval()` and `torch.no_grad()`) in a
subprocess on the same threads, after the TF rows, and every row gets its ratio to it.

CycleGAN uses the trained vintagify generator (imported from PyTorch) when torch and
vintagify are installed, random initial weights otherwise; the others use random
initial weights (errors on untrained weights are only indicative). StarGAN translates
to the first domain. Full U-GAT-IT (`ugatit`) is 279 M parameters at 256 px: run it at
128 px or below. Calibration images
for int8-full are different photographs from the evaluated ones.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

EVALUATED = ("astronaut", "coffee", "chelsea")
CALIBRATION = ("rocket", "cat", "stereo_motorcycle", "camera", "immunohistochemistry", "hubble_deep_field")
FORMATS = ("none", "fp16", "int8", "int8-full", "onnx")  # TFLite quantization modes, and ONNX


def photographs(names, size):
    from skimage import data

    images = []
    for name in names:
        array = getattr(data, name)()
        array = array[0] if isinstance(array, tuple) else array  # stereo pair: the left image
        images.append(np.asarray(Image.fromarray(array).convert("RGB").resize((size, size), Image.BICUBIC)))
    return images


def cyclegan(image_size):
    spec = importlib.util.find_spec("vintagify")
    if spec is not None and importlib.util.find_spec("torch") is not None:
        from tf_translate.torch_import import import_generator

        path = os.path.join(os.path.dirname(spec.origin), "resources", "G_A2B_epoch33.pth")
        return import_generator("cyclegan", path), "vintagify G_A2B_epoch33 (trained)"
    from tf_translate.models import ResNetGenerator

    return ResNetGenerator(), "random init"


def ugatit(light):
    def make(image_size):
        from tf_translate.models.ugatit import UGATITGenerator

        return UGATITGenerator(image_size=image_size, light=light), "random init"
    return make


def photo2cartoon(image_size):
    from tf_translate.models.photo2cartoon import Photo2CartoonGenerator

    return Photo2CartoonGenerator(image_size=image_size), "random init"


def stargan(image_size):
    from tf_translate.models.stargan import StarGANGenerator

    return StarGANGenerator(), "random init; target label (1, 0, 0, 0, 0)"


GENERATORS = {"cyclegan": cyclegan, "ugatit_light": ugatit(True), "ugatit": ugatit(False),
              "photo2cartoon": photo2cartoon, "stargan": stargan}


def median_seconds(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_seconds(name, size, threads, runs):
    """The PyTorch reference generator's median eager forward pass, or None without torch."""
    if importlib.util.find_spec("torch") is None:
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_step.py")
    done = subprocess.run([sys.executable, script, "--mode", "infer", "--model", name, "--size", str(size),
                           "--threads", str(threads), "--iters", str(runs)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["sec_per_iter_median"]


def onnx_row(generator, path, evaluated, expected, label, args):
    """The ONNX file (float io) run by ONNX Runtime's CPU provider on `args.threads` threads."""
    import onnxruntime

    from tf_translate.export_onnx import export_onnx

    file_size = export_onnx(generator, path, io="float")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(["translated"], {"images": x, **({"labels": label} if label is not None else {})})[0]
    out = np.concatenate([run(image[None]) for image in evaluated])
    return ("onnx (onnxruntime cpu)", file_size, float(np.abs(out - expected).max()), psnr(out, expected),
            median_seconds(lambda: run(evaluated[:1]), args.runs))


def psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cyclegan"], choices=sorted(GENERATORS))
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=[
        name for name in FORMATS if name != "onnx" or importlib.util.find_spec("tf2onnx")])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference rows")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from tf_translate.export import TFLiteTranslator, export_saved_model, export_tflite, first_output, label_size

    keras.utils.set_random_seed(0)
    size = args.image_size
    evaluated = np.stack(photographs(EVALUATED, size)).astype(np.float32) / 127.5 - 1.0
    calibration = photographs(CALIBRATION, size)
    print(f"Export at {size}x{size}, float io; {len(EVALUATED)} evaluated photographs "
          f"({', '.join(EVALUATED)}), {len(CALIBRATION)} calibration photographs; "
          f"{args.threads} threads, median of {args.runs} runs; TF {tf.__version__}, {time.strftime('%Y-%m-%d')}")
    for name in args.models:
        generator, weights = GENERATORS[name](size)
        labels = label_size(generator)
        label = np.eye(labels, dtype=np.float32)[:1] if labels else None  # the first domain
        if not generator.built:
            generator.build([(None, size, size, 3), (None, labels)] if labels else (None, size, size, 3))
        call = tf.function(lambda x: first_output(generator([x, label] if labels else x, training=False)))
        expected = np.concatenate([call(image[None]).numpy() for image in evaluated])
        rows = [("keras float32 (tf.function)", None, 0.0, float("inf"),
                 median_seconds(lambda: call(evaluated[:1]).numpy(), args.runs))]
        with tempfile.TemporaryDirectory() as folder:
            loaded = tf.saved_model.load(export_saved_model(generator, os.path.join(folder, "saved")))
            serve = loaded.signatures["translate_float"]
            feeds = lambda x: {"images": tf.constant(x), **({"labels": tf.constant(label)} if labels else {})}
            out = np.concatenate([serve(**feeds(image[None]))["images"].numpy() for image in evaluated])
            rows.append(("savedmodel (translate_float)", None, float(np.abs(out - expected).max()),
                         psnr(out, expected),
                         median_seconds(lambda: serve(**feeds(evaluated[:1]))["images"].numpy(), args.runs)))
            for quantize in args.formats:
                if quantize == "onnx":
                    rows.append(onnx_row(generator, os.path.join(folder, f"{name}.onnx"), evaluated, expected,
                                         label, args))
                    continue
                path = os.path.join(folder, f"{name}_{quantize}.tflite")
                file_size = export_tflite(generator, path, size, quantize=quantize, io="float",
                                          representative_images=calibration)
                translator = TFLiteTranslator(path, num_threads=args.threads)
                out = np.concatenate([translator(image[None], label) for image in evaluated])
                rows.append((f"tflite {quantize}", file_size, float(np.abs(out - expected).max()),
                             psnr(out, expected),
                             median_seconds(lambda: translator(evaluated[:1], label), args.runs)))
        reference = None if args.no_torch else torch_seconds(name, size, args.threads, args.runs)
        print(f"\n{name} ({weights}, {generator.count_params():,} parameters)")
        print("| format | file MB | max abs error | grey levels | PSNR dB | median ms | x PyTorch |")
        print("|---|---|---|---|---|---|---|")
        for label_text, file_size, worst, quality, seconds in rows:
            ratio = f"{seconds / reference:.2f}" if reference else "-"
            megabytes = "-" if file_size is None else f"{file_size / 1e6:.1f}"
            print(f"| {label_text} | {megabytes} | {worst:.2e} | {worst * 127.5:.1f} | {quality:.1f} | "
                  f"{seconds * 1e3:.0f} | {ratio} |")
        if reference:
            print(f"| pytorch eager (eval, no_grad) | - | - | - | - | {reference * 1e3:.0f} | 1.00 |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
