import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from tf_translate import build_model
from tf_translate.export import export_saved_model
from tf_translate.layers import AdaLINResidualBlock, SpectralNorm
from tf_translate.models.nicegan import (NICEGAN, NICEGANDiscriminator, NICEGANGenerator, PixelShuffle,
                                         ResidualCAMAttention)
from tf_translate.training import image_grid

# The training-model tests use the 6-layer discriminator (the reference's --n_dis 7
# needs 96 px; 6 layers build from 48 px, which makes the XLA compile cheaper).
SIZE = 48
TINY = dict(image_size=SIZE, filters=4, num_residual_blocks=1, discriminator_layers=6)


def trainable_count(network):
    return sum(int(np.prod(w.shape)) for w in network.trainable_weights)


def test_parameter_counts_equal_reference():
    discriminator = NICEGANDiscriminator()
    discriminator.build((None, None, None, 3))
    assert trainable_count(discriminator) == 46_874_433
    # stem 134,336 + CAM (FC 256, 1x1 conv 32,896, λ 1)
    assert trainable_count(discriminator.encoder) == 167_489
    light = NICEGANGenerator(light=True)
    light.build((None, None, None, 128))
    assert trainable_count(light) == 8_104_640
    full = NICEGANGenerator(light=False, image_size=256)
    full.build((None, 64, 64, 128))
    assert trainable_count(full) == 276_474_560
    # The reference's output grids at 256 px: local 30x30, global 6x6, z 64x64x128.
    local, global_, cam, heatmap, z = discriminator(np.zeros((1, 256, 256, 3), np.float32))
    assert (local.shape, global_.shape, cam.shape, heatmap.shape, z.shape) == (
        (1, 30, 30, 1), (1, 6, 6, 1), (1, 1), (1, 64, 64, 1), (1, 64, 64, 128))


def test_discriminator_rejects_too_small_images_in_one_line():
    discriminator = NICEGANDiscriminator(filters=4)
    with pytest.raises(ValueError, match=r"needs images of at least 96x96, got 64x64") as error:
        discriminator(np.zeros((1, 64, 64, 3), np.float32))
    assert "\n" not in str(error.value)


def test_full_generator_rejects_other_sizes_in_one_line():
    generator = NICEGANGenerator(filters=4, num_residual_blocks=1, image_size=32)
    generator.build((None, 8, 8, 8))
    with pytest.raises(ValueError, match="runs only at its image_size 32x32") as error:
        generator(np.zeros((1, 16, 16, 8), np.float32))
    assert "\n" not in str(error.value)


def np_pixel_shuffle(x, r):
    """torch.nn.PixelShuffle's definition on an NHWC array: output channel c at pixel
    (h·r + i, w·r + j) is input channel c·r² + i·r + j at (h, w)."""
    n, h, w, c_in = x.shape
    c = c_in // (r * r)
    out = np.zeros((n, h * r, w * r, c), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[:, i::r, j::r, ch] = x[:, :, :, ch * r * r + i * r + j]
    return out


@pytest.mark.parametrize("r, channels", [(2, 12), (3, 18)])
def test_pixel_shuffle_matches_pytorch_definition(r, channels):
    x = np.random.default_rng(0).normal(size=(2, 3, 5, channels)).astype(np.float32)
    np.testing.assert_array_equal(PixelShuffle(r)(x).numpy(), np_pixel_shuffle(x, r))
    # and is not plain depth_to_space, whose channel order differs
    assert not np.array_equal(tf.nn.depth_to_space(x, r).numpy(), np_pixel_shuffle(x, r))


def leaky(x):
    return np.where(x > 0, x, 0.2 * x)


def test_residual_cam_matches_numpy():
    """One SN FC over [GAP, GMP]; the raw kernel re-weights [x, x]; λ·y + x; LeakyReLU."""
    channels = 6
    layer = ResidualCAMAttention(channels)
    x = np.random.default_rng(0).normal(size=(2, 5, 4, channels)).astype(np.float32)
    layer.build(x.shape)
    layer.lamda.assign(0.7)
    z, cam_logit, heatmap = [t.numpy() for t in layer(x)]
    kernel = layer.fc.layer.kernel.numpy().astype(np.float64)  # [2C, 1] = torch weight_orig.T
    u, v = layer.fc.u.numpy(), layer.fc.v.numpy()
    sigma = u @ (kernel.T @ v)  # eval mode: stored u, v
    pooled = np.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
    np.testing.assert_allclose(cam_logit, pooled @ kernel / sigma, rtol=1e-5)
    w, b = [t.numpy() for t in layer.conv1x1.weights]
    y = np.concatenate([x, x], axis=-1) * kernel[:, 0]
    y = np.einsum("bhwi,io->bhwo", y, w[0, 0]) + b
    expected = leaky(0.7 * y + x)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(heatmap[..., 0], expected.sum(-1), rtol=1e-5, atol=1e-5)
    # λ starts at 0: the block starts as LeakyReLU(x)
    fresh = ResidualCAMAttention(channels)
    np.testing.assert_allclose(fresh(x)[0].numpy(), leaky(x), atol=1e-6)


def np_conv3x3_reflect(x, kernel):
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    h, w = x.shape[1:3]
    return sum(padded[:, a:a + h, b:b + w, :] @ kernel[a, b] for a in range(3) for b in range(3))


def np_ada_iln(x, rho, gamma, beta, eps=1e-5):
    """NICE-GAN `adaILN`: softmax(ρ) over (IN, LN), torch.var (unbiased) statistics."""
    weights = np.exp(rho) / np.exp(rho).sum(-1, keepdims=True)
    out_in = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), ddof=1, keepdims=True) + eps)
    out_ln = (x - x.mean((1, 2, 3), keepdims=True)) / np.sqrt(x.var((1, 2, 3), ddof=1, keepdims=True) + eps)
    out = weights[:, 0] * out_in + weights[:, 1] * out_ln
    return out * gamma[:, None, None, :] + beta[:, None, None, :]


def test_softmax_rho_residual_block_matches_numpy():
    """The decoder's `ResnetAdaILNBlock`: pad, conv, adaILN, ReLU, pad, conv, adaILN, + x,
    with ρ of shape (C, 2) through a softmax, starting at (3.2, 1)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 4))
    gamma, beta = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    block = AdaLINResidualBlock(4, rho_mode="softmax")
    block.build(x.shape)
    np.testing.assert_array_equal(block.norm1.rho.numpy(), np.tile(np.float32([[3.2, 1.0]]), (4, 1)))
    block.norm1.rho.assign(rng.normal(size=(4, 2)))
    block.norm2.rho.assign(rng.normal(size=(4, 2)))
    k1, k2 = block.conv1.layers[-1].kernel.numpy(), block.conv2.layers[-1].kernel.numpy()
    y = np.maximum(np_ada_iln(np_conv3x3_reflect(x, k1), block.norm1.rho.numpy(), gamma, beta), 0)
    expected = x + np_ada_iln(np_conv3x3_reflect(y, k2), block.norm2.rho.numpy(), gamma, beta)
    out = block(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_encode_is_the_stem_output_and_decoders_run_at_any_multiple_of_4():
    discriminator = NICEGANDiscriminator(filters=4)
    x = random_images(2, 96)
    outputs = discriminator(x)
    np.testing.assert_array_equal(discriminator.encode(x).numpy(), outputs[4].numpy())
    generator = NICEGANGenerator(filters=4, num_residual_blocks=1, light=True)
    out = generator(discriminator.encode(random_images(1, 100)))
    assert out.shape == (1, 100, 100, 3) and out.dtype == tf.float32
    assert np.abs(out.numpy()).max() <= 1.0


@pytest.mark.parametrize("make, input_shape", [
    (lambda: NICEGANDiscriminator(filters=4), (1, 96, 96, 3)),
    (lambda: NICEGANGenerator(filters=4, num_residual_blocks=2, image_size=32), (1, 8, 8, 8)),
    (lambda: NICEGANGenerator(filters=4, num_residual_blocks=2, light=True), (1, 8, 12, 8)),
])
def test_config_round_trip_and_keras_file_give_equal_outputs(make, input_shape, tmp_path):
    network = make()
    x = np.random.default_rng(0).uniform(-1, 1, input_shape).astype(np.float32)
    expected = keras.tree.map_structure(lambda t: t.numpy(), network(x))
    assert type(network).from_config(network.get_config()).get_config() == network.get_config()
    path = str(tmp_path / "network.keras")
    network.save(path)
    loaded = keras.models.load_model(path)
    keras.tree.map_structure(lambda a, b: np.testing.assert_allclose(a, b.numpy(), atol=1e-6),
                             expected, loaded(x))


def test_build_model_names_and_config_round_trip():
    full, light = build_model("nicegan", **TINY), build_model("nicegan_light", **TINY)
    assert not full.light and light.light
    config = light.get_config()
    assert NICEGAN.from_config(config).get_config() == config
    assert (config["cycle_weight"], config["recon_weight"], config["weight_decay"]) == (10.0, 10.0, 1e-4)


def trainable_snapshot(variables):
    return [v.numpy().copy() for v in variables]


def moved(before, variables):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def encoder_variables(model):
    return [v for d in (model.discriminator_a, model.discriminator_b) for v in d.encoder.trainable_variables]


def head_variables(model):
    encoder = {id(v) for v in encoder_variables(model)}
    return [v for d in (model.discriminator_a, model.discriminator_b) for v in d.trainable_variables
            if id(v) not in encoder]


def decoder_variables(model):
    return model.generator_ab.trainable_variables + model.generator_ba.trainable_variables


def test_step_moves_encoders_only_in_the_d_update_and_decoders_only_in_the_g_update():
    """Decoupled training, in one compiled step function: with the G learning rate at 0
    the encoders (and heads) move and the decoders do not; with the D learning rate at 0
    only the decoders move, although the G loss flows through the encoders. Graph mode:
    the XLA-compiled step is checked against the reference in test_nicegan_parity."""
    model = build_model("nicegan_light", **TINY)
    model.compile(jit_compile=False)
    groups = {"encoders": encoder_variables(model), "heads": head_variables(model),
              "decoders": decoder_variables(model)}
    a, b = random_images(2, SIZE, 0), random_images(2, SIZE, 1)
    data = tf.data.Dataset.from_tensor_slices((a, b)).batch(2)

    def step_moves():
        before = {name: trainable_snapshot(variables) for name, variables in groups.items()}
        model.fit(data, epochs=1, verbose=0)  # the same compiled train function each time
        return {name: moved(before[name], variables) for name, variables in groups.items()}

    model.g_optimizer.learning_rate = 0.0  # assigns the rate variable: no retrace
    assert step_moves() == {"encoders": True, "heads": True, "decoders": False}
    model.g_optimizer.learning_rate = 1e-4
    model.d_optimizer.learning_rate = 0.0
    assert step_moves() == {"encoders": False, "heads": False, "decoders": True}

    # The sample grid: real, heatmap (scaled to [-1, 1]), reconstruction, fake, cycle.
    rows = model.sample_rows((a, b))
    assert [title for title, _ in rows[:5]] == ["real A", "heatmap A", "reconstructed A", "fake B",
                                                "cycled A"]
    heatmap = rows[1][1].numpy()
    assert heatmap.shape == (2, SIZE, SIZE, 1) and heatmap.min() == -1.0 and heatmap.max() == 1.0
    assert image_grid(rows).shape == (10 * SIZE, 2 * SIZE, 3)


def converge_spectral_norms(model):
    """Sets every spectral norm's u, v to the top singular vectors of its kernel, so that
    the power iteration of a training-mode call leaves σ as it is and losses can be
    checked by hand with eval-mode calls."""
    for d in (model.discriminator_a, model.discriminator_b):
        for layer in d._flatten_layers():
            if isinstance(layer, SpectralNorm):
                kernel = layer.layer.kernel.numpy()
                left, _, right = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]).T)  # torch W
                layer.u.assign(left[:, 0])
                layer.v.assign(right[0])


def test_losses_follow_the_reference_order():
    """D loss on the pre-step networks; G loss with the *updated* discriminators and
    encoders (checked with the G optimizer at lr 0, so the decoders stay as they were)."""
    model = build_model("nicegan_light", **TINY)
    converge_spectral_norms(model)
    # Eager steps here: the jit-compiled step is covered above and compiling costs minutes.
    model.compile(jit_compile=False, d_optimizer=keras.optimizers.Adam(1e-2),
                  g_optimizer=keras.optimizers.Adam(0.0))
    a, b = random_images(2, SIZE, 0), random_images(2, SIZE, 1)
    d_a, d_b = model.discriminator_a, model.discriminator_b
    g_ab, g_ba = model.generator_ab, model.generator_ba
    mse = lambda x, target: float(np.mean((np.asarray(x, np.float64) - target) ** 2))
    l1 = lambda x, y: float(np.mean(np.abs(np.asarray(x, np.float64) - y)))
    adversarial = lambda outputs, target: sum(mse(o, target) for o in outputs[:3])

    def d_loss():
        ra, rb = d_a(a), d_b(b)
        fake_b, fake_a = g_ab(ra[4]), g_ba(rb[4])
        return (adversarial(ra, 1) + adversarial(d_a(fake_a), 0)
                + adversarial(rb, 1) + adversarial(d_b(fake_b), 0))

    def g_loss():
        za, zb = d_a.encode(a), d_b.encode(b)
        fake_b, fake_a = g_ab(za), g_ba(zb)
        out_a, out_b = d_a(fake_a), d_b(fake_b)
        cycle = l1(g_ba(out_b[4]), a) + l1(g_ab(out_a[4]), b)
        recon = l1(g_ba(za), a) + l1(g_ab(zb), b)
        return adversarial(out_a, 1) + adversarial(out_b, 1) + 10 * cycle + 10 * recon

    expected_d, g_with_old_d = d_loss(), g_loss()
    logs = {name: float(value) for name, value in model.train_step((a, b)).items()}
    expected_g = g_loss()
    np.testing.assert_allclose(logs["d_loss"], expected_d, rtol=1e-3)
    np.testing.assert_allclose(logs["g_loss"], expected_g, rtol=1e-3)
    assert abs(logs["g_loss"] - g_with_old_d) > 10 * abs(logs["g_loss"] - expected_g)


def test_weight_decay_is_l2_added_to_the_gradient():
    """PyTorch Adam(weight_decay) semantics: wd·w joins the gradient. With no adversarial
    loss the D gradient is 0, so plain SGD(lr 1) must leave w·(1 − 1e-4)."""
    model = build_model("nicegan_light", **TINY, adversarial_weight=0.0)
    model.compile(jit_compile=False, d_optimizer=keras.optimizers.SGD(1.0))
    variables = model.optimizer_variables()["d_optimizer"]
    before = trainable_snapshot(variables)
    model.train_step((random_images(1, SIZE, 0), random_images(1, SIZE, 1)))  # eager
    for b, v in zip(before, variables):
        np.testing.assert_allclose(v.numpy(), b * (1 - 1e-4), rtol=1e-6, atol=1e-9)


def test_mixed_float16_translation_is_close_to_float32_and_a_step_is_finite():
    """Under mixed_float16 the encoder + decoder (softmax-rho ILN statistics in float32)
    stay close to the float32 networks with the same weights, the optimizers scale the
    loss, and one step leaves finite float32 losses and master weights."""
    reference = build_model("nicegan_light", **TINY, seed=0)
    x = random_images(2, SIZE, 7)
    expected = reference.generators()["a2b"](x).numpy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("nicegan_light", **TINY, seed=0)
        model.set_weights(reference.get_weights())
        translated = model.generators()["a2b"](x)
        model.compile(jit_compile=False)
        logs = model.train_step((x, random_images(2, SIZE, 8)))  # eager
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.generator_ab.compute_dtype == "float16" and translated.dtype == tf.float32
    assert np.abs(translated.numpy() - expected).max() < 2e-2
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in logs.values())
    assert all(w.dtype == "float32" and np.all(np.isfinite(w.numpy())) for w in model.weights)


def test_schedule_is_constant_then_reaches_zero_at_the_last_step():
    """The reference subtracts lr/(N//2) before each iteration past N//2."""
    model = build_model("nicegan_light", **TINY)
    model.compile(total_steps=10)
    rates = []
    for step in range(10):  # optimizer step s - 1 runs iteration s
        model.g_optimizer.iterations.assign(step)
        rates.append(float(model.g_optimizer.learning_rate))
    expected = [1e-4 * (1 - max(0, s - 5) / 5) for s in range(1, 11)]
    np.testing.assert_allclose(rates, expected, atol=1e-12)


def test_saved_model_of_a2b_equals_encoder_then_decoder(tmp_path):
    model = build_model("nicegan_light", **TINY)
    a2b = model.generators()["a2b"]
    x = random_images(2, SIZE, 3)
    expected = model.generator_ab(model.discriminator_a.encode(x)).numpy()
    np.testing.assert_allclose(a2b(x).numpy(), expected, atol=1e-6)
    path = export_saved_model(a2b, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["translate_float"](images=tf.constant(x))["images"].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    pixels = np.round((x + 1) * 127.5).astype(np.uint8)
    served = loaded.signatures["serving_default"](images=tf.constant(pixels))["images"].numpy()
    keras_pixels = np.clip(np.round((model.generator_ab(model.discriminator_a.encode(
        pixels.astype(np.float32) / 127.5 - 1)).numpy() + 1) * 127.5), 0, 255)
    assert served.dtype == np.uint8 and np.abs(served.astype(int) - keras_pixels).max() <= 1
    # the export holds the encoder and decoder only, not the discriminator heads
    saved = sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(
        os.path.join(path, "variables", "variables")) if not name.startswith("_CHECKPOINTABLE"))
    assert saved == model.discriminator_a.encoder.count_params() + model.generator_ab.count_params()


def test_translator_keras_file_and_size_rules(tmp_path):
    model = build_model("nicegan_light", **TINY)
    a2b = model.generators()["a2b"]
    assert a2b.encoder is model.discriminator_a.encoder and a2b.decoder is model.generator_ab
    assert (a2b.fixed_input_size, a2b.input_multiple) == (None, 4)
    x = random_images(1, SIZE, 4)
    path = str(tmp_path / "a2b.keras")
    a2b.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(), a2b(x).numpy(), atol=1e-6)
    full = build_model("nicegan", **TINY).generators()["b2a"]
    assert full.fixed_input_size == SIZE
