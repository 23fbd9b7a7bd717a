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
