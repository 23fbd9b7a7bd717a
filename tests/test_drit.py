"""DRIT++: parameter counts, the schedule and two-phase update against a PyTorch
re-statement, the losses by hand, which variables each phase moves, multimodal
sampling, export and the CLI.

Small networks run at 64 px with `content_discriminator_layers=1` (the reference's 3
layers need images of 212 px or more): the documented test configuration.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from trajectories import Trajectory, trajectory
from tf_translate.models.drit import DRIT, DRITMultiScaleDiscriminator, unique
from tf_translate.layers import InstanceNormalization

TINY = dict(image_size=64, filters=4, attribute_filters=4, discriminator_filters=4, content_discriminator_filters=8,
            content_discriminator_layers=1)
TORCH_TINY = dict(filters=4, attribute_filters=4, dis_filters=4, content_dis_filters=8, content_dis_layers=1)


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_parameter_counts_equal_the_reference():
    """REFERENCE-WAVE2.md §1, measured by building the official classes."""
    model = DRIT()
    assert count(unique(model.content_encoder_a.trainable_variables
                        + model.content_encoder_b.trainable_variables)) == 9_018_112
    assert count(model.attribute_encoder_a.trainable_variables + model.attribute_encoder_b.trainable_variables) \
        == 2_688_160
    assert count(unique(model.generator_a.trainable_variables + model.generator_b.trainable_variables)) == 9_564_710
    for d in (model.discriminator_a, model.discriminator_b, model.discriminator_a2, model.discriminator_b2):
        assert count(d.trainable_variables) == 8_271_171
    assert count(model.content_discriminator.trainable_variables) == 10_683_649
    assert count(v for vs in model.optimizer_variables().values() for v in vs) == 65_039_315
    variant = DRIT(concat=False)
    assert count(variant.attribute_encoder_a.trainable_variables
                 + variant.attribute_encoder_b.trainable_variables) == 5_529_872
    assert count(unique(variant.generator_a.trainable_variables
                        + variant.generator_b.trainable_variables)) == 17_146_374


def test_minimum_size_is_checked_up_front():
    with pytest.raises(ValueError, match="multiple of 4 and at least 212 px") as error:
        DRIT(image_size=208, filters=4, attribute_filters=4, discriminator_filters=4, content_discriminator_filters=8)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="at least 64 px"):
        DRIT(**{**TINY, "image_size": 40})


def test_released_discriminators_have_no_norm_and_the_paper_variant_has_it():
    released, paper = DRITMultiScaleDiscriminator(filters=4), DRITMultiScaleDiscriminator("instance", 0.2, filters=4)
    layers_of = lambda d: [layer for scale in d.scales for layer in scale.layers]
    assert not any(isinstance(layer, InstanceNormalization) for layer in layers_of(released))
    assert sum(isinstance(layer, InstanceNormalization) for layer in layers_of(paper)) == 12
    slopes = lambda d: {layer.negative_slope for layer in layers_of(d) if hasattr(layer, "negative_slope")}
    assert slopes(released) == {0.01} and slopes(paper) == {0.2}
    paper.set_weights(released.get_weights())
    x = random_images(1, 64)
    assert np.abs(released(x)[0] - paper(x)[0]).max() > 1e-3  # the flag changes the model


# --- the training step against the PyTorch re-statement ----------------------------------

def rescale(model, rng):
    """Kernels N(0, 1/fan_in): the reference's N(0, 0.02) leaves tiny networks' fakes nearly
    constant, and instance norms of near-constant maps turn float32 round-off into percent
    differences between any two implementations (torch float32 vs float64 included)."""
    for v in model.trainable_variables:
        if len(v.shape) >= 2:
            fan_in = (v.shape[0] if len(v.shape) == 2 else
                      v.shape[0] * v.shape[1] * (v.shape[3] if "transposed" in v.path else v.shape[2]))
            v.assign(rng.normal(0, 1 / np.sqrt(fan_in), v.shape).astype(np.float32))


def iteration_noise(rng, full, content_channels=16):
    shape = (1, 16, 16, content_channels)
    names = ["content_a", "content_b"] + (["content_recon_a", "content_recon_b"] if full else [])
    noise = {name: rng.normal(size=shape) for name in names}
    if full:
        for name in ("attribute_a", "attribute_b", "random", "random2", "attribute_recon_a", "attribute_recon_b"):
            noise[name] = rng.normal(size=(1, 8))
    return {k: v.astype(np.float32) for k, v in noise.items()}


def parity_inputs():
    rng = np.random.default_rng(0)
    return [(rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32), rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32),
             iteration_noise(rng, (it + 1) % 3 == 0)) for it in range(3)]


# Parity widths: discriminator_layers 3 keeps the recorded trajectory near 2 MB (169,795 weights).
PARITY = dict(TINY, discriminator_layers=3)
TORCH_PARITY = dict(TORCH_TINY, dis_layers=3)


def parity_model(**overrides):
    """The parity start: seeded biases and layer norms, kernels N(0, 1/fan_in)."""
    import keras

    keras.utils.set_random_seed(0)  # biases and layer norms too: the run is the same every time
    model = DRIT(**PARITY, seed=0, **overrides)
    rescale(model, np.random.default_rng(1))
    return model


def parity_variables(model):
    return unique([v for vs in model.optimizer_variables().values() for v in vs])


def record_drit():
    """Three reference iterations (content, content, full) in float64 and float32 from the
    parity start, with `parity_inputs`' images and noise (regenerated by the replay)."""
    import torch

    from torch_drit import TorchDRIT

    model = parity_model()
    sides = {"float64": TorchDRIT(**TORCH_PARITY), "float32": TorchDRIT(**TORCH_PARITY, dtype=torch.float32)}
    for side in sides.values():
        side.load_keras(model)
    variables = parity_variables(model)
    order = lambda by_id: [by_id[id(v)] for v in variables]
    start = order(sides["float64"].weights_as_keras(model))
    losses = []
    for iteration, (a, b, noise) in enumerate(parity_inputs()):
        for name, side in sides.items():
            step = side.step(a, b, noise, full=(iteration + 1) % 3 == 0)
            losses.append(step) if name == "float64" else None
    return trajectory(model, variables, start, order(sides["float64"].weights_as_keras(model)),
                      order(sides["float32"].weights_as_keras(model)), losses)


def our_parity_run(model, replay, **optimizers):
    """Our three eager iterations from the recorded start, with `parity_inputs`."""
    model.compile(jit_compile=False, **optimizers)
    replay.assign_start(model)
    current = {}
    model.noise = lambda shape, name: tf.constant(current[name])
    kinds = []
    for a, b, noise in parity_inputs():
        current.update(noise)
        kinds.append(float(model.train_step((tf.constant(a), tf.constant(b)))["full_step"]))
    return kinds


def parity_misses(model, replay):
    from test_step_parity import update_miss

    start, expected = replay.by_id(model, replay.start), replay.by_id(model, replay.final)
    ours, float32 = replay.by_id(model, replay.values(model)), replay.by_id(model, replay.final32)
    groups = model.optimizer_variables()
    return {"ours": {g: update_miss(vs, ours, expected, start) for g, vs in groups.items()},
            "float32": {g: update_miss(vs, float32, expected, start) for g, vs in groups.items()}}


@pytest.fixture(scope="module")
def parity():
    """Three iterations (content, content, full) of ours against the recorded reference
    re-statement in float64 and float32 (tests/fixtures/trajectories/drit.npz;
    test_fixtures_current.py re-records it), from equal weights."""
    replay = Trajectory("drit")
    model = parity_model()
    kinds = our_parity_run(model, replay)
    return {"kinds": kinds, **parity_misses(model, replay), "replay": replay, "model": model,
            "steps": {name: int(getattr(model, name).iterations.numpy()) for name in model.optimizer_variables()}}


def test_schedule_is_two_content_steps_then_a_full_step(parity):
    assert parity["kinds"] == [0.0, 0.0, 1.0]
    # D_content steps every iteration; E_c + G twice in the full step (EG, then G alone).
    assert parity["steps"] == {"content_d_optimizer": 3, "d_optimizer": 1, "g_optimizer": 2,
                               "attribute_optimizer": 1}


# The 0.01 % slack covers our float32 noise on other CPUs (content D and image Ds at 1.0x).
SLACK = 1e-4


def test_updates_match_the_reference_two_phase_sequence(parity):
    """Measured (seeded, eager, AMD EPYC): ours misses 0.0026-0.013 % of the float64 reference's
    update per optimizer group (content D 0.0028 %, image Ds 0.0026 %, E_c + G 0.013 %, E_attr
    0.0039 %); the reference's own float32 run 0.0028 %, 0.0026 %, 5.4 % and 2.6 % (Adam's
    first steps turn float32 round-off of near-zero gradients into whole-step sign changes),
    so the E_c + G and E_attr allowances are 8.2 % and 4.0 %. oneDNN off: the same within
    0.0002 % of the update."""
    from test_step_parity import within_float32_floor

    assert all(within_float32_floor(parity, SLACK).values()), parity


@pytest.mark.parametrize("variant", ["keras_adam", "no_weight_decay"])
def test_the_parity_check_can_fail(parity, variant):
    """Our three iterations from the same start with one deliberate difference miss the
    reference beyond the rule in at least one group: Keras' Adam arithmetic (epsilon 1e-7,
    added before the bias correction) in every optimizer; no weight decay. Measured
    (content D, image Ds, E_c + G, E_attr): 0.54 %, 11 %, 11 %, 1.1 %; 0.23 %, 28 %, 23 %, 1.9 %."""
    from test_step_parity import within_float32_floor

    from tf_translate.optimizers import make_adam

    model = parity_model(**({"weight_decay": 0.0} if variant == "no_weight_decay" else {}))
    optimizers = {}
    if variant == "keras_adam":  # the same rates (constant over these iterations)
        optimizers = {name: make_adam(float(optimizer.learning_rate), 0.5, 0.999, epsilon=1e-7, pytorch_epsilon=False)
                      for name, optimizer in model.default_optimizers(None, 1).items()}
    our_parity_run(model, parity["replay"], **optimizers)
    run = parity_misses(model, parity["replay"])
    assert not all(within_float32_floor(run, SLACK).values()), run


def test_summing_both_phases_into_one_step_would_fail_the_check(parity):
    """The #48 workaround (one backward of EG + G-alone, one step) is not the reference:
    measured 53 % of the E_c/G update and 101 % of E_attr's (it then gets the latent
    regression gradient) missed, against allowances of 8.2 % and 4.0 %. A property of the re-statement,
    so it runs torch (the summed variant) from the recorded start."""
    pytest.importorskip("torch")
    from test_step_parity import update_miss
    from torch_drit import TorchDRIT

    replay = parity["replay"]
    model = parity_model()
    replay.assign_start(model)
    summed = TorchDRIT(**TORCH_PARITY, summed=True)
    summed.load_keras(model)
    for iteration, (a, b, noise) in enumerate(parity_inputs()):
        summed.step(a, b, noise, full=(iteration + 1) % 3 == 0)
    start, expected = replay.by_id(model, replay.start), replay.by_id(model, replay.final)
    values = summed.weights_as_keras(model)
    groups = model.optimizer_variables()
    miss = {g: update_miss(groups[g], values, expected, start) for g in ("g_optimizer", "attribute_optimizer")}
    floor = {g: 1.5 * parity["float32"][g] + SLACK for g in miss}
    assert all(miss[g] > floor[g] for g in miss), (miss, floor)


def test_each_phase_moves_its_own_variables():
    model = DRIT(**TINY, seed=0)
    model.compile(jit_compile=False)
    applied, original = [], model.apply_gradients
    model.apply_gradients = lambda name, grads: (applied.append((name, grads)), original(name, grads))[1]
    a, b = random_images(2, 64), random_images(2, 64, seed=1)
    model.train_step((tf.constant(a), tf.constant(b)))
    assert [name for name, _ in applied] == ["content_d_optimizer"]  # iteration 0: content only
    applied.clear()
    model.full_step(tf.constant(a), tf.constant(b))
    assert [name for name, _ in applied] == ["d_optimizer", "content_d_optimizer", "g_optimizer",
                                             "attribute_optimizer", "g_optimizer"]
    variables = model.optimizer_variables()
    attribute_ids = {id(v) for v in variables["attribute_optimizer"]}
    assert attribute_ids == {id(v) for v in model.attribute_encoder_a.trainable_variables
                             + model.attribute_encoder_b.trainable_variables}
    assert not attribute_ids & {id(v) for v in variables["g_optimizer"]}
    # The latent regression does reach E_attr's weights (it runs E_attr on the fakes), but
    # no optimizer applies that gradient: the attribute optimizer steps once, with EG's.
    with tf.GradientTape() as tape:
        f = model.forward(tf.constant(a[:1]), tf.constant(b[:1]))
        loss = model.g_alone_losses(f)["latent_regression_loss"]
    grads = tape.gradient(loss, variables["attribute_optimizer"])
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads if g is not None) > 0
    assert int(model.attribute_optimizer.iterations.numpy()) == 1


def test_mode_seeking_latent_regression_and_kl_by_hand():
    model = DRIT(**TINY, seed=0)
    rng = np.random.default_rng(3)
    image = lambda: rng.uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    code = lambda: rng.normal(size=(1, 8)).astype(np.float32)
    f = {name: image() for name in ("fake_a_random", "fake_b_random", "fake_a_random2", "fake_b_random2")}
    f.update({name: code() for name in ("random", "random2", "regressed_a", "regressed_b")})
    losses = model.g_alone_losses({k: tf.constant(v) for k, v in f.items()})
    dz = np.abs(f["random2"] - f["random"]).mean()
    ms = (1 / (np.abs(f["fake_b_random2"] - f["fake_b_random"]).mean() / dz + 1e-5)
          + 1 / (np.abs(f["fake_a_random2"] - f["fake_a_random"]).mean() / dz + 1e-5))
    assert float(losses["mode_seeking_loss"]) == pytest.approx(ms, rel=1e-5)
    lr = 10 * (np.abs(f["regressed_a"] - f["random"]).mean() + np.abs(f["regressed_b"] - f["random"]).mean())
    assert float(losses["latent_regression_loss"]) == pytest.approx(lr, rel=1e-5)
    # KL of z_a: a sum over batch and code (not a mean), times 0.01.
    mean, log_variance = code(), code()
    kl = -0.5 * np.sum(1 + log_variance - mean ** 2 - np.exp(log_variance)) * 0.01 * 2
    f = {"mean_a": mean, "log_variance_a": log_variance, "mean_b": mean, "log_variance_b": log_variance}
    content = rng.normal(size=(1, 16, 16, 16)).astype(np.float32)
    f.update(content_a=content, content_b=content, fake_a_encoded=image(), fake_b_encoded=image(),
             recon_a=image(), recon_b=image(), fake_a_self=image(), fake_b_self=image())
    real = image()
    losses = model.eg_losses({k: tf.constant(v) for k, v in f.items()}, tf.constant(real), tf.constant(real))
    assert float(losses["kl_loss"]) == pytest.approx(kl, rel=1e-5)
    assert float(losses["content_kl_loss"]) == pytest.approx(0.02 * np.mean(content ** 2), rel=1e-5)


def test_learning_rate_decays_per_epoch_as_the_reference():
    """1 − max(0, ep − E/2) / (E/2 + 1) for epoch ep of E; each optimizer counts its own steps."""
    from tf_translate.models.drit import full_iterations

    model = DRIT(**TINY)
    model.compile(total_steps=10 * 7, steps_per_epoch=7, jit_compile=False)  # 10 epochs of 7 iterations
    full = full_iterations(7)
    assert full == 3  # iterations 2, 5, 6: every third and the epoch's last two
    factor = lambda ep: 1 - max(0, ep - 5) / 6
    def rate(name, step):
        optimizer = getattr(model, name)
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    for ep in (0, 5, 6, 9):
        assert rate("content_d_optimizer", ep * 7) == pytest.approx(4e-5 * factor(ep))
        assert rate("d_optimizer", ep * full) == pytest.approx(1e-4 * factor(ep))
        assert rate("attribute_optimizer", ep * full + 2) == pytest.approx(1e-4 * factor(ep))
        assert rate("g_optimizer", ep * 2 * full + 5) == pytest.approx(1e-4 * factor(ep))
    assert [bool(model.is_full_iteration(i)) for i in range(7)] == [False, False, True, False, False, True, True]


# --- multimodal use ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-iteration run through `training.train` (the CLI's path): 2 content steps and one
    full step, on 12 images per domain (6 iterations per epoch at batch 2). Without XLA:
    compiling both branches of the step took 100 s here (with XLA the same run passes)."""
    from PIL import Image

    from tf_translate.training import train

    root = tmp_path_factory.mktemp("drit")
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        os.makedirs(root / "data" / domain)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "data" / domain / f"{i}.png")
    overrides = {k: v for k, v in TINY.items() if k != "image_size"}
    model = train("drit", str(root / "data"), str(root / "run"), steps=3, batch_size=2, image_size=64, load_size=64,
                  seed=0, model_overrides=overrides, verbose=0, checkpoint_every=3, sample_every=0,
                  xla=os.environ.get("DRIT_TEST_XLA") == "1")
    return root, model


def test_a_three_iteration_run_takes_both_step_kinds(trained):
    _, model = trained
    assert int(model.content_d_optimizer.iterations.numpy()) == 3
    assert int(model.d_optimizer.iterations.numpy()) == 1
    assert int(model.g_optimizer.iterations.numpy()) == 2


def test_samples_differ_for_different_codes_and_repeat_for_equal_codes(trained):
    _, model = trained
    translator = model.generators()["a2b"]
    x = tf.constant(random_images(2, 64))
    z1, z2 = tf.random.stateless_normal((2, 8), [1, 2]), tf.random.stateless_normal((2, 8), [3, 4])
    first, again, other = translator([x, z1]), translator([x, z1]), translator([x, z2])
    assert np.array_equal(first.numpy(), again.numpy())
    assert np.abs(first.numpy() - other.numpy()).mean() > 1e-4
    # Random codes come from the translator's seeded stream: new per call, the same per seed.
    fresh = lambda: DRIT(**TINY, seed=5).generators()["a2b"]
    one, two = fresh(), fresh()
    for network in (one, two):
        network.set_weights(translator.get_weights()[:len(network.get_weights())])
    first, second = one(x).numpy(), one(x).numpy()
    assert np.abs(first - second).mean() > 1e-4
    assert np.array_equal(first, two(x).numpy())


def test_diversity_is_positive_where_cyclegan_has_none(trained):
    from tf_translate.metrics.distances import diversity

    _, model = trained
    translator = model.generators()["a2b"]
    x = tf.constant(random_images(3, 64))
    samples = np.stack([translator(x).numpy().reshape(3, -1) for _ in range(5)], axis=1)  # (inputs, 5, d)
    assert diversity(samples) > 0.01
    assert diversity(np.repeat(samples[:, :1], 5, axis=1)) == 0.0  # one output per input, as CycleGAN


def test_saved_model_takes_the_image_and_an_optional_code(trained, tmp_path):
    from tf_translate.export import export_saved_model

    _, model = trained
    translator = model.generators()["a2b"]
    path = export_saved_model(translator, str(tmp_path / "sm"), seed=7)
    loaded = tf.saved_model.load(path)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 64, 58, 3)).astype(np.uint8)
    code = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    served = loaded.signatures["serving_attributes"](images=tf.constant(pixels), attributes=tf.constant(code))
    padded = np.pad(pixels, ((0, 0), (0, 0), (0, 2), (0, 0)), mode="symmetric").astype(np.float32) / 127.5 - 1
    expected = np.clip(np.round((translator([padded, code]).numpy()[:, :, :58] + 1) * 127.5), 0, 255)
    assert np.abs(served["images"].numpy().astype(int) - expected).max() <= 1
    serve = loaded.signatures["serving_default"]
    first, second = (serve(images=tf.constant(pixels))["images"].numpy() for _ in range(2))
    assert np.abs(first.astype(int) - second).max() > 0  # a new random code per call
    again = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(pixels))["images"].numpy()
    assert np.array_equal(first, again)  # seeded: a fresh load repeats the sequence
    stats = loaded.signatures["encode_attributes"](images=tf.constant(pixels))
    mean, std = translator.attribute_statistics(tf.constant(pixels.astype(np.float32) / 127.5 - 1))
    assert np.allclose(stats["mean"].numpy(), mean.numpy(), atol=1e-5)
    assert np.allclose(stats["std"].numpy(), std.numpy(), atol=1e-5)


def test_cli_translates_several_samples_and_transfers_a_reference(trained, tmp_path, capsys):
    from PIL import Image

    from tf_translate.cli import main

    root, _ = trained
    run, inputs = str(root / "run"), str(root / "data" / "trainA")
    out = tmp_path / "samples"
    assert main(["translate", "--run-dir", run, "--input", inputs, "--output", str(out), "--samples", "3",
                 "--seed", "1"]) == 0
    assert len(os.listdir(out)) == 36
    load = lambda path: np.asarray(Image.open(path)).astype(int)
    assert np.abs(load(out / "0_0.png") - load(out / "0_1.png")).max() > 0
    repeat = tmp_path / "repeat"
    assert main(["translate", "--run-dir", run, "--input", os.path.join(inputs, "0.png"), "--output", str(repeat),
                 "--samples", "3", "--seed", "1"]) == 0
    assert np.array_equal(load(out / "0_0.png"), load(repeat / "0_0.png"))
    transfer = tmp_path / "transfer"
    assert main(["translate", "--run-dir", run, "--input", os.path.join(inputs, "0.png"), "--output",
                 str(transfer), "--reference", str(root / "data" / "trainB" / "3.png")]) == 0
    assert os.listdir(transfer) == ["0.png"]
    capsys.readouterr()
    assert main(["train", "--model", "drit", "--data", str(root / "data"), "--run-dir", str(tmp_path / "small"),
                 "--image-size", "200", "--steps", "1"]) == 2
    assert "at least 212 px" in capsys.readouterr().err

