"""SpectralNorm against a NumPy version of `torch.nn.utils.spectral_norm`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_translate.layers import SpectralNorm


def normalize(v):
    return v / max(np.linalg.norm(v), 1e-12)


def np_power_iteration(weight_mat, u, steps=1):
    """torch's update on W = weight.flatten(1) ([out, rest]); returns (u, v, sigma)."""
    for _ in range(steps):
        v = normalize(weight_mat.T @ u)
        u = normalize(weight_mat @ v)
    return u, v, u @ weight_mat @ v


def torch_matrix(kernel):
    """A Keras kernel [..., out] as torch's [out, rest] matrix (rest in Keras order)."""
    return kernel.reshape(-1, kernel.shape[-1]).T.astype(np.float64)


def np_conv(x, kernel, bias):
    """'valid' conv of NHWC x with a float64 kernel (the conv op itself is not under test)."""
    return keras.ops.convert_to_numpy(keras.ops.conv(x, kernel.astype("float32"))) + bias


def built_conv_sn(seed=0):
    keras.utils.set_random_seed(seed)
    layer = SpectralNorm(keras.layers.Conv2D(5, 3, padding="valid"))
    layer.build((2, 6, 6, 4))
    layer.layer.bias.assign(np.random.default_rng(seed).normal(size=5).astype("float32"))
    return layer


def test_one_training_call_is_one_torch_power_iteration():
    layer = built_conv_sn()
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 4)).astype("float32")
    kernel = layer.layer.kernel.numpy()
    u0 = layer.u.numpy().astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-6)  # torch starts from a unit u
    u, v, sigma = np_power_iteration(torch_matrix(kernel), u0)

    got = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(layer.u.numpy(), u, atol=1e-6)
    np.testing.assert_allclose(layer.v.numpy(), v, atol=1e-6)
    want = np_conv(x, kernel / sigma, layer.layer.bias.numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)
    # The raw kernel stays the trainable weight (Keras' SpectralNormalization would
    # have overwritten it with W / sigma).
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), kernel)
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == ["kernel", "bias"]


def test_sigma_converges_to_the_largest_singular_value():
    layer = built_conv_sn(2)
    x = np.zeros((1, 6, 6, 4), "float32")
    for _ in range(60):
        layer(x, training=True)
    kernel = layer.layer.kernel.numpy()
    u, v = layer.u.numpy(), layer.v.numpy()
    sigma = u @ torch_matrix(kernel) @ v
    np.testing.assert_allclose(sigma, np.linalg.svd(torch_matrix(kernel), compute_uv=False)[0], rtol=1e-4)


def test_u_and_v_are_updated_only_in_training():
    layer = built_conv_sn(3)
    x = np.ones((1, 6, 6, 4), "float32")
    u0, v0 = layer.u.numpy(), layer.v.numpy()
    out0 = layer(x)
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    np.testing.assert_array_equal(layer.v.numpy(), v0)
    # Inference uses the stored u, v as they are (torch eval): sigma = u0 W v0.
    sigma0 = u0 @ torch_matrix(layer.layer.kernel.numpy()) @ v0
    want = np_conv(x, layer.layer.kernel.numpy() / sigma0, layer.layer.bias.numpy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out0), want, rtol=1e-4, atol=1e-5)
    layer(x, training=True)
    assert np.abs(layer.u.numpy() - u0).max() > 1e-3


def test_gradient_flows_through_sigma():
    keras.utils.set_random_seed(4)
    layer = SpectralNorm(keras.layers.Dense(3))
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 4)).astype("float32")
    r = rng.normal(size=(5, 3)).astype("float32")
    layer(x, training=True)  # one power iteration; then u, v are constants

    kernel = tf.Variable(layer.layer.kernel)  # same values, to differentiate through
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * r)
    grad = tape.gradient(loss, layer.layer.kernel).numpy()

    # Analytic: L = <G, M> / sigma with sigma = u^T M^T v in Keras layout M [in, out],
    # so dL/dM = G / sigma - <G, M> / sigma^2 * outer(v, u), G = x^T r.
    m = kernel.numpy().astype(np.float64)
    u, v = layer.u.numpy().astype(np.float64), layer.v.numpy().astype(np.float64)
    sigma = u @ m.T @ v
    g = x.T.astype(np.float64) @ r
    want = g / sigma - np.sum(g * m) / sigma**2 * np.outer(v, u)
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-5)
    # Without the sigma term (Keras' SpectralNormalization) the gradient is G / sigma.
    assert np.abs(grad - g / sigma).max() > 1e-2

    # A central finite difference on a few entries agrees too.
    def loss_at(m_new):
        return np.sum((x @ (m_new / (u @ m_new.T @ v))) * r)

    h = 1e-4
    for i, j in [(0, 0), (2, 1), (3, 2)]:
        step = np.zeros_like(m)
        step[i, j] = h
        fd = (loss_at(m + step) - loss_at(m - step)) / (2 * h)
        np.testing.assert_allclose(grad[i, j], fd, rtol=1e-3, atol=1e-4)


def test_power_iteration_runs_under_xla():
    layer = built_conv_sn(5)
    x = np.ones((1, 6, 6, 4), "float32")
    u, v, _ = np_power_iteration(torch_matrix(layer.layer.kernel.numpy()), layer.u.numpy().astype(np.float64))
    tf.function(lambda t: layer(t, training=True), jit_compile=True)(x)
    np.testing.assert_allclose(layer.u.numpy(), u, atol=1e-6)
    np.testing.assert_allclose(layer.v.numpy(), v, atol=1e-6)


def test_config_round_trip_and_bad_layer():
    layer = SpectralNorm(keras.layers.Conv2D(3, 4, strides=2, use_bias=False), power_iterations=2)
    clone = SpectralNorm.from_config(layer.get_config())
    assert clone.power_iterations == 2
    assert clone.layer.get_config() == layer.layer.get_config()
    with pytest.raises(ValueError, match="SpectralNorm wraps Conv2D or Dense"):
        SpectralNorm(keras.layers.Conv1D(3, 3))


@pytest.mark.parametrize("wrapped", ["conv", "dense"])
def test_consecutive_calls_in_one_batch_equal_separate_calls(wrapped):
    # U-GAT-IT's D step judges real and fake images in one call: each half must get the
    # sigma of its own call (one power iteration apart), gradients and final u, v included.
    keras.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    if wrapped == "conv":
        layer, shape = SpectralNorm(keras.layers.Conv2D(5, 3)), (2, 6, 6, 4)
    else:
        layer, shape = SpectralNorm(keras.layers.Dense(3)), (2, 4)
    layer.build(shape)
    first, second = (rng.normal(size=shape).astype("float32") for _ in range(2))
    weights = rng.normal(size=(2,) + tuple(layer.compute_output_shape(shape)))
    u0, v0 = layer.u.numpy(), layer.v.numpy()

    def loss(outputs):
        return tf.reduce_sum(tf.cast(outputs[0], tf.float64) * weights[0]) + tf.reduce_sum(
            tf.cast(outputs[1], tf.float64) * weights[1])

    with tf.GradientTape() as tape:
        separate = [layer(first, training=True), layer(second, training=True)]
        separate_loss = loss(separate)
    separate_grad = tape.gradient(separate_loss, layer.layer.kernel).numpy()
    separate_u, separate_v = layer.u.numpy(), layer.v.numpy()

    layer.u.assign(u0)
    layer.v.assign(v0)
    with tf.GradientTape() as tape:
        batched = layer(np.concatenate([first, second]), training=True, consecutive_calls=2)
        batched_loss = loss([batched[:2], batched[2:]])
    batched_grad = tape.gradient(batched_loss, layer.layer.kernel).numpy()

    np.testing.assert_allclose(batched.numpy(), np.concatenate([s.numpy() for s in separate]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched_grad, separate_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.u.numpy(), separate_u, atol=1e-7)
    np.testing.assert_allclose(layer.v.numpy(), separate_v, atol=1e-7)
    # The two calls' sigmas differ: one sigma for the whole batch would not match.
    with pytest.raises(AssertionError):
        layer.u.assign(u0)
        layer.v.assign(v0)
        np.testing.assert_allclose(layer(np.concatenate([first, second]), training=True).numpy()[2:],
                                   separate[1].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not 2 equal consecutive calls"):
        layer(first[:1], training=True, consecutive_calls=2)
    with pytest.raises(ValueError, match="consecutive_calls must be >= 1"):
        layer(first, training=True, consecutive_calls=0)
