"""DUNIT as the paper's figure describes it ("dunit_paper"): the instance branch changes the
content map inside the boxes only, without boxes the translation is DRIT++'s exactly,
the detector-agreement term is zero on identical images and moves G (the released term
moves nothing, tests/test_dunit.py), and the CLI trains, translates and exports it.

Small networks at 64 px, eager steps (tracing DRIT++'s steps costs minutes).
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import train_box_model

from tf_translate.models import constructor_options
from tf_translate.models.drit.translator import DRITTranslator
from tf_translate.models.dunit.instance import InstanceBranch
from tf_translate.models.dunit.paper import DUNITPaper, detector_agreement
from tf_translate.models.dunit.scenes import write_scene_folders

TINY = dict(image_size=64, filters=4, attribute_filters=4, discriminator_filters=4, content_discriminator_filters=8,
            content_discriminator_layers=1, num_classes=3, detector_filters=8, max_boxes=8, seed=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_scenes")
    write_scene_folders(str(root), 6, 6, 64, 0)
    return root


def random_content(channels=16, size=16, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal((1, size, size, channels)), tf.float32)


def test_instance_branch_changes_the_map_inside_its_boxes_only():
    """A box over image pixels [8, 40) is content cells [2, 10) at stride 4: those change,
    every other cell is the input bit for bit; padding rows (label 0) change nothing."""
    branch = InstanceBranch(16, 8, 8)
    content = random_content()
    codes = tf.constant(np.random.default_rng(1).standard_normal((1, 8)), tf.float32)
    boxes = tf.constant([[[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 64.0, 64.0]]])
    merged = branch(content, boxes, tf.constant([[2, 0]]), codes).numpy()
    inside = np.zeros((16, 16), bool)
    inside[2:10, 2:10] = True
    assert np.array_equal(merged[0][~inside], content.numpy()[0][~inside])
    assert np.all(np.abs(merged[0][inside] - content.numpy()[0][inside]).max(axis=-1) > 0)
    unchanged = branch(content, boxes, tf.zeros((1, 2), tf.int32), codes)
    assert np.array_equal(unchanged.numpy(), content.numpy())


def test_instance_branch_gets_a_gradient_only_from_valid_boxes():
    branch = InstanceBranch(16, 8, 4)
    content, codes = random_content(), tf.ones((1, 8))
    boxes = tf.constant([[[8.0, 8.0, 40.0, 40.0]]])
    for labels, moved in ((tf.constant([[1]]), True), (tf.constant([[0]]), False)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(branch(content, boxes, labels, codes)))
        grads = tape.gradient(loss, branch.trainable_variables)
        norms = [0.0 if g is None else float(tf.reduce_max(tf.abs(g))) for g in grads]
        assert (max(norms) > 0) == moved


def test_without_detections_the_translator_is_drit_plus_plus_and_with_boxes_the_branch():
    model = DUNITPaper(**TINY, detector_steps=0)
    translator = model.generators()["a2b"]
    images = tf.constant(np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)), tf.float32)
    codes = tf.constant(np.random.default_rng(3).standard_normal((2, 8)), tf.float32)
    translator.score_threshold = 1.01  # sigmoid scores never reach it: no boxes
    drit = DRITTranslator(model.content_encoder_a, model.generator_b)
    assert np.array_equal(translator([images, codes]).numpy(), drit([images, codes]).numpy())
    boxes = tf.constant([[[4.0, 8.0, 36.0, 30.0]], [[20.0, 20.0, 60.0, 64.0]]])
    labels = tf.constant([[1], [3]])
    given = translator([images, codes], boxes=boxes, labels=labels).numpy()
    merged = model.instance_branch(model.content_encoder_a(images), boxes, labels, codes)
    assert np.array_equal(given, model.generator_b(merged, codes).numpy())
    assert np.abs(given - drit([images, codes]).numpy()).max() > 1e-3


def test_detector_agreement_is_zero_on_the_same_image_and_moves_only_the_translation():
    model = DUNITPaper(**TINY, detector_steps=0)
    model.start_phase(1)  # the detector frozen, as in the translation phase
    images = tf.constant(np.random.default_rng(4).uniform(-1, 1, (1, 64, 64, 3)), tf.float32)
    assert float(detector_agreement(model.detector, images, images)) == 0.0
    codes = tf.zeros((1, 8))
    with tf.GradientTape() as tape:
        fake = model.generator_b(model.content_encoder_a(images), codes)
        value = detector_agreement(model.detector, images, fake)
    grads = tape.gradient(value, model.generator_b.trainable_variables)
    assert float(value) > 0
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads if g is not None) > 0
    assert not model.detector.trainable_variables  # no optimizer updates it (the step test checks)


def test_a_translation_step_trains_the_branch_and_logs_both_consistencies(scenes):
    from tf_translate.models.dunit.data import box_dataset

    dataset, _, _ = box_dataset(str(scenes), batch_size=2, image_size=64, load_size=64, seed=0, max_boxes=8)
    batch = next(iter(dataset.unbatch().filter(lambda e: tf.reduce_any(e["labels_a"] > 0)).batch(2)))
    model = DUNITPaper(**TINY, detector_steps=0)
    model.compile(total_steps=3, steps_per_epoch=3, jit_compile=False)
    model.start_phase(1)
    before = [w.numpy() for w in model.instance_branch.weights]
    detector = [w.numpy() for w in model.detector.weights]
    for _ in range(2):  # iteration 1 of a 3-step epoch is a full step
        logs = model.train_step(batch)
    assert float(logs["full_step"]) == 1.0
    assert float(logs["instance_consistency_loss"]) > 0 and np.isfinite(float(logs["ic_loss"]))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.instance_branch.weights))
    assert all(np.array_equal(d, w.numpy()) for d, w in zip(detector, model.detector.weights))


def test_options_include_dunits_and_the_config_round_trips():
    options = constructor_options("dunit_paper")
    assert {"roi_size", "instance_weight", "test_score_threshold", "num_classes", "detector_steps",
            "filters", "content_discriminator_layers"} <= set(options)
    model = DUNITPaper(**TINY, detector_steps=2, roi_size=4)
    config = model.get_config()
    assert DUNITPaper(**config).get_config() == config


def test_cli_trains_translates_and_exports(scenes, tmp_path):
    from PIL import Image

    from tf_translate.cli import main
    from tf_translate.runs import load_generators

    run_dir = str(tmp_path / "run")
    assert train_box_model("dunit_paper", scenes, run_dir, {**TINY, "detector_steps": 1}) == 0
    out, exported = tmp_path / "out", tmp_path / "export"
    inputs = os.path.join(str(scenes), "testA")
    assert main(["translate", "--run-dir", run_dir, "--input", inputs, "--output", str(out), "--code-seed", "1"]) == 0
    assert sorted(os.listdir(out)) == sorted(n for n in os.listdir(inputs) if n.endswith(".png"))
    assert main(["export", "--run-dir", run_dir, "--output", str(exported)]) == 0
    loaded = tf.saved_model.load(str(exported / "1"))
    name = sorted(n for n in os.listdir(inputs) if n.endswith(".png"))[1]  # an overlapping pair
    pixels = np.asarray(Image.open(os.path.join(inputs, name)).convert("RGB"))[None]
    code = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    served = loaded.signatures["serving_attributes"](images=tf.constant(pixels), attributes=tf.constant(code))
    model, _ = load_generators(run_dir)
    expected = model.generators()["a2b"]([pixels.astype(np.float32) / 127.5 - 1, code]).numpy()
    expected = np.clip(np.round((expected + 1) * 127.5), 0, 255)
    assert np.abs(served["images"].numpy().astype(int) - expected).max() <= 1
