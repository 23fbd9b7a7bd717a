"""Evaluating a translator: FID and KID of its translations against real target images,
for `tf-translate evaluate` and for model selection during training.

A translator is any function from uint8 [1, H, W, 3] images to uint8 images of the same
size: a run's generator (`runs.load_generators` + `export.serving_module`) or an exported
SavedModel's `serving_default`. Features come from `metrics.features` (the offline
MobileNetV2 default, InceptionV3 with user-given weights, or any Keras model).
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from tf_translate import metrics
from tf_translate.runs import BEST_WEIGHTS, save_checkpoint, write_json_atomically

METRICS = ("fid", "kid", "kid_blocks")
EVALUATION_FILE = "evaluation.json"


def feature_extractor(name_or_path, inception_weights=None):
    """`--features`: "mobilenet_v2" (offline default), "inception" (needs its weights
    file) or a Keras model file / SavedModel folder mapping [-1, 1] images to vectors."""
    if name_or_path == "mobilenet_v2":
        return metrics.mobilenet_v2_features()
    if name_or_path == "inception":
        return metrics.inception_v3_features(inception_weights)
    if not os.path.exists(name_or_path):
        raise ValueError(f"--features {name_or_path!r}: expected mobilenet_v2, inception, or a Keras "
                         "model file / SavedModel folder")
    return metrics.keras_features(name_or_path)


def feature_label(name_or_path):
    """How a table names the features, so that no number passes for Inception FID."""
    if name_or_path == "mobilenet_v2":
        return "MobileNetV2 features (not comparable to published Inception FID/KID)"
    if name_or_path == "inception":
        return "InceptionV3 pool3 features"
    return f"features of {os.path.basename(os.path.normpath(name_or_path))}"


def translate_all(translate, images):
    """uint8 translations of uint8 images, one at a time (images may differ in size)."""
    return [translate(np.asarray(image, np.uint8)[None])[0] for image in images]


def feature_size(features):
    """The side images are resized to for the features: InceptionV3's 299, else 224."""
    return 299 if features == "inception" else 224


def resized_batch(images, size):
    """uint8 images of any sizes -> one float32 [-1, 1] batch at size x size (bilinear)."""
    batch = [tf.image.resize(tf.cast(image, tf.float32)[None], (size, size))[0] for image in images]
    return tf.stack(batch) / 127.5 - 1.0


def features_of(extractor, images, size, batch_size=16):
    """Features (float64 [n, d]) of uint8 images resized to `size`."""
    rows = []
    for start in range(0, len(images), batch_size):
        rows.append(np.asarray(extractor(resized_batch(images[start:start + batch_size], size)), np.float64))
    return np.concatenate(rows)


def distances(fake_features, real_features, names=METRICS, kid_subsets=100, kid_subset_size=None, seed=2020):
    """{metric: value} for the chosen names; KID entries are (mean, std) pairs x 1 (not x 100).

    kid: the unbiased MMD^2 mean and std over `kid_subsets` random subsets (torch-fidelity's
    protocol; subsets of `metrics.kid_subset_size` rows unless `kid_subset_size` is given); kid_blocks: TF-GAN's block estimator with blocks of 10 and its standard
    error (the protocol of U-GAT-IT's tables).
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; expected some of {', '.join(METRICS)}")
    results = {}
    if "fid" in names:
        results["fid"] = float(metrics.frechet_distance(fake_features, real_features))
    if "kid" in names:
        results["kid"] = [float(v) for v in metrics.kernel_distance(
            fake_features, real_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)]
    if "kid_blocks" in names:
        results["kid_blocks"] = [float(v) for v in metrics.kernel_distance_blocks(fake_features, real_features)]
    return results


def evaluate(translate, source_images, target_images, extractor, feature_size=224, names=METRICS,
             kid_subsets=100, kid_subset_size=None):
    """FID/KID of `translate(source_images)` against `target_images` (uint8 lists).

    Returns:
        {"samples": n translated, "real": n real, metric: value, ...}.
    """
    fake = translate_all(translate, source_images)
    fake_features = features_of(extractor, fake, feature_size)
    real_features = features_of(extractor, target_images, feature_size)
    return {"samples": len(fake), "real": len(target_images),
            **distances(fake_features, real_features, names, kid_subsets, kid_subset_size)}


PAIRED_METRICS = ("l1", "psnr", "ssim")


def paired_scores(translate, inputs, targets):
    """L1, PSNR and SSIM of `translate(inputs)` against their ground truth (pix2pix).

    Per image, then the mean: L1 in the [-1, 1] units of the training loss, PSNR in dB
    and SSIM over the uint8 range (`metrics.psnr`, `metrics.ssim`). Targets of another
    size than their input are resized to it (bicubic) first.

    Returns:
        {"samples": n, "l1": ..., "psnr": ..., "ssim": ...}.
    """
    from PIL import Image

    scores = {name: [] for name in PAIRED_METRICS}
    for image, target in zip(inputs, targets):
        fake = translate(np.asarray(image, np.uint8)[None])[0].astype(np.float64)
        if target.shape != fake.shape:
            target = np.asarray(Image.fromarray(target).resize(fake.shape[1::-1], Image.BICUBIC))
        real = np.asarray(target, np.float64)
        scores["l1"].append(metrics.mean_absolute_error(fake / 127.5, real / 127.5))
        scores["psnr"].append(metrics.psnr(fake, real, max_value=255.0))
        scores["ssim"].append(metrics.ssim(fake, real, max_value=255.0))
    return {"samples": len(scores["l1"]), **{name: float(np.mean(values)) for name, values in scores.items()}}


def format_table(results, features):
    """The printed table: one metric per line, KID as x 100 with its ± (named protocol)."""
    if "real" not in results:  # paired scores only
        return "\n".join([f"{results['samples']} translations vs their ground truth"] + [
            f"  {label:28} {results[name]:10.4f}" for name, label in
            (("l1", "L1 (in [-1, 1])"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM")) if name in results])
    lines = [f"{results['samples']} translations vs {results['real']} real images, {features}"]
    if "fid" in results:
        lines.append(f"  FID                          {results['fid']:10.3f}")
    if "kid" in results:
        mean, std = results["kid"]
        lines.append(f"  KID x 100 (subsets, ± std)   {100 * mean:10.3f} ± {100 * std:.3f}")
    if "kid_blocks" in results:
        mean, error = results["kid_blocks"]
        spread = "(one block: no s.e.)" if np.isnan(error) else f"± {100 * error:.3f}"
        lines.append(f"  KID x 100 (blocks of 10, ± s.e.) {100 * mean:6.3f} {spread}")
    if "instance_iou" in results:
        lines.append(f"  instance IoU (detector)      {results['instance_iou']:10.4f}  "
                     f"({results['instance_images']} images with boxes)")
    return "\n".join(lines)


def write_evaluation(run_dir, record):
    """Appends `record` to RUN/evaluation.json (a list, newest last), atomically."""
    path = os.path.join(run_dir, EVALUATION_FILE)
    write_json_atomically(path, read_evaluations(path) + [record])
    return path


def read_evaluations(path):
    """The list RUN/evaluation.json holds ([] when there is none); a damaged file is a
    one-line error naming it, found before anything is computed."""
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as file:
            history = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path!r} is not valid JSON ({error}): move it aside to record new results") from None
    if not isinstance(history, list):
        raise ValueError(f"{path!r} is not a list of evaluations: move it aside to record new results")
    return history


class EvaluationCallback(keras.callbacks.Callback):
    """Every `every` steps: KID of the generator's translations of a held-out set against
    held-out real target images, into TensorBoard (`eval/kid`), keeping the weights with
    the lowest KID in RUN/best.weights.h5 (how photo2cartoon picked its released model,
    by FID). The real images' features are computed once."""

    def __init__(self, run_dir, direction, source_images, target_images, extractor, every,
                 feature_size=224, kid_subsets=50, kid_subset_size=None):
        super().__init__()
        self.run_dir, self.direction, self.every = run_dir, direction, every
        self.source_images = list(source_images)
        self.extractor, self.feature_size = extractor, feature_size
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.real_features = features_of(extractor, list(target_images), feature_size)
        self.best = float("inf")
        self.module = None  # the serving module, made on the first evaluation (traced once)
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs"))

    def on_train_batch_end(self, batch, logs=None):
        step = self.model.completed_steps()
        if self.every and step % self.every == 0:
            self.evaluate_now(step)

    def evaluate_now(self, step):
        from tf_translate.export import GeneratorModule

        if self.module is None:
            self.module = GeneratorModule(self.model.generators()[self.direction])
        fake = translate_all(lambda image: self.module.serving_default(image)["images"].numpy(),
                             self.source_images)
        mean, std = metrics.kernel_distance(features_of(self.extractor, fake, self.feature_size),
                                            self.real_features, subsets=self.kid_subsets,
                                            subset_size=self.kid_subset_size)
        with self.writer.as_default(step=step):
            tf.summary.scalar("eval/kid", float(mean))
            tf.summary.scalar("eval/kid_std", float(std))
        self.writer.flush()
        if mean < self.best:
            self.best = float(mean)
            save_checkpoint(self.model, self.run_dir, BEST_WEIGHTS)
        return float(mean)


def held_out_callback(model, data, run_dir, every, features="mobilenet_v2", samples=100, inception_weights=None):
    """An `EvaluationCallback` on DIR/testA -> DIR/testB (up to `samples` images each)."""
    from tf_translate.data import check_images, domain_folders, list_images, read_rgb

    if model.data_kind not in ("unpaired", "unpaired_boxes") or "a2b" not in model.generators():
        raise ValueError(f"--eval-every evaluates a2b translation; {type(model).__name__} has none")
    if isinstance(data, (list, tuple)):
        raise ValueError("--eval-every needs --data DIR with testA and testB as the held-out set")
    images = [[read_rgb(path) for path in check_images(list_images(folder))[0][:samples]]
              for folder in domain_folders(data, split="test")]
    if min(len(images[0]), len(images[1])) < 2:
        raise ValueError(f"--eval-every needs at least 2 images in each of {data}/testA and {data}/testB")
    return EvaluationCallback(run_dir, "a2b", images[0], images[1], feature_extractor(features, inception_weights),
                              every, feature_size(features))


# ---------------------------------------------------------------------------------------
# The `evaluate` command


def check_evaluate_flags(args):
    """One-line errors for counts and sizes that cannot be, before anything is loaded
    (`--samples -1` would score n - 1 images and record it)."""
    for flag, value, least in (("--samples", args.samples, 1), ("--kid-subsets", args.kid_subsets, 1),
                               ("--kid-subset-size", args.kid_subset_size, 2), ("--feature-size", args.feature_size, 32)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}")
    unknown = [name for name in args.metrics or [] if name not in PAIRED_METRICS + METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; expected some of {', '.join(PAIRED_METRICS + METRICS)}")
    if args.run_dir:
        read_evaluations(os.path.join(args.run_dir, EVALUATION_FILE))


def evaluate_translations(args):
    """The `evaluate` command (`args`: its parsed flags): translates the source domain's
    split and compares with the target's (paired data: each input's translation with its
    ground truth), printing the table and adding it to RUN/evaluation.json."""
    import sys

    from tf_translate.data import check_images, domain_folders, list_images, read_rgb

    check_evaluate_flags(args)
    if paired_evaluation(args):
        return evaluate_pairs(args)
    args.metrics = args.metrics or ["fid", "kid"]
    unknown = [name for name in args.metrics if name not in METRICS]
    if unknown:  # before the feature network loads: paired metrics need a paired model or layout
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; expected some of {', '.join(METRICS)}")
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
    translate = evaluation_translator(args)
    extractor = feature_extractor(args.features, args.inception_weights)
    size = args.feature_size or feature_size(args.features)
    results = evaluate(translate, images[0], images[1], extractor, size, args.metrics,
                       args.kid_subsets, args.kid_subset_size)
    results.update(instance_results(args, translate, source))
    features = feature_label(args.features)
    print(format_table(results, features))
    if args.run_dir:
        record = {**results, "direction": args.direction or "a2b", "data": os.path.abspath(args.data),
                  "split": args.split, "features": features, "feature_size": size,
                  "weights": "best.weights.h5" if args.best else "checkpoint.weights.h5",
                  "kid_subsets": args.kid_subsets,
                  "kid_subset_size": args.kid_subset_size or metrics.kid_subset_size(len(images[0]), len(images[1]))}
        print(f"written to {write_evaluation(args.run_dir, record)}")


def instance_results(args, translate, source):
    """{"instance_iou", "instance_images"} for an a2b run of a model that detects objects
    (DUNIT: its detector on the translations against the source boxes), else {}."""
    from tf_translate.models import model_class
    from tf_translate.runs import BEST_WEIGHTS, CHECKPOINT, load_generators, read_run

    if not args.run_dir or args.direction not in (None, "a2b"):
        return {}
    if not hasattr(model_class(read_run(args.run_dir)["model"]), "instance_iou"):
        return {}
    model, _ = load_generators(args.run_dir, BEST_WEIGHTS if args.best else CHECKPOINT)
    value, count = model.instance_iou(translate, source, args.samples)
    return {"instance_iou": value, "instance_images": count}


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
    from tf_translate.data import SkipReport, check_pairs, paired_files, read_pair
    from tf_translate.runs import read_run

    names = args.metrics or list(PAIRED_METRICS)
    unknown = [n for n in names if n not in PAIRED_METRICS + METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {', '.join(unknown)}; paired data takes "
                         f"{', '.join(PAIRED_METRICS + METRICS)}")
    data = read_run(args.run_dir)["flags"].get("data") if args.run_dir else None
    # run.json keeps the paired data's direction as train recorded it: "AtoB" / "BtoA".
    direction = (data or {}).get("direction") if isinstance(data, dict) else None
    pairs = check_pairs(*paired_files(args.data, args.split), SkipReport())[:args.samples]
    if not pairs:
        raise ValueError(f"--data {args.data!r}: no usable {args.split} pairs")
    halves = [read_pair(a, b, None) for a, b in pairs]
    inputs, targets = zip(*[h[::-1] if direction == "BtoA" else h for h in halves])
    translate = evaluation_translator(args)
    results = paired_scores(translate, inputs, targets)
    results = {name: value for name, value in results.items() if name == "samples" or name in names}
    distance_names = [n for n in names if n in METRICS]
    features = None
    if distance_names:
        extractor = feature_extractor(args.features, args.inception_weights)
        size = args.feature_size or feature_size(args.features)
        results.update(evaluate(translate, inputs, targets, extractor, size, distance_names,
                                           args.kid_subsets, args.kid_subset_size))
        features = feature_label(args.features)
    print(format_table({k: v for k, v in results.items() if k != "real"}, features))
    if distance_names:
        print(format_table({k: v for k, v in results.items()
                                       if k in ("samples", "real") or k in distance_names}, features))
    if args.run_dir:
        record = {**results, "data": os.path.abspath(args.data), "split": args.split,
                  "direction": "b2a" if direction == "BtoA" else "a2b", "features": features,
                  "weights": "best.weights.h5" if args.best else "checkpoint.weights.h5"}
        print(f"written to {write_evaluation(args.run_dir, record)}")


def evaluation_translator(args):
    """The translate function of `evaluate`'s --run-dir or --model-dir: one translation
    per image, no target label (`translate.run_translator`)."""
    from tf_translate.translate import run_translator

    args.domain = args.attrs = args.reference = args.code_seed = None
    args.codes = 1
    return run_translator(args)[0]
