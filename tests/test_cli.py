import os

import numpy as np
import pytest
from PIL import Image

from tf_translate.cli import main
from tf_translate.data import read_rgb


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--model", "pix2pixHD", "--data", str(tmp_path), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown model 'pix2pixHD'" in err and "cyclegan" in err


def test_missing_data_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--model", "cyclegan", "--data", str(tmp_path / "none"),
                 "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trainA" in err


def test_old_flag_spellings_still_work_and_say_they_are_old(tmp_path, capsys):
    """One meaning per flag: the old spellings are mapped with a note each, and a flag
    that sets a constructor option is refused (one line) by a model without that option."""
    missing = str(tmp_path / "none")
    translate = ["translate", "--run-dir", missing, "--input", missing, "--output", str(tmp_path / "out")]
    assert main(translate + ["--direction", "BtoA", "--samples", "2", "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "--direction BtoA is the old spelling of b2a" in err
    assert "translate --samples is the old spelling of --codes" in err
    assert "translate --seed is the old spelling of --code-seed" in err
    assert err.strip().splitlines()[-1].startswith("tf-translate: error: --input")  # and then it ran on
    assert main(translate + ["--samples", "2", "--codes", "2"]) == 2
    assert "--samples is the old name of --codes: give one of them" in capsys.readouterr().err
    train = ["train", "--model", "cyclegan", "--data", missing, "--run-dir", missing]
    assert main(train + ["--steps-per-scale", "3"]) == 2
    assert "--steps-per-scale and --finest-size are for models trained scale by scale (tuigan), not cyclegan" in (
        capsys.readouterr().err)
    assert main(train + ["--min-size", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--min-size is for --model tuigan (it sets the constructor option min_size" in err


def test_demo_trains_translates_and_exports(tmp_path, capsys):
    """The README's first command, shrunk: the metric is reported and must beat the
    untrained model; translate and export then work on the demo's run."""
    run_dir = str(tmp_path / "demo")
    assert main(["demo", "--run-dir", run_dir, "--steps", "60", "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    untrained = float(out.split("untrained ")[1].split(",")[0])
    trained = float(out.split("trained ")[2].split(" ")[0])
    assert trained < untrained
    assert os.listdir(os.path.join(run_dir, "run", "samples"))
    assert os.path.exists(os.path.join(run_dir, "export", "1", "saved_model.pb"))

    test_a = os.path.join(run_dir, "data", "testA")
    Image.fromarray(np.zeros((30, 26, 3), np.uint8)).save(os.path.join(str(tmp_path), "odd.png"))
    out_dir = str(tmp_path / "translated")
    assert main(["translate", "--run-dir", os.path.join(run_dir, "run"), "--input", test_a, "--output", out_dir]) == 0
    assert sorted(os.listdir(out_dir)) == sorted(os.listdir(test_a))
    assert main(["translate", "--run-dir", os.path.join(run_dir, "run"), "--input", str(tmp_path / "odd.png"),
                 "--output", out_dir, "--direction", "b2a"]) == 0
    assert read_rgb(os.path.join(out_dir, "odd.png")).shape == (30, 26, 3)
    assert main(["export", "--run-dir", os.path.join(run_dir, "run"), "--output", str(tmp_path / "served"),
                 "--version", "3"]) == 0
    assert os.path.exists(tmp_path / "served" / "3" / "saved_model.pb")
    assert main(["translate", "--run-dir", os.path.join(run_dir, "run"), "--input", test_a, "--output", out_dir,
                 "--direction", "sideways"]) == 2

    # The exported SavedModel translates as the run does (translate --model-dir).
    served_dir = str(tmp_path / "from_savedmodel")
    assert main(["translate", "--model-dir", str(tmp_path / "served" / "3"), "--input", test_a,
                 "--output", served_dir]) == 0
    from_run = str(tmp_path / "from_run")
    assert main(["translate", "--run-dir", os.path.join(run_dir, "run"), "--input", test_a, "--output", from_run]) == 0
    for name in os.listdir(test_a):
        served = read_rgb(os.path.join(served_dir, name)).astype(int)
        assert np.abs(served - read_rgb(os.path.join(from_run, name)).astype(int)).max() <= 1
    assert main(["translate", "--model-dir", str(tmp_path / "served"), "--input", test_a,
                 "--output", served_dir, "--overwrite"]) == 2  # the model folder, not its version folder
    assert "not a SavedModel folder" in capsys.readouterr().err


def test_train_help_shows_the_chosen_models_reference_run(capsys):
    """StarGAN's defaults are its reference's (128 px, batch 16, 200,000 iterations), not CycleGAN's."""
    with pytest.raises(SystemExit):
        main(["train", "--model", "stargan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 128, the reference's)" in text and "default 16, the reference's" in text
    assert "(default 200,000, the reference's)" in text
    with pytest.raises(SystemExit):
        main(["train", "--model", "cyclegan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 256, the reference's)" in text and "(default 200, the reference's)" in text
    assert "stargan 128 px, batch 16, 200,000 steps" in text  # every model's, in the epilog


def test_help_and_argument_errors_of_the_commands_other_than_train_do_not_import_tensorflow():
    """`tf-translate --help` took 9.6 s importing TensorFlow before argparse ran (issue
    26.19); only `train` needs the models (its help lists them and their defaults)."""
    import subprocess
    import sys

    check = ("import sys\nfrom tf_translate.cli import parse_args\n"
             "for argv in (['--help'], ['translate', '--help'], ['export', '--run-dir']):\n"
             "    try:\n        parse_args(argv)\n    except SystemExit:\n        pass\n"
             "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("ok"), done.stderr[-2000:]
