"""DUNIT as released: the DRIT++ part's parameter counts, the logged instance consistency
(its value against the NumPy restatement, and no effect on any update), the two training
phases with resume keeping the detector (D4), the config round trip, and the CLI.

Small networks at 64 px with `content_discriminator_layers=1`, as tests/test_drit.py.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_translate.models.drit import DRIT, unique
from tf_translate.models.dunit.boxes import instance_consistency
from tf_translate.models.dunit.model import DUNIT, draw_boxes
from tf_translate.models.dunit.scenes import write_scene_folders

DRIT_TINY = dict(image_size=64, filters=4, attribute_filters=4, discriminator_filters=4,
                 content_discriminator_filters=8, content_discriminator_layers=1)
TINY = dict(DRIT_TINY, num_classes=3, detector_filters=8, detector_fpn_filters=16, detector_levels=[2, 4], max_boxes=8)


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def scene_batch(root, size=64):
    """A batch of 2 as `dunit.data` gives it (images in [-1, 1], padded boxes), from scene
    folders, with the A image that has the most boxes first (the one DRIT++ encodes)."""
    from tf_translate.models.dunit.data import box_dataset

    dataset, _, _ = box_dataset(str(root), batch_size=6, image_size=size, load_size=size, seed=0, max_boxes=8)
    batch = next(iter(dataset))
    first = int(np.argmax(np.sum(batch["labels_a"].numpy() > 0, axis=1)))
    order = [first, (first + 1) % 6]
    return {key: tf.gather(value, order) for key, value in batch.items()}


def eager_detector(model):
    """Class-head bias 0 instead of the 0.01 prior: an untrained detector then reports boxes
    (scores near 0.5, above the 0.05 threshold), so the consistency is not trivially 1."""
    bias = model.detector.class_head[-1].bias
    bias.assign(tf.zeros_like(bias))


def test_drit_part_has_drit_plus_plus_counts_and_the_detector_its_own_optimizer():
    """The DRIT++ networks are DRIT's at the same config (REFERENCE-WAVE2 §1: 65,039,315
    trained weights at the defaults); the detector is only in the detector optimizer."""
    model, drit = DUNIT(num_classes=3), DRIT()
    groups, drit_groups = model.optimizer_variables(), drit.optimizer_variables()
    assert list(groups) == list(drit_groups) + ["detector_optimizer"]
    for name, variables in drit_groups.items():
        assert count(groups[name]) == count(variables), name
    assert count(v for name in drit_groups for v in groups[name]) == 65_039_315
    detector = {id(v) for v in model.detector.trainable_variables}
    assert {id(v) for v in groups["detector_optimizer"]} == detector and count(groups["detector_optimizer"]) > 0
    assert not detector & {id(v) for name in drit_groups for v in groups[name]}


def test_config_round_trip_and_phases():
    import inspect

    from tf_translate.models import constructor_options

    drit_defaults = {n: p.default for n, p in inspect.signature(DRIT.__init__).parameters.items()
                     if n not in ("self", "kwargs")}
    dunit_defaults = {n: p.default for n, p in constructor_options("dunit").items()}
    assert {n: dunit_defaults[n] for n in drit_defaults} == drit_defaults  # DRIT's options, through **kwargs
    model = DUNIT(**TINY, detector_steps=5, seed=3)
    config = model.get_config()
    assert DUNIT(**config).get_config() == config
    assert config["num_classes"] == 3 and config["ic_weight"] == 2.0 and config["ic_cycle_weight"] == 1.0
    assert [length for _, length in model.phases(7)] == [5, 7]
    with pytest.raises(ValueError, match="num_classes"):
        DUNIT(**DRIT_TINY)
    epochs = DUNIT(**TINY)  # the default: 10 epochs of domain A, counted when the data is read
    epochs.epoch_steps_a = 6
    assert [length for _, length in epochs.phases(7)] == [60, 7]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("dunit") / "scenes"
    write_scene_folders(str(root), count_a=6, count_b=6, size=64, seed=0, test_count=2)
    return root


def spy_detections(model):
    """Records the detector's inputs and outputs on each `detect` call."""
    seen, detect = [], model.detector.detect

    def spy(images, **kwargs):
        detections = detect(images, **kwargs)
        seen.append((images.numpy(), {k: v.numpy() for k, v in detections.items()}))
        return detections

    model.detector.detect = spy
    return seen


def test_logged_consistency_equals_the_numpy_restatement(scenes):
    """ic_loss = 2 × the released consistency of the detections on A→B with A's boxes,
    ic_cycle_loss = 1 × that of the detections on A's self-reconstruction."""
    model = DUNIT(**TINY, seed=0)
    eager_detector(model)
    batch = scene_batch(scenes)
    assert np.sum(batch["labels_a"][0].numpy() > 0) >= 2
    seen = spy_detections(model)
    forwards, forward = [], model.forward
    model.forward = lambda a, b: forwards.append(forward(a, b)) or forwards[-1]
    model.compile(jit_compile=False)
    model.start_phase(1)
    model.step_inputs.ground_truth = (batch["boxes_a"][:1], batch["labels_a"][:1])
    logs = model.full_step(batch["a"], batch["b"])
    assert len(seen) == 2 and len(forwards) == 1
    f = forwards[0]
    for (images, detections), fake, key, weight in ((seen[0], f["fake_b_encoded"], "ic_loss", 2.0),
                                                   (seen[1], f["fake_a_self"], "ic_cycle_loss", 1.0)):
        np.testing.assert_allclose(images, (fake.numpy() + 1) / 2, atol=1e-6)
        expected = instance_consistency(batch["boxes_a"][:1].numpy(), batch["labels_a"][:1].numpy(),
                                        detections["boxes"], detections["labels"])
        assert detections["num_detections"][0] > 0
        assert 0 < expected < 1
        assert float(logs[key]) == pytest.approx(weight * expected, abs=1e-5), key


def test_consistency_term_leaves_every_update_unchanged(scenes):
    """One full step of DUNIT and of DRIT++ from equal weights and noise: every variable
    of every DRIT network ends equal, bit for bit (the released term has no gradient),
    while DUNIT's logged G loss holds the consistency terms."""
    dunit, drit = DUNIT(**TINY, content_period=1, seed=0), DRIT(**DRIT_TINY, content_period=1, seed=0)
    for name, network in drit.networks().items():
        network.set_weights(getattr(dunit, name).get_weights())
    eager_detector(dunit)
    for model in (dunit, drit):
        model.compile(jit_compile=False)
    dunit.start_phase(1)
    batch = scene_batch(scenes)
    dunit_logs = dunit.train_step(batch)
    drit_logs = drit.train_step((batch["a"], batch["b"]))
    for name, network in drit.networks().items():
        for ours, theirs in zip(getattr(dunit, name).weights, network.weights):
            assert np.array_equal(ours.numpy(), theirs.numpy()), ours.path
    ic = float(dunit_logs["ic_loss"]) + float(dunit_logs["ic_cycle_loss"])
    assert ic > 0
    assert float(dunit_logs["g_loss"]) == pytest.approx(float(drit_logs["g_loss"]) + ic, rel=1e-5)


def test_draw_boxes_outlines_each_box_in_its_class_colour():
    images = np.zeros((1, 8, 8, 3), np.float32)
    drawn = draw_boxes(images, [[[1, 2, 4, 6], [0, 0, 0, 0]]], [[2, 0]])
    expected = np.zeros((8, 8, 3), np.float32)
    outline = np.zeros((8, 8), bool)
    outline[2:6, [1, 3]] = outline[[2, 5], 1:4] = True  # columns 1..3, rows 2..5
    expected[outline] = [-1, 1, -1]
    np.testing.assert_array_equal(drawn[0], expected)
    assert np.array_equal(images, np.zeros_like(images))  # a copy


# --- both phases through training.train, resume, the CLI --------------------------------

GRAPH = os.environ.get("DUNIT_TEST_GRAPH") == "1"
OVERRIDES = {k: v for k, v in TINY.items() if k != "image_size"}


@pytest.fixture(scope="module")
def run(scenes, tmp_path_factory):
    """CLI train: 2 detector steps, then 1 DRIT++ iteration; then `training.train` resumes
    it for 2 more iterations. Eagerly unless DUNIT_TEST_GRAPH=1 (graph mode: tracing DRIT++'s
    two step kinds took 2.5-7 minutes here; XLA, as `train` runs it, 6 minutes)."""
    from tf_translate.cli import main
    from tf_translate.training import train

    run_dir = str(tmp_path_factory.mktemp("dunit_run") / "run")
    options = [f"{k}={v}" for k, v in OVERRIDES.items()] + ["detector_steps=2"]
    assert main(["train", "--model", "dunit", "--data", str(scenes), "--run-dir", run_dir, "--steps", "1",
                 "--batch-size", "2", "--image-size", "64", "--load-size", "64", "--seed", "0", "--sample-every", "3",
                 *(("--no-xla",) if GRAPH else ("--eager",)), "--option", *options]) == 0
    import keras

    from tf_translate.models import build_model
    from tf_translate.runs import load_checkpoint, read_run

    keras.utils.set_random_seed(0)  # as `train` seeds the run: `first` starts from the run's initial weights
    first = build_model("dunit", **read_run(run_dir)["config"])
    initial = [w.numpy() for w in first.detector.weights]
    assert load_checkpoint(first, run_dir, optimizers=False)
    resumed = train("dunit", str(scenes), run_dir, steps=3, resume=True, verbose=0, eager=not GRAPH)
    return run_dir, first, resumed, initial


def test_detector_phase_then_translation_and_resume_keeps_the_detector(run):
    run_dir, first, resumed, initial = run
    with open(os.path.join(run_dir, "run.json")) as f:
        record = json.load(f)
    assert record["flags"]["total_steps"] == 2 + 3
    assert int(resumed.detector_optimizer.iterations.numpy()) == 2
    assert int(resumed.content_d_optimizer.iterations.numpy()) == 3
    assert resumed.completed_steps() == 5
    assert not resumed.detector.trainable
    # D4: the checkpoint holds the trained detector (not its initial weights), and the
    # resumed translation phase keeps it frozen.
    trained = [w.numpy() for w in first.detector.weights]
    assert any(not np.array_equal(t, i) for t, i in zip(trained, initial))
    for before, after in zip(trained, resumed.detector.weights):
        assert np.array_equal(before, after.numpy()), after.path
    # The generators moved in the resumed phase.
    moved = [not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first.generator_b.weights,
                                                                     resumed.generator_b.weights)]
    assert any(moved)
    assert sorted(os.listdir(os.path.join(run_dir, "samples")))  # the grids were written


def test_sample_rows_draw_ground_truth_on_a_and_detections_on_its_translations(run, scenes):
    _, _, model, _ = run
    batch = scene_batch(scenes)
    rows = dict(model.sample_rows(batch))
    gt = draw_boxes(batch["a"][:1], batch["boxes_a"][:1], batch["labels_a"][:1])
    np.testing.assert_array_equal(rows["real A, ground-truth boxes"], gt)
    assert not np.array_equal(gt, batch["a"][:1].numpy())  # boxes were drawn
    assert {"fake B, random code 1, detected boxes", "reconstructed A, detected boxes", "real B"} <= set(rows)
    model.start_phase(0)  # the detector phase's grid: ground truth, then detections on real A
    try:
        assert [title for title, _ in model.sample_rows(batch)] == ["real A, ground-truth boxes",
                                                                    "real A, detected boxes"]
    finally:
        model.start_phase(1)


def test_cli_translates_and_exports_the_run(run, scenes, tmp_path):
    from PIL import Image

    from tf_translate.cli import main

    run_dir, _, resumed, _ = run
    out = tmp_path / "out"
    inputs = os.path.join(str(scenes), "testA")
    assert main(["translate", "--run-dir", run_dir, "--input", inputs, "--output", str(out), "--code-seed", "1"]) == 0
    names = sorted(n for n in os.listdir(inputs) if n.endswith(".png"))
    assert sorted(os.listdir(out)) == names
    exported = tmp_path / "export"
    assert main(["export", "--run-dir", run_dir, "--output", str(exported)]) == 0
    loaded = tf.saved_model.load(str(exported / "1") if (exported / "1").exists() else str(exported))
    pixels = np.asarray(Image.open(os.path.join(inputs, names[0])).convert("RGB"))[None]
    code = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    served = loaded.signatures["serving_attributes"](images=tf.constant(pixels), attributes=tf.constant(code))
    translator = resumed.generators()["a2b"]
    expected = np.clip(np.round((translator([pixels.astype(np.float32) / 127.5 - 1, code]).numpy() + 1) * 127.5),
                       0, 255)
    assert np.abs(served["images"].numpy().astype(int) - expected).max() <= 1


def test_cli_evaluate_adds_the_detectors_instance_iou(run, scenes, tmp_path, capsys):
    import keras

    from tf_translate.cli import main

    run_dir = run[0]
    inputs = keras.Input((None, None, 3))  # any Keras feature model will do for FID/KID here
    features = str(tmp_path / "mean.keras")
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs)).save(features)
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", run_dir, "--data", str(scenes), "--features", features,
                 "--feature-size", "32", "--metrics", "fid"]) == 0
    assert "instance IoU (detector)" in capsys.readouterr().out
    with open(os.path.join(run_dir, "evaluation.json")) as f:
        [record] = json.load(f)
    with open(os.path.join(str(scenes), "testA", "boxes.json")) as f:
        boxed = sum(1 for entry in json.load(f)["images"].values() if entry["labels"])
    assert record["instance_images"] == boxed > 0
    assert 0.0 <= record["instance_iou"] <= 1.0


def test_instance_iou_scores_detections_against_the_source_boxes(scenes):
    """Exact boxes score 1, boxes far off score 0, per image with boxes (the empty scene
    is left out); the translation is what the detector sees."""
    model = DUNIT(**TINY)
    folder = os.path.join(str(scenes), "trainA")
    with open(os.path.join(folder, "boxes.json")) as f:
        records = json.load(f)["images"]
    boxed = [name for name in sorted(records) if records[name]["labels"]]
    assert 0 < len(boxed) < len(records)
    calls, answers = [], []

    def detect(images, **kwargs):
        calls.append(images.numpy())
        boxes, labels = answers.pop(0)
        return {"boxes": tf.constant(boxes, tf.float32)[None], "labels": tf.constant(labels, tf.int32)[None]}

    model.detector.detect = detect
    inverted = lambda image: 255 - image  # a stand-in translation
    exact = [(records[n]["boxes"], records[n]["labels"]) for n in boxed]
    answers[:] = exact
    assert model.instance_iou(inverted, folder) == (pytest.approx(1.0), len(boxed))
    from tf_translate.data import read_rgb
    np.testing.assert_allclose(calls[0][0], (255 - read_rgb(os.path.join(folder, boxed[0]))) / 255.0, atol=1e-6)
    far = [(np.asarray(boxes) + [1000, 1000, 1000, 1000], labels) for boxes, labels in exact]
    answers[:] = far
    assert model.instance_iou(inverted, folder)[0] == pytest.approx(0.0)
    answers[:] = [exact[0]] + far[1:]
    assert model.instance_iou(inverted, folder)[0] == pytest.approx(1.0 / len(boxed))


def test_classes_come_from_domain_a_box_file_and_a_missing_one_is_a_one_line_error(scenes, tmp_path):
    assert DUNIT.options_from_data(str(scenes), {}) == {"num_classes": 3}  # boxes.json names 3 classes
    assert DUNIT.options_from_data(str(scenes), {"num_classes": 5}) == {}  # given (or kept by a resumed run)
    for domain in ("trainA", "trainB"):
        os.makedirs(tmp_path / domain)
    with pytest.raises(ValueError, match="trainA has no boxes.json or init.txt") as error:
        DUNIT.options_from_data(str(tmp_path), {})
    assert "\n" not in str(error.value)
