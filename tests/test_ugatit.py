"""U-GAT-IT training model: update order and isolation, losses and weight decay by hand,
ρ clipping, schedule, grids, saving, export and resume (tiny sizes)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from tf_translate import build_model
from tf_translate.export import GeneratorModule, export_saved_model
from tf_translate.layers import LIN, AdaLIN
from tf_translate.models.ugatit import UGATIT

TINY_UGATIT = dict(image_size=32, filters=8, num_residual_blocks=1, discriminator_filters=8,
                   global_layers=5, local_layers=4)
BETA_1, BETA_2, EPSILON, DECAY = 0.5, 0.999, 1e-8, 1e-4


def trainable(networks):
    return [v.numpy().copy() for n in networks for v in n.trainable_variables]


def same(before, networks):
    return all(np.array_equal(b, a) for b, a in zip(before, trainable(networks)))


def reset(model, weights, g_lr, d_lr):
    """Back to the snapshot `weights` with fresh optimizers at the given rates (the
    compiled step reads the learning-rate variables, so it is not retraced)."""
    model.set_weights(weights)
    for name, lr in (("g_optimizer", g_lr), ("d_optimizer", d_lr)):
        optimizer = getattr(model, name)
        for variable in optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        optimizer.learning_rate = lr


def adam_first_step(w, grad, lr):
    """One Adam step from zero moments on grad' = grad + 1e-4 w (torch's coupled L2),
    as torch.optim.Adam computes it: lr * m_hat / (sqrt(v_hat) + eps)."""
    grad = grad + DECAY * w
    m, v = (1 - BETA_1) * grad, (1 - BETA_2) * grad ** 2
    m_hat, v_hat = m / (1 - BETA_1), v / (1 - BETA_2)
    return w - lr * m_hat / (np.sqrt(v_hat) + EPSILON)


def assert_first_adam_step(updated, w, grad, lr, gradient_noise=1e-5):
    """`updated` is one Adam step from `w` on a gradient within float32 noise of `grad`.

    The compiled step sums the gradient in another order than the eager tape, so each
    element may differ by a few float32 ulps of the tensor's largest gradient. Where
    grad + 1e-4 w nearly cancels, that noise moves the first step by up to lr (the step is
    lr * g / (|g| + eps)); the step is monotone in g, so the bound is the step at g -/+ noise.
    """
    noise = gradient_noise * np.max(np.abs(grad + DECAY * w))
    low, high = adam_first_step(w, grad + noise, lr), adam_first_step(w, grad - noise, lr)
    slack = 1e-6 * lr + 1e-7 * np.abs(w)
    outside = (updated < low - slack) | (updated > high + slack)
    assert not outside.any(), (
        f"{outside.sum()} of {outside.size} elements off the first Adam step, e.g. "
        f"{updated[outside][:3]} not in [{low[outside][:3]}, {high[outside][:3]}]")
    # The noise band decides only a few near-cancelling elements: the rest match tightly.
    tight = np.isclose(updated, adam_first_step(w, grad, lr), atol=1e-6 * lr, rtol=1e-6)
    assert tight.mean() > 0.99


def mse(x, target):
    return float(np.mean((np.asarray(x, np.float64) - target) ** 2))


def bce(logits, target):
    x = np.asarray(logits, np.float64)
    return float(np.mean(np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))))


def l1(x, y):
    return float(np.mean(np.abs(np.asarray(x, np.float64) - y)))


@pytest.fixture(scope="module")
def light():
    """One jit-compiled light model shared by the step tests (one XLA compile)."""
    model = build_model("ugatit_light", **TINY_UGATIT)
    model.compile(jit_compile=True)
    assert model.jit_compile
    a, b = random_images(2, 32, 0), random_images(2, 32, 1)
    model.train_on_batch(a, b)  # compiles
    return model, model.get_weights(), a, b


def discriminators(model):
    return model.discriminator_networks()


def generators(model):
    return model.generator_networks()


def test_d_step_then_g_step_against_the_updated_discriminators(light):
    """With the generators' rate at 0 only the discriminators move; the logged losses
    equal the reference formulas by hand: D's on the pre-step networks (each D called
    real then fake in training mode, one power iteration per call), G's adversarial
    term on the *updated* discriminators; and the D weights equal one Adam step on the
    hand gradient plus 1e-4 w (PyTorch's weight decay)."""
    model, weights, a, b = light
    reset(model, weights, g_lr=0.0, d_lr=1e-4)
    g_before = trainable(generators(model))
    d_before = trainable(discriminators(model))

    fake_b, cam_ab_a, _ = [t.numpy() for t in model.generator_ab(a, training=True)]
    fake_a, cam_ba_b, _ = [t.numpy() for t in model.generator_ba(b, training=True)]
    identity_a, cam_ba_a, _ = [t.numpy() for t in model.generator_ba(a)]
    identity_b, cam_ab_b, _ = [t.numpy() for t in model.generator_ab(b)]
    cycle = l1(model.generator_ba(fake_b)[0], a) + l1(model.generator_ab(fake_a)[0], b)
    identity = l1(identity_a, a) + l1(identity_b, b)
    cam = bce(cam_ba_b, 1) + bce(cam_ba_a, 0) + bce(cam_ab_a, 1) + bce(cam_ab_b, 0)

    variables = [v for d in discriminators(model) for v in d.trainable_variables]
    with tf.GradientTape() as tape:
        terms = []
        for ds, real, fake in (((model.discriminator_global_a, model.discriminator_local_a), a, fake_a),
                               ((model.discriminator_global_b, model.discriminator_local_b), b, fake_b)):
            for d in ds:  # each D: real first, then fake, as the reference
                terms.append((d(real, training=True), 1.0))
            for d in ds:
                terms.append((d(fake, training=True), 0.0))
        d_loss_tf = tf.add_n([tf.reduce_mean(tf.square(o[0] - t)) + tf.reduce_mean(tf.square(o[1] - t))
                              for o, t in terms])
    d_grads = [g.numpy() for g in tape.gradient(d_loss_tf, variables)]
    d_loss = sum(mse(o[0], t) + mse(o[1], t) for o, t in terms)
    model.set_weights(weights)  # the hand pass advanced the spectral-norm vectors

    logs = model.train_on_batch(a, b, return_dict=True)

    assert same(g_before, generators(model))
    assert not same(d_before, discriminators(model))
    np.testing.assert_allclose(logs["d_loss"], d_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["cycle_loss"], cycle, rtol=1e-5)
    np.testing.assert_allclose(logs["identity_loss"], identity, rtol=1e-5)
    np.testing.assert_allclose(logs["cam_loss"], cam, rtol=1e-5)
    # After the step each D's stored u, v are those its G-step call used, so inference
    # mode reproduces that call with the updated weights.
    adversarial = sum(mse(out[0], 1) + mse(out[1], 1) for out in (
        model.discriminator_global_a(fake_a), model.discriminator_local_a(fake_a),
        model.discriminator_global_b(fake_b), model.discriminator_local_b(fake_b)))
    np.testing.assert_allclose(logs["adversarial_loss"], adversarial, rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], adversarial + 10 * cycle + 10 * identity + 1000 * cam,
                               rtol=1e-5)
    for w0, g, w1 in zip(d_before, d_grads, trainable(discriminators(model))):
        assert_first_adam_step(w1, w0, g, 1e-4)


def test_the_g_adversarial_term_is_not_the_pre_update_discriminators(light):
    """Guards the test above: the pre-update discriminators give another value."""
    model, weights, a, b = light
    reset(model, weights, g_lr=0.0, d_lr=1e-4)
    fake_a = model.generator_ba(b)[0]
    before = mse(model.discriminator_global_a(fake_a)[0], 1)
    model.train_on_batch(a, b)
    after = mse(model.discriminator_global_a(fake_a)[0], 1)
    assert abs(after - before) > 1e-6


def test_d_rate_zero_moves_only_the_generators(light):
    model, weights, a, b = light
    reset(model, weights, g_lr=1e-4, d_lr=0.0)
    g_before, d_before = trainable(generators(model)), trainable(discriminators(model))
    model.train_on_batch(a, b)
    assert same(d_before, discriminators(model))
    assert not same(g_before[:len(model.generator_ab.trainable_variables)], [model.generator_ab])
    assert not same(g_before[len(model.generator_ab.trainable_variables):], [model.generator_ba])


def test_rho_stays_in_unit_interval_after_steps_that_push_it_out(light):
    """A huge rate moves each ρ by about ±lr; from 0 (LIN) and 1 the constraint must
    clamp the ones pushed outside."""
    model, weights, a, b = light
    reset(model, weights, g_lr=0.5, d_lr=0.0)
    norms = [layer for g in generators(model) for layer in g._flatten_layers()
             if isinstance(layer, (AdaLIN, LIN))]
    assert norms
    for i, layer in enumerate(norms):
        layer.rho.assign(tf.fill(layer.rho.shape, float(i % 2)))
    model.train_on_batch(a, b)
    rho = np.concatenate([layer.rho.numpy().ravel() for layer in norms])
    assert rho.min() >= 0.0 and rho.max() <= 1.0
    assert ((rho > 0) & (rho < 1)).any()  # they moved
    assert ((rho == 0) | (rho == 1)).any()  # and some were clamped


def test_weight_decay_is_added_to_the_gradient_not_decoupled(light):
    model, weights, _, _ = light
    reset(model, weights, g_lr=1e-4, d_lr=1e-3)
    variables = model.optimizer_variables()["d_optimizer"]
    rng = np.random.default_rng(0)
    # Gradients as small as 1e-4 w, so that the decay changes the Adam direction (a
    # decoupled decay would move each weight by about lr, not lr * 1e-4 * w).
    grads = [rng.normal(0, 1e-6, v.shape).astype(np.float32) for v in variables]
    before = [v.numpy().copy() for v in variables]
    model.apply_gradients("d_optimizer", model.with_weight_decay("d_optimizer", [tf.constant(g) for g in grads]))
    for w0, g, v in zip(before, grads, variables):
        np.testing.assert_allclose(v.numpy(), adam_first_step(w0, g, 1e-3), rtol=1e-5, atol=1e-8)


def test_full_model_losses_of_a_jit_step():
    model = build_model("ugatit", **TINY_UGATIT)
    assert model.light is False and model.generator_ab.fixed_input_size == 32
    model.compile(jit_compile=True)
    a, b = random_images(1, 32, 2), random_images(1, 32, 3)
    fake_b, cam_ab_a, _ = model.generator_ab(a)
    fake_a, cam_ba_b, _ = model.generator_ba(b)
    cycle = l1(model.generator_ba(fake_b)[0], a) + l1(model.generator_ab(fake_a)[0], b)
    cam = (bce(cam_ba_b, 1) + bce(model.generator_ba(a)[1], 0) + bce(cam_ab_a, 1)
           + bce(model.generator_ab(b)[1], 0))
    g_before = trainable(generators(model))
    logs = model.train_on_batch(a, b, return_dict=True)
    np.testing.assert_allclose(logs["cycle_loss"], cycle, rtol=1e-5)
    np.testing.assert_allclose(logs["cam_loss"], cam, rtol=1e-5)
    assert not same(g_before, generators(model))


def test_sample_rows_show_heatmaps_like_the_reference_grid(light):
    model, weights, a, b = light
    model.set_weights(weights)
    rows = model.sample_rows((a, b))
    titles = [t for t, _ in rows]
    assert titles[:7] == ["real A", "A->A heatmap", "A->A", "A->B heatmap", "A->B",
                          "A->B->A heatmap", "A->B->A"]
    assert len(rows) == 14 and titles[7] == "real B"
    heatmap = model.generator_ab(a)[2].numpy()  # [2, 8, 8, 1]
    image = dict(rows)["A->B heatmap"].numpy()
    assert image.shape == (2, 32, 32, 1)
    resized = tf.image.resize(heatmap, (32, 32)).numpy()
    low = resized.min(axis=(1, 2, 3), keepdims=True)
    high = resized.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(image, 2 * (resized - low) / (high - low) - 1, atol=1e-5)
    np.testing.assert_allclose(dict(rows)["A->B"], model.generator_ab(a)[0], atol=1e-6)


@pytest.mark.parametrize("light_model", [True, False])
def test_generator_keras_round_trip(tmp_path, light_model):
    model = UGATIT(light=light_model, **TINY_UGATIT)
    path = str(tmp_path / "g.keras")
    model.generator_ab.save(path)
    loaded = keras.saving.load_model(path)
    x = random_images(1, 32, 4)
    for got, expected in zip(loaded(x), model.generator_ab(x)):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert loaded.get_config() == model.generator_ab.get_config()


def test_config_round_trip_and_registry():
    model = build_model("ugatit_light", **TINY_UGATIT)
    config = model.get_config()
    assert UGATIT.from_config(config).get_config() == config
    assert config["cycle_weight"] == 10 and config["identity_weight"] == 10
    assert config["cam_weight"] == 1000 and config["weight_decay"] == 1e-4
    assert build_model("ugatit", **TINY_UGATIT).light is False
    with pytest.raises(ValueError, match="too small"):
        build_model("ugatit", image_size=64)


def test_light_saved_model_matches_keras_at_any_size(tmp_path):
    generator = UGATIT(light=True, **TINY_UGATIT).generator_ab
    path = export_saved_model(generator, str(tmp_path / "light"))
    loaded = tf.saved_model.load(path)
    for size in (32, 44):
        x = random_images(1, size, 5)
        got = loaded.signatures["translate_float"](images=tf.constant(x))["images"].numpy()
        np.testing.assert_allclose(got, generator(x)[0].numpy(), atol=2e-5)
    pixels = loaded.signatures["serving_default"](images=tf.zeros([1, 36, 40, 3], tf.uint8))["images"]
    assert pixels.dtype == tf.uint8 and pixels.shape == (1, 36, 40, 3)


def test_full_generator_exports_at_its_training_size(tmp_path):
    generator = UGATIT(light=False, **TINY_UGATIT).generator_ab
    assert GeneratorModule(generator).fixed_size == 32  # taken from the generator
    path = export_saved_model(generator, str(tmp_path / "full"))
    translate = tf.saved_model.load(path).signatures["translate_float"]
    x = random_images(1, 32, 6)
    np.testing.assert_allclose(translate(images=tf.constant(x))["images"], generator(x)[0], atol=2e-5)
    y = random_images(1, 48, 7)
    expected = tf.image.resize(generator(tf.image.resize(y, (32, 32)))[0], (48, 48))
    np.testing.assert_allclose(translate(images=tf.constant(y))["images"], expected, atol=2e-5)


def test_resume_continues_the_run(tmp_path):
    from tf_translate.data import write_demo_dataset
    from tf_translate.runs import load_run
    from tf_translate.training import global_step, train

    data = write_demo_dataset(str(tmp_path / "demo"), size=32, train_count=4, test_count=1)
    overrides = {k: v for k, v in TINY_UGATIT.items() if k != "image_size"}
    args = dict(batch_size=1, image_size=32, load_size=36, seed=0, model_overrides=overrides,
                checkpoint_every=2, sample_every=2, verbose=0, eager=True)
    run_dir = str(tmp_path / "run")
    trained = train("ugatit_light", data, run_dir, steps=2, **args)
    restored, run = load_run(run_dir)
    assert run["model"] == "ugatit_light" and global_step(restored) == 2
    for got, expected in zip(restored.weights, trained.weights):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    for name in ("g_optimizer", "d_optimizer"):
        for got, expected in zip(getattr(restored, name).variables, getattr(trained, name).variables):
            np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert any(f.endswith(".png") for f in os.listdir(os.path.join(run_dir, "samples")))
    resumed = train("ugatit_light", data, run_dir, steps=4, resume=True, **args)
    assert global_step(resumed) == 4
    # 4 iterations: the 4th uses lr 0 (reference decay), and the schedule continued.
    assert float(resumed.g_optimizer.learning_rate) == 0.0
