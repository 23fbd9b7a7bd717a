"""The `tf-translate` command: argparse only; errors become one-line messages."""

import argparse
import os
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tf-translate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small CycleGAN on built-in data and report")
    demo.add_argument("--run-dir", default="demo_run")
    demo.add_argument("--steps", type=int, default=1200)
    demo.add_argument("--image-size", type=int, default=48)

    train = commands.add_parser("train", help="train a model on image folders")
    train.add_argument("--model", required=True)
    train.add_argument("--data", required=True, nargs="+",
                       help="DIR with trainA/trainB, or two folders (domain A, domain B); stargan: "
                       "a CelebA folder (list_attr_celeba.txt) or one sub-folder per domain, two "
                       "folders for multi-dataset training")
    train.add_argument("--attr-file", help="stargan: the CelebA attribute file (default DIR/list_attr_celeba.txt)")
    train.add_argument("--attrs", nargs="+", help="stargan: CelebA attributes, space- or comma-separated "
                       "(default Black_Hair Blond_Hair Brown_Hair Male Young)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--image-size", type=int, default=256)
    train.add_argument("--load-size", type=int, help="resize before the random crop (default 286/256 x size)")
    train.add_argument("--batch-size", type=int, default=1)
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int)
    length.add_argument("--epochs", type=int, help="default 200 (the reference's 100 + 100)")
    train.add_argument("--precision", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    train.add_argument("--no-xla", action="store_true", help="do not compile the train step with XLA")
    train.add_argument("--eager", action="store_true",
                       help="run the train step op by op in Python, to debug it (slow; no tracing)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    train.add_argument("--checkpoint-every", type=int, default=1000)
    train.add_argument("--sample-every", type=int, default=500)
    train.add_argument("--seed", type=int)
    train.add_argument("--face-model", help="photo2cartoon: frozen face-recognition model (.keras file or "
                       "SavedModel directory; 112x112 [-1, 1] faces -> embeddings) for the face-identity loss")

    translate = commands.add_parser("translate", help="translate images with a trained run")
    translate.add_argument("--run-dir", required=True)
    translate.add_argument("--input", required=True, help="an image or a folder of images")
    translate.add_argument("--output", required=True, help="folder for the translated images")
    translate.add_argument("--direction", help="which generator (default: the model's first, a2b)")
    target = translate.add_mutually_exclusive_group()
    target.add_argument("--attrs", nargs="+", help="stargan: target attributes (1; all others 0), "
                        "space- or comma-separated, e.g. Blond_Hair,Young")
    target.add_argument("--domain", help="stargan: the target domain")

    export = commands.add_parser("export", help="export a generator as a SavedModel (TF Serving) or TFLite file")
    export.add_argument("--run-dir", required=True)
    export.add_argument("--output", required=True,
                        help="savedmodel: model folder, written to OUTPUT/VERSION; tflite: the .tflite file")
    export.add_argument("--direction", help="which generator (default: the model's first, a2b)")
    export.add_argument("--version", type=int, default=1)
    export.add_argument("--heatmap", action="store_true",
                        help="savedmodel: also return the attention heatmap (ugatit, ugatit_light)")
    export.add_argument("--format", default="savedmodel", choices=["savedmodel", "tflite"])
    export.add_argument("--quantize", default="none", choices=["none", "fp16", "int8", "int8-full"],
                        help="tflite: float32, float16 weights, int8 weights, or int8 weights and activations")
    export.add_argument("--image-size", type=int, help="tflite: the fixed input size (default: the run's)")
    export.add_argument("--io", default="uint8", choices=["uint8", "float"],
                        help="tflite: uint8 pixels in and out, or float32 in [-1, 1]")
    export.add_argument("--representative", help="int8-full: image folder for calibration "
                        "(default: the run's training folder of the source domain)")

    imports = commands.add_parser("import-torch", help="convert a reference PyTorch generator checkpoint")
    imports.add_argument("--model", required=True,
                         help="cyclegan (junyanz latest_net_G_A.pth), ugatit / ugatit_light "
                         "(UGATIT-pytorch .pt), photo2cartoon (minivision .pt), stargan (yunjey *-G.ckpt)")
    imports.add_argument("--checkpoint", required=True, help="the A->B generator checkpoint")
    imports.add_argument("--checkpoint-b", help="the B->A generator checkpoint (run directories only)")
    imports.add_argument("--output", required=True,
                         help="a new run directory, or a generator file ending in .weights.h5 or .keras")
    return parser.parse_args(argv)


def names(values):
    """`--attrs A B` or `--attrs A,B` -> [A, B] (None when not given)."""
    return values and [name for value in values for name in value.split(",") if name]


def pick_generator(model, direction):
    generators = model.generators()
    if direction not in generators:
        raise ValueError(f"--direction must be one of {', '.join(generators)}, got {direction!r}")
    return generators[direction]


def run(args):
    if args.command == "demo":
        from tf_translate.demo import run_demo
        result = run_demo(args.run_dir, steps=args.steps, image_size=args.image_size)
        print(f"translation error vs ground truth (grey levels, lower is better): "
              f"untrained {result['untrained_error']:.1f}, trained {result['trained_error']:.1f} "
              f"(copying the input: {result['copy_input_error']:.1f}); trained in "
              f"{result['train_seconds']:.0f} s")
        print(f"sample grids: {result['samples']}\nSavedModel: {result['export']}")
    elif args.command == "train":
        from tf_translate.data import training_data
        from tf_translate.training import train
        data = args.data[0] if len(args.data) == 1 else args.data
        data, dataset_fn, overrides = training_data(args.model, data, args.attr_file, names(args.attrs))
        if args.face_model:
            if args.model != "photo2cartoon":
                raise ValueError("--face-model is for --model photo2cartoon")
            overrides = {**(overrides or {}), "face_model": os.path.abspath(args.face_model)}
        train(args.model, data, args.run_dir, steps=args.steps, epochs=args.epochs,
              batch_size=args.batch_size, image_size=args.image_size, load_size=args.load_size,
              precision=args.precision, xla=not args.no_xla, resume=args.resume,
              checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, seed=args.seed,
              model_overrides=overrides, dataset_fn=dataset_fn, eager=args.eager)
    elif args.command == "translate":
        translate_images(args)
    elif args.command == "export":
        from tf_translate.export import export_saved_model
        from tf_translate.torch_import import check_imported_direction
        from tf_translate.training import load_run
        model, record = load_run(args.run_dir)
        args.direction = args.direction or next(iter(model.generators()))
        check_imported_direction(record, args.direction)
        generator = pick_generator(model, args.direction)
        if args.format == "tflite":
            export_tflite_file(args, generator, record)
        else:
            label_names = model.label_names() if hasattr(model, "label_names") else None
            path = export_saved_model(generator, args.output, args.version, label_names=label_names,
                                      heatmap=args.heatmap)
            print(f"SavedModel written to {path}")
    elif args.command == "import-torch":
        from tf_translate.torch_import import import_torch
        path = import_torch(args.model, args.checkpoint, args.output, args.checkpoint_b)
        print(f"imported {args.checkpoint} into {path}")


def export_tflite_file(args, generator, record):
    from tf_translate.export import export_tflite

    image_size = args.image_size or record.get("config", {}).get("image_size") or 256
    representative = args.representative
    if args.quantize == "int8-full" and representative is None:
        data = record.get("flags", {}).get("data")
        if not data:
            raise ValueError("int8-full needs calibration images: pass --representative FOLDER")
        from tf_translate.data import domain_folders
        if args.direction not in ("a2b", "b2a"):
            raise ValueError("int8-full needs calibration images: pass --representative FOLDER")
        representative = domain_folders(data)[0 if args.direction == "a2b" else 1]
    size = export_tflite(generator, args.output, image_size, quantize=args.quantize,
                         representative_images=representative, io=args.io)
    print(f"TFLite ({args.quantize}, {args.io} in/out, {image_size}x{image_size}) written to "
          f"{args.output}: {size / 1e6:.1f} MB")
    if args.quantize == "int8-full":
        print("tf-translate: note: full-integer quantization degrades instance-norm generators badly "
              "(CycleGAN measured at 10-16 dB PSNR); prefer --quantize int8 or fp16 unless the target "
              "runs integer ops only", file=sys.stderr)


def translate_images(args):
    """Translates a file or every image of a folder; outputs keep the input's name and size."""
    import numpy as np
    from PIL import Image

    from tf_translate.data import check_images, list_images, read_rgb
    from tf_translate.export import serving_module
    from tf_translate.torch_import import check_imported_direction
    from tf_translate.training import load_run

    model, record = load_run(args.run_dir)
    args.direction = args.direction or next(iter(model.generators()))
    check_imported_direction(record, args.direction)
    module = serving_module(pick_generator(model, args.direction))
    targets, inputs = ([args.domain] if args.domain else names(args.attrs)), {}
    if hasattr(model, "target_label"):
        if not targets:
            raise ValueError(f"name the target with --attrs or --domain; this model knows "
                             f"{', '.join(sum(model.names(), []))}")
        inputs["labels"] = model.target_label(targets)[None]
    elif targets:
        raise ValueError("--attrs and --domain are for label-conditioned models (stargan)")
    if os.path.isdir(args.input):
        paths = list_images(args.input)
    elif os.path.isfile(args.input):
        paths = [args.input]
    else:
        raise ValueError(f"--input {args.input!r} is neither an image nor a folder")
    paths, bad = check_images(paths)
    for path, reason in bad:
        print(f"tf_translate: skipped {path}: {reason}", file=sys.stderr)
    os.makedirs(args.output, exist_ok=True)
    for path in paths:
        image = read_rgb(path)
        out = module.serving_default(images=image[None], **inputs)["images"].numpy()[0]
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        Image.fromarray(out).save(os.path.join(args.output, name))
    print(f"translated {len(paths)} image(s) into {args.output}" + (f"; skipped {len(bad)}" if bad else ""))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"tf-translate: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
