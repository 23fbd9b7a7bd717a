"""CAMAttention against a NumPy version of the U-GAT-IT / photo2cartoon CAM block; the
heatmap drawn as an image."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_translate.layers import CAMAttention
from tf_translate.layers.cam import heatmap_image


def np_cam(x, w_gap, w_gmp, conv_kernel, conv_bias, slope=0.0, b_gap=0.0, b_gmp=0.0,
           logit_scale_gap=1.0, logit_scale_gmp=1.0):
    """The reference forward: logits from pooled features, channels re-weighted by the
    raw FC weights, 1x1 conv, (leaky) ReLU, heatmap = channel sum."""
    x = x.astype(np.float64)
    gap_logit = x.mean((1, 2)) @ w_gap * logit_scale_gap + b_gap
    gmp_logit = x.max((1, 2)) @ w_gmp * logit_scale_gmp + b_gmp
    cat = np.concatenate([x * w_gap, x * w_gmp], axis=-1)
    y = np.einsum("bhwc,cd->bhwd", cat, conv_kernel[0, 0]) + conv_bias
    y = np.where(y > 0, y, slope * y)
    return y, np.stack([gap_logit, gmp_logit], axis=-1), y.sum(-1, keepdims=True)


def inputs(seed=0, channels=6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2, 5, 4, channels)).astype("float32")


def outputs_numpy(layer, x, training=False):
    return [keras.ops.convert_to_numpy(t) for t in layer(x, training=training)]


def test_generator_cam_matches_numpy():
    x = inputs()
    layer = CAMAttention(6)
    layer.build(x.shape)
    assert not layer.gap_fc.use_bias and not layer.gmp_fc.use_bias
    w_gap = layer.gap_fc.kernel.numpy()[:, 0]
    w_gmp = layer.gmp_fc.kernel.numpy()[:, 0]
    assert np.abs(w_gap - w_gmp).max() > 1e-3  # two separate FCs, not one shared
    want = np_cam(x, w_gap, w_gmp, layer.conv1x1.kernel.numpy(), layer.conv1x1.bias.numpy())
    for got, expected in zip(outputs_numpy(layer, x), want):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    features, _, heatmap = outputs_numpy(layer, x)
    assert features.min() >= 0.0 and heatmap.shape == (2, 5, 4, 1)


def test_photo2cartoon_cam_bias_enters_logits_but_not_the_reweighting():
    x = inputs(1)
    layer = CAMAttention(6, use_bias=True)
    layer.build(x.shape)
    layer.gap_fc.bias.assign([0.7])
    layer.gmp_fc.bias.assign([-1.1])
    want = np_cam(x, layer.gap_fc.kernel.numpy()[:, 0], layer.gmp_fc.kernel.numpy()[:, 0],
                  layer.conv1x1.kernel.numpy(), layer.conv1x1.bias.numpy(), b_gap=0.7, b_gmp=-1.1)
    for got, expected in zip(outputs_numpy(layer, x), want):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_discriminator_cam_logits_use_w_over_sigma_and_reweighting_the_raw_weight():
    x = inputs(2)
    layer = CAMAttention(6, activation="leaky_relu", spectral_norm=True)
    layer.build(x.shape)
    outs = outputs_numpy(layer, x, training=True)  # one power iteration per FC
    scales = []
    for fc in (layer.gap_fc, layer.gmp_fc):
        w = fc.layer.kernel.numpy()[:, 0].astype(np.float64)
        # For a 1-output FC one power iteration is exact: sigma = ||w||.
        sigma = float(fc.u.numpy()[0] * (fc.v.numpy() @ w))
        np.testing.assert_allclose(sigma, np.linalg.norm(w), rtol=1e-5)
        scales.append(1.0 / sigma)
    want = np_cam(x, layer.gap_fc.layer.kernel.numpy()[:, 0], layer.gmp_fc.layer.kernel.numpy()[:, 0],
                  layer.conv1x1.kernel.numpy(), layer.conv1x1.bias.numpy(), slope=0.2,
                  logit_scale_gap=scales[0], logit_scale_gmp=scales[1])
    for got, expected in zip(outs, want):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (outs[0] < 0).any()  # LeakyReLU, not ReLU
    # The 1x1 conv is not spectral-normalised.
    assert isinstance(layer.conv1x1, keras.layers.Conv2D)


def test_config_round_trip_and_errors():
    layer = CAMAttention(8, activation="leaky_relu", use_bias=True, spectral_norm=True)
    assert CAMAttention.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="activation must be"):
        CAMAttention(8, activation="tanh")
    with pytest.raises(ValueError, match=r"CAMAttention\(8\) got 6 input channels"):
        CAMAttention(8).build((1, 4, 4, 6))


def test_constant_heatmap_gives_a_finite_image():
    assert np.isfinite(heatmap_image(tf.zeros([1, 2, 2, 1]), 8).numpy()).all()
