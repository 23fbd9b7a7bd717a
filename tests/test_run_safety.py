"""A run directory is never lost or mixed: signals save, one owner at a time, kept settings."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import TINY_CYCLEGAN
from tf_translate.data import write_demo_dataset
from tf_translate.runs import CHECKPOINT, LOCK_FILE, read_run
from tf_translate.training import global_step, train

TINY = {k: v for k, v in TINY_CYCLEGAN.items() if k != "image_size"}


def tiny_train(data, run_dir, **kwargs):
    args = dict(batch_size=2, image_size=32, load_size=36, seed=0, model_overrides=TINY, verbose=0, xla=False)
    return train("cyclegan", data, run_dir, **{**args, **kwargs})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_dataset(str(tmp_path_factory.mktemp("demo")), size=32, train_count=6, test_count=2)


def write_lock(run_dir, pid, host=None):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, LOCK_FILE), "w") as file:
        json.dump({"pid": pid, "host": host or socket.gethostname()}, file)


def test_sigterm_saves_the_checkpoint_like_ctrl_c(data, tmp_path):
    """`kill`, `timeout` and batch schedulers send SIGTERM: training stops with the
    checkpoint saved and the one-line message, as on Ctrl-C (before: killed, nothing saved)."""
    run_dir = str(tmp_path / "run")
    command = [sys.executable, "-m", "tf_translate.cli", "train", "--model", "cyclegan", "--data", data,
               "--run-dir", run_dir, "--image-size", "32", "--load-size", "36", "--batch-size", "2",
               "--steps", "100000", "--checkpoint-every", "100000", "--sample-every", "100000", "--no-xla",
               "--option", *[f"{k}={v}" for k, v in TINY.items()]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(run_dir, "logs")) and time.time() < deadline:
        time.sleep(0.5)  # the run callback's log folder: training has started
    time.sleep(5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]  # after TensorFlow's start-up lines
    assert last.startswith("tf-translate: interrupted at step") and "(stopped by SIGTERM)" in last, stderr
    assert "Traceback" not in stderr
    assert os.path.exists(os.path.join(run_dir, CHECKPOINT))
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))


def test_a_run_directory_in_use_by_a_live_process_is_refused(data, tmp_path):
    run_dir = str(tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(run_dir, sleeper.pid)
        with pytest.raises(ValueError, match=f"in use by process {sleeper.pid} on this machine.*{LOCK_FILE}"):
            tiny_train(data, run_dir, steps=1)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not os.path.exists(os.path.join(run_dir, "run.json"))  # nothing of the refused run was written


def test_a_lock_on_another_host_is_refused_naming_its_file(data, tmp_path):
    run_dir = str(tmp_path / "run")
    write_lock(run_dir, 1, host="another-host.example")
    with pytest.raises(ValueError, match="in use by process 1 on another-host.example"):
        tiny_train(data, run_dir, steps=1)


def test_the_lock_of_a_process_that_ended_is_taken_over_with_a_warning(data, tmp_path):
    run_dir = str(tmp_path / "run")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    write_lock(run_dir, ended.pid)
    with pytest.warns(UserWarning, match=f"taking over the lock of process {ended.pid}"):
        model = tiny_train(data, run_dir, steps=1)
    assert global_step(model) == 1
    assert not os.path.exists(os.path.join(run_dir, LOCK_FILE))  # released at the end


def test_resume_keeps_the_intervals_and_says_when_a_flag_replaces_one(data, tmp_path, capsys):
    """Before: the intervals were not recorded, so a resumed run checkpointed every 1,000 steps."""
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=2, checkpoint_every=1, sample_every=1, log_every=1)
    tiny_train(data, run_dir, steps=3, resume=True)
    flags = read_run(run_dir)["flags"]
    assert (flags["checkpoint_every"], flags["sample_every"], flags["log_every"]) == (1, 1, 1)
    assert os.path.exists(os.path.join(run_dir, "samples", "step_0000003.png"))
    capsys.readouterr()
    tiny_train(data, run_dir, steps=4, resume=True, sample_every=2)
    assert "--sample-every 2 replaces the run's 1" in capsys.readouterr().out
    assert read_run(run_dir)["flags"]["sample_every"] == 2


@pytest.mark.parametrize("change, message", [
    (dict(precision="mixed_bfloat16"), "--precision mixed_bfloat16: the run was started with float32"),
    (dict(seed=5), "--seed 5: the run was started with 0"),
    (dict(model_overrides={**TINY, "filters": 16}), "--option filters=16: the run's model was built with filters=8"),
])
def test_resume_refuses_settings_that_change_the_model_or_its_data(data, tmp_path, change, message):
    run_dir = str(tmp_path / "run")
    tiny_train(data, run_dir, steps=1)
    before = open(os.path.join(run_dir, "run.json")).read()
    with pytest.raises(ValueError, match=message):
        tiny_train(data, run_dir, steps=2, resume=True, **change)
    assert open(os.path.join(run_dir, "run.json")).read() == before
