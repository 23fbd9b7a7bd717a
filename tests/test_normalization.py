"""LIN, AdaLIN and SoftAdaLIN against NumPy versions of the PyTorch references.

The NumPy code follows UGATIT-pytorch `adaILN`/`ILN`, NICE-GAN-pytorch `adaILN`/`ILN`
and photo2cartoon `SoftAdaLIN`: `torch.var` is unbiased (ddof=1), eps 1e-5.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_translate.layers import LIN, AdaLIN, SoftAdaLIN

EPS = 1e-5


def np_mix(x, w_in, w_ln, ddof=1):
    """w_in * IN(x) + w_ln * LN(x), NHWC, variance with `ddof`."""
    x = x.astype(np.float64)
    def norm(axes):
        return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, ddof=ddof, keepdims=True) + EPS)

    out_in, out_ln = norm((1, 2)), norm((1, 2, 3))
    return w_in * out_in + w_ln * out_ln


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def features(seed=0, shape=(2, 5, 7, 3)):
    rng = np.random.default_rng(seed)
    # Per-channel offsets and scales so IN and LN statistics differ.
    x = rng.normal(size=shape) * rng.uniform(0.5, 3.0, size=shape[-1]) + rng.normal(size=shape[-1])
    return x.astype("float32")


def test_adalin_matches_unbiased_numpy():
    x = features()
    rng = np.random.default_rng(1)
    gamma = rng.normal(size=(2, 3)).astype("float32")
    beta = rng.normal(size=(2, 3)).astype("float32")
    layer = AdaLIN()
    layer.build(x.shape)
    np.testing.assert_allclose(layer.rho.numpy(), 0.9)
    rho = np.array([0.2, 0.7, 1.0], "float32")
    layer.rho.assign(rho)
    got = keras.ops.convert_to_numpy(layer(x, gamma, beta))
    want = np_mix(x, rho, 1 - rho) * gamma[:, None, None, :] + beta[:, None, None, :]
    np.testing.assert_allclose(got, want, atol=2e-5)
    # 35 pixels per channel: the biased variance would be off by ~1.5%, far beyond atol.
    biased = np_mix(x, rho, 1 - rho, ddof=0) * gamma[:, None, None, :] + beta[:, None, None, :]
    assert np.abs(got - biased).max() > 1e-3


def test_lin_matches_unbiased_numpy():
    x = features(2)
    layer = LIN()
    layer.build(x.shape)
    np.testing.assert_allclose(layer.rho.numpy(), 0.0)
    rho = np.array([0.0, 0.4, 0.9], "float32")
    gamma = np.array([1.5, -0.5, 2.0], "float32")
    beta = np.array([0.1, 0.2, -0.3], "float32")
    layer.rho.assign(rho)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, np_mix(x, rho, 1 - rho) * gamma + beta, atol=2e-5)


@pytest.mark.parametrize("cls, start", [(AdaLIN, (3.2, 1.0)), (LIN, (1.0, 3.2))])
def test_softmax_rho_matches_numpy(cls, start):
    x = features(3)
    layer = cls(rho_mode="softmax")
    layer.build(x.shape)
    np.testing.assert_allclose(layer.rho.numpy(), np.tile([start], (3, 1)))
    w_in, w_ln = (keras.ops.convert_to_numpy(w) for w in layer.mix_weights())
    np.testing.assert_allclose(w_in, np_softmax(np.array(start))[0], rtol=1e-6)
    assert layer.rho.constraint is None  # NICE-GAN has no rho clipper
    rho = np.random.default_rng(4).normal(size=(3, 2)).astype("float32") * 2
    layer.rho.assign(rho)
    weights = np_softmax(rho.astype(np.float64))
    mixed = np_mix(x, weights[:, 0], weights[:, 1])
    if cls is AdaLIN:
        gamma = np.full((2, 3), 1.3, "float32")
        beta = np.full((2, 3), -0.2, "float32")
        got = layer(x, gamma, beta)
        want = mixed * 1.3 - 0.2
    else:
        got = layer(x)
        want = mixed
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, atol=2e-5)


def np_dense(layer, x, relu=False):
    y = x @ layer.kernel.numpy() + layer.bias.numpy()
    return np.maximum(y, 0) if relu else y


def test_soft_adalin_blends_content_and_style_like_numpy():
    x = features(5, shape=(2, 4, 4, 6))
    rng = np.random.default_rng(6)
    content = rng.normal(size=(2, 6)).astype("float32")
    style = rng.normal(size=(2, 6)).astype("float32")
    layer = SoftAdaLIN(6)
    layer.build(x.shape)
    np.testing.assert_allclose(layer.w_gamma.numpy(), 0.0)
    np.testing.assert_allclose(layer.w_beta.numpy(), 0.0)
    w_gamma = rng.uniform(size=6).astype("float32")
    w_beta = rng.uniform(size=6).astype("float32")
    rho = rng.uniform(size=6).astype("float32")
    layer.w_gamma.assign(w_gamma)
    layer.w_beta.assign(w_beta)
    layer.norm.rho.assign(rho)

    c_gamma = np_dense(layer.content_gamma[1], np_dense(layer.content_gamma[0], content, relu=True))
    c_beta = np_dense(layer.content_beta[1], np_dense(layer.content_beta[0], content, relu=True))
    s_gamma, s_beta = np_dense(layer.style_gamma, style), np_dense(layer.style_beta, style)
    gamma = (1 - w_gamma) * s_gamma + w_gamma * c_gamma
    beta = (1 - w_beta) * s_beta + w_beta * c_beta
    want = np_mix(x, rho, 1 - rho) * gamma[:, None, None, :] + beta[:, None, None, :]
    got = keras.ops.convert_to_numpy(layer(x, content, style))
    np.testing.assert_allclose(got, want, atol=5e-5)
    # The content path matters: with w = 0 the output differs.
    layer.w_gamma.assign(np.zeros(6, "float32"))
    assert np.abs(keras.ops.convert_to_numpy(layer(x, content, style)) - got).max() > 1e-3


def sgd_step(layer, loss_fn, learning_rate=100.0):
    """One SGD step on `layer`'s trainable weights; returns the gradients."""
    variables = layer.trainable_variables
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, variables)
    keras.optimizers.SGD(learning_rate).apply(grads, variables)
    return {v.path.split("/")[-1]: g.numpy() for v, g in zip(variables, grads)}


def test_rho_stays_in_unit_interval_after_optimizer_steps():
    x = features(7)
    gamma = np.ones((2, 3), "float32")
    beta = np.zeros((2, 3), "float32")

    # Maximising <out, IN - LN> pushes AdaLIN's rho (0.9) up.
    adalin = AdaLIN()
    adalin.build(x.shape)
    direction = np_mix(x, 1.0, -1.0).astype("float32")
    grads = sgd_step(adalin, lambda: -tf.reduce_sum(adalin(x, gamma, beta) * direction))
    assert (100.0 * -grads["rho"] > 0.1).all()  # unconstrained, rho would pass 1.0
    np.testing.assert_array_equal(adalin.rho.numpy(), 1.0)

    # Minimising it pushes LIN's rho (0.0) down.
    lin = LIN()
    lin.build(x.shape)
    grads = sgd_step(lin, lambda: tf.reduce_sum(lin(x) * direction))
    assert (100.0 * grads["rho"] > 0.1).all()
    np.testing.assert_array_equal(lin.rho.numpy(), 0.0)


def test_soft_adalin_weights_stay_in_unit_interval_after_optimizer_steps():
    x = features(8, shape=(2, 4, 4, 6))
    rng = np.random.default_rng(9)
    content = rng.normal(size=(2, 6)).astype("float32")
    style = rng.normal(size=(2, 6)).astype("float32")
    layer = SoftAdaLIN(6)
    layer.build(x.shape)
    layer.w_gamma.assign(np.full(6, 0.5, "float32"))
    layer.w_beta.assign(np.full(6, 0.5, "float32"))
    # A loss linear in w with a large coefficient moves some w far below 0 and others
    # far above 1.
    sign = np.array([1, -1, 1, -1, 1, -1], "float32")
    grads = sgd_step(layer, lambda: tf.reduce_sum(sign * 1e3 * (layer.w_gamma + layer.w_beta))
                     + 0.0 * tf.reduce_sum(layer(x, content, style)), learning_rate=1.0)
    np.testing.assert_allclose(grads["w_gamma"], sign * 1e3)
    np.testing.assert_array_equal(layer.w_gamma.numpy(), np.where(sign > 0, 0.0, 1.0))
    np.testing.assert_array_equal(layer.w_beta.numpy(), np.where(sign > 0, 0.0, 1.0))


def test_adalin_mixed_precision_close_to_float32():
    # std ~300: a float16 variance would overflow to inf.
    x = features(10) * 300.0
    gamma = np.ones((2, 3), "float32")
    beta = np.zeros((2, 3), "float32")
    want = keras.ops.convert_to_numpy(AdaLIN()(x, gamma, beta))
    layer = AdaLIN(dtype="mixed_float16")
    got = keras.ops.convert_to_numpy(layer(x.astype("float16"), gamma, beta))
    assert got.dtype == np.float16
    assert layer.rho.dtype == "float32"
    np.testing.assert_allclose(got.astype("float32"), want, atol=1e-2)


@pytest.mark.parametrize("layer", [AdaLIN(rho_mode="softmax", epsilon=1e-3), LIN(), SoftAdaLIN(4)])
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_bad_rho_mode_is_a_one_line_error():
    with pytest.raises(ValueError, match="rho_mode must be 'clip' or 'softmax'"):
        AdaLIN(rho_mode="sigmoid")


def numeric_gradient(f, value, step=1e-5):
    """Central-difference gradient of the scalar f at `value` (float64)."""
    value = value.astype(np.float64)
    grad = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        up, down = value.copy(), value.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (f(up) - f(down)) / (2 * step)
    return grad


@pytest.mark.parametrize("per_sample", [True, False], ids=["AdaLIN", "LIN"])
def test_hand_written_gradients_match_numpy_finite_differences(per_sample):
    # The layers' gradients are written by hand (`layer_instance_norm`); every input's
    # and weight's gradient of <out, w> is checked against the NumPy forward pass.
    x = features(11, shape=(2, 4, 5, 3))
    rng = np.random.default_rng(12)
    weight = rng.normal(size=x.shape)
    rho = np.array([0.2, 0.7, 0.95])
    gamma = rng.normal(size=(2, 3) if per_sample else (3,))
    beta = rng.normal(size=gamma.shape)
    affine = (lambda g: g[:, None, None, :]) if per_sample else (lambda g: g)

    def np_loss(x=x, rho=rho, gamma=gamma, beta=beta):
        return np.sum((np_mix(x, rho, 1 - rho) * affine(gamma) + affine(beta)) * weight)

    layer = AdaLIN() if per_sample else LIN()
    layer.build(x.shape)
    layer.rho.assign(rho.astype("float32"))
    inputs = [tf.constant(x)]
    if per_sample:
        inputs += [tf.constant(gamma, tf.float32), tf.constant(beta, tf.float32)]
    else:
        layer.gamma.assign(gamma.astype("float32"))
        layer.beta.assign(beta.astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(tf.cast(layer(*inputs), tf.float64) * weight)
    sources = {"x": inputs[0], "rho": layer.rho}
    sources.update({"gamma": inputs[1], "beta": inputs[2]} if per_sample
                   else {"gamma": layer.gamma, "beta": layer.beta})
    got = dict(zip(sources, tape.gradient(loss, list(sources.values()))))
    want = {"x": numeric_gradient(lambda v: np_loss(x=v), x),
            "rho": numeric_gradient(lambda v: np_loss(rho=v), rho),
            "gamma": numeric_gradient(lambda v: np_loss(gamma=v), gamma),
            "beta": numeric_gradient(lambda v: np_loss(beta=v), beta)}
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=1e-3, atol=1e-3, err_msg=name)


def test_adalin_with_unknown_height_and_width_equals_known():
    # Light generators are exported for any size: the element counts are then dynamic.
    x = features(13, shape=(2, 4, 6, 3))
    gamma = np.full((2, 3), 0.7, "float32")
    beta = np.full((2, 3), 0.1, "float32")
    layer = AdaLIN()
    layer.build(x.shape)
    spec = tf.TensorSpec((None, None, None, 3), tf.float32)
    dynamic = tf.function(lambda v: tf.gradients(tf.reduce_sum(layer(v, gamma, beta) ** 2), v)[0],
                          input_signature=[spec])
    static = tf.function(lambda v: tf.gradients(tf.reduce_sum(layer(v, gamma, beta) ** 2), v)[0])
    np.testing.assert_allclose(dynamic(x).numpy(), static(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x, gamma, beta).numpy(),
                               np_mix(x, 0.9, 0.1) * 0.7 + 0.1, atol=2e-5)
