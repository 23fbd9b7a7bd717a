"""U-GAT-IT generator and discriminators: reference parameter counts, size rules,
initialisation, spectral-norm updates, mixed precision, `.keras` round trips."""

import gc

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from tf_translate.layers import AdaLIN, Clipper, LIN, SpectralNorm
from tf_translate.models.ugatit import UGATITDiscriminator, UGATITGenerator


def trainable_count(model):
    """Parameters as torch counts them (`parameters()`; spectral-norm u, v are buffers)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(light=True), 10_589_888),
    (dict(image_size=128), 77_633_216),
    (dict(image_size=256), 278_959_808),  # ~1 GB of weights for a few seconds
])
def test_generator_parameter_count_equals_reference(kwargs, expected):
    generator = UGATITGenerator(**kwargs)
    generator.build((None, None, None, 3))
    assert trainable_count(generator) == expected
    assert generator.count_params() == expected  # no non-trainable weights in G
    del generator
    gc.collect()


@pytest.mark.parametrize("num_layers, expected", [(7, 53_130_176), (5, 3_290_560)])
def test_discriminator_parameter_count_equals_reference(num_layers, expected):
    discriminator = UGATITDiscriminator(num_layers=num_layers)
    discriminator.build((None, 256, 256, 3))
    assert trainable_count(discriminator) == expected


def test_discriminator_output_grids_match_pytorch():
    # PyTorch: 6x6 (global) and 30x30 (local) logits at 256 px (TF1 pads asymmetrically
    # and gets 8x8 and 32x32).
    x = random_images(1, 256)
    for num_layers, grid in [(7, 6), (5, 30)]:
        logits, cam_logit, heatmap = UGATITDiscriminator(filters=2, num_layers=num_layers)(x)
        assert logits.shape == (1, grid, grid, 1) and heatmap.shape == (1, grid + 1, grid + 1, 1)
        assert cam_logit.shape == (1, 2) and logits.dtype == tf.float32


def test_full_generator_rejects_other_sizes_in_one_line():
    generator = UGATITGenerator(filters=4, num_residual_blocks=1, image_size=32)
    image, _, _ = generator(random_images(1, 32))
    assert np.isfinite(image.numpy()).all()
    with pytest.raises(ValueError) as error:
        generator(random_images(1, 48))
    message = str(error.value)
    assert "\n" not in message and "image_size 32x32" in message and "got 48x48" in message
    with pytest.raises(ValueError, match="image_size 32x32"):
        UGATITGenerator(filters=4, image_size=32).build((None, 64, 64, 3))


def test_light_generator_runs_at_any_multiple_of_4_and_treats_samples_independently():
    generator = UGATITGenerator(filters=4, num_residual_blocks=1, light=True)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 36, 44, 3)).astype("float32")
    image, cam_logit, heatmap = generator(x)
    assert image.shape == x.shape and heatmap.shape == (2, 9, 11, 1)
    assert np.abs(image.numpy()).max() <= 1.0
    # Instance / layer statistics are per sample: the second image alone gives the same.
    alone = generator(x[1:])
    np.testing.assert_allclose(alone[0].numpy()[0], image.numpy()[1], atol=1e-5)
    np.testing.assert_allclose(alone[1].numpy()[0], cam_logit.numpy()[1], atol=1e-5)
    with pytest.raises(ValueError, match="divisible by 4, got 34x44"):
        generator(x[:, :34])


def test_generator_layers_follow_the_reference():
    generator = UGATITGenerator(filters=4, num_residual_blocks=2, light=True)
    generator.build((None, None, None, 3))
    # Only the CAM 1x1 conv has a bias (everything else is bias=False in networks.py).
    biases = [w.path for w in generator.weights if w.path.endswith("bias")]
    assert len(biases) == 1 and "cam" in biases[0]
    norms = [layer for layer in generator._flatten_layers() if isinstance(layer, (AdaLIN, LIN))]
    assert sum(isinstance(n, AdaLIN) for n in norms) == 4 and sum(isinstance(n, LIN) for n in norms) == 2
    for norm in norms:
        assert isinstance(norm.rho.constraint, Clipper)
        np.testing.assert_allclose(norm.rho.numpy(), 0.9 if isinstance(norm, AdaLIN) else 0.0)


def test_weights_have_torch_default_init_and_equal_shapes_differ():
    generator = UGATITGenerator(filters=16, num_residual_blocks=2, light=True)
    generator.build((None, None, None, 3))
    block_kernels = [w.numpy() for w in generator.weights
                     if "residual" in w.path and w.path.endswith("kernel")]
    assert len(block_kernels) == 8
    bound = 1.0 / np.sqrt(64 * 9)  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 64 * 3 * 3
    for kernel in block_kernels:
        assert np.abs(kernel).max() <= bound * (1 + 1e-6)  # float32 rounding of the bound
        assert abs(kernel.std() - bound / np.sqrt(3)) < 0.05 * bound
    # One unseeded Keras initializer reused would give equally shaped convs equal weights.
    assert not np.array_equal(block_kernels[0], block_kernels[1])


def test_discriminator_power_iteration_runs_only_when_training():
    discriminator = UGATITDiscriminator(filters=4, num_layers=5)
    x = random_images(1, 64)
    discriminator(x)
    norms = [layer for layer in discriminator._flatten_layers() if isinstance(layer, SpectralNorm)]
    assert len(norms) == 4 + 2 + 1  # 4 convs, 2 CAM FCs, the output conv
    before = [n.u.numpy().copy() for n in norms]
    discriminator(x, training=False)
    assert all(np.array_equal(b, n.u.numpy()) for b, n in zip(before, norms))
    discriminator(x, training=True)
    assert all(not np.allclose(b, n.u.numpy()) for b, n in zip(before, norms) if b.size > 1)


def test_consecutive_calls_reach_every_spectral_norm_of_the_discriminator():
    """`consecutive_calls=2` given to the discriminator reaches all its spectral norms,
    including those inside the padded-conv Sequentials and the CAM block: one call on
    real and fake stacked gives two separate training calls' outputs and final u, v."""
    keras.utils.set_random_seed(3)
    discriminator = UGATITDiscriminator(filters=4, num_layers=5)
    real, fake = random_images(1, 64, 1), random_images(1, 64, 2)
    discriminator(real)
    norms = [layer for layer in discriminator._flatten_layers() if isinstance(layer, SpectralNorm)]
    assert len(norms) == 7
    start = [w.numpy() for w in discriminator.weights]
    separate = [discriminator(real, training=True), discriminator(fake, training=True)]
    separate_uv = [(n.u.numpy(), n.v.numpy()) for n in norms]

    def batched_call(**kwargs):
        for w, value in zip(discriminator.weights, start):
            w.assign(value)
        return discriminator(np.concatenate([real, fake]), training=True, **kwargs)

    batched = batched_call(consecutive_calls=2)
    for one, two, both in zip(*separate, batched):
        np.testing.assert_allclose(both.numpy(), np.concatenate([one, two]), rtol=1e-5, atol=1e-6)
    for n, (u, v) in zip(norms, separate_uv):
        np.testing.assert_allclose(n.u.numpy(), u, atol=1e-7)
        np.testing.assert_allclose(n.v.numpy(), v, atol=1e-7)
    # Guard: as one call, every spectral norm runs one power iteration, not two.
    batched_call()
    assert all(not np.allclose(n.u.numpy(), u, atol=1e-7) for n, (u, _) in zip(norms, separate_uv) if u.size > 1)


def test_mixed_precision_generator_is_close_to_float32():
    x = random_images(1, 32)
    generator = UGATITGenerator(filters=8, num_residual_blocks=1, light=True)
    expected = [t.numpy() for t in generator(x)]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = UGATITGenerator(filters=8, num_residual_blocks=1, light=True)
        half.build((None, None, None, 3))
        half.set_weights(generator.get_weights())
        out = half(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(t.dtype == tf.float32 for t in out)
    assert np.abs(out[0].numpy() - expected[0]).max() < 2e-2
    np.testing.assert_allclose(out[1].numpy(), expected[1], rtol=2e-2, atol=2e-2)


def test_mixed_precision_discriminator_is_close_to_float32():
    x = random_images(1, 64)
    discriminator = UGATITDiscriminator(filters=8, num_layers=5)
    discriminator(x, training=True)
    expected = [t.numpy() for t in discriminator(x)]
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = UGATITDiscriminator(filters=8, num_layers=5)
        half.build((None, 64, 64, 3))
        half.set_weights(discriminator.get_weights())  # includes u, v
        out = half(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert half.cam.gap_fc.u.dtype == "float32"  # power-iteration state stays float32
    for got, want in zip(out, expected):
        assert got.dtype == tf.float32
        # float16 products over up to 4x4x64 patch features (the last convs are matrix
        # products of patches, layers/conv.py): within 2 % of the largest output.
        assert np.abs(got.numpy() - want).max() < 2e-2 * np.abs(want).max()


@pytest.mark.parametrize("make, size", [
    (lambda: UGATITGenerator(filters=4, num_residual_blocks=1, light=True), 32),
    (lambda: UGATITGenerator(filters=4, num_residual_blocks=1, image_size=32), 32),
    (lambda: UGATITDiscriminator(filters=4, num_layers=5), 64),
])
def test_config_round_trip_and_keras_file_give_equal_outputs(make, size, tmp_path):
    model = make()
    x = random_images(2, size)
    if isinstance(model, UGATITDiscriminator):
        model(x, training=True)  # move u, v away from their initial values
    expected = [t.numpy() for t in model(x)]
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    # Inference uses the stored u, v: equal outputs show they were saved too.
    for got, want in zip(restored(x), expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
