"""Bad input and faults (issue 26): each case ends in a one-line error naming the flag or
file, or in a safe result; no input file is lost and no run directory is left blocked."""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_CYCLEGAN
from tf_translate import training
from tf_translate.cli import main
from tf_translate.data import read_rgb, write_demo_dataset
from tf_translate.runs import CHECKPOINT, RUN_FILE, load_run, save_checkpoint
from tf_translate.training import global_step, train

TINY = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}
TRAIN_FLAGS = ["--model", "cyclegan", "--image-size", "32", "--batch-size", "2", "--no-xla",
               "--sample-every", "100", "--checkpoint-every", "100"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_dataset(str(tmp_path_factory.mktemp("demo")), size=32, train_count=4, test_count=2)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A 2-step tiny run, shared by the translate cases."""
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    tiny_train(data, run_dir, steps=2)
    return run_dir


def tiny_train(data, run_dir, **kwargs):
    args = dict(batch_size=2, image_size=32, seed=0, model_overrides=TINY, checkpoint_every=100,
                sample_every=100, verbose=0, xla=False)
    return train("cyclegan", data, run_dir, **{**args, **kwargs})


def error_of(capsys, argv, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_translate_never_overwrites_its_input(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(folder / "me.png")
    before = digest(folder / "me.png")
    line = error_of(capsys, ["translate", "--run-dir", run, "--input", str(folder), "--output", str(folder)])
    assert "--output" in line and "would overwrite the input" in line and "me.png" in line
    assert digest(folder / "me.png") == before


def test_inputs_sharing_a_name_get_distinct_outputs(run, tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "x.png")
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(folder / "x.jpg")
    assert main(["translate", "--run-dir", run, "--input", str(folder), "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["x.jpg.png", "x.png.png"]
    assert "translated 2 image(s)" in capsys.readouterr().out


def test_tiny_and_truncated_images_are_skipped_by_name_and_the_rest_translated(run, tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(folder / "a_tiny.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "b_cut.jpg")
    data = open(folder / "b_cut.jpg", "rb").read()
    open(folder / "b_cut.jpg", "wb").write(data[: len(data) // 2])
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "c_good.png")
    assert main(["translate", "--run-dir", run, "--input", str(folder), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert os.listdir(out) == ["c_good.png"]
    assert "translated 1 image(s)" in captured.out and "skipped 2" in captured.out
    assert "a_tiny.png: 3x3 px is too small" in captured.err and "b_cut.jpg" in captured.err


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored landscape with orientation 6 (rotate 90) is read portrait."""
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, :5] = 255  # the left edge, which becomes the top after the 90 degree turn
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = read_rgb(str(tmp_path / "phone.jpg"))
    assert upright.shape == (20, 10, 3)
    assert upright[:4].mean() > 200 and upright[-10:].mean() < 50


@pytest.mark.parametrize("flags, named", [
    (["--image-size", "33"], "--image-size 33: cyclegan trains on sizes that are a multiple of 4"),
    (["--image-size", "0"], "--image-size must be a positive integer, got 0"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--steps", "-1"], "--steps must be a positive integer, got -1"),
    (["--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--load-size", "20"], "--load-size 20 is smaller than --image-size 32"),
])
def test_bad_sizes_and_lengths_are_one_line_errors_that_leave_no_run(data, tmp_path, capsys, flags, named):
    run_dir = tmp_path / "r"
    line = error_of(capsys, ["train", *TRAIN_FLAGS, *flags, "--data", data, "--run-dir", str(run_dir)])
    assert named in line
    assert not (run_dir / RUN_FILE).exists()


def test_a_folder_of_undecodable_images_leaves_no_run_behind(tmp_path, capsys):
    for domain in ("trainA", "trainB"):
        (tmp_path / "data" / domain).mkdir(parents=True)
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "data" / domain / "only.jpg")
        raw = open(tmp_path / "data" / domain / "only.jpg", "rb").read()
        open(tmp_path / "data" / domain / "only.jpg", "wb").write(raw[: len(raw) // 3])
    run_dir = tmp_path / "r"
    line = error_of(capsys, ["train", *TRAIN_FLAGS, "--data", str(tmp_path / "data"), "--run-dir", str(run_dir),
                             "--steps", "2"])
    assert "no training image could be decoded" in line
    assert not (run_dir / RUN_FILE).exists()


@pytest.mark.parametrize("content, named", [
    (b"\x89\xff\x00garbage", "is not valid JSON"),
    (b'{"model": "cyclegan", "config": {', "is not valid JSON"),
    (b"{}", "is not a tf_translate run record (missing or wrong: model, config, flags)"),
    (b'{"model": "pix2pixHD", "config": {}, "flags": {}}', "names an unknown model 'pix2pixHD'"),
])
def test_a_damaged_run_json_is_named(tmp_path, capsys, content, named):
    (tmp_path / RUN_FILE).write_bytes(content)
    line = error_of(capsys, ["export", "--run-dir", str(tmp_path), "--output", str(tmp_path / "out")])
    assert RUN_FILE in line and named in line


def test_translate_does_not_load_the_training_only_face_model(tmp_path, capsys):
    """A hand-made run.json naming an outside face model: translate never opens it."""
    from tf_translate.models import build_model

    model = build_model("photo2cartoon", image_size=32, filters=8, discriminator_filters=8, global_layers=5,
                        local_layers=4)
    model.compile()
    model.build_optimizers()
    save_checkpoint(model, str(tmp_path))
    config = {**model.get_config(), "face_model": str(tmp_path / "elsewhere" / "evil_savedmodel")}
    (tmp_path / RUN_FILE).write_text(json.dumps({"model": "photo2cartoon", "config": config, "flags": {}}))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "face.png")
    assert main(["translate", "--run-dir", str(tmp_path), "--input", str(tmp_path / "face.png"),
                 "--output", str(tmp_path / "out")]) == 0
    assert os.listdir(tmp_path / "out") == ["face.png"]


def test_damaged_optimizer_state_stops_training_and_keeps_the_checkpoint(data, tmp_path, capsys):
    """NaN moments make the next update NaN: training stops with a one-line error before
    any checkpoint is written, and the checkpoint on disk is the one it resumed from."""
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2)
    model, _ = load_run(run_dir)
    for variable in model.g_optimizer.variables[1:3]:  # moments (index 0 is the step count)
        variable.assign(np.full(variable.shape, np.nan, np.float32))
    save_checkpoint(model, run_dir)
    before = digest(os.path.join(run_dir, CHECKPOINT))
    line = error_of(capsys, ["train", *TRAIN_FLAGS, "--checkpoint-every", "1", "--data", data,
                             "--run-dir", run_dir, "--resume", "--steps", "6"])
    assert "training stopped at step 3" in line and "last good state" in line
    assert digest(os.path.join(run_dir, CHECKPOINT)) == before


def test_ctrl_c_saves_the_checkpoint_and_says_so_in_one_line(data, tmp_path, capsys, monkeypatch):
    original = training.RunCallback.on_train_batch_end

    def interrupted_at_step_3(self, batch, logs=None):
        original(self, batch, logs)
        if global_step(self.model) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.RunCallback, "on_train_batch_end", interrupted_at_step_3)
    run_dir = str(tmp_path / "run")
    line = error_of(capsys, ["train", *TRAIN_FLAGS, "--data", data, "--run-dir", run_dir, "--steps", "10"], code=130)
    assert line == "tf-translate: interrupted at step 3; the checkpoint is saved and --resume continues the run"
    model, _ = load_run(run_dir)
    assert global_step(model) == 3


def test_resume_from_another_directory_and_of_a_finished_run(data, tmp_path, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    monkeypatch.chdir(os.path.dirname(data))
    tiny_train(os.path.basename(data), run_dir, steps=2)  # a relative --data
    assert json.load(open(os.path.join(run_dir, RUN_FILE)))["flags"]["data"] == data
    monkeypatch.chdir(tmp_path)
    tiny_train(data, run_dir, resume=True, image_size=None, batch_size=None)
    assert "the run is complete (2 of 2 steps)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--image-size 64: the run was started with 32"):
        tiny_train(data, run_dir, resume=True, image_size=64, batch_size=None)


def test_damaged_checkpoint_bytes_are_refused_by_name(data, tmp_path, capsys):
    """Bytes overwritten inside the checkpoint: translate refuses it instead of writing
    black images (its SHA-256 was recorded when it was written)."""
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2)
    path = os.path.join(run_dir, CHECKPOINT)
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\x00" * 64
    open(path, "wb").write(bytes(raw))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    line = error_of(capsys, ["translate", "--run-dir", run_dir, "--input", str(tmp_path / "x.png"),
                             "--output", str(tmp_path / "out")])
    assert CHECKPOINT in line and "is damaged" in line
    assert not (tmp_path / "out").exists()


def test_huge_images_are_refused_by_name_or_resized_with_max_size(run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (4100, 400), (10, 200, 30)).save(folder / "wide.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "small.png")
    assert main(["translate", "--run-dir", run, "--input", str(folder), "--output", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "wide.png: 4100x400 px is larger than 4096 px a side; pass --max-size N" in captured.err
    assert os.listdir(tmp_path / "a") == ["small.png"]
    assert main(["translate", "--run-dir", run, "--input", str(folder / "wide.png"), "--output", str(tmp_path / "b"),
                 "--max-size", "512"]) == 0
    assert read_rgb(str(tmp_path / "b" / "wide.png")).shape == (50, 512, 3)
    assert "--max-size must be at least 8" in error_of(capsys, ["translate", "--run-dir", run, "--input",
                                                                 str(folder), "--output", str(tmp_path / "c"),
                                                                 "--max-size", "2"])
