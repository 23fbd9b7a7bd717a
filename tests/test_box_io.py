"""Boxes in and out of box-taking translators (`Generator.takes_boxes`): translate --boxes
passes each image's boxes, scaled with --max-size, exactly as a Python call of the
translator would take them; the SavedModel's `serving_boxes` equals the Keras translator;
a translator that requires boxes has no image-only signatures and no TFLite file;
dunit_paper converts to TFLite (its detector inside) and matches Keras; bad box files and
flags give one-line errors.

Tiny dunit_paper at 64 px from a 2-step eager CLI run (as tests/test_dunit_paper.py).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_translate.cli import main
from tf_translate.generator import Generator
from tf_translate.models.dunit.scenes import write_scene_folders

TINY = dict(filters=4, attribute_filters=4, discriminator_filters=4, content_discriminator_filters=8,
            content_discriminator_layers=1, num_classes=3, detector_filters=8, max_boxes=8)
# Boxes of two test images in pixels of the 64 px originals; the third test image has no record.
BOXES = {0: ([[4.0, 8.0, 40.0, 36.0], [30.0, 24.0, 64.0, 60.0]], [1, 3]), 1: ([[0.0, 0.0, 32.0, 48.0]], [2])}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(scenes root, run dir, test image names, box file) of a 2-step dunit_paper run."""
    root = tmp_path_factory.mktemp("box_io")
    write_scene_folders(str(root / "scenes"), 4, 4, 64, 0, test_count=3)
    run_dir = str(root / "run")
    options = [f"{k}={v}" for k, v in TINY.items()] + ["detector_steps=1"]
    assert main(["train", "--model", "dunit_paper", "--data", str(root / "scenes"), "--run-dir", run_dir,
                 "--steps", "2", "--batch-size", "2", "--image-size", "64", "--load-size", "64", "--seed", "0",
                 "--eager", "--sample-every", "3", "--option", *options]) == 0
    inputs = str(root / "scenes" / "testA")
    names = sorted(n for n in os.listdir(inputs) if n.endswith(".png"))
    box_file = str(root / "boxes.json")
    images = {names[i]: {"boxes": boxes, "labels": labels} for i, (boxes, labels) in BOXES.items()}
    with open(box_file, "w") as f:
        json.dump({"classes": ["a", "b", "c"], "images": images}, f)
    return root, run_dir, inputs, names, box_file


def keras_translator(run_dir):
    from tf_translate.runs import load_generators

    model, _ = load_generators(run_dir)
    return model.generators()["a2b"]


def to_pixels(images):
    return np.clip(np.round((np.asarray(images) + 1) * 127.5), 0, 255).astype(int)


def read_pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_translate_boxes_equal_the_translator_called_with_the_resized_boxes(run, tmp_path):
    """--max-size 48 shrinks the 64 px images by 3/4: the boxes must shrink with them.
    The image without a record gets no boxes (a padding row: DRIT++'s global translation)."""
    from tf_translate.translate import limit_size

    _, run_dir, inputs, names, box_file = run
    out = tmp_path / "out"
    assert main(["translate", "--run-dir", run_dir, "--input", inputs, "--output", str(out), "--code-seed", "1",
                 "--max-size", "48", "--boxes", box_file]) == 0
    translator = keras_translator(run_dir)
    codes = np.random.default_rng(1).standard_normal((len(names), 8)).astype(np.float32)  # --code-seed 1, in order
    for index, name in enumerate(names):
        code = codes[index][None]
        image = limit_size(read_pixels(os.path.join(inputs, name)), 48)
        assert image.shape == (48, 48, 3)
        if index in BOXES:
            boxes = np.array(BOXES[index][0], np.float32)[None] * 0.75
            labels = np.array(BOXES[index][1], np.int32)[None]
        else:
            boxes, labels = np.zeros((1, 1, 4), np.float32), np.zeros((1, 1), np.int32)
        expected = to_pixels(translator([image[None].astype(np.float32) / 127.5 - 1, code], boxes=boxes,
                                        labels=labels))[0]
        assert np.abs(read_pixels(out / name).astype(int) - expected).max() <= 1, name
        if index in BOXES:  # the boxes changed the translation: they reached the instance branch
            no_boxes = to_pixels(translator([image[None].astype(np.float32) / 127.5 - 1, code],
                                            boxes=np.zeros((1, 1, 4), np.float32), labels=np.zeros((1, 1), np.int32)))
            assert np.abs(no_boxes[0] - expected).max() > 1


def test_saved_model_boxes_signature_equals_the_keras_translator(run, tmp_path):
    _, run_dir, inputs, names, _ = run
    assert main(["export", "--run-dir", run_dir, "--output", str(tmp_path / "export")]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "export" / "1"))
    assert {"serving_default", "serving_attributes", "serving_boxes", "translate_float_boxes"} <= set(loaded.signatures)
    pixels = np.stack([read_pixels(os.path.join(inputs, n)) for n in names[:2]])[:, :58, :54]  # padded to 60x56
    codes = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    boxes = np.array([[[4.0, 8.0, 40.0, 36.0]], [[10.0, 20.0, 50.0, 58.0]]], np.float32)
    labels = np.array([[1], [2]], np.int32)
    served = loaded.signatures["serving_boxes"](images=tf.constant(pixels), attributes=tf.constant(codes),
                                                boxes=tf.constant(boxes), box_labels=tf.constant(labels))["images"]
    assert served.shape == (2, 58, 54, 3)
    padded = np.pad(pixels.astype(np.float32) / 127.5 - 1, [(0, 0), (0, 2), (0, 2), (0, 0)], mode="symmetric")
    expected = to_pixels(keras_translator(run_dir)([padded, codes], boxes=boxes, labels=labels))[:, :58, :54]
    assert np.abs(served.numpy().astype(int) - expected).max() <= 1


@keras.saving.register_keras_serializable(package="tf_translate_test")
class BoxShade(Generator):
    """A translator that requires boxes: each image darkened inside its valid boxes by its
    weight `amount` (0.5; its NumPy re-statement is `shade`)."""

    takes_boxes = "required"

    def build(self, input_shape):
        self.amount = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.5), name="amount")

    def call(self, images, boxes=None, labels=None):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        ys = tf.cast(tf.range(height), tf.float32)[None, None, :, None] + 0.5
        xs = tf.cast(tf.range(width), tf.float32)[None, None, None, :] + 0.5
        corners = [boxes[..., i, None, None] for i in range(4)]
        inside = (xs >= corners[0]) & (ys >= corners[1]) & (xs < corners[2]) & (ys < corners[3])
        inside = tf.reduce_any(inside & (labels > 0)[..., None, None], axis=1)
        return tf.where(inside[..., None], images - self.amount, images)


def shade(images, boxes, labels):
    out = images.copy()
    for image, image_boxes, image_labels in zip(out, boxes, labels):
        for (x1, y1, x2, y2), label in zip(image_boxes, image_labels):
            if label > 0:
                image[int(y1):int(y2), int(x1):int(x2)] -= 0.5
    return out


def test_a_translator_that_requires_boxes_serves_only_with_boxes(tmp_path):
    from tf_translate.export import export_saved_model, export_tflite

    network = BoxShade()
    network.build((None, None, None, 3))
    path = export_saved_model(network, str(tmp_path / "shade"))
    loaded = tf.saved_model.load(path)
    assert set(loaded.signatures) == {"serving_boxes", "translate_float_boxes"}
    images = np.random.default_rng(3).uniform(-1, 1, (2, 14, 10, 3)).astype(np.float32)  # padded to 16x12 inside
    boxes = np.array([[[2, 3, 7, 9], [0, 0, 10, 14]], [[4, 0, 10, 6], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[1, 0], [2, 0]], np.int32)
    served = loaded.signatures["translate_float_boxes"](images=tf.constant(images), boxes=tf.constant(boxes),
                                                        box_labels=tf.constant(labels))["images"].numpy()
    np.testing.assert_allclose(served, shade(images, boxes, labels), atol=1e-6)
    with pytest.raises(ValueError, match="only with object boxes, and a .tflite file has no boxes input"):
        export_tflite(network, str(tmp_path / "shade.tflite"), 16)


def test_box_flags_and_files_give_one_line_errors(tmp_path):
    from argparse import Namespace

    from tf_translate.translate import check_box_flags, read_box_file

    with pytest.raises(ValueError, match="^--boxes is for models that take object boxes"):
        check_box_flags(Namespace(boxes="b.json"), None)
    with pytest.raises(ValueError, match="only with object boxes: pass translate --boxes FILE"):
        check_box_flags(Namespace(boxes=None), "required")
    check_box_flags(Namespace(boxes=None), "optional")  # dunit_paper detects its own
    good = tmp_path / "boxes.json"
    good.write_text(json.dumps({"classes": ["car"], "images": {"a.png": {"boxes": [[0, 0, 4, 4]], "labels": [1]}}}))
    records, _ = read_box_file(str(good), ["in/a.png", "in/b.png"], required=False)
    assert list(records) == ["a.png"]
    with pytest.raises(ValueError, match=r"boxes.json': no boxes for b.png; this model translates only with boxes"):
        read_box_file(str(good), ["in/a.png", "in/b.png"], required=True)
    with pytest.raises(ValueError, match="no such file"):
        read_box_file(str(tmp_path / "missing.json"), [], required=False)
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": ["car"], "images": {"a.png": {"boxes": [[0, 0, 4, 4]], "labels": [0]}}}')
    with pytest.raises(ValueError, match=r"bad.json:1 .*unknown label 0"):
        read_box_file(str(bad), ["a.png"], required=False)


def test_image_boxes_are_clipped_and_scaled_with_the_image():
    from tf_translate.models.dunit.boxes import BoxWarnings, make_record
    from tf_translate.translate import image_boxes

    record = make_record([[-4, 10, 30, 90], [50, 0, 60, 20]], [1, 2])
    warnings = BoxWarnings()
    result = image_boxes(record, (80, 40, 3), (40, 20, 3), "x.png", warnings)  # 40x80 -> 20x40: scale 1/2
    np.testing.assert_array_equal(result["boxes"], [[[0, 5, 15, 40]]])  # clipped to 40x80; the second left nothing
    np.testing.assert_array_equal(result["box_labels"], [[1]])
    assert warnings.counts == {"boxes clipped": 2, "degenerate boxes dropped": 1}
    empty = image_boxes(None, (80, 40, 3), (80, 40, 3), "y.png", warnings)
    assert empty["box_labels"].tolist() == [[0]]


def test_cli_box_errors_name_the_flag_or_file(run, tmp_path, capsys):
    _, run_dir, inputs, _, box_file = run
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for extra, message in ((["--boxes", str(bad)], "bad.json:1: not valid JSON"),
                           (["--boxes", box_file, "--tile", "32"], "--tile: boxes cannot be split across tiles")):
        assert main(["translate", "--run-dir", run_dir, "--input", inputs, "--output", str(tmp_path / "o"),
                     *extra]) != 0
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("tf-translate: error: ") and message in error


def test_dunit_paper_converts_to_tflite_with_its_detector_and_matches_keras(tmp_path):
    """The detector's NMS and gathers convert with builtin ops; the code is an input. The
    score threshold sits in the widest gap of the top scores, so both keep the same boxes."""
    from tf_translate.export import TFLiteTranslator, export_tflite
    from tf_translate.models.dunit.model import to_unit_range
    from tf_translate.models.dunit.paper import DUNITPaper

    translator = DUNITPaper(**TINY, image_size=64, seed=0, detector_steps=0).generators()["a2b"]
    pixels = np.random.default_rng(4).integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
    images = pixels.astype(np.float32) / 127.5 - 1
    scores = translator.detector.detect(to_unit_range(images), score_threshold=0.0, max_detections=8)["scores"]
    scores = np.sort(scores.numpy()[0])[::-1]
    gap = int(np.argmax(scores[:-1] - scores[1:]))
    translator.score_threshold = float(scores[gap] + scores[gap + 1]) / 2
    assert int(translator.detect(images)[1].numpy().astype(bool).sum()) == gap + 1  # boxes are kept
    export_tflite(translator, str(tmp_path / "dunit.tflite"), 64)
    code = np.random.default_rng(5).standard_normal((1, 8)).astype(np.float32)
    served = TFLiteTranslator(str(tmp_path / "dunit.tflite"))(pixels, attributes=code)
    expected = to_pixels(translator([images, code]))
    assert np.abs(served.astype(int) - expected).max() <= 1


def test_translate_model_dir_of_a_translator_that_requires_boxes(tmp_path, capsys):
    """translate --model-dir passes each image's boxes (by file name) to serving_boxes; an
    image without a record or a missing --boxes stops with one line."""
    from tf_translate.export import export_saved_model

    network = BoxShade()
    network.build((None, None, None, 3))
    path = export_saved_model(network, str(tmp_path / "shade"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    pixels = {name: np.random.default_rng(i).integers(0, 256, (20, 16, 3)).astype(np.uint8)
              for i, name in enumerate(["p.png", "q.png"])}
    for name, image in pixels.items():
        Image.fromarray(image).save(inputs / name)
    records = {"p.png": {"boxes": [[2, 4, 10, 12]], "labels": [1]}, "q.png": {"boxes": [], "labels": []}}
    (tmp_path / "boxes.json").write_text(json.dumps({"classes": ["x"], "images": records}))
    assert main(["translate", "--model-dir", path, "--input", str(inputs), "--output", str(tmp_path / "out"),
                 "--boxes", str(tmp_path / "boxes.json")]) == 0
    for name, image in pixels.items():
        record = records[name]
        expected = shade(image[None].astype(np.float32) / 127.5 - 1, [record["boxes"]], [record["labels"]])[0]
        assert np.abs(read_pixels(tmp_path / "out" / name).astype(int) - to_pixels(expected)).max() <= 1
    assert main(["translate", "--model-dir", path, "--input", str(inputs), "--output", str(tmp_path / "o2")]) != 0
    assert "only with object boxes: pass translate --boxes FILE" in capsys.readouterr().err
    del records["q.png"]
    (tmp_path / "boxes.json").write_text(json.dumps({"classes": ["x"], "images": records}))
    assert main(["translate", "--model-dir", path, "--input", str(inputs), "--output", str(tmp_path / "o3"),
                 "--boxes", str(tmp_path / "boxes.json")]) != 0
    assert "no boxes for q.png" in capsys.readouterr().err.strip().splitlines()[-1]
