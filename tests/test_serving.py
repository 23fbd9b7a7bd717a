"""The SavedModel driven the way TF Serving's REST predict API drives it.

`tensorflow_model_server` is neither on PyPI nor in Debian (checked with pip and
apt-cache on this machine), so no real server runs here. Instead a subprocess that
does not import tf_translate (as a serving host would not) takes the request bodies a
client would POST to `/v1/models/NAME:predict`, decodes them with TF Serving's rules for
the row (`instances`) and columnar (`inputs`) forms, calls the named signature of the
loaded SavedModel, and answers with the response body the server would send
(`predictions` / `outputs`). uint8 tensors travel as plain JSON numbers (no base64).
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tf_translate.export import export_saved_model
from tf_translate.models import ResNetGenerator

SERVER = textwrap.dedent('''
    import json, sys
    import tensorflow as tf

    def decode(request, signature):
        """TF Serving's REST decoding: row form or columnar form -> {input name: tensor}."""
        specs = signature.structured_input_signature[1]
        names = sorted(specs)
        if "instances" in request:
            rows = request["instances"]
            if all(isinstance(row, dict) for row in rows):
                columns = {name: [row[name] for row in rows] for name in names}
            else:  # a single input may be given without its name
                assert len(names) == 1
                columns = {names[0]: rows}
        else:
            inputs = request["inputs"]
            columns = inputs if isinstance(inputs, dict) else {names[0]: inputs}
        return {name: tf.constant(columns[name], dtype=specs[name].dtype) for name in names}

    def predict(model, body):
        request = json.loads(body)
        signature = model.signatures[request.get("signature_name", "serving_default")]
        outputs = {name: value.numpy().tolist() for name, value in signature(**decode(request, signature)).items()}
        if "instances" in request:  # row form: one prediction per instance
            if len(outputs) == 1:
                return {"predictions": next(iter(outputs.values()))}
            count = len(next(iter(outputs.values())))
            return {"predictions": [{name: value[i] for name, value in outputs.items()} for i in range(count)]}
        return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}

    model = tf.saved_model.load(sys.argv[1])
    requests = json.load(sys.stdin)
    report = {
        "tf_translate_imported": any(name.split(".")[0] == "tf_translate" for name in sys.modules),
        "signatures": {
            key: {"inputs": {name: [spec.dtype.name, spec.shape.as_list()]
                             for name, spec in fn.structured_input_signature[1].items()},
                  "outputs": {name: [spec.dtype.name, spec.shape.as_list()]
                              for name, spec in fn.structured_outputs.items()}}
            for key, fn in model.signatures.items()},
        "responses": [json.dumps(predict(model, body)) for body in requests],
    }
    json.dump(report, sys.stdout)
''')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    keras.utils.set_random_seed(3)
    generator = ResNetGenerator(filters=8, num_residual_blocks=1)
    generator.build((None, None, None, 3))
    root = tmp_path_factory.mktemp("models") / "cartoon"
    path = export_saved_model(generator, str(root), version=1)
    return generator, path


def keras_pixels(generator, images):
    """What the generator makes of uint8 images, computed here without the export code.

    Sizes that are not a multiple of 4 are mirror-padded at the bottom and right (NumPy's
    "symmetric", which repeats the edge pixel) and cropped back after.
    """
    height, width = images.shape[1:3]
    padded = np.pad(images, [(0, 0), (0, -height % 4), (0, -width % 4), (0, 0)], mode="symmetric")
    out = generator(padded.astype(np.float32) / 127.5 - 1.0).numpy()[:, :height, :width]
    return np.clip(np.round((out + 1.0) * 127.5), 0, 255).astype(np.int32)


def serve(path, bodies):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", SERVER, path], input=json.dumps(bodies),
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_rest_row_and_columnar_requests_match_keras(served):
    generator, path = served
    assert path.endswith(os.path.join("cartoon", "1"))  # TF Serving's MODEL/VERSION layout
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (2, 32, 40, 3), dtype=np.uint8)
    odd = rng.integers(0, 256, (1, 30, 37, 3), dtype=np.uint8)  # not a multiple of 4
    bodies = [
        json.dumps({"instances": batch.tolist()}),  # row form, the single input unnamed
        json.dumps({"signature_name": "serving_default",
                    "instances": [{"images": image.tolist()} for image in odd]}),  # row form, named
        json.dumps({"inputs": {"images": batch.tolist()}}),  # columnar form
        json.dumps({"signature_name": "translate_float",
                    "inputs": (batch.astype(np.float32) / 127.5 - 1.0).tolist()}),
    ]
    report = serve(path, bodies)
    assert report["tf_translate_imported"] is False
    responses = [json.loads(body) for body in report["responses"]]

    expected = keras_pixels(generator, batch)
    rows = np.array(responses[0]["predictions"])
    assert rows.shape == (2, 32, 40, 3)
    assert np.abs(rows - expected).max() <= 1  # a .5 may round either way
    assert np.abs(np.array(responses[1]["predictions"]) - keras_pixels(generator, odd)).max() <= 1
    assert np.abs(np.array(responses[2]["outputs"]) - expected).max() <= 1
    floats = np.array(responses[3]["outputs"])
    np.testing.assert_allclose(floats, generator(batch.astype(np.float32) / 127.5 - 1.0).numpy(), atol=1e-5)


def test_signatures_named_typed_and_shaped_for_tf_serving(served):
    _, path = served
    signatures = serve(path, [])["signatures"]
    assert signatures == {
        "serving_default": {"inputs": {"images": ["uint8", [None, None, None, 3]]},
                            "outputs": {"images": ["uint8", [None, None, None, 3]]}},
        "translate_float": {"inputs": {"images": ["float32", [None, None, None, 3]]},
                            "outputs": {"images": ["float32", [None, None, None, 3]]}},
    }


def test_ugatit_heatmap_output_over_rest(tmp_path):
    """`export --heatmap`: U-GAT-IT's attention map as a second output, image-sized, in [0, 1]."""
    import tensorflow as tf

    from tf_translate.models.ugatit import UGATITGenerator

    keras.utils.set_random_seed(4)
    generator = UGATITGenerator(filters=8, num_residual_blocks=1, light=True)
    generator.build((None, None, None, 3))
    path = export_saved_model(generator, str(tmp_path / "selfie2anime"), heatmap=True)
    batch = np.random.default_rng(1).integers(0, 256, (1, 32, 40, 3), dtype=np.uint8)
    report = serve(path, [json.dumps({"instances": [{"images": batch[0].tolist()}]}),
                          json.dumps({"signature_name": "translate_float",
                                      "inputs": {"images": (batch / 127.5 - 1.0).tolist()}})])
    assert report["signatures"]["serving_default"]["outputs"] == {
        "images": ["uint8", [None, None, None, 3]], "heatmap": ["float32", [None, None, None, 1]]}
    row = json.loads(report["responses"][0])["predictions"][0]  # row form: one object per instance
    image, heatmap = np.array(row["images"]), np.array(row["heatmap"])
    x = batch.astype(np.float32) / 127.5 - 1.0
    out, _, raw = (t.numpy() for t in generator(x))
    assert np.abs(image - np.clip(np.round((out[0] + 1) * 127.5), 0, 255)).max() <= 1
    assert heatmap.shape == (32, 40, 1) and heatmap.min() == 0.0 and heatmap.max() == 1.0
    resized = tf.image.resize(raw, (32, 40)).numpy()[0]  # [8, 10, 1] -> the image's size
    expected = (resized - resized.min()) / (resized.max() - resized.min())
    np.testing.assert_allclose(heatmap, expected, atol=1e-5)
    columns = json.loads(report["responses"][1])["outputs"]  # columnar form: a dict of outputs
    np.testing.assert_allclose(np.array(columns["heatmap"]), heatmap[None], atol=1e-5)


def test_heatmap_needs_an_attention_generator(tmp_path):
    generator = ResNetGenerator(filters=8, num_residual_blocks=1)
    generator.build((None, None, None, 3))
    with pytest.raises(ValueError, match="ResNetGenerator returns no attention heatmap"):
        export_saved_model(generator, str(tmp_path / "m"), heatmap=True)
