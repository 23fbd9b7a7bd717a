"""Box records and files, the synthetic scenes, box transforms, the released multibox IoU
and the box pipeline (tf_translate.models.dunit: boxes, scenes, data)."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf

from tf_translate.models.dunit import boxes as box_files
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


def scene_colour_extent(image, colour, tolerance=0):
    """Tight xyxy extent of the pixels within `tolerance` (max channel difference) of `colour`."""
    close = np.abs(image.astype(int) - np.asarray(colour)).max(axis=-1) <= tolerance
    return scenes.mask_box(close) if close.any() else None


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


@pytest.mark.parametrize("images, message", [
    ({"a.png": {"boxes": [[0, 0, 4, 4]], "labels": [4]}}, "images['a.png']: unknown label 4"),
    ({"a.png": {"boxes": [[0, 0, 4]], "labels": [1]}}, "images['a.png']: expected"),
    ({"a.png": {"boxes": [[0, 0, 4, 4]]}}, "images['a.png']: expected"),
    ({"a.png": {"boxes": [[0, 0, 4, 4]], "labels": [1.5]}}, "images['a.png']: expected"),
])
def test_box_json_bad_entries_name_file_and_image(tmp_path, images, message):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"classes": ["square", "disc", "triangle"], "images": images}))
    with pytest.raises(ValueError, match=r"^" + str(path).replace(".", r"\.") + ": ") as error:
        box_files.read_box_json(str(path))
    assert message in str(error.value)
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
