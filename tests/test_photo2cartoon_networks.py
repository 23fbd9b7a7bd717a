"""photo2cartoon generator: reference parameter counts, hourglass conv block against
NumPy, Soft-AdaLIN wiring, size rules, `.keras` round trip."""

import keras
import numpy as np
import pytest

from helpers import random_images
from tf_translate.layers import CAMAttention, SoftAdaLIN
from tf_translate.models.photo2cartoon import HourGlassConvBlock, Photo2CartoonGenerator
from tf_translate.models.ugatit import UGATITDiscriminator


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("light, expected", [(True, 3_773_735), (False, 70_866_215)])
def test_generator_parameter_count_equals_reference(light, expected):
    # The reference module reports 57,344 more (3,831,079 light): the 1x1 projections
    # its ConvBlocks build but never use, left out here.
    generator = Photo2CartoonGenerator(light=light)
    generator.build((None, None, None, 3))
    assert trainable_count(generator) == expected == generator.count_params()


@pytest.mark.parametrize("num_layers, expected", [(7, 13_294_048), (5, 826_080)])
def test_discriminators_are_ugatit_with_32_filters(num_layers, expected):
    discriminator = UGATITDiscriminator(filters=32, num_layers=num_layers)
    discriminator.build((None, 256, 256, 3))
    assert trainable_count(discriminator) == expected


def np_instance_norm_relu(x, eps=1e-5):
    y = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + eps)
    return np.maximum(y, 0)


def np_reflect_conv3x3(x, kernel):
    """Reflection pad 1 then a 'valid' 3x3 conv, NHWC, kernel [3, 3, in, out]."""
    p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    h, w = x.shape[1:3]
    return sum(np.einsum("bhwc,cd->bhwd", p[:, i:i + h, j:j + w], kernel[i, j])
               for i in range(3) for j in range(3))


def test_hourglass_conv_block_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 8)).astype("float32")
    block = HourGlassConvBlock(8)
    block.build(x.shape)
    kernels = [step[-1].layers[-1].kernel.numpy() for step in block.steps]
    assert [k.shape[-1] for k in kernels] == [4, 2, 2]
    x1 = np_reflect_conv3x3(np_instance_norm_relu(x.astype(np.float64)), kernels[0])
    x2 = np_reflect_conv3x3(np_instance_norm_relu(x1), kernels[1])
    x3 = np_reflect_conv3x3(np_instance_norm_relu(x2), kernels[2])
    want = x + np.concatenate([x1, x2, x3], axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x)), want, atol=1e-5)
    assert block.projection is None and len(block.weights) == 3  # no unused 1x1 conv


def test_soft_adalin_blocks_get_the_encoder_content_features():
    generator = Photo2CartoonGenerator(filters=4, image_size=32)
    x = random_images(2, 32)
    received = []
    for block in generator.decoder_blocks:
        original = block.norm1.blend
        block.norm1.blend = lambda content, style, original=original: (
            received.append(content.numpy()) or original(content, style))
    generator(x)
    assert len(received) == 4
    # The reference feeds GAP(output of encoder block k) to decoder block 5 - k. Each
    # encoder block returns x + IN(...), and a non-affine IN has zero spatial mean per
    # channel, so all four features equal GAP of the first block's input: the reverse
    # order is invisible, and a GAP of anything else (e.g. after the CAM) would not match.
    h = x
    for layer in generator.stem:
        h = layer(h)
    want = h.numpy().mean(axis=(1, 2))
    for got in received:
        np.testing.assert_allclose(got, want, atol=1e-5)
    cam_features = generator.cam(generator.encoder_blocks[-1](h))[0].numpy().mean(axis=(1, 2))
    assert np.abs(cam_features - want).max() > 1e-3


def test_cam_fcs_have_bias_and_soft_adalin_blends():
    generator = Photo2CartoonGenerator(filters=4, image_size=32)
    generator.build((None, None, None, 3))
    cams = [layer for layer in generator._flatten_layers() if isinstance(layer, CAMAttention)]
    assert len(cams) == 1 and cams[0].use_bias and not cams[0].spectral_norm
    norms = [layer for layer in generator._flatten_layers() if isinstance(layer, SoftAdaLIN)]
    assert len(norms) == 8
    for norm in norms:
        assert not norm.w_gamma.numpy().any() and not norm.w_beta.numpy().any()
        np.testing.assert_allclose(norm.norm.rho.numpy(), 0.9)


def test_size_rules_give_one_line_errors():
    light = Photo2CartoonGenerator(filters=4)
    image, cam_logit, heatmap = light(random_images(1, 48))  # any multiple of 16
    assert image.shape == (1, 48, 48, 3) and heatmap.shape == (1, 12, 12, 1)
    assert np.abs(image.numpy()).max() <= 1.0 and np.isfinite(cam_logit.numpy()).all()
    with pytest.raises(ValueError, match="divisible by 16, got 40x40"):
        light(random_images(1, 40))
    full = Photo2CartoonGenerator(filters=4, image_size=32, light=False)
    with pytest.raises(ValueError) as error:
        full(random_images(1, 48))
    assert "\n" not in str(error.value) and "image_size 32x32" in str(error.value)


def test_config_round_trip_and_keras_file_give_equal_outputs(tmp_path):
    generator = Photo2CartoonGenerator(filters=4, image_size=32)
    x = random_images(2, 32)
    expected = [t.numpy() for t in generator(x)]
    clone = Photo2CartoonGenerator.from_config(generator.get_config())
    assert clone.get_config() == generator.get_config()
    path = str(tmp_path / "p2c.keras")
    generator.save(path)
    for got, want in zip(keras.models.load_model(path)(x), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
