"""StarGAN: networks, losses, label rules, data and the training model.

Expected values come from REFERENCE.md (parameter counts), from hand computations or
from NumPy versions written from yunjey/stargan's semantics.
"""

import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_translate import data_labels
from tf_translate.losses import classification_loss, gradient_penalty
from tf_translate.models import build_model
from tf_translate.models.stargan import (StarGAN, StarGANDiscriminator, StarGANGenerator, grid_target_labels,
                                         hair_color_indices, sample_target_labels)
from tf_translate.runs import load_run, read_run
from tf_translate.training import TITLE_HEIGHT, global_step, image_grid, train, training_data


def _rng(seed=0):
    return np.random.default_rng(seed)


def _tiny_images(batch=2, size=32, seed=0):
    return _rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


# --- networks ------------------------------------------------------------------------

def test_parameter_counts_match_reference():
    g = StarGANGenerator()
    g.build([(None, 128, 128, 3), (None, 5)])
    assert g.count_params() == 8_430_528
    d = StarGANDiscriminator(image_size=128)
    d.build((None, 128, 128, 3))
    assert d.count_params() == 44_762_048
    # PyTorch's default init (yunjey never re-initialises): U(+-1/sqrt(fan_in)) for
    # weights and biases, fan_in = in_channels * k * k (out_channels for transposed).
    def inner(layer):
        return layer.layers[-1] if isinstance(layer, keras.Sequential) else layer
    for layer, fan_in in [(inner(d.stack[2]), 64 * 16), (inner(g.stack[0]), 8 * 49),
                          (next(l for l in g.stack if isinstance(l, keras.layers.Conv2DTranspose)),
                           128 * 16)]:
        kernel, bound = layer.kernel.numpy(), 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound
        assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    bias = inner(d.stack[2]).bias.numpy()
    assert np.abs(bias).max() <= 1 / 32 and bias.std() > 0.5 / 32 / np.sqrt(3)
    blocks = [b for b in g.stack if b.__class__.__name__ == "StarGANResidualBlock"]
    assert not np.allclose(inner(blocks[0].body[0]).kernel.numpy(), inner(blocks[1].body[0]).kernel.numpy())
    d256 = StarGANDiscriminator(image_size=256)
    d256.build((None, 256, 256, 3))
    assert d256.count_params() == 44_884_928


def test_transposed_conv_grid_matches_pytorch_padding_1():
    """The generator's 4x4 s2 transposed conv against PyTorch's ConvTranspose2d(p=1),
    written as a scatter of the full output and a one-pixel crop on each side."""
    g = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    g.build([(None, 32, 32, 3), (None, 3)])
    up = next(l for l in g.stack if isinstance(l, keras.layers.Conv2DTranspose))
    x = _rng(1).normal(size=(1, 5, 6, up.kernel.shape[-1])).astype("float32")
    w = np.asarray(up.kernel)  # [kh, kw, out, in]
    full = np.zeros((1, 2 * 5 + 2, 2 * 6 + 2, w.shape[2]), np.float32)
    for i in range(5):
        for j in range(6):
            full[0, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("aboi,i->abo", w, x[0, i, j])
    np.testing.assert_allclose(np.asarray(up(x)), full[:, 1:-1, 1:-1], atol=1e-5)


def test_generator_tiles_label_after_image_channels():
    g = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    x = _tiny_images()
    c = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    y = np.asarray(g([x, c]))
    # The same stack fed by hand with [image, tiled label] channels.
    h = np.concatenate([x, np.broadcast_to(c[:, None, None, :], (2, 32, 32, 3))], axis=-1)
    for layer in g.stack:
        h = layer(h)
    np.testing.assert_allclose(y, np.asarray(h), atol=1e-5)
    # And the label matters: swapping the labels changes each output.
    y_swapped = np.asarray(g([x, c[::-1]]))
    assert np.abs(y - y_swapped).reshape(2, -1).max(axis=1).min() > 1e-4


def test_discriminator_heads_and_bad_sizes():
    d = StarGANDiscriminator(image_size=32, filters=8, num_domains=4, num_layers=4)
    src, cls = d(_tiny_images())
    assert src.dtype == "float32" and cls.dtype == "float32"
    assert tuple(src.shape) == (2, 2, 2, 1) and tuple(cls.shape) == (2, 4)
    # The class head is a conv whose kernel covers the final 2x2 map: a dot product.
    h = _tiny_images()
    for layer in d.stack:
        h = layer(h)
    kernel = np.asarray(d.cls_head.layers[-1].kernel if isinstance(d.cls_head, keras.Sequential)
                        else d.cls_head.kernel)
    np.testing.assert_allclose(np.asarray(cls), np.einsum("bhwc,hwck->bk", np.asarray(h), kernel),
                               atol=1e-4)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*num_layers"):
        StarGANDiscriminator(image_size=100, num_layers=6)


def test_keras_round_trip(tmp_path):
    g = StarGANGenerator(filters=8, num_domains=3, num_residual_blocks=1)
    d = StarGANDiscriminator(image_size=32, filters=8, num_domains=3, num_layers=5)
    x, c = _tiny_images(), np.eye(3, dtype=np.float32)[[0, 2]]
    y, (src, cls) = g([x, c]), d(x)
    g.save(tmp_path / "g.keras")
    d.save(tmp_path / "d.keras")
    g2 = keras.saving.load_model(tmp_path / "g.keras")
    d2 = keras.saving.load_model(tmp_path / "d.keras")
    assert g2.get_config() == g.get_config() and d2.get_config() == d.get_config()
    np.testing.assert_allclose(np.asarray(g2([x, c])), np.asarray(y), atol=1e-6)
    src2, cls2 = d2(x)
    np.testing.assert_allclose(np.asarray(src2), np.asarray(src), atol=1e-6)
    np.testing.assert_allclose(np.asarray(cls2), np.asarray(cls), atol=1e-6)


# --- losses --------------------------------------------------------------------------

def test_gradient_penalty_linear_critic_is_norm_of_weights():
    w = tf.Variable(_rng(2).normal(size=(1, 4, 4, 3)).astype("float32") * 0.2)
    real, fake = _tiny_images(3, 4, seed=3), _tiny_images(3, 4, seed=4)
    alpha = _rng(5).uniform(size=(3, 1, 1, 1)).astype("float32")
    norm = np.linalg.norm(w.numpy())
    with tf.GradientTape() as tape:
        # f(x) = sum(w * x): the gradient is w for every sample, so GP = (||w|| - 1)^2.
        gp = gradient_penalty(lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3]), real, fake, alpha)
    np.testing.assert_allclose(float(gp), (norm - 1.0) ** 2, rtol=1e-5)
    # Second order through the nested tape: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
    np.testing.assert_allclose(tape.gradient(gp, w).numpy(), 2 * (norm - 1) * w.numpy() / norm,
                               rtol=1e-4, atol=1e-6)
    # A PatchGAN-shaped critic: the gradient is of the sum over its map (grad_outputs=ones).
    gp_map = gradient_penalty(lambda x: w * x, real, fake, alpha)
    np.testing.assert_allclose(float(gp_map), (norm - 1.0) ** 2, rtol=1e-5)


def test_gradient_penalty_mixes_real_and_fake_per_sample():
    real, fake = _tiny_images(3, 4, seed=6), _tiny_images(3, 4, seed=7)
    alpha = np.array([0.0, 0.3, 1.0], np.float32).reshape(3, 1, 1, 1)
    # f(x) = sum(x^2) / 2 has gradient x_hat.
    gp = gradient_penalty(lambda x: 0.5 * tf.reduce_sum(x * x, axis=[1, 2, 3]), real, fake, alpha)
    x_hat = alpha * real + (1 - alpha) * fake
    expected = np.mean((np.linalg.norm(x_hat.reshape(3, -1), axis=1) - 1.0) ** 2)
    np.testing.assert_allclose(float(gp), expected, rtol=1e-5)


def _np_bce(logits, labels):
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def test_classification_loss_multi_label_with_mask():
    logits = _rng(8).normal(size=(4, 7)).astype("float32")
    labels = (_rng(9).uniform(size=(4, 7)) > 0.5).astype("float32")
    # Without a mask: BCE summed over attributes and batch, divided by the batch (yunjey).
    np.testing.assert_allclose(float(classification_loss(logits, labels)),
                               _np_bce(logits, labels).sum() / 4, rtol=1e-5)
    # CelebA part known (5), RaFD part unknown (2): only the first 5 columns count.
    mask = np.array([1, 1, 1, 1, 1, 0, 0], np.float32)
    expected = _np_bce(logits[:, :5], labels[:, :5]).sum() / 4
    np.testing.assert_allclose(float(classification_loss(logits, labels, mask)), expected, rtol=1e-5)
    # Unknown logits and labels may hold anything.
    other_logits, other_labels = logits.copy(), labels.copy()
    other_logits[:, 5:] += 100.0
    other_labels[:, 5:] = 1.0 - other_labels[:, 5:]
    np.testing.assert_allclose(float(classification_loss(other_logits, other_labels, mask)),
                               expected, rtol=1e-5)
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = classification_loss(x, labels, mask)
    grad = tape.gradient(loss, x).numpy()
    assert np.all(grad[:, 5:] == 0) and np.all(np.abs(grad[:, :5]) > 0)


def test_classification_loss_single_label_softmax_over_known_slice():
    logits = _rng(10).normal(size=(3, 6)).astype("float32")
    ids = np.array([0, 2, 1])
    labels = np.zeros((3, 6), np.float32)
    labels[np.arange(3), 3 + ids] = 1.0  # RaFD one-hots in columns 3..5
    mask = np.array([0, 0, 0, 1, 1, 1], np.float32)
    part = logits[:, 3:]
    log_softmax = part - np.log(np.exp(part).sum(axis=1, keepdims=True))
    expected = -log_softmax[np.arange(3), ids].mean()  # F.cross_entropy on out_cls[:, c_dim:]
    got = classification_loss(logits, labels, mask, multi_label=False)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # Per-sample masks: a sample of the other dataset adds 0 but still counts in B.
    rows = np.array([[1], [1], [0]], np.float32) * mask
    got_rows = classification_loss(logits, labels, rows, multi_label=False)
    np.testing.assert_allclose(float(got_rows), -log_softmax[np.arange(2), ids[:2]].sum() / 3,
                               rtol=1e-5)


# --- target labels -------------------------------------------------------------------

def test_sample_target_labels_permutes_the_batch():
    # One-hot rows plus a last column holding the row id.
    labels = tf.constant(np.concatenate([np.eye(8), np.arange(8)[:, None]], 1), tf.float32)
    step = tf.function(sample_target_labels, jit_compile=True)
    a = step(labels, tf.constant([1, 2]))
    b = step(labels, tf.constant([1, 2]))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Every target is one of the batch's own labels, each used exactly once.
    assert sorted(a.numpy()[:, -1].tolist()) == list(range(8))
    np.testing.assert_array_equal(a.numpy()[:, :8], np.eye(8)[a.numpy()[:, -1].astype(int)])
    orders = {tuple(step(labels, tf.constant([s, 0])).numpy()[:, -1]) for s in range(5)}
    assert len(orders) > 1 and any(o != tuple(range(8)) for o in orders)


def test_grid_target_labels_follow_create_labels():
    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    hair = hair_color_indices(attrs)
    assert hair == [0, 1, 2]
    labels = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]], np.float32)
    cols = [t.numpy() for t in grid_target_labels(labels, hair)]
    expected = [
        [[1, 0, 0, 1, 0], [1, 0, 0, 0, 1]],  # black hair
        [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]],  # blond hair
        [[0, 0, 1, 1, 0], [0, 0, 1, 0, 1]],  # brown hair
        [[1, 0, 0, 0, 0], [0, 0, 1, 1, 1]],  # Male reversed
        [[1, 0, 0, 1, 1], [0, 0, 1, 0, 0]],  # Young reversed
    ]
    np.testing.assert_array_equal(np.array(cols), np.array(expected, np.float32))
    one_hot = [t.numpy() for t in grid_target_labels(np.eye(3, dtype=np.float32)[[2, 0]],
                                                     multi_label=False)]
    np.testing.assert_array_equal(np.array(one_hot), np.eye(3)[:, None, :].repeat(2, axis=1))


# --- data ----------------------------------------------------------------------------

ATTR_NAMES = ["Bald", "Black_Hair", "Blond_Hair", "Male", "Young"]


def _write_attr_file(path, rows, count=None, names=ATTR_NAMES):
    lines = [str(len(rows) if count is None else count), " ".join(names) + " "]
    lines += [f"{name}  " + "  ".join(str(v) for v in values) for name, values in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


ROWS = [("000001.jpg", [-1, 1, -1, 1, -1]), ("000002.jpg", [-1, -1, 1, -1, 1]),
        ("000003.jpg", [1, -1, -1, 1, 1])]


def test_read_celeba_attributes(tmp_path):
    path = _write_attr_file(tmp_path / "list_attr_celeba.txt", ROWS)
    files, labels = data_labels.read_celeba_attributes(path, ["Blond_Hair", "Young", "Male"])
    assert files == ["000001.jpg", "000002.jpg", "000003.jpg"]
    np.testing.assert_array_equal(labels, [[0, 0, 1], [1, 1, 0], [0, 1, 1]])


@pytest.mark.parametrize("rows,count,attrs,message", [
    (ROWS, None, ["Blond_Hair", "Blonde_Hair"],
     "unknown attribute\\(s\\) Blonde_Hair .*valid: Bald, Black_Hair, Blond_Hair, Male, Young"),
    (ROWS, 4, ["Male"], "says 4 images on line 1 but lists 3"),
    (ROWS[:1] + [("000002.jpg", [1, 1, -1])] + ROWS[2:], None, ["Male"],
     "line 4: expected a filename and 5 values, got 4 fields"),
    (ROWS[:2] + [("000003.jpg", [1, 0, -1, 1, 1])], None, ["Male"],
     "line 5: attribute values must be -1 or 1, got '0'"),
])
def test_read_celeba_attributes_errors(tmp_path, rows, count, attrs, message):
    path = _write_attr_file(tmp_path / "list_attr_celeba.txt", rows, count)
    with pytest.raises(ValueError, match=message) as info:
        data_labels.read_celeba_attributes(path, attrs)
    assert "\n" not in str(info.value)


def test_celeba_split_is_the_reference_split():
    n = 2010
    lines = list(range(n))
    random.seed(1234)  # yunjey data_loader.py: random.seed(1234); random.shuffle(lines)
    random.shuffle(lines)
    test = [line for i, line in enumerate(lines) if (i + 1) < 2000]
    train = [line for i, line in enumerate(lines) if not (i + 1) < 2000]
    assert data_labels.celeba_split(n, "test") == test and len(test) == 1999
    assert data_labels.celeba_split(n, "train") == train


def _write_images(folder, names, size=(40, 50), seed=0):
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    for k, name in enumerate(names):
        a = _rng(seed + k).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(a).save(os.path.join(folder, name))
        arrays[name] = a
    return arrays


def test_celeba_dataset_crops_and_labels(tmp_path):
    names = [r[0].replace(".jpg", ".png") for r in ROWS]
    rows = [(n, v) for n, (_, v) in zip(names, ROWS)]
    arrays = _write_images(tmp_path / "img", names)
    path = _write_attr_file(tmp_path / "attrs.txt", rows)
    # 3 images < 1999: all are in the reference's test split, in shuffled order.
    ds = data_labels.celeba_dataset(str(tmp_path / "img"), path, ["Male", "Young"], image_size=32,
                                     crop_size=32, batch_size=3, mode="test")
    images, labels = next(iter(ds))
    order = data_labels.celeba_split(3, "test")
    for b, i in enumerate(order):
        # 40x50 (w x h): torchvision CenterCrop(32) takes rows 9..40, columns 4..35.
        expected = arrays[names[i]][9:41, 4:36].astype(np.float32) / 255.0 * 2 - 1
        np.testing.assert_allclose(images[b].numpy(), expected, atol=1e-6)
        np.testing.assert_array_equal(labels[b].numpy(),
                                      [ROWS[i][1][3] == 1, ROWS[i][1][4] == 1])
    # Training: reference train split is empty for 3 images, so flips are checked on the
    # loader and on a train pipeline over the same files.
    flipped = data_labels.read_cropped(str(tmp_path / "img" / names[0]), 32, 32, flip=True)
    np.testing.assert_allclose(flipped, arrays[names[0]][:, ::-1][9:41, 4:36] / 255.0 * 2 - 1,
                               atol=1e-6)
    paths = [str(tmp_path / "img" / n) for n in names]
    train = data_labels.labelled_image_dataset(paths * 4, np.zeros((12, 1)), 32, 32, 12, True, seed=3)
    images, _ = next(iter(train))
    crops = {n: arrays[n][9:41, 4:36] / 255.0 * 2 - 1 for n in names}
    kinds = set()
    for image in images.numpy():
        matches = [(n, f) for n in names for f in (False, True)
                   if np.allclose(image, crops[n][:, ::-1] if f else crops[n], atol=1e-6)]
        assert len(matches) == 1
        kinds.add(matches[0][1])
    assert kinds == {False, True}


def test_celeba_dataset_missing_images(tmp_path):
    _write_images(tmp_path / "img", ["000001.jpg", "000003.jpg"])
    path = _write_attr_file(tmp_path / "attrs.txt", ROWS)
    with pytest.raises(ValueError, match="1 of 3 images listed in attrs.txt are missing .*000002.jpg"):
        data_labels.celeba_dataset(str(tmp_path / "img"), path, ["Male"], mode="test")


def test_domain_folders_and_unified_labels(tmp_path):
    _write_images(tmp_path / "rafd" / "sad", ["a.png", "b.png"], size=(16, 16))
    _write_images(tmp_path / "rafd" / "happy", ["c.png"], size=(16, 16))
    ds, names = data_labels.domain_folder_dataset(str(tmp_path / "rafd"), image_size=16,
                                                   crop_size=None, batch_size=3, mode="test")
    assert names == ["happy", "sad"]
    _, labels = next(iter(ds))
    np.testing.assert_array_equal(labels.numpy(), [[1, 0], [0, 1], [0, 1]])
    os.makedirs(tmp_path / "rafd" / "angry")
    with pytest.raises(ValueError, match="angry' holds no images"):
        data_labels.domain_folder_dataset(str(tmp_path / "rafd"))
    u = data_labels.unified_labels(np.array([[1, 0, 1]], np.float32), 0, (3, 2))
    np.testing.assert_array_equal(u.numpy(), [[1, 0, 1, 0, 0, 1, 0]])
    u = data_labels.unified_labels(np.array([[0, 1]], np.float32), 1, (3, 2))
    np.testing.assert_array_equal(u.numpy(), [[0, 0, 0, 0, 1, 0, 1]])


# --- training model ------------------------------------------------------------------

def _tiny_stargan(**kwargs):
    return StarGAN(image_size=32, filters=8, num_residual_blocks=1, discriminator_filters=8,
                   discriminator_layers=5, seed=1, **kwargs)


def _fit_steps(model, dataset, steps):
    """Runs `steps` single-step fits; returns per step (G moved, D moved, logs)."""
    moved = []
    for _ in range(steps):
        g0 = [v.numpy().copy() for v in model.generator.trainable_variables]
        d0 = [v.numpy().copy() for v in model.discriminator.trainable_variables]
        logs = model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0).history
        changed = lambda old, net: any(not np.array_equal(a, v.numpy())
                                       for a, v in zip(old, net.trainable_variables))
        moved.append((changed(g0, model.generator), changed(d0, model.discriminator),
                      {k: float(v[-1]) for k, v in logs.items()}))
    return moved


def test_jit_step_updates_generator_every_fifth_step():
    model = _tiny_stargan(num_domains=3)
    model.compile(jit_compile=True)
    # XLA compiles each update's gradient function, not the Keras step that applies
    # them (a generator update inside an XLA tf.cond ran 10-25x slower on CPU).
    assert not model.jit_compile
    x = _tiny_images(4)
    c = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    alpha = np.full((4, 1, 1, 1), 0.5, np.float32)
    for ir in [model.critic_gradients.experimental_get_compiler_ir(x, c, c[::-1], alpha),
               model.generator_gradients.experimental_get_compiler_ir(x, c, c[::-1])]:
        assert ir(stage="hlo").startswith("HloModule")
    plain = _tiny_stargan(num_domains=3)
    plain.compile(jit_compile=False)
    with pytest.raises(ValueError, match="jit_compile=True"):
        plain.generator_gradients.experimental_get_compiler_ir(x, c, c[::-1])
    assert model.g_optimizer.epsilon == model.d_optimizer.epsilon == 1e-8  # torch Adam's eps
    moved = _fit_steps(model, tf.data.Dataset.from_tensors((x, c)).repeat(), 6)
    assert [g for g, _, _ in moved] == [False, False, False, False, True, False]
    assert all(d for _, d, _ in moved)
    assert int(model.d_optimizer.iterations) == 6 and int(model.g_optimizer.iterations) == 1
    logs = [l for _, _, l in moved]
    assert logs[0]["g_loss"] == 0.0 and logs[4]["g_loss"] == logs[5]["g_loss"] != 0.0
    assert logs[4]["rec_loss"] > 0.0 and logs[0]["gp"] > 0.0


def test_two_dataset_step_trains_generator_on_both_halves_of_an_iteration():
    """With two datasets one reference iteration is a CelebA then a RaFD batch; the
    generator updates on both batches of every n_critic-th iteration."""
    model = _tiny_stargan(num_domains=3, num_domains_2=2, n_critic=2)
    model.compile(jit_compile=True)
    celeba = tf.data.Dataset.from_tensors(
        (_tiny_images(2, seed=1), np.array([[1, 0, 1], [0, 1, 0]], np.float32)))
    rafd = tf.data.Dataset.from_tensors((_tiny_images(2, seed=2), np.eye(2, dtype=np.float32)))
    both = data_labels.multi_dataset([celeba, rafd])
    first, second = list(both.take(2).as_numpy_iterator())
    np.testing.assert_array_equal(first[1], [[1, 0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(second[1], [[0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 1, 0, 1]])
    assert model.generator.num_domains == 7 and model.discriminator.num_domains == 5
    moved = _fit_steps(model, both, 4)
    assert [g for g, _, _ in moved] == [False, False, True, True]
    # The critic's class loss on a RaFD batch is softmax CE over the 2 RaFD logits only.
    logits = _rng(3).normal(size=(2, 5)).astype("float32")
    part = logits[:, 3:]
    ce = -np.mean((part - np.log(np.exp(part).sum(1, keepdims=True)))[[0, 1], [0, 1]])
    np.testing.assert_allclose(float(model.classification_loss(logits, second[1])), ce, rtol=1e-5)
    bce = _np_bce(logits[:, :3], first[1][:, :3]).sum() / 2
    np.testing.assert_allclose(float(model.classification_loss(logits, first[1])), bce, rtol=1e-5)


def test_stargan_config_round_trip_and_grid():
    model = build_model("stargan", image_size=32, filters=8, num_residual_blocks=1,
                        discriminator_filters=8, discriminator_layers=5, seed=1, num_domains=3,
                        domain_names=["Black_Hair", "Blond_Hair", "Male"])
    assert isinstance(model, StarGAN) and model.get_config()["discriminator_layers"] == 5
    clone = StarGAN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    images = _tiny_images()
    titles = [t for t, _ in model.grid_columns((images, labels))]
    assert titles == ["input", "Black_Hair", "Blond_Hair", "Male"]
    grid = dict(model.grid_labels(labels))
    np.testing.assert_array_equal(grid["Male"].numpy(), [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(grid["Blond_Hair"].numpy(), [[0, 1, 1], [0, 1, 0]])
    # The paper's figure: one row per input image, the input then one column per target.
    rows = model.sample_rows((images, labels))
    assert len(rows) == 2 and rows[1][0] == "image 1: input, Black_Hair, Blond_Hair, Male"
    picture = image_grid(rows)
    for i in range(2):
        expected = [images[i]] + [model.generator([images, grid[t]]).numpy()[i] for t in titles[1:]]
        tile = np.concatenate(expected, axis=1)
        np.testing.assert_array_equal(picture[32 * i:32 * (i + 1)],
                                      np.clip((tile + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8))
    with pytest.raises(ValueError, match="domain_names has 2 names for num_domains=3"):
        _tiny_stargan(num_domains=3, domain_names=["a", "b"])
    with pytest.raises(ValueError, match="domain_names_2 has 1 names for num_domains_2=2"):
        _tiny_stargan(num_domains=3, num_domains_2=2, domain_names_2=["a"])


def test_target_label_for_translation():
    celeba = _tiny_stargan(num_domains=4, domain_names=["Black_Hair", "Blond_Hair", "Male", "Young"])
    np.testing.assert_array_equal(celeba.target_label(["Blond_Hair", "Young"]), [0, 1, 0, 1])
    rafd = _tiny_stargan(num_domains=3, multi_label=False, domain_names=["angry", "happy", "sad"])
    np.testing.assert_array_equal(rafd.target_label(["sad"]), [0, 0, 1])
    both = _tiny_stargan(num_domains=2, domain_names=["Male", "Young"], num_domains_2=3,
                         domain_names_2=["angry", "happy", "sad"])
    assert both.label_names()[-2:] == ["mask: dataset 1", "mask: dataset 2"]
    np.testing.assert_array_equal(both.target_label(["Young"]), [0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(both.target_label(["happy"]), [0, 0, 0, 1, 0, 0, 1])
    for model, names, message in [
        (celeba, ["Blond_Hair", "Blonde"], "unknown domain\\(s\\) Blonde; this model knows Black_Hair, "
                                           "Blond_Hair, Male, Young"),
        (celeba, ["Black_Hair", "Blond_Hair"], "hair colours are exclusive"),
        (rafd, ["happy", "sad"], "one domain at a time"),
        (both, ["Young", "sad"], "mix the domains of two datasets"),
        (celeba, [], "at least one"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            model.target_label(names)
        assert "\n" not in str(info.value)


# --- the common training path ----------------------------------------------------------

TINY = dict(filters=8, num_residual_blocks=1, discriminator_filters=8, discriminator_layers=5)


def test_training_data_chooses_the_layout(tmp_path, capsys):
    _write_images(tmp_path / "rafd" / "sad", ["a.png"], size=(8, 8))
    _write_images(tmp_path / "rafd" / "happy", ["b.png"], size=(8, 8))
    os.makedirs(tmp_path / "celeba" / "images")
    _write_attr_file(tmp_path / "celeba" / "list_attr_celeba.txt", ROWS)
    os.makedirs(tmp_path / "faces")
    attr_file = _write_attr_file(tmp_path / "attrs.txt", ROWS)

    spec, fn, over = training_data("stargan", str(tmp_path / "rafd"))
    assert fn is data_labels.labelled_dataset
    assert spec == {"datasets": [{"layout": "folders", "root": str(tmp_path / "rafd"),
                                  "domains": ["happy", "sad"], "crop_size": None}]}
    assert over == {"num_domains": 2, "domain_names": ["happy", "sad"], "multi_label": False}
    # DIR/list_attr_celeba.txt with images in DIR/images (the reference's data/celeba).
    spec, _, over = training_data("stargan", str(tmp_path / "celeba"), attrs=["Male", "Young"])
    assert spec["datasets"][0] == {"layout": "celeba", "images": str(tmp_path / "celeba" / "images"),
                                   "attr_file": str(tmp_path / "celeba" / "list_attr_celeba.txt"),
                                   "attrs": ["Male", "Young"], "crop_size": 178}
    assert over == {"num_domains": 2, "domain_names": ["Male", "Young"], "multi_label": True}
    # --attr-file elsewhere: DIR is the image folder; default attributes.
    spec, _, over = training_data("stargan", str(tmp_path / "faces"), attr_file=attr_file)
    assert spec["datasets"][0]["images"] == str(tmp_path / "faces")
    assert over["domain_names"] == list(data_labels.CELEBA_ATTRS)
    # Two folders: multi-dataset training with the second dataset's overrides.
    spec, _, over = training_data("stargan", [str(tmp_path / "celeba"), str(tmp_path / "rafd")],
                                  attrs=["Male"])
    assert [d["layout"] for d in spec["datasets"]] == ["celeba", "folders"]
    assert over == {"num_domains": 1, "domain_names": ["Male"], "multi_label": True,
                    "num_domains_2": 2, "domain_names_2": ["happy", "sad"], "multi_label_2": False}
    assert training_data("cyclegan", "DIR") == ("DIR", None, {})
    for args, message in [
        (("stargan", str(tmp_path / "rafd"), None, ["Male"]), "has no list_attr_celeba.txt"),
        (("stargan", str(tmp_path / "none")), "does not exist"),
        (("stargan", [str(tmp_path / "rafd")] * 3), "got 3"),
        (("cyclegan", "DIR", None, ["Male"]), "for label-conditioned models"),
    ]:
        with pytest.raises(ValueError, match=message) as info:
            training_data(*args)
        assert "\n" not in str(info.value)
    from tf_translate.cli import main
    assert main(["train", "--model", "stargan", "--data", str(tmp_path / "rafd"), "--run-dir",
                 str(tmp_path / "run"), "--attrs", "Male,Young"]) == 2
    assert "--attrs selects CelebA attributes" in capsys.readouterr().err


def test_labelled_dataset_reads_the_celeba_train_split_and_skips_bad_files(tmp_path):
    """2,003 listed images: the reference keeps 1,999 for testing and trains on 4. Each
    image is one colour that encodes its line, so every label can be checked."""
    n = 2003
    values = _rng(11).choice([-1, 1], size=(n, len(ATTR_NAMES)))
    rows = [(f"{i:06d}.png", list(v)) for i, v in enumerate(values)]
    os.makedirs(tmp_path / "images")
    for i in range(n):
        Image.new("RGB", (2, 2), (i % 256, i // 256, 7)).save(tmp_path / "images" / f"{i:06d}.png")
    train_index = data_labels.celeba_split(n, "train")
    (tmp_path / "images" / f"{train_index[0]:06d}.png").write_bytes(b"not an image")
    _write_attr_file(tmp_path / "list_attr_celeba.txt", rows)
    spec, _, _ = training_data("stargan", str(tmp_path), attrs=["Young", "Bald"])
    spec["datasets"][0]["crop_size"] = None  # whole 2x2 images
    dataset, steps, report = data_labels.labelled_dataset(spec, batch_size=3, image_size=4, seed=0)
    assert steps == 1 and list(report.skipped) == [str(tmp_path / "images" / f"{train_index[0]:06d}.png")]
    seen = set()
    for images, labels in dataset.take(4):
        for image, label in zip(images.numpy(), labels.numpy()):
            pixel = np.round((image[0, 0] + 1) * 127.5).astype(int)
            line = pixel[0] + 256 * pixel[1]
            assert pixel[2] == 7 and np.all(image == image[0, 0])
            np.testing.assert_array_equal(label, values[line, [4, 0]] == 1)  # Young, Bald
            seen.add(int(line))
    assert seen == set(train_index[1:])


def test_train_resume_and_translate_through_the_common_path(tmp_path, capsys):
    from tf_translate.cli import main

    for k, name in enumerate(["cat", "dog", "fox"]):
        _write_images(tmp_path / "data" / name, [f"{i}.png" for i in range(3)], size=(36, 40),
                      seed=10 * k)
    data, dataset_fn, overrides = training_data("stargan", str(tmp_path / "data"))
    run_dir = str(tmp_path / "run")
    args = dict(batch_size=2, image_size=32, seed=0, dataset_fn=dataset_fn, verbose=0,
                sample_every=2, checkpoint_every=2, xla=True)
    model = train("stargan", data, run_dir, steps=2, model_overrides={**TINY, **overrides}, **args)
    run = read_run(run_dir)
    assert run["config"]["domain_names"] == ["cat", "dog", "fox"] and run["flags"]["data"] == data
    assert run["flags"]["steps_per_epoch"] == 4  # 9 images // 2
    grid = np.asarray(Image.open(os.path.join(run_dir, "samples", "step_0000002.png")))
    assert grid.shape == (2 * (TITLE_HEIGHT + 32), 4 * 32, 3)  # 2 titled inputs x (input + 3 domains)
    # Resume: the run's own data spec and domains, not the (absent) new overrides.
    resumed = train("stargan", data, run_dir, steps=3, resume=True, **args)
    assert global_step(resumed) == 3 and resumed.domain_names == ["cat", "dog", "fox"]
    restored, _ = load_run(run_dir)
    x = _tiny_images(1)
    c = restored.target_label(["dog"])[None]
    np.testing.assert_allclose(restored.generator([x, c]).numpy(), resumed.generator([x, c]).numpy(),
                               atol=1e-6)
    # The critic moves every step (the generator only every fifth): step 3 happened.
    np.testing.assert_allclose(restored.discriminator(x)[1].numpy(),
                               resumed.discriminator(x)[1].numpy(), atol=1e-6)
    assert not np.allclose(model.discriminator(x)[1].numpy(), restored.discriminator(x)[1].numpy())

    out = str(tmp_path / "out")
    source = str(tmp_path / "data" / "cat" / "0.png")
    assert main(["translate", "--run-dir", run_dir, "--input", source, "--output", out,
                 "--domain", "fox"]) == 0
    image = np.asarray(Image.open(source), np.float32)[None] / 127.5 - 1.0  # 40 x 36, no padding
    expected = restored.generator([image, restored.target_label(["fox"])[None]]).numpy()[0]
    got = np.asarray(Image.open(os.path.join(out, "0.png")), np.float32) / 127.5 - 1.0
    assert got.shape == (40, 36, 3) and np.abs(got - expected).max() <= 1.0 / 127.5
    for extra, message in [([], "name the target with --attrs or --domain; this model knows cat, dog, fox"),
                           (["--attrs", "cat,dog"], "one domain at a time")]:
        assert main(["translate", "--run-dir", run_dir, "--input", source, "--output", out, "--overwrite"]
                    + extra) == 2
        assert message in capsys.readouterr().err
    assert main(["export", "--run-dir", run_dir, "--output", str(tmp_path / "served")]) == 0
    served = tf.saved_model.load(str(tmp_path / "served" / "1"))
    assert [n.decode() for n in served.signatures["label_names"]()["label_names"].numpy()] == \
        ["cat", "dog", "fox"]
    pixels = np.asarray(Image.open(source))[None]
    exported = served.signatures["serving_default"](
        images=tf.constant(pixels), labels=tf.constant(restored.target_label(["fox"])[None]))
    np.testing.assert_array_equal(exported["images"].numpy()[0], np.asarray(Image.open(os.path.join(out, "0.png"))))


# --- mixed precision -------------------------------------------------------------------

def test_mixed_float16_gradient_penalty_stays_float32_and_a_step_is_finite(tmp_path):
    from tf_translate.export import export_saved_model

    reference = StarGANDiscriminator(image_size=32, filters=8, num_domains=3, num_layers=5)
    reference.build((None, 32, 32, 3))
    real, fake = _tiny_images(4, seed=20), _tiny_images(4, seed=21)
    alpha = _rng(22).uniform(size=(4, 1, 1, 1)).astype("float32")
    expected = float(gradient_penalty(lambda x: reference(x)[0], real, fake, alpha))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        critic = StarGANDiscriminator(image_size=32, filters=8, num_domains=3, num_layers=5)
        critic.build((None, 32, 32, 3))
        critic.set_weights(reference.get_weights())
        assert critic.stack[0].layers[-1].compute_dtype == "float16"
        gp = gradient_penalty(lambda x: critic(x)[0], real, fake, alpha)
        model = _tiny_stargan(num_domains=3)
        model.compile(jit_compile=True)
        x = _tiny_images(4)
        c = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
        moved = _fit_steps(model, tf.data.Dataset.from_tensors((x, c)).repeat(), 5)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert gp.dtype == tf.float32 and expected > 0
    np.testing.assert_allclose(float(gp), expected, rtol=2e-2)
    assert [g for g, _, _ in moved] == [False, False, False, False, True]
    logs = moved[-1][2]
    assert all(np.isfinite(v) for v in logs.values()) and logs["gp"] > 0 and logs["rec_loss"] > 0
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)
    assert model.generator.stack[0].layers[-1].compute_dtype == "float16"
    # The mixed-precision generator exports as float32 with its label input.
    path = export_saved_model(model.generator, str(tmp_path / "model"))
    out = tf.saved_model.load(path).signatures["translate_float"](
        images=tf.constant(x), labels=tf.constant(c))["images"]
    assert out.dtype == tf.float32
    assert np.abs(out.numpy() - model.generator([x, c]).numpy().astype(np.float32)).max() < 2e-2
