"""The shared `conv` builder: padding modes and initialisations against NumPy and the
references' distributions, and its one-line errors."""

import numpy as np
import pytest

from tf_translate.layers.blocks import conv


def np_conv(x, kernel, bias, stride):
    """Valid cross-correlation, NHWC x HWIO."""
    kh, kw = kernel.shape[:2]
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out + bias


@pytest.mark.parametrize("padding_mode, np_mode", [("reflect", "reflect"), ("zeros", "constant")])
def test_padded_conv_is_numpy_padding_then_a_valid_conv(padding_mode, np_mode):
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 3)).astype(np.float32)
    layer = conv(4, 3, strides=2, padding=2, padding_mode=padding_mode, use_bias=True, init="torch", fan_in=27)
    y = layer(x).numpy()
    inner = layer.layers[-1]
    padded = np.pad(x.astype(np.float64), [(0, 0), (2, 2), (2, 2), (0, 0)], mode=np_mode)
    np.testing.assert_allclose(y, np_conv(padded, inner.kernel.numpy(), inner.bias.numpy(), 2), atol=1e-5)


def test_inits_follow_the_references():
    torch = conv(64, 3, use_bias=True, init="torch", fan_in=64 * 9)
    torch.build((None, 8, 8, 64))
    bound = 1 / np.sqrt(64 * 9)
    for weights in (torch.kernel.numpy(), torch.bias.numpy()):
        assert np.abs(weights).max() <= bound and np.abs(weights).max() > 0.9 * bound
    junyanz = conv(64, 3, use_bias=True, init="junyanz")
    junyanz.build((None, 8, 8, 64))
    assert abs(junyanz.kernel.numpy().std() - 0.02) < 0.001
    assert not junyanz.bias.numpy().any()
    bias_free = conv(8, 3, use_bias=False, init="torch")
    bias_free.build((None, 8, 8, 4))
    assert bias_free.bias is None


@pytest.mark.parametrize("kwargs, message", [
    (dict(padding=1, use_bias=False, init="torch"), "needs padding_mode 'reflect' or 'zeros'"),
    (dict(padding=1, padding_mode="same", use_bias=False, init="torch"), "needs padding_mode"),
    (dict(use_bias=True, init="torch"), "needs fan_in"),
    (dict(use_bias=False, init="glorot"), "init must be one of"),
])
def test_bad_arguments_give_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        conv(4, 3, **kwargs)
    assert "\n" not in str(info.value)
