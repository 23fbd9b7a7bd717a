"""Bad input and faults (issue 26): each case ends in a one-line error naming the flag or
file, or in a safe result; no input file is lost and no run directory is left blocked."""

import errno
import hashlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_CYCLEGAN
from tf_translate import runs, training
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


def test_wide_images_are_translated_at_full_size_or_resized_with_max_size(run, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (4100, 400), (10, 200, 30)).save(folder / "wide.png")
    assert main(["translate", "--run-dir", run, "--input", str(folder), "--output", str(tmp_path / "a")]) == 0
    assert read_rgb(str(tmp_path / "a" / "wide.png")).shape == (400, 4100, 3)
    assert main(["translate", "--run-dir", run, "--input", str(folder / "wide.png"), "--output", str(tmp_path / "b"),
                 "--max-size", "512"]) == 0
    assert read_rgb(str(tmp_path / "b" / "wide.png")).shape == (50, 512, 3)
    assert "--max-size must be at least 8" in error_of(capsys, ["translate", "--run-dir", run, "--input",
                                                                 str(folder), "--output", str(tmp_path / "c"),
                                                                 "--max-size", "2"])


# Case 7: large images are translated in overlapping tiles.

@pytest.mark.parametrize("length, tile, overlap, multiple", [(100, 40, 16, 4), (1000, 256, 64, 4), (260, 256, 64, 4),
                                                             (64, 256, 64, 4), (333, 96, 32, 1)])
def test_tile_blend_weights_sum_to_one_and_cover_every_pixel(length, tile, overlap, multiple):
    from tf_translate.tiling import blend_weights

    tiles = blend_weights(length, tile, overlap, multiple)
    total = np.zeros(length)
    for start, weight in tiles:
        assert start % multiple == 0 and start + len(weight) <= length
        total[start:start + len(weight)] += weight
        if start > 0:  # the outer quarter of the overlap at an inner edge is discarded
            assert not weight[:overlap // 4].any()
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert tiles[0][0] == 0 and tiles[-1][0] + len(tiles[-1][1]) == length


def test_tiles_cover_an_image_that_is_not_a_multiple_of_the_tile():
    """Each pixel of a 301 x 517 image goes through some tile (the identity comes back
    exactly), and no call is larger than the tile."""
    from tf_translate.tiling import translate_tiled

    image = np.random.default_rng(0).integers(0, 256, (301, 517, 3), dtype=np.uint8)
    shapes = []

    def identity(batch):
        shapes.append(batch.shape)
        return batch

    np.testing.assert_array_equal(translate_tiled(identity, image, 96, 32), image)
    assert max(s[1] for s in shapes) == max(s[2] for s in shapes) == 96 and len(shapes) == 5 * 8


def test_tiled_translation_of_a_local_network_equals_the_whole_image():
    """A conv stack with a stride-2 stage and a receptive field smaller than the
    discarded quarter of the overlap gives the whole-image output to float precision."""
    import keras

    from tf_translate.tiling import translate_tiled

    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((None, None, 3)),
                                keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
                                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                                keras.layers.UpSampling2D(2), keras.layers.Conv2D(3, 3, padding="same")])
    run = lambda batch: network(batch).numpy()
    image = np.random.default_rng(1).uniform(-1, 1, (1, 152, 216, 3)).astype(np.float32)
    poked = image.copy()
    poked[0, 76, 108] += 1.0
    reach = np.argwhere(np.abs(run(poked) - run(image))[0].max(-1) > 0)
    assert np.abs(reach - [76, 108]).max() <= 32 // 4  # the receptive field fits in the discarded margin
    np.testing.assert_allclose(translate_tiled(run, image[0], 64, 32, multiple=4), run(image)[0], atol=1e-5)


def test_a_large_image_is_translated_in_tiles_to_its_full_size(run, tmp_path, capsys, monkeypatch):
    """An image over the pixel budget (2048^2) is translated in 1024 px tiles (no call
    larger, so none of the memory a whole-image call would need) and written at full size."""
    from tf_translate import translate as cli

    calls, translator = [], cli.run_translator

    def spying(args):
        translate, rule = translator(args)
        return (lambda batch: calls.append(batch.shape) or translate(batch)), rule

    monkeypatch.setattr(cli, "run_translator", spying)
    yy, xx = np.mgrid[0:2056, 0:2100]
    image = np.stack([xx % 256, yy % 256, (xx + yy) // 17 % 256], -1).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "big.png")
    assert main(["translate", "--run-dir", run, "--input", str(tmp_path / "big.png"), "--output",
                 str(tmp_path / "out")]) == 0
    tiled = read_rgb(str(tmp_path / "out" / "big.png"))
    assert tiled.shape == image.shape
    assert max(s[1] * s[2] for s in calls) == 1024 * 1024 and len(calls) == 9


def test_tile_flags_the_generator_cannot_take_are_one_line_errors(run, tmp_path, capsys):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "x.png")
    base = ["translate", "--run-dir", run, "--input", str(tmp_path / "x.png"), "--output", str(tmp_path / "out")]
    assert "--tile 30 is not a multiple of 4" in error_of(capsys, base + ["--tile", "30"])
    assert "--tile-overlap must be between 4 px and half the tile (32 px), got 40" in error_of(
        capsys, base + ["--tile", "64", "--tile-overlap", "40"])
    assert not (tmp_path / "out").exists()


# Case 17: a full disk. Case 4: the previous checkpoint is kept until the new one is verified.

def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_a_checkpoint_write_is_one_line_and_keeps_the_checkpoint(data, tmp_path, capsys,
                                                                                    monkeypatch):
    """ENOSPC after part of the checkpoint is written: one line naming the run directory,
    the temporary file removed, the checkpoint on disk unchanged, verified and loadable."""
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2)
    before = digest(os.path.join(run_dir, CHECKPOINT))
    real_write = io.BufferedWriter.write

    def half_then_full(file, data):
        real_write(file, bytes(data)[: len(data) // 2])
        no_space()

    monkeypatch.setattr(runs, "open", lambda path, mode="r", **kw: open_patched(path, mode, half_then_full, **kw),
                        raising=False)  # runs.py's `open` only
    capsys.readouterr()
    assert main(["train", *TRAIN_FLAGS, "--checkpoint-every", "1", "--data", data, "--run-dir", run_dir,
                 "--resume", "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"tf-translate: error: no space left on device in run directory {run_dir!r}: checkpoint.weights.h5 was "
        "not written and nothing on disk was replaced (free some space, then --resume)")
    monkeypatch.undo()
    assert sorted(os.listdir(run_dir)) == [CHECKPOINT, CHECKPOINT + ".sha256", "logs", RUN_FILE, "samples"]
    assert digest(os.path.join(run_dir, CHECKPOINT)) == before
    assert global_step(load_run(run_dir)[0]) == 2


def open_patched(path, mode, write, **kwargs):
    """`open`, whose writer of a temporary checkpoint calls `write(file, data)` instead."""
    file = open(path, mode, **kwargs)
    if path.endswith(".tmp.weights.h5") and "w" in mode:
        file.write = lambda data: write(file, data)
    return file


@pytest.mark.parametrize("target", ["samples", RUN_FILE])
def test_a_full_disk_writing_a_sample_grid_or_run_json_leaves_no_half_file(data, tmp_path, capsys, monkeypatch,
                                                                            target):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2)
    run_json = open(os.path.join(run_dir, RUN_FILE)).read()
    if target == RUN_FILE:
        monkeypatch.setattr(runs.os, "fsync", no_space)  # where a full disk often shows first
        with pytest.raises(runs.DiskFullError, match=f"no space left on device writing '{run_dir}/{RUN_FILE}'"):
            runs.write_run(run_dir, "cyclegan", {}, {})
    else:
        def part_then_full(image, file, *args, **kwargs):
            file.write(b"\x89PNG\r\n\x1a\n part of a grid")
            no_space()

        monkeypatch.setattr(Image.Image, "save", part_then_full)
        line = error_of(capsys, ["train", *TRAIN_FLAGS, "--sample-every", "1", "--data", data, "--run-dir",
                                 run_dir, "--resume", "--steps", "4"])
        assert line.startswith(f"tf-translate: error: no space left on device writing '{run_dir}/")
    monkeypatch.undo()
    if target == RUN_FILE:
        assert open(os.path.join(run_dir, RUN_FILE)).read() == run_json
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == ["step_0000002.png"]
    assert not [name for name in os.listdir(run_dir) if "tmp" in name]


def test_the_previous_checkpoint_is_kept_and_loaded_when_the_newest_is_damaged(data, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=4, checkpoint_every=2)  # saves at steps 2 and 4
    newest, previous = os.path.join(run_dir, CHECKPOINT), runs.previous_copy(os.path.join(run_dir, CHECKPOINT))
    for path in (newest, previous):
        runs.verify_checkpoint(path, record=newest)
    capsys.readouterr()
    damage(newest)
    model, _ = load_run(run_dir)
    assert global_step(model) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.weights.h5' is damaged" in err[0] and "loaded the previous copy" in err[0]
    damage(previous)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    line = error_of(capsys, ["translate", "--run-dir", run_dir, "--input", str(tmp_path / "x.png"),
                             "--output", str(tmp_path / "out")])
    assert "checkpoint.weights.h5' is damaged" in line and "the previous copy could not be used either" in line
    assert "checkpoint.previous.weights.h5' is damaged" in line


def test_a_save_turns_the_checkpoint_in_place_into_the_previous_copy(tmp_path):
    from tf_translate.models import build_model

    model = build_model("cyclegan", **TINY_CYCLEGAN)
    model.compile()
    model.build_optimizers()
    path = save_checkpoint(model, str(tmp_path))
    first = digest(path)
    model.generator_ab.weights[0].assign(model.generator_ab.weights[0] + 1.0)
    save_checkpoint(model, str(tmp_path))
    assert digest(runs.previous_copy(path)) == first != digest(path)
    assert json.load(open(path + ".sha256"))["sha256"][:2] == [digest(path), first]


def damage(path):
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2: len(raw) // 2 + 64] = b"\x00" * 64
    open(path, "wb").write(bytes(raw))
