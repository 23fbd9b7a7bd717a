import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tf_translate.layers import InstanceNormalization, ReflectionPadding2D


def test_reflection_padding_matches_numpy_reflect():
    x = np.arange(2 * 5 * 4 * 3, dtype=np.float32).reshape(2, 5, 4, 3)
    out = ReflectionPadding2D(2)(x).numpy()
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))


def numpy_instance_norm(x, eps=1e-5):
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)  # biased, as torch.nn.InstanceNorm2d
    return (x - mean) / np.sqrt(var + eps)


def test_instance_norm_matches_torch_semantics():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 6, 5, 4)).astype(np.float32)
    layer = InstanceNormalization()
    np.testing.assert_allclose(layer(x).numpy(), numpy_instance_norm(x), atol=1e-5)
    assert not layer.weights  # non-affine: no parameters, as the reference


def test_affine_instance_norm_applies_scale_and_offset():
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    layer = InstanceNormalization(affine=True)
    layer.build(x.shape)
    gamma, beta = np.array([1.0, 2.0, 0.5], np.float32), np.array([0.0, -1.0, 3.0], np.float32)
    layer.set_weights([gamma, beta])
    np.testing.assert_allclose(layer(x).numpy(), numpy_instance_norm(x) * gamma + beta, atol=1e-5)


def test_instance_norm_statistics_stay_float32_under_float16():
    # Activations with std ~300: an fp16 variance overflows (300^2 * n > 65504).
    x = np.random.default_rng(2).normal(0.0, 300.0, (1, 64, 64, 8)).astype(np.float32)
    layer = InstanceNormalization(dtype="mixed_float16")
    out = layer(x.astype(np.float16)).numpy()
    assert out.dtype == np.float16
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.astype(np.float32), numpy_instance_norm(x.astype(np.float16).astype(np.float32)),
                               atol=5e-3)


def test_reflection_padding_config_round_trip():
    layer = ReflectionPadding2D(3)
    assert ReflectionPadding2D.from_config(layer.get_config()).padding == 3


@pytest.mark.parametrize("size, kernel, strides", [(4, 4, 2), (6, 3, 1), (9, 4, 2), (5, 5, 1), (20, 4, 2)])
def test_conv2d_patch_product_equals_the_convolution_with_its_gradients(size, kernel, strides):
    """Small output maps of wide layers take the im2col path (20 px -> 9x9 = 81 positions
    does not): outputs and the input and kernel gradients equal keras' Conv2D with the
    same weights."""
    from tf_translate.layers import Conv2D
    from tf_translate.layers.conv import PATCH_PRODUCT_MAX_POSITIONS, PATCH_PRODUCT_MIN_FEATURES

    channels = -(-PATCH_PRODUCT_MIN_FEATURES // kernel ** 2)  # just wide enough
    x = tf.constant(np.random.default_rng(size).normal(size=(2, size, size, channels)).astype("float32"))
    ours, plain = Conv2D(7, kernel, strides=strides), keras.layers.Conv2D(7, kernel, strides=strides)
    ours.build(x.shape)
    plain.build(x.shape)
    plain.set_weights(ours.get_weights())
    out_size = (size - kernel) // strides + 1
    assert (out_size ** 2 <= PATCH_PRODUCT_MAX_POSITIONS) == (size != 20)

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.sin(y))  # a gradient that differs per position
        return [y] + tape.gradient(loss, [x, layer.kernel, layer.bias])

    for got, expected in zip(outputs_and_gradients(ours), outputs_and_gradients(plain)):
        scale = np.abs(expected.numpy()).max()  # float32 sums of >= 4096 terms, other order
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5 * scale)
    assert ours.count_params() == plain.count_params()


@pytest.mark.parametrize("height, width", [(5, 7), (1, 3), (8, 8)])
def test_nearest_upsample_conv_equals_upsample_reflect_pad_conv(height, width):
    """The four 2x2 phase convolutions give what the reference decoder computes
    (nearest x2, reflection pad 1, 3x3 conv), with the same input, kernel and bias
    gradients, for odd sizes and a one-pixel-high map (whose reflection is its edge)."""
    from tf_translate.layers import NearestUpsampleConv2D

    x = tf.constant(np.random.default_rng(height).normal(size=(2, height, width, 6)).astype("float32"))
    ours = NearestUpsampleConv2D(4, use_bias=True)
    plain = keras.layers.Conv2D(4, 3)
    reference = lambda inputs: plain(ops.pad(ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2),
                                             [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect"))
    ours.build(x.shape)
    plain.build((None, None, None, 6))
    ours.bias.assign(np.arange(4, dtype="float32"))
    plain.set_weights(ours.get_weights())

    def outputs_and_gradients(layer, call):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = call(x)
            loss = tf.reduce_sum(y * tf.sin(y))
        return [y] + tape.gradient(loss, [x, layer.kernel, layer.bias])

    got, expected = outputs_and_gradients(ours, ours), outputs_and_gradients(plain, reference)
    assert got[0].shape == (2, 2 * height, 2 * width, 4)
    assert tuple(ours.compute_output_shape((None, height, width, 6))) == (None, 2 * height, 2 * width, 4)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5 * np.abs(e.numpy()).max())
    assert ours.kernel.shape == (3, 3, 6, 4) and ours.count_params() == plain.count_params()
    restored = NearestUpsampleConv2D.from_config(ours.get_config())
    assert restored.filters == 4 and restored.kernel_size == (3, 3)
    with pytest.raises(TypeError):  # the kernel size is the layer's, not the caller's
        NearestUpsampleConv2D(4, kernel_size=5)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_gradient_matches_numpy_finite_differences(affine):
    # The gradient of `standardize` is written by hand; check it on <IN(x), w>.
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, (2, 3, 4, 2))
    weight = rng.normal(size=x.shape)
    layer = InstanceNormalization(affine=affine)
    layer.build(x.shape)
    scale = np.array([1.5, -0.5]) if affine else np.ones(2)
    if affine:
        layer.set_weights([scale.astype(np.float32), np.array([0.3, 0.1], np.float32)])
    loss = lambda v: np.sum(numpy_instance_norm(v) * scale * weight)
    want = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += 1e-5
        down[i] -= 1e-5
        want[i] = (loss(up) - loss(down)) / 2e-5
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = tf.reduce_sum(tf.cast(layer(inputs), tf.float64) * weight)
    np.testing.assert_allclose(tape.gradient(out, inputs).numpy(), want, rtol=1e-3, atol=1e-3)
