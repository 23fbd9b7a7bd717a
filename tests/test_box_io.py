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
