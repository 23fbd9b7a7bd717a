"""Box records and files, the synthetic scenes, box transforms, the released multibox IoU
and the box pipeline (tf_translate.models.dunit: boxes, scenes, data)."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_translate.models.dunit import boxes as box_files
from tf_translate.models.dunit import data as dunit_data
from tf_translate.models.dunit import scenes

# Two records in DUNIT's INIT layout (REFERENCE-WAVE4 §2.4), written by hand.
INIT_TEXT = """0
datasets/night/trainA/a.png
64 48
0
2
1 3 4 10.5 12
3 0 0 64 48


1
datasets/night/trainA/b.png
64 48
0
0


"""


def tight_extent(mask):
    """[x1, y1, x2, y2] of a mask's pixels, pixel i spanning [i, i + 1)."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def scene_colour_extent(image, colour):
    """Tight extent of the pixels of exactly `colour`, or None."""
    mask = (image == np.asarray(colour, np.uint8)).all(axis=-1)
    return tight_extent(mask) if mask.any() else None


@pytest.mark.parametrize("size", [32, 64])
def test_scene_boxes_are_the_tight_extents_of_each_instance(size):
    rng = np.random.default_rng(3)
    kinds = list(scenes.SCENE_KINDS) + ["random"] * 12
    counts = []
    for kind in kinds:
        for domain in ("night", "day"):
            image, record, colours = scenes.make_scene(rng, size, domain, kind)
            counts.append(len(record["labels"]))
            for box, colour in zip(record["boxes"], colours):
                assert scene_colour_extent(image, colour) == box.tolist()
            assert set(record["labels"].tolist()) <= {1, 2, 3}
    assert counts[:8] == [0, 0, 2, 2, 2, 2, 1, 1]  # empty, overlapping pair, border pair, one sub-cell square


def test_scene_kinds_hold_what_they_promise():
    rng = np.random.default_rng(0)
    _, overlap, _ = scenes.make_scene(rng, 64, "night", "overlap")
    assert box_files.iou_matrix(overlap["boxes"][:1], overlap["boxes"][1:])[0, 0] > 0
    _, border, _ = scenes.make_scene(rng, 64, "day", "border")
    assert border["boxes"][0, 0] == 0 and border["boxes"][1, 2] == 64 and border["boxes"][1, 3] == 64
    _, subcell, _ = scenes.make_scene(rng, 64, "night", "subcell")
    assert (subcell["boxes"][0, 2:] - subcell["boxes"][0, :2]).tolist() == [3, 3]


def test_read_init_annotations_hand_written(tmp_path):
    path = tmp_path / "init.txt"
    path.write_text(INIT_TEXT)
    records = box_files.read_init_annotations(str(path), num_classes=3)
    assert list(records) == ["a.png", "b.png"]  # keyed by file name
    np.testing.assert_array_equal(records["a.png"]["boxes"], [[3, 4, 10.5, 12], [0, 0, 64, 48]])
    np.testing.assert_array_equal(records["a.png"]["labels"], [1, 3])
    assert records["a.png"]["boxes"].dtype == np.float32 and records["a.png"]["labels"].dtype == np.int32
    assert records["b.png"]["boxes"].shape == (0, 4) and records["b.png"]["labels"].shape == (0,)


def test_init_and_json_round_trip(tmp_path):
    records = {"x.png": box_files.make_record([[1.25, 2, 30, 31.5], [0, 0, 4, 4]], [2, 1]),
               "empty.png": box_files.make_record()}
    box_files.write_init_annotations(str(tmp_path / "init.txt"), records)
    box_files.write_box_json(str(tmp_path / "boxes.json"), records, scenes.CLASSES)
    from_init = box_files.read_init_annotations(str(tmp_path / "init.txt"), 3)
    from_json, classes = box_files.read_box_json(str(tmp_path / "boxes.json"))
    assert classes == ["square", "disc", "triangle"]
    for read in (from_init, from_json):
        assert list(read) == list(records)
        for name in records:
            np.testing.assert_array_equal(read[name]["boxes"], records[name]["boxes"])
            np.testing.assert_array_equal(read[name]["labels"], records[name]["labels"])
    content = json.loads((tmp_path / "boxes.json").read_text())
    assert content["images"]["x.png"] == {"boxes": [[1.25, 2, 30, 31.5], [0, 0, 4, 4]], "labels": [2, 1]}


@pytest.mark.parametrize("text, line, message", [
    (INIT_TEXT.replace("1 3 4 10.5 12", "1 3 4 10.5"), 6, "expected 'label x1 y1 x2 y2'"),
    (INIT_TEXT.replace("1 3 4 10.5 12", "one 3 4 10.5 12"), 6, "expected 'label x1 y1 x2 y2'"),
    (INIT_TEXT.replace("3 0 0 64 48", "4 0 0 64 48"), 7, "unknown label 4 (labels are 1..3"),
    (INIT_TEXT.replace("3 0 0 64 48", "0 0 0 64 48"), 7, "unknown label 0"),
    (INIT_TEXT.replace("\n2\n", "\ntwo\n", 1), 5, "box count 'two'"),
    (INIT_TEXT.replace("1 3 4 10.5 12", "1 3 4 nan 12"), 6, "finite"),
    (INIT_TEXT[:INIT_TEXT.index("3 0 0")], 7, "file ends"),
    (INIT_TEXT.replace("trainA/b.png", "trainA/a.png"), 11, "second record"),
], ids=["short", "word", "label_4", "label_0", "count", "nan", "truncated", "duplicate"])
def test_init_bad_lines_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "init.txt"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        box_files.read_init_annotations(str(path), num_classes=3)
    assert str(error.value).startswith(f"{path}:{line}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("entry, message", [
    ({"boxes": [[0, 0, 4, 4]], "labels": [4]}, "unknown label 4"),
    ({"boxes": [[0, 0, 4]], "labels": [1]}, "expected"),
    ({"boxes": [[0, 0, 4, 4]]}, "expected"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [1.5]}, "expected"),
])
def test_box_json_bad_entries_name_file_line_and_image(tmp_path, entry, message):
    path = tmp_path / "boxes.json"
    good = {"boxes": [[0, 0, 4, 4]], "labels": [1]}
    path.write_text(json.dumps({"classes": ["square", "disc", "triangle"], "images": {"ok.png": good, "a.png": entry}},
                               indent=1))
    with pytest.raises(ValueError) as error:
        box_files.read_box_json(str(path))
    line = [i + 1 for i, text in enumerate(path.read_text().splitlines()) if '"a.png"' in text]
    assert len(line) == 1 and line[0] > 5  # below the first entry
    assert str(error.value).startswith(f"{path}:{line[0]} (images['a.png']): {message}")
    assert "\n" not in str(error.value)
    path.write_text('{"classes": [], "images": {')
    with pytest.raises(ValueError, match=r"boxes\.json:1: not valid JSON"):
        box_files.read_box_json(str(path))


def test_degenerate_boxes_dropped_and_outside_boxes_clipped_with_counts(tmp_path):
    path = tmp_path / "init.txt"
    path.write_text(INIT_TEXT.replace("\n2\n1 3 4 10.5 12", "\n3\n2 5 5 5 9\n1 3 4 10.5 12"))
    stream = io.StringIO()
    warnings = box_files.BoxWarnings(stream)
    records = box_files.read_init_annotations(str(path), 3, warnings)
    assert warnings.counts == {"degenerate boxes dropped": 1}
    assert "init.txt:2 (a.png): 1 box(es) of no width or height dropped" in stream.getvalue()
    np.testing.assert_array_equal(records["a.png"]["labels"], [1, 3])
    # A 32 x 24 image: the second box sticks out; a box wholly outside is left degenerate.
    record = box_files.make_record([[3, 4, 10, 12], [-2, 0, 64, 48], [40, 0, 50, 10]], [1, 3, 2])
    clipped = box_files.clip_record(record, 32, 24, "a.png", warnings)
    np.testing.assert_array_equal(clipped["boxes"], [[3, 4, 10, 12], [0, 0, 32, 24]])
    np.testing.assert_array_equal(clipped["labels"], [1, 3])
    assert warnings.counts == {"degenerate boxes dropped": 2, "boxes clipped": 2}
    boxes, labels = box_files.pad_record(record, 2, "a.png", warnings)
    np.testing.assert_array_equal(labels, [1, 3])
    assert warnings.counts["boxes over max_boxes dropped"] == 1
    boxes, labels = box_files.pad_record(clipped, 4, "a.png", warnings)
    np.testing.assert_array_equal(boxes[2:], 0)
    np.testing.assert_array_equal(labels, [1, 3, 0, 0])


# ---------------------------------------------------------------------------------
# The released multibox IoU (REFERENCE-WAVE4 §2.2; hand values from IVRL/Dunit tests/test_ic.py)

def test_iou_and_multibox_iou_hand_values():
    assert box_files.iou_matrix([[0, 1, 2, 3]], [[1, 2, 3, 4]])[0, 0] == pytest.approx(1 / 7)
    assert box_files.iou_matrix([[0, 0, 2, 2]], [[2, 0, 4, 2]])[0, 0] == 0  # touching only
    assert box_files.multibox_iou([[0, 1, 2, 3], [2, 3, 4, 5]], [[2, 3, 4, 5], [1, 2, 3, 4]]) == pytest.approx(
        (1 + 1 / 7) / 2)
    assert box_files.multibox_iou([[0, 1, 2, 3]], np.zeros((0, 4))) == 0
    assert box_files.multibox_iou(np.zeros((0, 4)), [[0, 1, 2, 3]]) == 0
    # Unequal counts: one perfect match of three GT boxes: ½·[1/(1+2) + 1/(3+2)].
    assert box_files.multibox_iou([[0, 0, 1, 1], [5, 5, 6, 6], [8, 8, 9, 9]], [[0, 0, 1, 1]]) == pytest.approx(
        0.5 * (1 / 3 + 1 / 5))


def test_instance_consistency_hand_values_and_nan():
    gt = [np.array([[0, 1, 2, 3], [2, 3, 4, 5]]), np.array([[0, 0, 4, 4]])]
    gt_labels = [np.array([1, 1]), np.array([2])]
    det = [np.array([[2, 3, 4, 5], [1, 2, 3, 4], [0, 0, 9, 9]]), np.zeros((0, 4))]
    det_labels = [np.array([1, 1, 3]), np.zeros((0,), int)]
    # image 1: class 1 gives 1 - (1 + 1/7)/2, class 3 (detected only) gives 1; image 2: class 2 missed, 1.
    first = ((1 - (1 + 1 / 7) / 2) + 1) / 2
    assert box_files.instance_consistency(gt, gt_labels, det, det_labels) == pytest.approx((first + 1) / 2)
    empty = [np.zeros((0, 4))]
    assert np.isnan(box_files.instance_consistency(empty, [np.zeros(0, int)], empty, [np.zeros(0, int)]))


def padded(boxes_list, labels_list, max_boxes):
    pairs = [box_files.pad_record(box_files.make_record(b, l), max_boxes, "", box_files.BoxWarnings())
             for b, l in zip(boxes_list, labels_list)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_instance_consistency_tf_equals_numpy_on_random_padded_boxes():
    rng = np.random.default_rng(7)
    gt, gt_labels, det, det_labels = [], [], [], []
    for i in range(12):
        for boxes, labels, count in ((gt, gt_labels, rng.integers(0, 5)), (det, det_labels, rng.integers(0, 7))):
            corner = rng.uniform(0, 20, (count, 2))
            boxes.append(np.concatenate([corner, corner + rng.uniform(1, 12, (count, 2))], 1).astype(np.float32))
            labels.append(rng.integers(1, 4, count))
    det[0], det_labels[0] = gt[0] + 0.5, gt_labels[0]  # overlapping, not equal
    gt[1], gt_labels[1], det[1], det_labels[1] = gt[1][:0], gt_labels[1][:0], det[1][:0], det_labels[1][:0]
    expected = [box_files.instance_consistency(gt[i:i + 1], gt_labels[i:i + 1], det[i:i + 1], det_labels[i:i + 1])
                for i in range(12)]
    assert np.isnan(expected[1]) and 0 < expected[0] < 1
    g, gl = padded(gt, gt_labels, 6)
    d, dl = padded(det, det_labels, 8)
    consistency = tf.function(box_files.instance_consistency_tf, jit_compile=True, reduce_retracing=True)
    for i in range(12):
        got = consistency(g[i:i + 1], gl[i:i + 1], d[i:i + 1], dl[i:i + 1], 3)
        np.testing.assert_allclose(got.numpy(), expected[i], rtol=1e-5, atol=1e-6)
    keep = [i for i in range(12) if i != 1]
    np.testing.assert_allclose(consistency(g[keep], gl[keep], d[keep], dl[keep], 3).numpy(),
                               box_files.instance_consistency([gt[i] for i in keep], [gt_labels[i] for i in keep],
                                                              [det[i] for i in keep], [det_labels[i] for i in keep]),
                               rtol=1e-5)
    assert np.isnan(consistency(g, gl, d, dl, 3).numpy())  # one image with neither: NaN, as released


# ---------------------------------------------------------------------------------
# Box transforms on padded tensors

def test_box_transforms_against_hand_values():
    boxes = tf.constant([[[10, 4, 20, 8], [0, 0, 6, 6], [30, 30, 40, 40], [0, 0, 0, 0]]], tf.float32)
    labels = tf.constant([[1, 2, 3, 0]], tf.int32)
    resized, same = box_files.resize_boxes(boxes, labels, 0.5, 2.0)
    np.testing.assert_array_equal(resized[0, :3], [[5, 8, 10, 16], [0, 0, 3, 12], [15, 60, 20, 80]])
    np.testing.assert_array_equal(same, labels)
    flipped, _ = box_files.flip_boxes_left_right(boxes, labels, 40)
    np.testing.assert_array_equal(flipped[0], [[20, 4, 30, 8], [34, 0, 40, 6], [0, 30, 10, 40], [0, 0, 0, 0]])
    # Crop 24 x 24 at (4, 2): the first box moves, the second is clipped, the third falls out.
    cropped, kept = box_files.crop_boxes(boxes, labels, 4, 2, 24, 24)
    np.testing.assert_array_equal(cropped[0], [[6, 2, 16, 6], [0, 0, 2, 4], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(kept, [[1, 2, 0, 0]])
    cropped, kept = box_files.crop_boxes(boxes, labels, 6, 0, 24, 24)  # the second box left with no width
    np.testing.assert_array_equal(cropped[0, 0], [4, 4, 14, 8])
    np.testing.assert_array_equal(kept, [[1, 0, 0, 0]])


# ---------------------------------------------------------------------------------
# The box pipeline: boxes follow every resize, crop and flip (D2 fixed)

def boxes_frame_their_shapes(image, boxes, labels, palette, tolerance=40):
    """Checks each box of a pipeline image against the pixels of its instance colour (the
    palette colour most present inside it; a pixel counts for its nearest palette colour):
    there are such pixels, none of them lies more than 1 px outside the box, and their tight
    extent matches the box within 1 px (only on the sides where the crop did not cut a disc
    or triangle). Returns (boxes checked, boxes whose extent was compared)."""
    size = image.shape[0]
    distance = np.abs(image.astype(int)[None] - np.asarray(palette)[:, None, None]).max(-1)  # (colours, H, W)
    near = [(distance[k] <= tolerance) & (distance.argmin(0) == k) for k in range(len(palette))]
    checked = compared = 0
    for box, label in zip(boxes, labels):
        if label == 0:
            assert not box.any()
            continue
        x1, y1, x2, y2 = box
        inside = np.zeros((size, size), bool)
        inside[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = True
        mask = max(near, key=lambda m: (m & inside).sum())
        cut = (box[:2] == 0) | (box[2:] == size)
        if cut.any() and not (mask & inside).any() and (label != 1 or min(x2 - x1, y2 - y1) < 1.5):
            continue  # the crop kept a corner of a disc's or triangle's box, or a sliver of blended pixels
        assert (mask & inside).sum() > 0, f"no shape pixels in box {box}"
        grown = np.zeros((size, size), bool)
        top, left = max(0, int(np.floor(y1)) - 1), max(0, int(np.floor(x1)) - 1)
        grown[top:int(np.ceil(y2)) + 1, left:int(np.ceil(x2)) + 1] = True
        assert not (mask & ~grown).any(), f"shape pixels outside box {box}"
        extent = np.array(tight_extent(mask))
        sides = np.ones(4, bool) if label == 1 else ~np.concatenate([cut[::-1], cut[::-1]])
        np.testing.assert_allclose(extent[sides], box[sides], atol=1.0, err_msg=f"box {box} label {label}")
        checked += 1
        compared += sides.all()
    return checked, compared


@pytest.fixture(scope="module")
def scene_root(tmp_path_factory):
    return scenes.write_scene_folders(str(tmp_path_factory.mktemp("scenes")), 12, 10, 32, seed=5)


def test_training_boxes_follow_resize_crop_and_flip(scene_root):
    dataset, steps, report = dunit_data.box_dataset(scene_root, batch_size=2, image_size=32, load_size=48, seed=3)
    assert steps == 6 and report.boxes.counts == {} and not report.skipped
    checked = compared = cut = 0
    for batch in dataset.take(12):  # two epochs of A: a flip and a crop of every scene
        for side, palette in (("a", scenes.NIGHT_COLOURS), ("b", scenes.DAY_COLOURS)):
            images = np.round((batch[side].numpy() + 1) * 127.5).astype(np.uint8)
            for image, boxes, labels in zip(images, batch["boxes_" + side].numpy(), batch["labels_" + side].numpy()):
                counts = boxes_frame_their_shapes(image, boxes, labels, palette)
                checked, compared = checked + counts[0], compared + counts[1]
                cut += int(((boxes[:, :2] == 0) | (boxes[:, 2:] == 32)).any(-1)[labels > 0].sum())
    assert checked >= 40 and compared >= 20 and cut >= 10  # 54, 28 and 40 with these seeds


def test_test_split_resizes_boxes_without_crop_or_flip(scene_root):
    dataset, _, _ = dunit_data.box_dataset(scene_root, batch_size=4, image_size=64, split="test")
    batch = next(iter(dataset))
    expected = box_files.read_init_annotations(f"{scene_root}/testA/init.txt", 3)
    for i, name in enumerate(sorted(expected)):  # test order is file order
        count = len(expected[name]["labels"])
        np.testing.assert_array_equal(batch["boxes_a"][i, :count], expected[name]["boxes"] * 2)
        np.testing.assert_array_equal(batch["labels_a"][i, :count], expected[name]["labels"])
        assert not batch["labels_a"][i, count:].numpy().any()
        image = np.round((batch["a"][i].numpy() + 1) * 127.5).astype(np.uint8)
        boxes_frame_their_shapes(image, batch["boxes_a"][i].numpy(), batch["labels_a"][i].numpy(), scenes.NIGHT_COLOURS)


def write_images(folder, names, size=(40, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(folder / name)


def test_pipeline_counts_box_problems_and_reads_domains_without_boxes(tmp_path, capsys):
    write_images(tmp_path / "trainA", ["p.png", "q.png", "r.png"])  # 40 wide, 20 high
    write_images(tmp_path / "trainB", ["s.png"])
    records = {"p.png": box_files.make_record([[-4, 2, 10, 30], [30, 0, 60, 10], [50, 0, 70, 10]], [1, 2, 3]),
               "q.png": box_files.make_record([[i, 0, i + 1, 1] for i in range(5)], [1] * 5),
               "gone.png": box_files.make_record([[0, 0, 4, 4]], [1])}
    box_files.write_init_annotations(str(tmp_path / "trainA" / "init.txt"), records)
    stream = io.StringIO()
    report = dunit_data.BoxReport(stream)
    dataset, count, classes = dunit_data.box_folder_dataset(str(tmp_path / "trainA"), image_size=20, training=False,
                                                            report=report, max_boxes=4, num_classes=3)
    assert count == 3 and classes is None
    assert report.boxes.counts == {"records without an image": 1, "images without a record": 1, "boxes clipped": 3,
                                   "degenerate boxes dropped": 1, "boxes over max_boxes dropped": 1}
    assert "init.txt: no image for gone.png" in stream.getvalue() and "no boxes for r.png" in stream.getvalue()
    (p_image, p_boxes, p_labels), (_, q_boxes, q_labels), (_, r_boxes, r_labels) = list(dataset)
    # p: clipped to 40 x 20, then squashed to 20 x 20 (x halves); the box wholly right of the image dropped.
    np.testing.assert_array_equal(p_boxes[:2], [[0, 2, 5, 20], [15, 0, 20, 10]])
    np.testing.assert_array_equal(p_labels, [1, 2, 0, 0])
    np.testing.assert_array_equal(q_labels, [1, 1, 1, 1])
    assert not r_labels.numpy().any() and not r_boxes.numpy().any()
    assert p_image.shape == (20, 20, 3) and np.allclose(p_image, 90 / 127.5 - 1)
    capsys.readouterr()
    dataset, steps, report = dunit_data.box_dataset(str(tmp_path), batch_size=3, image_size=16, seed=0, max_boxes=4)
    assert ("tf_translate: box files: records without an image: 1, images without a record: 1, boxes clipped: 3, "
            "degenerate boxes dropped: 1, boxes over max_boxes dropped: 1") in capsys.readouterr().err
    batch = next(iter(dataset))
    assert not batch["labels_b"].numpy().any() and batch["boxes_b"].shape == (3, 4, 4)  # B has no box file
    assert dunit_data.box_classes(str(tmp_path)) is None


def test_pipeline_bad_labels_and_class_lists_are_one_line_errors(tmp_path):
    write_images(tmp_path / "trainA", ["p.png"])
    write_images(tmp_path / "trainB", ["s.png"])
    box_files.write_init_annotations(str(tmp_path / "trainA" / "init.txt"),
                                     {"p.png": box_files.make_record([[0, 0, 4, 4]], [5])})
    with pytest.raises(ValueError, match=r"trainA/init\.txt:6: unknown label 5 \(labels are 1\.\.3"):
        dunit_data.box_dataset(str(tmp_path), image_size=16, num_classes=3)
    (tmp_path / "trainA" / "init.txt").unlink()
    box_files.write_box_json(str(tmp_path / "trainA" / "boxes.json"), {}, ["square", "disc"])
    box_files.write_box_json(str(tmp_path / "trainB" / "boxes.json"), {}, ["square", "disc", "triangle"])
    with pytest.raises(ValueError, match=r"trainB/boxes\.json: 3 classes, but the model has 2"):
        dunit_data.box_dataset(str(tmp_path), image_size=16, num_classes=2)
    with pytest.raises(ValueError, match="name different classes"):
        dunit_data.box_dataset(str(tmp_path), image_size=16)
    assert dunit_data.box_classes(str(tmp_path)) == ["square", "disc"]


def test_seeded_pipeline_repeats_itself(scene_root):
    def first_batches(seed):
        dataset = dunit_data.box_dataset(scene_root, batch_size=2, image_size=32, load_size=40, seed=seed)[0]
        return [{k: v.numpy() for k, v in batch.items()} for batch in dataset.take(3)]
    one, two, other = first_batches(4), first_batches(4), first_batches(5)
    for a, b in zip(one, two):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["boxes_a"], c["boxes_a"]) for a, c in zip(one, other))
