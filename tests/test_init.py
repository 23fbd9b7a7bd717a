"""INIT ("init", from the paper): the instance terms train the instance networks and G,
translated instances change their boxes only (without boxes inside the image the
translation is DRIT++'s exactly), the translator refuses without boxes, the instance
reconstruction against a hand computation, options and config, and CLI training.

Small networks at 64 px, eager steps (tracing DRIT++'s steps costs minutes).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import train_box_model

from tf_translate.models import constructor_options
from tf_translate.models.drit.translator import DRITTranslator
from tf_translate.models.dunit.init_model import INIT
from tf_translate.models.dunit.scenes import write_scene_folders

TINY = dict(image_size=64, filters=4, attribute_filters=4, discriminator_filters=4, content_discriminator_filters=8,
            content_discriminator_layers=1, max_boxes=8, seed=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("init_scenes")
    write_scene_folders(str(root), 6, 6, 64, 0)
    return root


def scene_batch(scenes, with_boxes):
    """A batch of 2 whose encoded A image (image 0) has boxes, or has none."""
    from tf_translate.models.dunit.data import box_dataset

    dataset, _, _ = box_dataset(str(scenes), batch_size=2, image_size=64, load_size=64, seed=0, max_boxes=8)
    keep = (lambda e: tf.reduce_any(e["labels_a"] > 0)) if with_boxes else (lambda e: tf.reduce_all(e["labels_a"] == 0))
    return next(iter(dataset.unbatch().filter(keep).batch(2)))


def random_images(seed, count=2):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (count, 64, 64, 3)), tf.float32)


def weights_of(*networks):
    return [w.numpy() for network in networks for w in network.weights]


def moved(before, networks):
    now = [w.numpy() for network in networks for w in network.weights]
    return any(not np.array_equal(b, n) for b, n in zip(before, now))


@pytest.mark.parametrize("with_boxes", [True, False])
def test_a_full_step_trains_the_instance_networks_only_when_a_has_boxes(scenes, with_boxes):
    """Weight decay 0, so a network without a gradient keeps its weights exactly."""
    batch = scene_batch(scenes, with_boxes)
    model = INIT(**TINY, crop_size=16, weight_decay=0.0)
    model.compile(total_steps=3, steps_per_epoch=3, jit_compile=False)
    instance_networks = (model.instance_attribute_encoder_a, model.instance_discriminator_b)
    before = [weights_of(network) for network in instance_networks]
    for _ in range(2):  # iteration 1 of a 3-step epoch is a full step
        logs = model.train_step(batch)
    assert float(logs["full_step"]) == 1.0
    terms = ("instance_recon_loss", "instance_cycle_loss", "instance_adversarial_loss", "instance_d_loss")
    assert all((float(logs[name]) > 0) == with_boxes for name in terms)
    assert [moved(b, (network,)) for b, network in zip(before, instance_networks)] == [with_boxes] * 2


def test_the_instance_terms_reach_the_generators_and_the_content_encoder(scenes):
    batch = scene_batch(scenes, True)
    model = INIT(**TINY, crop_size=16)
    model.step_boxes = (batch["boxes_a"][:1], batch["labels_a"][:1], batch["boxes_b"][:1], batch["labels_b"][:1])
    networks = {"generator_a": model.generator_a, "generator_b": model.generator_b,
                "content_encoder_a": model.content_encoder_a, "content_encoder_b": model.content_encoder_b}
    with tf.GradientTape() as tape:
        f = model.forward(batch["a"][:1], batch["b"][:1])
        losses = model.eg_losses(f, batch["a"][:1], batch["b"][:1])
        instance = tf.add_n([losses[name] for name in ("instance_recon_loss", "instance_cycle_loss",
                                                       "instance_adversarial_loss", "instance_kl_loss")])
    variables = [v for network in networks.values() for v in network.trainable_variables]
    grads = dict(zip([id(v) for v in variables], tape.gradient(instance, variables)))
    for name, network in networks.items():
        largest = max(float(tf.reduce_max(tf.abs(grads[id(v)]))) for v in network.trainable_variables
                      if grads[id(v)] is not None)
        assert largest > 0, name


def test_without_boxes_in_the_image_the_translation_is_drit_plus_plus_exactly():
    model = INIT(**TINY)
    translator = model.generators()["a2b"]
    images, codes = random_images(1), tf.constant(np.random.default_rng(2).standard_normal((2, 8)), tf.float32)
    drit = DRITTranslator(model.content_encoder_a, model.generator_b)([images, codes]).numpy()
    outside = tf.constant([[[70.0, 70.0, 90.0, 90.0], [-40.0, -30.0, -1.0, -2.0]]] * 2)
    inside = tf.constant([[[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 64.0, 64.0]]] * 2)
    for boxes, labels in ((outside, tf.constant([[1, 2], [3, 1]])), (inside, tf.zeros((2, 2), tf.int32))):
        assert np.array_equal(translator([images, codes], boxes=boxes, labels=labels).numpy(), drit)


def test_a_box_of_the_crop_size_gets_its_translated_crop_and_nothing_else_changes():
    """Box [8, 40) at crop size 32: paste-back samples the instance at integer cells, so
    the box holds G_B(E_c^A(crop), code) exactly and every other pixel is DRIT++'s."""
    from tf_translate.layers.roi import roi_align

    model = INIT(**TINY, crop_size=32)
    translator = model.generators()["a2b"]
    images, codes = random_images(3), tf.constant(np.random.default_rng(4).standard_normal((2, 8)), tf.float32)
    boxes = tf.constant([[[8.0, 8.0, 40.0, 40.0]], [[0.0, 0.0, 1.0, 1.0]]])
    out = translator([images, codes], boxes=boxes, labels=tf.constant([[2], [0]])).numpy()
    drit = DRITTranslator(model.content_encoder_a, model.generator_b)([images, codes]).numpy()
    crop = roi_align(images[:1], boxes[0], tf.zeros((1,), tf.int32), 32, 1.0, 2)
    instance = model.generator_b(model.content_encoder_a(crop), codes[:1]).numpy()[0]
    np.testing.assert_allclose(out[0, 8:40, 8:40], instance, atol=1e-6)
    mask = np.zeros((64, 64), bool)
    mask[8:40, 8:40] = True
    assert np.array_equal(out[0][~mask], drit[0][~mask])
    assert np.array_equal(out[1], drit[1])  # its only box is padding
    assert np.abs(out[0][mask] - drit[0][mask]).max() > 1e-3


def test_the_translator_refuses_without_boxes():
    translator = INIT(**TINY).generators()["a2b"]
    assert translator.takes_boxes == "required"
    for kwargs in ({}, {"boxes": tf.zeros((2, 1, 4))}):
        with pytest.raises(ValueError, match="ground-truth boxes"):
            translator([random_images(5), tf.zeros((2, 8))], **kwargs)


def test_instance_reconstruction_is_the_weighted_l1_over_the_valid_boxes():
    """Image A is value 0.5 on [7, 41)² and -0.25 on [47, 64)², -1 elsewhere: its boxes'
    RoIAlign crops are those constants (every tap lies inside). Zero training noise; the
    expected value is 10 × the mean over the two valid boxes of NumPy's mean |G_A(E_c^A(crop),
    μ(crop)) − crop| on constant crops built here; the padding row (label 0) counts nothing."""
    model = INIT(**TINY, crop_size=16)
    model.noise = lambda shape, name: tf.zeros(shape)
    image = np.full((1, 64, 64, 3), -1.0, np.float32)
    image[0, 7:41, 7:41] = 0.5
    image[0, 47:64, 47:64] = -0.25
    boxes = tf.constant([[[8.0, 8.0, 40.0, 40.0], [48.0, 48.0, 63.0, 63.0], [0.0, 0.0, 64.0, 64.0]]])
    labels = tf.constant([[1, 3, 0]])
    model.step_boxes = (boxes, labels, tf.zeros((1, 1, 4)), tf.zeros((1, 1), tf.int32))
    real_a, real_b = tf.constant(image), random_images(6, 1)
    value = float(model.eg_losses(model.forward(real_a, real_b), real_a, real_b)["instance_recon_loss"])

    expected = []
    for constant in (0.5, -0.25):
        crop = np.full((1, 16, 16, 3), constant, np.float32)
        style = model.instance_attribute_encoder_a.encode(crop, training=True)[0]
        decoded = model.generator_a(model.content_encoder_a(crop, training=True), style, training=True).numpy()
        expected.append(np.mean(np.abs(decoded.astype(np.float64) - constant)))
    assert value == pytest.approx(10.0 * np.mean(expected), rel=1e-5)


def test_options_and_the_config_round_trip():
    options = constructor_options("init")
    assert {"crop_size", "instance_recon_weight", "instance_cycle_weight", "instance_adversarial_weight",
            "instance_discriminator_layers", "max_boxes", "filters", "content_discriminator_layers"} <= set(options)
    model = INIT(**TINY, crop_size=16, instance_cycle_weight=0.0)
    config = model.get_config()
    assert config["crop_size"] == 16 and config["instance_cycle_weight"] == 0.0
    assert INIT(**config).get_config() == config
    with pytest.raises(ValueError, match="crop_size"):
        INIT(**TINY, crop_size=6)


@pytest.fixture(scope="module")
def trained_run(scenes, tmp_path_factory):
    """A 2-step INIT run trained through the CLI (crop 16), shared by the CLI and ONNX tests."""
    run_dir = tmp_path_factory.mktemp("init_run") / "run"
    assert train_box_model("init", scenes, run_dir, {**TINY, "crop_size": 16}) == 0
    return str(run_dir)


def test_cli_trains_on_a_scene_folder(trained_run):
    from tf_translate.runs import load_generators

    run_dir = trained_run
    with open(os.path.join(run_dir, "run.json")) as f:
        assert json.load(f)["model"] == "init"
    model, _ = load_generators(run_dir)
    assert isinstance(model, INIT) and model.crop_size == 16
    translator = model.generators()["a2b"]
    images, codes = random_images(7, 1), tf.zeros((1, 8))
    outside = translator([images, codes], boxes=tf.constant([[[80.0, 80.0, 90.0, 90.0]]]), labels=tf.constant([[1]]))
    global_only = DRITTranslator(model.content_encoder_a, model.generator_b)([images, codes])
    assert np.array_equal(outside.numpy(), global_only.numpy())


def test_instance_losses_stay_float32_and_close_under_mixed_precision():
    import keras

    def instance_losses(model):
        model.noise = lambda shape, name: tf.zeros(shape)
        real_a, real_b = random_images(8, 1), random_images(9, 1)
        model.step_boxes = (tf.constant([[[8.0, 8.0, 40.0, 40.0], [30.0, 20.0, 60.0, 50.0]]]), tf.constant([[1, 2]]),
                            tf.zeros((1, 1, 4)), tf.zeros((1, 1), tf.int32))
        f = model.forward(real_a, real_b)
        losses = {**model.eg_losses(f, real_a, real_b), **model.discriminator_losses(f, real_a, real_b, real_a, real_b)}
        return {name: value for name, value in losses.items() if name.startswith("instance")}

    reference = INIT(**TINY, crop_size=16)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = INIT(**TINY, crop_size=16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    expected, got = instance_losses(reference), instance_losses(mixed)
    assert len(got) == 5
    for name, value in got.items():
        assert value.dtype == tf.float32
        assert float(value) == pytest.approx(float(expected[name]), rel=2e-3), name


def test_onnx_file_takes_the_boxes_and_matches_the_savedmodel(trained_run, tmp_path, capsys):
    """INIT requires boxes: its ONNX file has the SavedModel's serving_boxes inputs and gives
    its pixels within 1 grey level (an image without objects: one padding row, label 0);
    the web page, which cannot give boxes, is refused."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from tf_translate.cli import main

    run_dir = trained_run
    assert main(["export", "--run-dir", run_dir, "--format", "onnx", "--output", str(tmp_path / "init.onnx")]) == 0
    assert main(["export", "--run-dir", run_dir, "--output", str(tmp_path / "saved")]) == 0
    images = np.random.default_rng(3).integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
    codes = np.random.default_rng(4).standard_normal((1, 8)).astype(np.float32)
    boxes, labels = np.array([[[8.0, 12.0, 40.0, 44.0]]], np.float32), np.array([[1]], np.int32)
    session = ort.InferenceSession(str(tmp_path / "init.onnx"), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == ["attributes", "box_labels", "boxes", "images"]
    ours = session.run(None, {"images": images, "attributes": codes, "boxes": boxes, "box_labels": labels})[0]
    served = tf.saved_model.load(str(tmp_path / "saved" / "1")).signatures["serving_boxes"](
        images=tf.constant(images), attributes=tf.constant(codes), boxes=tf.constant(boxes),
        box_labels=tf.constant(labels))["images"].numpy()
    # No object: one padding row (label 0), as the box pipeline pads; the file needs at least one row.
    without_box = session.run(None, {"images": images, "attributes": codes, "boxes": np.zeros((1, 1, 4), np.float32),
                                     "box_labels": np.zeros((1, 1), np.int32)})[0]
    assert np.abs(ours.astype(int) - served.astype(int)).max() <= 1
    assert np.abs(ours.astype(int) - without_box.astype(int)).max() > 1  # the box reaches the file's output
    capsys.readouterr()
    assert main(["export", "--run-dir", run_dir, "--format", "web", "--output", str(tmp_path / "page")]) == 2
    assert "page has no way to give" in capsys.readouterr().err and not (tmp_path / "page").exists()
