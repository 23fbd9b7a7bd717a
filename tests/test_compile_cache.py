"""XLA's persistent compilation cache of `tf-translate train` (tf_translate/compile_cache.py)."""

import os
import subprocess
import sys

import tensorflow as tf

from tf_translate.compile_cache import (CACHE_FLAG, cache_folder, prepare, tensorflow_version, use_compile_cache,
                                        whole_entry)
from tf_translate.data import write_demo_dataset

# A hand-made cache entry: key (field 1), hlo_module (2) and executable (3), each a tag byte
# (field << 3 | 2: length-delimited), a length byte and that many bytes.
ENTRY = b"\x0a\x02ab" + b"\x12\x01c" + b"\x1a\x03def"


def train_process(data, run_dir, environ, *flags):
    """A tiny `tf-translate train` in its own process (XLA reads TF_XLA_FLAGS once per process)."""
    argv = [sys.executable, "-m", "tf_translate.cli", *flags, "train", "--model", "cyclegan", "--data", data,
            "--run-dir", run_dir, "--steps", "1", "--image-size", "32", "--option", "filters=2",
            "num_residual_blocks=1"]
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def entries(folder):
    """{entry file name: modification time in ns}: TensorFlow rewrites an entry only when it
    compiled the program afresh."""
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in os.listdir(folder)}


def test_a_second_train_process_loads_the_step_the_first_one_saved(tmp_path):
    data = write_demo_dataset(str(tmp_path / "data"), size=32, train_count=2, test_count=1)
    environ = {key: value for key, value in os.environ.items() if key != "TF_XLA_FLAGS"}  # .ci/run sets one
    environ["TF_TRANSLATE_CACHE"] = str(tmp_path / "cache")
    folder = cache_folder(environ)

    train_process(data, str(tmp_path / "first"), environ)
    saved = entries(folder)
    assert len(saved) == 1, saved  # CycleGAN's train step is one XLA program
    assert all(whole_entry(os.path.join(folder, name)) for name in saved)

    train_process(data, str(tmp_path / "second"), environ)
    assert entries(folder) == saved  # loaded: no new entry, none compiled and rewritten
    assert os.listdir(tmp_path / "cache" / "xla") == [os.path.basename(folder)]  # and no other folder

    environ["TF_TRANSLATE_CACHE"] = str(tmp_path / "off")
    train_process(data, str(tmp_path / "third"), environ, "--no-compile-cache")
    assert not os.path.exists(tmp_path / "off")


def test_the_folder_names_what_xla_does_not_key_on(tmp_path):
    """TF's version, oneDNN and XLA_FLAGS: XLA keys an entry on the step's HLO only."""
    root = str(tmp_path)
    base = cache_folder({"TF_TRANSLATE_CACHE": root, "TF_ENABLE_ONEDNN_OPTS": "1"})
    assert os.path.dirname(base) == os.path.join(root, "xla")
    assert os.path.basename(base).startswith(f"{tf.__version__}-onednn-on-") and tensorflow_version() == tf.__version__
    off = cache_folder({"TF_TRANSLATE_CACHE": root, "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert os.path.basename(off) == os.path.basename(base).replace("-on-", "-off-")
    fast = cache_folder({"TF_TRANSLATE_CACHE": root, "TF_ENABLE_ONEDNN_OPTS": "1", "XLA_FLAGS": "--xla_cpu_fast"})
    assert fast != base and fast.startswith(os.path.join(root, "xla", f"{tf.__version__}-onednn-on-"))


def test_the_flag_is_set_only_for_training_before_tensorflow_and_never_over_the_users(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow")  # as in a fresh `tf-translate` process
    environ = {"TF_TRANSLATE_CACHE": str(tmp_path), "TF_XLA_FLAGS": "--tf_xla_clustering_debug"}
    folder = cache_folder(environ)
    for argv in (["translate", "--input", "train"], ["--no-compile-cache", "train"], ["train", "--help"]):
        assert use_compile_cache(argv, environ) is None and environ["TF_XLA_FLAGS"] == "--tf_xla_clustering_debug"
    assert use_compile_cache(["--tf-logs", "train", "--model", "cyclegan"], environ) == folder
    assert environ["TF_XLA_FLAGS"] == f"--tf_xla_clustering_debug {CACHE_FLAG}={folder}"

    users = {"TF_TRANSLATE_CACHE": str(tmp_path / "ours"), "TF_XLA_FLAGS": f"{CACHE_FLAG}=/theirs"}
    assert use_compile_cache(["demo"], users) is None and users["TF_XLA_FLAGS"] == f"{CACHE_FLAG}=/theirs"
    assert not os.path.exists(tmp_path / "ours")


def test_truncated_entries_are_removed_with_one_line(tmp_path, capsys):
    """TensorFlow fails the train step on an entry it cannot parse (measured: OutOfRangeError
    "Read less bytes than requested" for a truncated one)."""
    (tmp_path / "whole.pb").write_bytes(ENTRY)
    (tmp_path / "truncated.pb").write_bytes(ENTRY[:-1])
    (tmp_path / "no_executable.pb").write_bytes(ENTRY[:-5])
    (tmp_path / "notes.txt").write_bytes(b"not an entry")
    assert prepare(str(tmp_path)) is None
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "whole.pb"]
    assert capsys.readouterr().err == f"tf-translate: warning: removed 2 truncated XLA cache entries from {tmp_path}\n"


def test_a_folder_that_cannot_be_written_leaves_the_cache_off_with_one_line(tmp_path, monkeypatch, capsys):
    """TensorFlow fails the train step when it cannot write the folder (measured:
    FailedPreconditionError "... is not a directory")."""
    monkeypatch.delitem(sys.modules, "tensorflow")
    (tmp_path / "file").write_text("a file where the cache root would be")
    environ = {"TF_TRANSLATE_CACHE": str(tmp_path / "file")}
    assert use_compile_cache(["train"], environ) is None and "TF_XLA_FLAGS" not in environ
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tf-translate: warning: XLA compile cache off: cannot write "
                                                   f"{cache_folder(environ)} (Not a directory)"), lines
