import json
import os

import numpy as np
import pytest

from helpers import TINY_CYCLEGAN
from tf_translate.data import write_demo_dataset
from tf_translate.runs import CHECKPOINT, load_run, read_run
from tf_translate.training import global_step, train

TINY = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}


def tiny_train(data, run_dir, **kwargs):
    args = dict(batch_size=2, image_size=32, load_size=36, seed=0, model_overrides=TINY,
                checkpoint_every=2, sample_every=2, verbose=0, xla=False)
    return train("cyclegan", data, run_dir, **{**args, **kwargs})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_dataset(str(tmp_path_factory.mktemp("demo")), size=32, train_count=6, test_count=2)


def state_of(model):
    return {
        "weights": [w.numpy().copy() for w in model.weights],
        "g_moments": [v.numpy().copy() for v in model.g_optimizer.variables],
        "d_moments": [v.numpy().copy() for v in model.d_optimizer.variables],
    }


def test_resume_restores_step_learning_rate_pool_weights_and_moments(data, tmp_path):
    run_dir = str(tmp_path / "run")
    trained = tiny_train(data, run_dir, steps=3)
    assert global_step(trained) == 3
    assert os.path.exists(os.path.join(run_dir, CHECKPOINT))
    assert len(os.listdir(os.path.join(run_dir, "samples"))) >= 2
    expected = state_of(trained)

    restored, run = load_run(run_dir)
    assert run["model"] == "cyclegan" and run["flags"]["steps"] == 3
    assert global_step(restored) == 3
    got = state_of(restored)
    for key in expected:
        assert len(got[key]) == len(expected[key]) > 0
        for a, b in zip(got[key], expected[key]):
            np.testing.assert_array_equal(a, b)
    assert int(restored.pool_a.count.numpy()) == 4  # 2 images x 2 steps... capped at the pool size
    np.testing.assert_array_equal(restored.pool_b.images.numpy(), trained.pool_b.images.numpy())
    assert float(restored.g_optimizer.learning_rate) == float(trained.g_optimizer.learning_rate)

    resumed = tiny_train(data, run_dir, steps=5, resume=True)
    assert global_step(resumed) == 5
    assert read_run(run_dir)["flags"]["steps"] == 5
    # The schedule continued from step 3, not from 0: over 5 steps the decay starts at step 2.
    assert float(resumed.g_optimizer.learning_rate) < 2e-4


def test_a_half_written_checkpoint_never_replaces_the_good_one(data, tmp_path):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2)
    # A process killed while saving leaves only the temporary file behind.
    with open(os.path.join(run_dir, "checkpoint.tmp.weights.h5"), "wb") as file:
        file.write(b"\x89HDF half written")
    model, _ = load_run(run_dir)
    assert global_step(model) == 2


def test_resume_refuses_a_run_of_another_model(data, tmp_path):
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "run.json"), "w") as file:
        json.dump({"model": "ugatit", "config": {}, "flags": {}}, file)
    with pytest.raises(ValueError, match="holds a 'ugatit' run, not 'cyclegan'"):
        tiny_train(data, run_dir, steps=2, resume=True)


def test_a_new_run_refuses_an_existing_run_directory(data, tmp_path):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=1)
    with pytest.raises(ValueError, match="already holds a run"):
        tiny_train(data, run_dir, steps=1)


def test_a_checkpoint_of_another_architecture_is_a_one_line_error(data, tmp_path):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=1)
    run = read_run(run_dir)
    run["config"]["num_residual_blocks"] = 3  # the checkpoint holds 1 block
    with open(os.path.join(run_dir, "run.json"), "w") as file:
        json.dump(run, file)
    with pytest.raises(ValueError, match="does not fit this CycleGAN model") as error:
        load_run(run_dir)
    assert "\n" not in str(error.value)


def test_resume_of_an_imported_run_is_a_one_line_error(data, tmp_path):
    run_dir = str(tmp_path / "imported")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "run.json"), "w") as file:
        json.dump({"model": "cyclegan", "config": {}, "flags": {}}, file)
    with pytest.raises(ValueError, match="imported weights, not a training run"):
        tiny_train(data, run_dir, steps=2, resume=True)


def test_a_mixed_float16_run_exports_its_trained_weights_in_float32(data, tmp_path):
    """A `mixed_float16` run's generators load under their precision without optimizers
    (`runs.load_generators`), and export serves the trained weights computed in float32."""
    import keras
    import tensorflow as tf

    from tf_translate.cli import main
    from tf_translate.models.cyclegan import ResNetGenerator
    from tf_translate.runs import load_generators

    run_dir = str(tmp_path / "mixed")
    try:
        trained = tiny_train(data, run_dir, steps=2, precision="mixed_float16")
        assert trained.generator_ab.dtype_policy.name == "mixed_float16"
        trained_weights = [w.numpy() for w in trained.generator_ab.weights]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model, run = load_generators(run_dir)
    assert run["flags"]["precision"] == "mixed_float16"
    assert model.generator_ab.dtype_policy.name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert getattr(model, "g_optimizer", None) is None  # not compiled: no optimizer slots
    for loaded, expected in zip(model.generator_ab.weights, trained_weights):
        np.testing.assert_array_equal(loaded.numpy(), expected)
        assert loaded.dtype == "float32"  # mixed precision keeps float32 weights

    assert main(["export", "--run-dir", run_dir, "--output", str(tmp_path / "served")]) == 0
    served = tf.saved_model.load(str(tmp_path / "served" / "1"))
    reference = ResNetGenerator.from_config(model.generator_ab.get_config())  # float32 policy
    reference.build((None, 32, 32, 3))
    reference.set_weights(trained_weights)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    out = served.signatures["translate_float"](images=tf.constant(images))["images"].numpy()
    np.testing.assert_allclose(out, reference(images).numpy(), atol=1e-5)
    # float16 compute would differ by about 1e-3: the export is float32, not a cast copy.
    half = model.generator_ab(images).numpy()
    assert np.abs(half - out).max() > 1e-4


def test_sample_grids_name_their_rows():
    from tf_translate.training import TITLE_HEIGHT, image_grid, titled_grid

    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    rows = [("real A", images), ("fake B", -images)]
    grid = titled_grid(rows)
    assert grid.shape == (2 * (TITLE_HEIGHT + 16), 32, 3)
    for i, row in enumerate(rows):  # each row's pixels are the plain grid's, below its strip
        top = i * (TITLE_HEIGHT + 16)
        np.testing.assert_array_equal(grid[top + TITLE_HEIGHT: top + TITLE_HEIGHT + 16], image_grid([row]))
        strip = grid[top: top + TITLE_HEIGHT]
        assert (strip < 128).any() and (strip == 255).mean() > 0.5  # dark text on white
    assert not np.array_equal(grid[:TITLE_HEIGHT], grid[TITLE_HEIGHT + 16: 2 * TITLE_HEIGHT + 16])  # two titles


def test_a_model_in_phases_runs_each_in_order_and_resumes_in_the_phase_it_stopped(data, tmp_path, monkeypatch):
    """`TranslationModel.phases`: one `fit` per phase after `start_phase` (TuiGAN's scales);
    Ctrl-C between phases saves the checkpoint and --resume continues in the next phase."""
    from tf_translate.models import CycleGAN

    started = []

    def start_phase(self, index):
        started.append(index)
        if index == 1 and len(started) == 2:  # the first call of the second phase: Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(CycleGAN, "phases", lambda self, total_steps: [("first", 2), ("second", 1)])
    monkeypatch.setattr(CycleGAN, "start_phase", start_phase)
    run_dir = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 2"):
        tiny_train(data, run_dir, steps=99, sample_every=0)
    assert started == [0, 1] and read_run(run_dir)["flags"]["total_steps"] == 3
    resumed = tiny_train(data, run_dir, resume=True, sample_every=0)
    assert started == [0, 1, 1] and global_step(resumed) == 3
    assert set(resumed.phase_seconds) == {1}


def test_no_import_circle_through_training():
    """`training` imports the MODELS table but no model module; model modules import
    neither `training` nor `runs` (issue 32: the training -> tuigan -> runs circle)."""
    import ast
    import glob

    import tf_translate

    root = os.path.dirname(tf_translate.__file__)

    def imports(path):
        tree = ast.parse(open(path, encoding="utf-8").read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        return found

    assert not [m for m in imports(os.path.join(root, "training.py")) if m.startswith("tf_translate.models.")]
    for path in glob.glob(os.path.join(root, "models", "**", "*.py"), recursive=True):
        assert not imports(path) & {"tf_translate.training", "tf_translate.runs"}, path
