import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_CYCLEGAN, changed, random_images, unpaired, weights_of
from tf_translate import build_model
from tf_translate.models import PatchGANDiscriminator, ResNetGenerator


@pytest.mark.parametrize("blocks, expected", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_parameter_count_equals_reference(blocks, expected):
    generator = ResNetGenerator(num_residual_blocks=blocks)
    generator.build((None, None, None, 3))
    assert generator.count_params() == expected


def test_resize_conv_upsampling_keeps_parameter_count():
    generator = ResNetGenerator(upsampling="resize_conv")
    generator.build((None, None, None, 3))
    assert generator.count_params() == 11_378_179


def test_discriminator_parameter_count_and_patch_grid():
    discriminator = PatchGANDiscriminator()
    discriminator.build((None, None, None, 3))
    assert discriminator.count_params() == 2_764_737
    # 70x70 PatchGAN: 30x30 logits for a 256 image (junyanz docs).
    assert discriminator(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 30, 30, 1)


def torch_conv_transpose(x, kernel, bias, stride=2, padding=1, output_padding=1):
    """NumPy ConvTranspose2d with PyTorch's index rule: out[s*i + k - p] += x[i] * w[k]."""
    n, h, w, _ = x.shape
    kh, kw, c_out, _ = kernel.shape  # Keras Conv2DTranspose layout (kh, kw, out, in)
    out_h = (h - 1) * stride - 2 * padding + kh + output_padding
    out_w = (w - 1) * stride - 2 * padding + kw + output_padding
    out = np.zeros((n, out_h, out_w, c_out), np.float64) + bias
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    oi, oj = stride * i + a - padding, stride * j + b - padding
                    if 0 <= oi < out_h and 0 <= oj < out_w:
                        out[:, oi, oj, :] += x[:, i, j, :] @ kernel[a, b].T
    return out


def test_transposed_upsampling_uses_the_reference_pixel_grid():
    generator = ResNetGenerator(filters=2, num_residual_blocks=1)
    generator.build((None, None, None, 3))
    upsample = next(layer for layer in generator.stack if isinstance(layer, keras.Sequential)
                    and isinstance(layer.layers[0], keras.layers.Conv2DTranspose))
    x = np.random.default_rng(0).normal(size=(1, 5, 4, 8)).astype(np.float32)
    kernel, bias = [w.numpy() for w in upsample.layers[0].weights]
    np.testing.assert_allclose(upsample(x).numpy(), torch_conv_transpose(x, kernel, bias), atol=1e-5)


def test_strided_conv_pads_like_pytorch():
    # Conv 3x3 stride 2 padding 1: out[i] reads x[2i-1 .. 2i+1]; Keras "same" would read x[2i .. 2i+2].
    generator = ResNetGenerator(filters=1, num_residual_blocks=1)
    generator.build((None, None, None, 3))
    down = generator.stack[4]  # after pad, c7s1, IN, ReLU
    conv = down.layers[-1]
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[0, 0, 0, :] = 1.0  # picks x[2i - 1, 2j - 1]
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    x = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    out = down(x).numpy()[0, :, :, 0]
    padded = np.pad(x[0, :, :, 0], 1)
    np.testing.assert_array_equal(out, padded[0:6:2, 0:6:2])


def test_weights_are_initialised_like_the_reference():
    generator = ResNetGenerator()
    generator.build((None, None, None, 3))
    kernels = np.concatenate([w.numpy().ravel() for w in generator.weights if "kernel" in w.path])
    biases = np.concatenate([w.numpy().ravel() for w in generator.weights if "bias" in w.path])
    assert abs(kernels.std() - 0.02) < 1e-3 and abs(kernels.mean()) < 1e-3
    assert not biases.any()
    # Every layer draws its own weights: equal-shaped residual convs must differ.
    block_kernels = [w.numpy() for w in generator.weights if "kernel" in w.path and w.shape == (3, 3, 256, 256)]
    assert len(block_kernels) == 18
    assert all(not np.array_equal(block_kernels[0], k) for k in block_kernels[1:])


def test_config_round_trip_and_keras_file_give_equal_outputs(tmp_path):
    generator = ResNetGenerator(filters=8, num_residual_blocks=2, upsampling="resize_conv")
    x = random_images(2, 32)
    expected = generator(x).numpy()
    clone = ResNetGenerator.from_config(generator.get_config())
    assert clone.get_config() == generator.get_config()
    path = str(tmp_path / "g.keras")
    generator.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(x).numpy(), expected, atol=1e-6)


def test_training_model_config_round_trip():
    model = build_model("cyclegan", **TINY_CYCLEGAN)
    config = model.get_config()
    assert type(model).from_config(config).get_config() == config
    assert config["identity_weight"] == 5.0 and config["cycle_weight"] == 10.0


def test_build_model_rejects_unknown_name_listing_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'cycle_gan'.*cyclegan"):
        build_model("cycle_gan")


def one_step(model):
    model.fit(unpaired(count=2, batch_size=2), epochs=1, steps_per_epoch=1, verbose=0)


def test_jit_step_moves_only_the_updated_networks():
    """With one optimizer's learning rate at 0, only the other's networks move: the G
    update touches no D weight and the D update no G weight. One compiled step serves
    both halves (setting a learning rate assigns its variable; nothing is retraced)."""
    model = build_model("cyclegan", **TINY_CYCLEGAN, seed=0)
    model.compile(jit_compile=True)
    assert model.jit_compile
    generators = (model.generator_ab, model.generator_ba)
    discriminators = (model.discriminator_a, model.discriminator_b)

    def moved_after_a_step():
        before = {id(n): weights_of(n) for n in generators + discriminators}
        one_step(model)
        return ([changed(before[id(n)], n) for n in generators],
                [changed(before[id(n)], n) for n in discriminators])

    model.d_optimizer.learning_rate = 0.0
    moved_g, moved_d = moved_after_a_step()
    assert all(moved_g) and not any(moved_d)
    model.d_optimizer.learning_rate = 2e-4
    model.g_optimizer.learning_rate = 0.0
    moved_g, moved_d = moved_after_a_step()
    assert all(moved_d) and not any(moved_g)


def test_losses_of_a_step_match_a_hand_computation():
    """The first step's logged losses equal the reference formulas evaluated by hand on
    the pre-step networks (pool empty, so the discriminators see the fresh fakes)."""
    model = build_model("cyclegan", **TINY_CYCLEGAN, seed=0)
    model.compile(jit_compile=True)
    a, b = random_images(2, 32, 0), random_images(2, 32, 1)
    g_ab = lambda x: model.generator_ab(x).numpy()
    g_ba = lambda x: model.generator_ba(x).numpy()
    d_a = lambda x: model.discriminator_a(x).numpy()
    d_b = lambda x: model.discriminator_b(x).numpy()
    fake_b, fake_a = g_ab(a), g_ba(b)
    cycle = np.abs(g_ba(fake_b) - a).mean() + np.abs(g_ab(fake_a) - b).mean()
    identity = np.abs(g_ab(b) - b).mean() + np.abs(g_ba(a) - a).mean()
    adversarial = ((d_b(fake_b) - 1) ** 2).mean() + ((d_a(fake_a) - 1) ** 2).mean()
    d_loss = 0.5 * (((d_a(a) - 1) ** 2).mean() + (d_a(fake_a) ** 2).mean()) \
        + 0.5 * (((d_b(b) - 1) ** 2).mean() + (d_b(fake_b) ** 2).mean())
    logs = model.train_on_batch(a, b, return_dict=True)
    np.testing.assert_allclose(logs["cycle_loss"], cycle, rtol=1e-4)
    np.testing.assert_allclose(logs["identity_loss"], identity, rtol=1e-4)
    np.testing.assert_allclose(logs["g_loss"], adversarial + 10 * cycle + 5 * identity, rtol=1e-4)
    np.testing.assert_allclose(logs["d_loss"], d_loss, rtol=1e-4)


def test_mixed_precision_generator_is_close_to_float32():
    x = random_images(1, 32)
    generator = ResNetGenerator(filters=8, num_residual_blocks=2)
    expected = generator(x).numpy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = ResNetGenerator(filters=8, num_residual_blocks=2)
        half.build((None, None, None, 3))
        half.set_weights(generator.get_weights())
        out = half(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float32  # tanh output layer stays float32
    assert np.abs(out.numpy() - expected).max() < 2e-2


def test_mixed_float16_training_step_is_finite_and_loss_scaled():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("cyclegan", **TINY_CYCLEGAN, seed=0)
        model.compile(jit_compile=True)
        assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
        logs = model.train_on_batch(random_images(2, 32, 0), random_images(2, 32, 1), return_dict=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(v) for v in logs.values())
    assert model.generator_ab.weights[0].dtype == "float32"  # master weights stay float32


DISTRIBUTED_FIT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from helpers import TINY_CYCLEGAN, unpaired, weights_of, changed
from tf_translate import build_model
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    model = build_model("cyclegan", **TINY_CYCLEGAN, seed=0)
    model.compile(total_steps=4)
before = weights_of(model.generator_ab)
history = model.fit(unpaired(count=8, batch_size=4), epochs=1, steps_per_epoch=2, verbose=0)
assert changed(before, model.generator_ab)
assert int(model.pool_a.count.numpy()) == 4
print("ok", history.history["g_loss"][-1])
"""


def test_fit_under_a_mirrored_strategy_on_two_devices(tmp_path):
    import os
    import subprocess
    import sys
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED_FIT)
    done = subprocess.run([sys.executable, str(script), os.path.dirname(__file__)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
