"""Image folders -> tf.data pipelines, input validation, and the built-in demo data.

Decoding goes through Pillow (in parallel tf.data workers) because it reads every
format users bring (JPEG, PNG incl. 16-bit and palette, BMP, GIF, WebP, TIFF, CMYK
JPEG) and converts them all to 8-bit RGB the same way.
"""

import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def list_images(folder):
    """Sorted image paths in `folder` (not recursive); a one-line error if there are none."""
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder!r} does not exist or is not a folder")
    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f"image folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths


def to_rgb(image):
    """An 8-bit RGB copy of any Pillow image (gray, palette, RGBA, 16-bit, CMYK, ...).

    Transparent pixels are composited on white; 16-bit and 32-bit gray are rescaled
    from their full range, not clipped.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def read_rgb(path, size=None):
    """Decodes `path` to a uint8 RGB array, turned upright by its EXIF orientation and
    resized (bicubic, as the reference) to `size`."""
    with Image.open(path) as image:
        image.seek(0)  # first frame of a GIF / animated WebP
        image.load()
        rgb = to_rgb(ImageOps.exif_transpose(image))  # phone photos: upright, as viewers show them
    if size is not None:
        rgb = rgb.resize((size, size), Image.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def usable_images(folder, report):
    """The readable images of `folder`; the others are added to `report` (a `SkipReport`).
    A folder with none is a one-line error."""
    paths, bad = check_images(list_images(folder))
    for path, reason in bad:
        report.add(path, reason)
    if not paths:
        raise ValueError(f"image folder {folder!r} holds no readable images ({len(bad)} corrupt)")
    return paths


def check_images(paths):
    """Splits `paths` into readable ones and (path, reason) for empty or corrupt files.

    Pillow's header parse plus `verify()` catches empty, non-image and damaged files
    quickly; a file truncated in its pixel data is caught later, when it is decoded.
    """
    good, bad = [], []
    for path in paths:
        try:
            if os.path.getsize(path) == 0:
                raise ValueError("empty file")
            with Image.open(path) as image:
                image.verify()
            good.append(path)
        except Exception as error:  # Pillow raises many types for bad files
            bad.append((path, str(error).splitlines()[0] if str(error) else type(error).__name__))
    return good, bad


class SkipReport:
    """Counts and names the files a pipeline skipped, each reported once."""

    def __init__(self, stream=None):
        self.skipped = {}
        self.stream = stream

    def add(self, path, reason):
        if path not in self.skipped:
            self.skipped[path] = reason
            print(f"tf_translate: skipped {path}: {reason} ({len(self.skipped)} skipped so far)",
                  file=self.stream or sys.stderr)


def reference_load_size(image_size):
    """The resize before the random crop, in the reference's proportion (286 for 256).

    junyanz's `--load_size 286 --crop_size 256` crops 90 % of each side; a fixed 286
    at a small crop would train on small patches of every image instead of the image.
    """
    return int(round(image_size * 286 / 256))


def image_folder_dataset(folder, image_size=256, load_size=None, training=True, report=None, seed=None):
    """A dataset of float32 [-1, 1] images of `image_size` from the images in `folder`.

    Training: resize to `load_size` (default `reference_load_size`), random crop to `image_size`, random horizontal
    flip, shuffled every epoch (the reference's `resize_and_crop` + flip). Otherwise:
    resize straight to `image_size`. Unreadable files are skipped and reported once
    with their names. Decoded, resized images are cached in memory when they fit in
    1 GB, so later epochs cost no decoding.

    Returns:
        (dataset, number of usable images)
    """
    report = report or SkipReport()
    paths = usable_images(folder, report)
    decode_size = (load_size or reference_load_size(image_size)) if training else image_size

    dataset = decoded_images(paths, decode_size, report, deterministic=not training or seed is not None)
    if training:
        dataset = dataset.shuffle(min(len(paths), 10_000), seed=seed, reshuffle_each_iteration=True)
        dataset = random_crop_and_flip(dataset, (image_size, image_size, 3), seed)
    dataset = dataset.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, len(paths)


def decoded_images(paths, decode_size, report, deterministic, *columns):
    """A dataset of the uint8 images at `paths`, each resized to `decode_size` squared,
    followed by the matching rows of `columns` (e.g. a box pipeline's boxes and labels);
    unreadable files are skipped and reported once, and the decoded images are cached
    in memory when they fit in 1 GB."""
    decode = skipping_unreadable(lambda path: read_rgb(path, decode_size), report,
                                 np.zeros((decode_size, decode_size, 3), np.uint8))

    def load(path, *rows):
        image, ok = tf.numpy_function(decode, [path], (tf.uint8, tf.bool), stateful=False)
        image.set_shape((decode_size, decode_size, 3))
        ok.set_shape(())
        return (image, *rows, ok)

    dataset = tf.data.Dataset.from_tensor_slices((paths, *columns))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.filter(decoded_ok).map(lambda *values: values[0] if not columns else values[:-1])
    if len(paths) * decode_size * decode_size * 3 <= 1 << 30:
        dataset = dataset.cache()
    return dataset


def random_crop_and_flip(dataset, shape, seed):
    """A random crop to `shape` and a random horizontal flip of every element (the
    reference's RandomCrop + RandomHorizontalFlip). Each element takes its draws from a
    seeded stream zipped in order, so a seeded pipeline crops and flips alike in every
    run: one generator shared by a parallel map is drawn in thread order."""
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)

    def augment(image, seeds):
        image = tf.image.stateless_random_crop(image, shape, seeds[:2])
        return tf.image.stateless_random_flip_left_right(image, seeds[2:])
    return tf.data.Dataset.zip(dataset, draws).map(augment, num_parallel_calls=tf.data.AUTOTUNE)


def skipping_unreadable(read, report, empty):
    """The one decode path of every pipeline: `read(path, *args)` as (value, True), or
    (`empty`, False) with the file named and counted in `report` when it cannot be
    decoded (a file truncated in its pixel data passes `check_images` and fails only
    here). Paths arrive as bytes from `tf.numpy_function`; filter on the flag."""
    def decode(path, *args):
        path = path.decode()
        try:
            return read(path, *args), True
        except Exception as error:  # Pillow raises many types for bad files
            report.add(path, str(error).splitlines()[0] if str(error) else type(error).__name__)
            return empty, False
    return decode


def decoded_ok(*values):
    return values[-1]


def drop_flag(image, ok):
    return image


def to_unit_range(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def domain_folders(data, split="train"):
    """(folder A, folder B) from `DIR` in the reference layout (`DIR/trainA`, `DIR/trainB`)
    or from two folders given as a pair."""
    if isinstance(data, (list, tuple)):
        if len(data) != 2:
            raise ValueError(f"--data takes one folder with {split}A/{split}B or two folders, got {len(data)}")
        return tuple(data)
    folders = (os.path.join(data, split + "A"), os.path.join(data, split + "B"))
    for folder in folders:
        if not os.path.isdir(folder):
            raise ValueError(f"{folder!r} is missing: --data must hold {split}A and {split}B "
                             "(the reference layout) or be given as two folders")
    return folders


def unpaired_dataset(data, batch_size=1, image_size=256, load_size=None, split="train", seed=None):
    """A dataset of `(a_batch, b_batch)` for the training models' `fit`.

    The two domains are shuffled independently and repeated; one epoch is
    max(len(A), len(B)) // batch_size steps, as the reference's unaligned dataset.

    Returns:
        (dataset, steps per epoch, SkipReport)
    """
    folder_a, folder_b = domain_folders(data, split)
    report = SkipReport()
    training = split == "train"
    a, count_a = image_folder_dataset(folder_a, image_size, load_size, training, report, seed)
    b, count_b = image_folder_dataset(folder_b, image_size, load_size, training, report,
                                      None if seed is None else seed + 1)
    steps_per_epoch = max(1, max(count_a, count_b) // batch_size)
    dataset = tf.data.Dataset.zip((a.repeat(), b.repeat()))
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return dataset, steps_per_epoch, report


# ---------------------------------------------------------------------------------
# Paired data (pix2pix): aligned A|B files, or two folders of equally named files.

DIRECTIONS = ("AtoB", "BtoA")


def paired_files(data, split="train"):
    """[(path A, path B)] for named pairs, [(aligned path, None)] for A|B files, and the
    layout's name. `data`: DIR with `split/` (the reference's aligned layout: A left, B
    right in one file), DIR with `splitA/` and `splitB/`, two folders, or (training
    split only) one folder of aligned files."""
    if isinstance(data, (list, tuple)):
        if len(data) != 2:
            raise ValueError(f"--data takes one folder or two folders of equally named files, got {len(data)}")
        return named_pairs(*data), "named"
    if os.path.isdir(os.path.join(data, split)):
        return [(path, None) for path in list_images(os.path.join(data, split))], "aligned"
    halves = [side for side in "AB" if os.path.isdir(os.path.join(data, split + side))]
    if halves == ["A", "B"]:
        return named_pairs(os.path.join(data, split + "A"), os.path.join(data, split + "B")), "named"
    if halves:  # one half of the named layout: say which is missing, not "holds no images"
        missing = os.path.join(data, split + ("B" if halves == ["A"] else "A"))
        raise ValueError(f"--data {data!r}: {missing} is missing; {split}{halves[0]}/ needs a partner folder "
                         "of equally named files")
    if split == "train" and os.path.isdir(data) and not any(
            os.path.isdir(os.path.join(data, name)) for name in ("test", "val", "testA")):
        return [(path, None) for path in list_images(data)], "aligned"
    raise ValueError(f"--data {data!r}: expected {split}/ (aligned A|B images), {split}A/ and {split}B/ "
                     "(equally named files), or two folders")


def named_pairs(folder_a, folder_b):
    """[(A path, B path or None)] matched by file name without extension (x.jpg with x.png)."""
    def by_stem(folder):
        return {os.path.splitext(os.path.basename(path))[0]: path for path in list_images(folder)}
    a, b = by_stem(folder_a), by_stem(folder_b)
    return [(a[stem], b.get(stem)) for stem in sorted(a)] + [(None, b[stem]) for stem in sorted(set(b) - set(a))]


def check_pairs(pairs, layout, report):
    """The usable pairs; the others named in `report`: a missing partner, an aligned file
    of odd width, halves of different sizes, and unreadable files."""
    good = []
    for path_a, path_b in pairs:
        if layout == "named" and (path_a is None or path_b is None):
            present, side = (path_b, "A") if path_a is None else (path_a, "B")
            report.add(present, f"no file of the same name in the {side} folder")
            continue
        paths = [path_a] if layout == "aligned" else [path_a, path_b]
        _, bad = check_images(paths)
        for path, reason in bad:
            report.add(path, reason)
        if bad:
            continue
        sizes = []
        for path in paths:
            with Image.open(path) as image:
                sizes.append(image.size)
        if layout == "aligned" and sizes[0][0] % 2:
            report.add(path_a, f"odd width {sizes[0][0]}: an aligned file holds A and B side by side")
            continue
        if layout == "named" and sizes[0] != sizes[1]:
            report.add(path_b, f"size {sizes[1][0]}x{sizes[1][1]} differs from its partner's "
                       f"{sizes[0][0]}x{sizes[0][1]} ({path_a})")
            continue
        good.append((path_a, path_b or ""))
    return good


def read_pair(path_a, path_b, size):
    """(A, B) uint8 arrays, each resized (bicubic) to `size` (None: as they are); an
    aligned file when `path_b` is empty (A its left half, B its right half, as the
    reference's `AlignedDataset`)."""
    if path_b:
        return read_rgb(path_a, size), read_rgb(path_b, size)
    whole = read_rgb(path_a)
    half = whole.shape[1] // 2
    halves = [Image.fromarray(whole[:, :half]), Image.fromarray(whole[:, half:2 * half])]
    return tuple(np.asarray(h if size is None else h.resize((size, size), Image.BICUBIC), np.uint8)
                 for h in halves)


def paired_dataset(spec, batch_size=1, image_size=256, load_size=None, split="train", seed=None):
    """A dataset of `(input batch, target batch)` pairs for pix2pix's `fit`.

    `spec` is {"paired": DIR or [folder A, folder B], "direction": "AtoB" or "BtoA"}
    (see `paired_files`). Training: both halves resized to `load_size` (bicubic), then
    the *same* random crop and flip for both (the reference's `get_params`), shuffled
    every epoch; otherwise resized to `image_size`. `BtoA` makes B the input. Bad pairs
    are skipped, named and counted. One epoch is len(pairs) // batch_size steps.

    Returns:
        (dataset, steps per epoch, SkipReport)
    """
    spec = spec if isinstance(spec, dict) else {"paired": spec}
    direction = spec.get("direction") or "AtoB"
    if direction not in DIRECTIONS:
        raise ValueError(f"--direction must be AtoB or BtoA, got {direction!r}")
    report = SkipReport()
    pairs = check_pairs(*paired_files(spec["paired"], split), report)
    if not pairs:
        raise ValueError(f"--data {spec['paired']}: no usable image pairs ({len(report.skipped)} skipped)")
    training = split == "train"
    decode_size = (load_size or reference_load_size(image_size)) if training else image_size

    decode = skipping_unreadable(lambda a, b: np.concatenate(read_pair(a, b.decode(), decode_size), axis=-1),
                                 report, np.zeros((decode_size, decode_size, 6), np.uint8))

    def load(path_a, path_b):
        both, ok = tf.numpy_function(decode, [path_a, path_b], (tf.uint8, tf.bool), stateful=False)
        both.set_shape((decode_size, decode_size, 6))
        ok.set_shape(())
        return both, ok

    dataset = tf.data.Dataset.from_tensor_slices(tuple(map(list, zip(*pairs))))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training or seed is not None)
    dataset = dataset.filter(decoded_ok).map(drop_flag)
    if len(pairs) * decode_size * decode_size * 6 <= 1 << 30:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(min(len(pairs), 10_000), seed=seed, reshuffle_each_iteration=True)
        dataset = random_crop_and_flip(dataset, (image_size, image_size, 6), seed)  # one for both halves
    source, target = (slice(0, 3), slice(3, 6)) if direction == "AtoB" else (slice(3, 6), slice(0, 3))
    dataset = dataset.map(lambda both: (to_unit_range(both[..., source]), to_unit_range(both[..., target])),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
    return dataset, max(1, len(pairs) // batch_size), report


# ---------------------------------------------------------------------------------
# Built-in demo data: two domains with a known ground-truth mapping from A to B.

DEMO_PERMUTATION = (2, 0, 1)  # B = A with its colour channels rotated: (R, G, B) -> (B, R, G)


def demo_scene(rng, size):
    """One random scene for domain A: warm-toned gradient background and 1-3 shapes.

    Colours are drawn from an asymmetric (warm) distribution, so the channel rotation
    that makes domain B is identifiable from unpaired data.
    """
    def warm():
        return (int(rng.integers(150, 256)), int(rng.integers(60, 200)), int(rng.integers(0, 90)))

    top, bottom = np.array(warm(), float), np.array(warm(), float) * 0.5
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    canvas = Image.fromarray(((1 - ramp) * top + ramp * bottom).repeat(size, axis=1).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.integers(0, size * 3 // 4, size=2)
        extent = rng.integers(size // 6, size // 2)
        box = [int(x0), int(y0), int(x0 + extent), int(y0 + extent)]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=warm())
    return np.asarray(canvas, dtype=np.uint8)


def demo_ground_truth(images_a):
    """The true B image for each A image (uint8 or float, channels last)."""
    return images_a[..., list(DEMO_PERMUTATION)]


def write_demo_dataset(root, size=64, train_count=400, test_count=50, seed=0):
    """Writes the demo data in the reference layout (trainA, trainB, testA, testB).

    trainA and trainB are different scenes (unpaired); testB holds the ground truth of
    testA, file for file, so the translation error can be measured.
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_count), ("test", test_count)):
        for domain in "AB":
            os.makedirs(os.path.join(root, split + domain), exist_ok=True)
        for i in range(count):
            scene_a = demo_scene(rng, size)
            scene_b = scene_a if split == "test" else demo_scene(rng, size)
            Image.fromarray(scene_a).save(os.path.join(root, f"{split}A", f"{i:04d}.png"))
            Image.fromarray(demo_ground_truth(scene_b)).save(os.path.join(root, f"{split}B", f"{i:04d}.png"))
    return root
