import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import random_images
from tf_translate.export import GeneratorModule, export_saved_model
from tf_translate.models import ResNetGenerator

# Runs in a fresh interpreter that never imports tf_translate: what TF Serving sees.
LOAD_AND_RUN = """
import json, sys
import numpy as np
import tensorflow as tf
assert "tf_translate" not in sys.modules
path, inputs = sys.argv[1], np.load(sys.argv[2])
model = tf.saved_model.load(path)
out = {}
for key, array in inputs.items():
    name = "serving_default" if array.dtype == np.uint8 else "translate_float"
    out[key] = model.signatures[name](images=tf.constant(array))["images"].numpy()
np.savez(sys.argv[3], **out)
sig = model.signatures["serving_default"]
print(json.dumps({"input": str(sig.structured_input_signature[1]["images"]),
                  "output": str(sig.structured_outputs["images"]),
                  "imported": "tf_translate" in sys.modules}))
"""


def run_outside(path, inputs, tmp_path):
    np.savez(tmp_path / "in.npz", **inputs)
    script = tmp_path / "serve.py"
    script.write_text(LOAD_AND_RUN)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(script), path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(tmp_path / "out.npz")), json.loads(done.stdout.strip().splitlines()[-1])


def to_uint8(x):
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_saved_model_matches_keras_at_two_sizes_and_batches_without_tf_translate(tmp_path):
    generator = ResNetGenerator(filters=8, num_residual_blocks=2)
    generator.build((None, None, None, 3))
    path = export_saved_model(generator, str(tmp_path / "model"))
    assert path.endswith(os.path.join("model", "1")) and os.path.exists(os.path.join(path, "saved_model.pb"))

    rng = np.random.default_rng(0)
    inputs = {
        "float_b1_s32": random_images(1, 32, 1),
        "float_b3_s48": random_images(3, 48, 2),
        "uint8_b2_s36x44": rng.integers(0, 256, (2, 36, 44, 3), dtype=np.uint8),
        "uint8_b1_s30x26": rng.integers(0, 256, (1, 30, 26, 3), dtype=np.uint8),  # not multiples of 4
    }
    out, info = run_outside(path, inputs, tmp_path)
    assert "uint8" in info["input"] and "None, None, None, 3" in info["input"] and not info["imported"]
    for key in ("float_b1_s32", "float_b3_s48"):
        np.testing.assert_allclose(out[key], generator(inputs[key]).numpy(), atol=1e-5)
    # uint8: the same as scaling, running Keras and rounding by hand.
    x = inputs["uint8_b2_s36x44"].astype(np.float32) / 127.5 - 1.0
    assert np.abs(out["uint8_b2_s36x44"].astype(int) - to_uint8(generator(x).numpy())).max() <= 1
    # Sizes that are not multiples of 4 are padded and cropped back to the input size.
    odd = out["uint8_b1_s30x26"]
    assert odd.shape == (1, 30, 26, 3) and odd.dtype == np.uint8
    x = inputs["uint8_b1_s30x26"].astype(np.float32) / 127.5 - 1.0
    padded = np.pad(x, [(0, 0), (0, 2), (0, 2), (0, 0)], mode="symmetric")
    assert np.abs(odd.astype(int) - to_uint8(generator(padded).numpy()[:, :30, :26])).max() <= 1


def test_mixed_precision_generator_exports_as_float32(tmp_path):
    import keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        generator = ResNetGenerator(filters=8, num_residual_blocks=1)
        generator.build((None, None, None, 3))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    path = export_saved_model(generator, str(tmp_path / "model"))
    import tensorflow as tf
    loaded = tf.saved_model.load(path)
    x = random_images(1, 16)
    out = loaded.signatures["translate_float"](images=tf.constant(x))["images"]
    assert out.dtype == tf.float32
    assert np.abs(out.numpy() - generator(x).numpy()).max() < 2e-2


# The label-conditioned signatures (StarGAN), again in a process without tf_translate.
LOAD_AND_RUN_WITH_LABELS = """
import json, sys
import numpy as np
import tensorflow as tf
path, inputs = sys.argv[1], np.load(sys.argv[2])
model = tf.saved_model.load(path)
out = {}
for key in ("uint8", "float"):
    name = "serving_default" if key == "uint8" else "translate_float"
    out[key] = model.signatures[name](images=tf.constant(inputs[key]),
                                      labels=tf.constant(inputs["labels"]))["images"].numpy()
names = model.signatures["label_names"]()["label_names"].numpy()
sig = model.signatures["serving_default"]
print(json.dumps({"inputs": {k: [str(v.dtype.name), v.shape.as_list()]
                             for k, v in sig.structured_input_signature[1].items()},
                  "names": [n.decode() for n in names], "imported": "tf_translate" in sys.modules}))
np.savez(sys.argv[3], **out)
"""


def test_label_conditioned_generator_exports_a_signature_that_takes_labels(tmp_path):
    from tf_translate.models.stargan import StarGANGenerator

    generator = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    generator.build([(None, None, None, 3), (None, 3)])
    path = export_saved_model(generator, str(tmp_path / "model"), label_names=["cat", "dog", "fox"])
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (2, 30, 26, 3), dtype=np.uint8)  # padded to 32 x 28 inside
    labels = np.array([[0, 1, 0], [0, 0, 1]], np.float32)
    inputs = {"uint8": pixels, "float": random_images(2, 32, 4), "labels": labels}
    np.savez(tmp_path / "in.npz", **inputs)
    (tmp_path / "serve.py").write_text(LOAD_AND_RUN_WITH_LABELS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(tmp_path / "serve.py"), path, str(tmp_path / "in.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True,
                          cwd=str(tmp_path), env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    out = dict(np.load(tmp_path / "out.npz"))
    assert info == {"inputs": {"images": ["uint8", [None, None, None, 3]], "labels": ["float32", [None, 3]]},
                    "names": ["cat", "dog", "fox"], "imported": False}
    np.testing.assert_allclose(out["float"], generator([inputs["float"], labels]).numpy(), atol=1e-5)
    x = np.pad(pixels.astype(np.float32) / 127.5 - 1.0, [(0, 0), (0, 2), (0, 2), (0, 0)], mode="symmetric")
    expected = to_uint8(generator([x, labels]).numpy()[:, :30, :26])
    assert np.abs(out["uint8"].astype(int) - expected).max() <= 1
    # The label matters: the same images with swapped labels translate differently.
    swapped = to_uint8(generator([x, labels[::-1]]).numpy()[:, :30, :26])
    assert np.abs(out["uint8"].astype(int) - swapped).max() > 5
    with pytest.raises(ValueError, match="2 label names for a generator with 3 label entries"):
        export_saved_model(generator, str(tmp_path / "bad"), label_names=["cat", "dog"])
