"""Seeded synthetic scenes with exact boxes: "night" (domain A) and "day" (domain B).

Night: a dark noisy background with bright shapes; day: a light vertical gradient with
dark shapes. Classes 1 square, 2 disc, 3 triangle (apex up). Every instance of an image has
its own colour, and its box is the tight extent of its pixels (pixel i spans [i, i + 1)).
The first four images of a folder are, in order: no instances, an overlapping pair, shapes
touching the borders, and a 3-px square (smaller than one stride-4 cell); the others hold
0-4 random, separate instances. In the overlapping pair the later shape covers at most a
third of a top corner of the earlier one's box, which leaves the earlier shape's extent
visible (square edges, disc extremes, triangle apex and base stay uncovered).

REFERENCE-WAVE4 §4.4 (the proposal this follows).
"""

import os

import numpy as np
from PIL import Image

from tf_translate.models.dunit.boxes import make_record, write_box_json, write_init_annotations

CLASSES = ("square", "disc", "triangle")
NIGHT_COLOURS = ((255, 70, 70), (70, 255, 70), (90, 140, 255), (255, 255, 70), (255, 80, 255), (70, 255, 255))
DAY_COLOURS = ((150, 0, 0), (0, 110, 0), (0, 0, 160), (140, 100, 0), (120, 0, 120), (0, 90, 90))
SCENE_KINDS = ("empty", "overlap", "border", "subcell")


def shape_mask(label, x0, y0, extent, size):
    """Boolean (size, size) mask of a shape of class `label` in the square [x0, x0 + extent)²:
    the pixels whose centres fall inside it."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    u, v = (xs - x0) / extent, (ys - y0) / extent  # unit-square coordinates
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if label == 2:
        inside &= (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    elif label == 3:
        inside &= np.abs(u - 0.5) <= v / 2  # apex (0.5, 0), base along v = 1
    return inside


def mask_box(mask):
    """Tight xyxy extent of a mask's pixels."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def background(rng, size, domain):
    if domain == "night":
        base = rng.uniform(10, 35, 3)
        image = base + rng.normal(0, 4, (size, size, 3))
    else:
        top, bottom = rng.uniform(215, 240, 3), rng.uniform(170, 195, 3)
        ramp = np.linspace(0.0, 1.0, size)[:, None, None]
        image = np.broadcast_to((1 - ramp) * top + ramp * bottom, (size, size, 3))
    return np.clip(image, 0, 255)


def place_apart(rng, size, extent, taken, margin=2):
    """A corner (x0, y0) for a shape of `extent` whose square keeps `margin` px from the
    `taken` squares, or None after 50 tries."""
    for _ in range(50):
        x0, y0 = (int(v) for v in rng.integers(0, size - extent + 1, 2))
        if all(x0 + extent + margin <= tx0 or tx0 + textent + margin <= x0 or
               y0 + extent + margin <= ty0 or ty0 + textent + margin <= y0 for tx0, ty0, textent in taken):
            return x0, y0
    return None


def scene_layout(rng, size, kind):
    """[(label, x0, y0, extent)] in drawing order for one scene of `kind`."""
    low, high = max(6, size // 8), max(7, size // 3)
    if kind == "empty":
        return []
    if kind == "overlap":
        first = int(rng.integers(max(low, size // 4), high + 1))
        second = int(rng.integers(low, min(high, size // 4) + 1))
        x0, y0 = (int(v) for v in rng.integers(second, size - first - second + 1, 2))
        depth = max(1, first // 3 - 1)  # how far the top shape reaches into the lower one's corner
        left = bool(rng.integers(2))
        x1 = x0 + depth - second if left else x0 + first - depth
        return [(int(rng.integers(1, 4)), x0, y0, first), (int(rng.integers(1, 4)), x1, y0 + depth - second, second)]
    if kind == "border":
        a, b = (int(v) for v in rng.integers(low, high + 1, 2))
        return [(int(rng.integers(1, 4)), 0, int(rng.integers(0, size // 2 - a)), a),
                (int(rng.integers(1, 4)), size - b, size - b, b)]
    if kind == "subcell":
        return [(1, int(rng.integers(2, size - 5)), int(rng.integers(2, size - 5)), 3)]
    layout, taken = [], []
    for _ in range(int(rng.integers(0, 5))):
        extent = int(rng.integers(low, high + 1))
        corner = place_apart(rng, size, extent, taken)
        if corner is not None:
            taken.append((*corner, extent))
            layout.append((int(rng.integers(1, 4)), *corner, extent))
    return layout


def make_scene(rng, size, domain, kind="random"):
    """(uint8 image (size, size, 3), record, [instance colour]) for a "night" or "day" scene.

    `kind`: "empty", "overlap", "border", "subcell" or "random" (see the module docstring).
    """
    image = background(rng, size, domain)
    palette = NIGHT_COLOURS if domain == "night" else DAY_COLOURS
    layout = scene_layout(rng, size, kind)
    colours = [palette[i] for i in rng.permutation(len(palette))[:len(layout)]]
    boxes, labels = [], []
    for (label, x0, y0, extent), colour in zip(layout, colours):
        mask = shape_mask(label, x0, y0, extent, size)
        image = np.where(mask[..., None], np.asarray(colour, float), image)
        boxes.append(mask_box(mask))
        labels.append(label)
    return np.round(image).astype(np.uint8), make_record(boxes, labels), colours


def write_scene_folder(folder, count, size, domain, rng):
    """`count` scenes as NNNN.png in `folder`, with init.txt and boxes.json; returns
    {file name: record}."""
    os.makedirs(folder, exist_ok=True)
    records = {}
    for i in range(count):
        image, record, _ = make_scene(rng, size, domain, SCENE_KINDS[i] if i < len(SCENE_KINDS) else "random")
        name = f"{i:04d}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        records[name] = record
    write_init_annotations(os.path.join(folder, "init.txt"), records, {name: (size, size) for name in records})
    write_box_json(os.path.join(folder, "boxes.json"), records, CLASSES)
    return records


def write_scene_folders(root, count_a, count_b, size, seed, test_count=4):
    """Night scenes in trainA/testA and day scenes in trainB/testB under `root` (unpaired),
    each folder with its init.txt and boxes.json. Returns `root`."""
    rng = np.random.default_rng(seed)
    for split, count_a_, count_b_ in (("train", count_a, count_b), ("test", test_count, test_count)):
        write_scene_folder(os.path.join(root, split + "A"), count_a_, size, "night", rng)
        write_scene_folder(os.path.join(root, split + "B"), count_b_, size, "day", rng)
    return root
