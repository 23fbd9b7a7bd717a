"""Labelled images for label-conditioned models (StarGAN): CelebA attribute files, one
folder per domain, and the unified labels of multi-dataset training.

The pipelines yield `(images float32 [B, S, S, 3] in [-1, 1], labels float32 [B, C])`
batches. `labelled_data_spec` and `labelled_dataset` connect them to the common training
path (`training.train(..., dataset_fn=labelled_dataset)`, chosen by `training.training_data`).
Unpaired folders, image validation and the demo data live in `data.py`.

Reference: yunjey/stargan `data_loader.py` (`CelebA`, `get_loader`) and `solver.py`
(`train_multi`).
"""

import os
import random

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_translate.data import SkipReport, check_images, decoded_ok, list_images, skipping_unreadable, to_rgb

CELEBA_ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
CELEBA_ATTR_FILE = "list_attr_celeba.txt"
CELEBA_CROP_SIZE = 178  # reference --celeba_crop_size
# The reference shuffles the attribute lines with random.seed(1234) and keeps lines whose
# position i satisfies (i + 1) < 2000 for testing: 1,999 images, not 2,000.
CELEBA_SPLIT_SEED = 1234
CELEBA_NUM_TEST = 1999


def read_celeba_attributes(attr_file, attrs=CELEBA_ATTRS):
    """Parses `list_attr_celeba.txt` and selects attributes.

    Format: line 1 the image count, line 2 the attribute names, then
    `filename v1 v2 ...` with values -1 or 1. A label is 1.0 where the value is 1
    (the reference's `values[idx] == '1'`), else 0.0.

    Args:
        attr_file: path of the attribute file.
        attrs: attribute names to keep, in label order.
    Returns:
        (filenames list in file order, labels float32 [N, len(attrs)]).
    Raises:
        ValueError (one line) for unknown attribute names, a count line that disagrees
        with the lines that follow, and malformed lines (naming the line number).
    """
    attrs = list(attrs)
    name = os.path.basename(attr_file)
    if not os.path.isfile(attr_file):
        raise ValueError(f"attribute file {attr_file!r} does not exist")
    with open(attr_file) as f:
        lines = [line.rstrip() for line in f]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2:
        raise ValueError(f"{name}: expected an image count on line 1 and attribute names on "
                         f"line 2, got {len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{name} line 1: expected the image count, got {lines[0][:40]!r}") from None
    all_names = lines[1].split()
    unknown = [a for a in attrs if a not in all_names]
    if unknown:
        raise ValueError(f"unknown attribute(s) {', '.join(unknown)} in {name}; valid: "
                         f"{', '.join(all_names)}")
    if len(set(attrs)) != len(attrs):
        raise ValueError(f"attributes listed twice: {', '.join(attrs)}")
    columns = [all_names.index(a) for a in attrs]
    rows = lines[2:]
    if len(rows) != count:
        raise ValueError(f"{name} says {count} images on line 1 but lists {len(rows)}")
    filenames, labels = [], np.zeros((len(rows), len(attrs)), np.float32)
    for i, line in enumerate(rows):
        fields = line.split()
        if len(fields) != len(all_names) + 1:
            raise ValueError(f"{name} line {i + 3}: expected a filename and {len(all_names)} "
                             f"values, got {len(fields)} fields")
        values = fields[1:]
        bad = [v for v in values if v not in ("1", "-1")]
        if bad:
            raise ValueError(f"{name} line {i + 3}: attribute values must be -1 or 1, got {bad[0]!r}")
        filenames.append(fields[0])
        labels[i] = [values[c] == "1" for c in columns]
    return filenames, labels


def celeba_split(num_images, mode):
    """Indices of the reference's CelebA train or test split.

    yunjey shuffles the attribute lines with `random.seed(1234); random.shuffle(lines)`;
    the permutation depends only on the number of lines, so shuffling indices with a
    private `random.Random(1234)` reproduces it (Python's RNG is used here, against the
    house rule, because the split must match the reference's). The first 1,999 shuffled
    lines are the test split, the rest train.
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    order = list(range(num_images))
    random.Random(CELEBA_SPLIT_SEED).shuffle(order)
    return order[:CELEBA_NUM_TEST] if mode == "test" else order[CELEBA_NUM_TEST:]


def read_cropped(path, image_size, crop_size=None, flip=False):
    """Reads an image as StarGAN's transforms do; float32 [S, S, 3] in [-1, 1].

    RandomHorizontalFlip (applied first, as in `get_loader`), CenterCrop(crop_size) with
    torchvision's rounding and zero padding when the image is smaller, Resize(image_size)
    with PIL bilinear (torchvision's default for PIL images) on the shorter side, then
    a centre crop to a square if the crop was not square, ToTensor, Normalize(0.5, 0.5).
    Modes are converted with `to_rgb` (the reference's `convert('RGB')` for RGB input).
    """
    with Image.open(path) as img:
        img.seek(0)
        img.load()
        img = to_rgb(img)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if crop_size:
        img = _center_crop(img, crop_size)
    w, h = img.size
    if (w, h) != (image_size, image_size):
        if w <= h:
            size = (image_size, int(image_size * h / w))
        else:
            size = (int(image_size * w / h), image_size)
        img = img.resize(size, Image.BILINEAR)
        if size != (image_size, image_size):
            img = _center_crop(img, image_size)
    return np.asarray(img, np.float32) / 127.5 - 1.0


def _center_crop(img, size):
    w, h = img.size
    if size > w or size > h:
        padded = Image.new("RGB", (max(w, size), max(h, size)))
        padded.paste(img, ((size - w) // 2 if size > w else 0, (size - h) // 2 if size > h else 0))
        img = padded
        w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def labelled_image_dataset(paths, labels, image_size, crop_size, batch_size, training, seed, report=None):
    """(paths, labels) -> batched (images, labels); shuffles and flips when training.
    Images that cannot be decoded are skipped with their labels, named in `report`.

    Training batches drop the remainder: a smaller last batch would make the
    XLA-compiled train step compile again (the reference's DataLoader keeps it).
    """
    ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.float32)))
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        flips = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip(ds, flips.map(lambda r: r % 2 == 1))  # ((path, label), flip)
    else:
        ds = ds.map(lambda p, l: ((p, l), tf.constant(False)))

    decode = skipping_unreadable(lambda path, flip: read_cropped(path, image_size, crop_size, bool(flip)),
                                 report or SkipReport(), np.zeros((image_size, image_size, 3), np.float32))

    def load(path_and_label, flip):
        path, label = path_and_label
        image, ok = tf.numpy_function(decode, [path, flip], (tf.float32, tf.bool))
        image.set_shape([image_size, image_size, 3])
        ok.set_shape(())
        return image, label, ok

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).filter(decoded_ok).map(lambda image, label, ok: (image, label))
    return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def celeba_files(image_dir, attr_file, attrs=CELEBA_ATTRS, mode="train"):
    """(paths, labels) of the reference's CelebA `mode` split; one-line errors as
    `read_celeba_attributes`, and when listed files are missing from `image_dir`."""
    filenames, labels = read_celeba_attributes(attr_file, attrs)
    if not os.path.isdir(image_dir):
        raise ValueError(f"image folder {image_dir} does not exist")
    present = set(os.listdir(image_dir))
    missing = [f for f in filenames if f not in present]
    if missing:
        raise ValueError(f"{len(missing)} of {len(filenames)} images listed in "
                         f"{os.path.basename(attr_file)} are missing from {image_dir} "
                         f"(first: {missing[0]})")
    index = celeba_split(len(filenames), mode)
    if not index:
        raise ValueError(f"the {mode} split is empty: {attr_file} lists {len(filenames)} images "
                         f"and the reference keeps the first {CELEBA_NUM_TEST} shuffled ones for testing")
    return [os.path.join(image_dir, filenames[i]) for i in index], labels[index]


def celeba_dataset(image_dir, attr_file, attrs=CELEBA_ATTRS, image_size=128,
                   crop_size=CELEBA_CROP_SIZE, batch_size=16, mode="train", seed=None):
    """The CelebA layout: an image folder plus `list_attr_celeba.txt`.

    Args:
        image_dir: folder holding the files the attribute file names.
        attr_file: the attribute file (reference `--attr_path`).
        attrs: selected attributes (reference `--selected_attrs`).
        image_size: output size (reference `--image_size`, 128).
        crop_size: centre crop before resizing (reference `--celeba_crop_size`, 178).
        batch_size: reference `--batch_size`, 16.
        mode: "train" (shuffled, random flips, the reference's train split) or "test".
        seed: shuffle and flip seed.
    Returns:
        tf.data.Dataset of (images [B, S, S, 3] in [-1, 1], labels [B, len(attrs)]).
    """
    paths, labels = celeba_files(image_dir, attr_file, attrs, mode)
    return labelled_image_dataset(paths, labels, image_size, crop_size, batch_size,
                                  mode == "train", seed)


def domain_folder_names(root):
    """The domain names of a one-folder-per-domain `root`: its sub-folders, sorted as
    `ImageFolder` sorts them."""
    if not os.path.isdir(root):
        raise ValueError(f"data folder {root!r} does not exist")
    names = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not names:
        raise ValueError(f"{root!r} holds no sub-folders; expected one folder per domain, or a "
                         f"{CELEBA_ATTR_FILE} (CelebA layout)")
    return names


def list_domain_folders(root):
    """One sub-folder per domain (RaFD / `ImageFolder` layout) -> (paths, class ids, names)."""
    names = domain_folder_names(root)
    paths, ids = [], []
    for k, name in enumerate(names):
        files = list_images(os.path.join(root, name))
        paths += files
        ids += [k] * len(files)
    return paths, np.asarray(ids), names


def domain_folder_dataset(root, image_size=128, crop_size=256, batch_size=16, mode="train",
                          seed=None):
    """One folder per domain (RaFD style) -> one-hot labels.

    Args:
        root: folder with one sub-folder per domain (reference `--rafd_image_dir`).
        crop_size: centre crop before resizing (reference `--rafd_crop_size`, 256);
            None resizes the whole image.
        image_size, batch_size, mode, seed: as `celeba_dataset`. The reference has no
            RaFD split; point `root` at a train or test folder.
    Returns:
        (dataset of (images, one-hot labels [B, num_domains]), domain names).
    """
    paths, ids, names = list_domain_folders(root)
    labels = np.eye(len(names), dtype=np.float32)[ids]
    ds = labelled_image_dataset(paths, labels, image_size, crop_size, batch_size,
                                mode == "train", seed)
    return ds, names


def unified_labels(labels, dataset_index, label_sizes):
    """A dataset's labels as the multi-dataset label [c1, c2, ..., mask].

    The other datasets' entries are zero and the mask is the one-hot of `dataset_index`
    (yunjey: CelebA [c1, 0, 1, 0], RaFD [0, c2, 0, 1]).

    Args:
        labels: [B, label_sizes[dataset_index]] float tensor or array.
        dataset_index: which dataset these labels come from.
        label_sizes: label length of every dataset, e.g. (5, 8).
    Returns:
        float32 [B, sum(label_sizes) + len(label_sizes)].
    """
    labels = tf.convert_to_tensor(labels, tf.float32)
    if labels.shape[-1] is not None and labels.shape[-1] != label_sizes[dataset_index]:
        raise ValueError(f"labels have {labels.shape[-1]} entries; dataset {dataset_index} "
                         f"has {label_sizes[dataset_index]}")
    batch = tf.shape(labels)[0]
    parts = []
    for k, size in enumerate(label_sizes):
        parts.append(labels if k == dataset_index else tf.zeros([batch, size]))
    mask = tf.one_hot(dataset_index, len(label_sizes))
    parts.append(tf.tile(mask[None], [batch, 1]))
    return tf.concat(parts, axis=-1)


def multi_dataset(datasets):
    """Alternates batches of several datasets with unified labels, as `train_multi`
    trains on a CelebA batch then a RaFD batch in every iteration.

    Args:
        datasets: batched datasets of (images, labels) in dataset order; their images
            must share one size.
    Returns:
        an infinite dataset of (images, unified labels), one batch of each in turn.
    """
    sizes = tuple(int(ds.element_spec[1].shape[-1]) for ds in datasets)
    unified = [ds.repeat().map(lambda x, y, k=k: (x, unified_labels(y, k, sizes)))
               for k, ds in enumerate(datasets)]
    choice = tf.data.Dataset.range(len(datasets)).repeat()
    return tf.data.Dataset.choose_from_datasets(unified, choice)


# ---------------------------------------------------------------------------------
# The common training path: `--data DIR [DIR2] [--attr-file F] [--attrs ...]`.

def celeba_image_folder(root):
    """The image folder of a CelebA `root`: `root/images` (the reference's
    `data/celeba/images`) when it exists, else `root` itself."""
    images = os.path.join(root, "images")
    return images if os.path.isdir(images) else root


def labelled_data_spec(data, attr_file=None, attrs=None):
    """`--data`, `--attr-file`, `--attrs` -> (data spec for run.json, model overrides).

    Each folder of `data` is one dataset, read in the CelebA layout when it is the first
    and `attr_file` is given, or when it holds `list_attr_celeba.txt` (images in
    `DIR/images` or `DIR`); otherwise as one sub-folder per domain. Two folders train
    one model on both (the reference's `--dataset Both`, with the mask vector).

    The spec is plain JSON: the run records it, `labelled_dataset` reads it, and a
    resumed run reads the same images with the same attributes.

    Args:
        data: a folder or a list of one or two folders.
        attr_file: the first dataset's attribute file (reference `--attr_path`).
        attrs: the selected attributes (reference `--selected_attrs`); default
            `CELEBA_ATTRS`. Only for the CelebA layout.
    Returns:
        ({"datasets": [per-dataset spec]}, StarGAN constructor overrides: num_domains,
        domain_names, multi_label and, with two datasets, their `_2` counterparts).
    """
    folders = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not 1 <= len(folders) <= 2:
        raise ValueError(f"--data takes one dataset folder, or two for multi-dataset training; "
                         f"got {len(folders)}")
    specs = []
    for k, root in enumerate(map(os.fspath, folders)):
        if not os.path.isdir(root):
            raise ValueError(f"data folder {root!r} does not exist")
        own_attr_file = attr_file if k == 0 and attr_file else os.path.join(root, CELEBA_ATTR_FILE)
        if os.path.isfile(own_attr_file) or (k == 0 and attr_file):
            specs.append({"layout": "celeba", "images": celeba_image_folder(root),
                          "attr_file": own_attr_file, "attrs": list(attrs or CELEBA_ATTRS),
                          "crop_size": CELEBA_CROP_SIZE})
        else:
            if k == 0 and attrs:
                raise ValueError(f"--attrs selects CelebA attributes, but {root!r} has no "
                                 f"{CELEBA_ATTR_FILE}: pass --attr-file, or leave --attrs out "
                                 "for one folder per domain")
            # crop_size None: arbitrary domain folders are resized whole (the reference
            # crops RaFD's 681x1024 photos to 256 first: use `domain_folder_dataset`).
            specs.append({"layout": "folders", "root": root,
                          "domains": domain_folder_names(root), "crop_size": None})
    overrides = {}
    for k, spec in enumerate(specs):
        names = spec["attrs"] if spec["layout"] == "celeba" else spec["domains"]
        suffix = "_2" if k else ""
        overrides.update({"num_domains" + suffix: len(names), "domain_names" + suffix: names,
                          "multi_label" + suffix: spec["layout"] == "celeba"})
    return {"datasets": specs}, overrides


def labelled_dataset(spec, batch_size=16, image_size=128, load_size=None, seed=None):
    """The training dataset a `labelled_data_spec` spec describes: `train`'s `dataset_fn`.

    Unreadable images are skipped with their labels and reported once. With two datasets
    batches alternate (`multi_dataset`) with unified labels.

    Args:
        spec: {"datasets": [...]} from `labelled_data_spec` (as recorded in run.json).
        batch_size, image_size, seed: as `celeba_dataset`.
        load_size: unused; StarGAN centre-crops (`crop_size` in the spec) and resizes.
    Returns:
        (infinite dataset of (images, labels), steps per epoch, SkipReport).
    """
    report = SkipReport()
    datasets, steps = [], []
    for k, part in enumerate(spec["datasets"]):
        if part["layout"] == "celeba":
            paths, labels = celeba_files(part["images"], part["attr_file"], part["attrs"], "train")
        else:
            paths, ids, names = list_domain_folders(part["root"])
            if names != part["domains"]:
                raise ValueError(f"{part['root']!r} now holds domains {', '.join(names)}; the run "
                                 f"was made with {', '.join(part['domains'])}")
            labels = np.eye(len(names), dtype=np.float32)[ids]
        good, bad = check_images(paths)
        for path, reason in bad:
            report.add(path, reason)
        keep = set(good)
        index = [i for i, path in enumerate(paths) if path in keep]
        if len(index) < batch_size:
            raise ValueError(f"dataset {k + 1} has {len(index)} readable training image(s), fewer "
                             f"than one batch of {batch_size}")
        datasets.append(labelled_image_dataset(
            [paths[i] for i in index], labels[index], image_size, part["crop_size"], batch_size,
            True, None if seed is None else seed + k, report))
        steps.append(len(index) // batch_size)
    if len(datasets) == 1:
        return datasets[0].repeat(), steps[0], report
    return multi_dataset(datasets), len(datasets) * max(steps), report
