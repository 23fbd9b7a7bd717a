"""UNIT: networks against the reference's counts and numerics, the training step against a
PyTorch re-statement of the official `dis_update` + `gen_update` (`torch_unit.py`; its
trajectories are recorded in tests/fixtures/trajectories and replayed without torch), the
import of the official `gen_XXXXXXXX.pt` layout, and the CLI round trip.

Tiny models run at 64 px: the default discriminator (3 scales of 4 reflect-padded
stride-2 convs) needs 61 px or more, so 32 px is refused (tested below).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import random_images
from tf_translate import build_model
from tf_translate.layers.multiscale import ExcludePadAveragePooling2D, MultiScaleDiscriminator
from tf_translate.layers.normalization import UNITLayerNormalization
from tf_translate.models.unit import UNIT, UNITGenerator
from tf_translate.schedules import StepDecay
from trajectories import relu_gates

SIZE = 64
TINY = dict(image_size=SIZE, filters=8, num_residual_blocks=2, discriminator_filters=8)
NOISE_NAMES = ("dis_n_a", "dis_n_b", "n_a", "n_b", "n_a_recon", "n_b_recon")
RESIDUAL_BLOCK_PARAMETERS = 2 * (256 * 256 * 9 + 256)  # 1,180,160 at the default width


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.fixture(scope="module")
def default_networks():
    generator = UNITGenerator()
    generator.build((None, None, None, 3))
    discriminator = MultiScaleDiscriminator()
    discriminator.build((None, None, None, 3))
    return generator, discriminator


def test_parameter_counts_equal_reference(default_networks):
    """REFERENCE-WAVE2.md §1: VAEGen 11,140,483 (encoder 5,385,856, decoder 5,754,627),
    MsImageDis 8,271,171 with 16², 8², 4² outputs at 256 px; 38,823,308 for the four."""
    generator, discriminator = default_networks
    assert count(generator.trainable_weights) == 11_140_483
    assert count(generator.encoder.trainable_weights) == 5_385_856
    assert count(generator.decoder.trainable_weights) == 5_754_627
    assert count(discriminator.trainable_weights) == 8_271_171
    outputs = discriminator(np.zeros((1, 256, 256, 3), np.float32))
    assert [tuple(o.shape) for o in outputs] == [(1, 16, 16, 1), (1, 8, 8, 1), (1, 4, 4, 1)]
    model = UNIT(image_size=SIZE)
    assert sum(count(vs) for vs in model.optimizer_variables().values()) == 38_823_308


def test_shared_layers_drop_one_block_per_shared_layer_and_side():
    """shared_layers=1 (version_02): one encoder and one decoder residual block fewer in
    the two generators together, counted once by the optimizer."""
    model = UNIT(image_size=SIZE, shared_layers=1)
    g = model.optimizer_variables()["g_optimizer"]
    assert count(g) == 2 * 11_140_483 - 2 * RESIDUAL_BLOCK_PARAMETERS
    assert len({id(v) for v in g}) == len(g)


def np_unit_layer_norm(x, gamma, beta, eps=1e-5):
    """The reference's LayerNorm: unbiased std over (C, H, W) per sample, eps added to it."""
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, ddof=1)[:, None, None, None]
    return (x - mean) / (std + eps) * gamma + beta


def test_unit_layer_norm_matches_numpy_and_differs_from_keras():
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.standard_normal((2, 5, 6, 4))).astype(np.float32)
    x[1] *= 0.01  # small σ: eps outside the root matters
    layer = UNITLayerNormalization()
    layer.build(x.shape)
    gamma, beta = rng.uniform(0, 1, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected = np_unit_layer_norm(x, gamma, beta)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    keras_ln = keras.layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5)
    keras_ln.build(x.shape)
    biased = keras_ln(x).numpy()  # γ 1, β 0: biased variance, eps inside the root
    assert np.abs(biased - np_unit_layer_norm(x, 1.0, 0.0)).max() > 1e-2


def test_unit_layer_norm_starts_with_uniform_gamma_and_zero_beta():
    layer = UNITLayerNormalization()
    layer.build((None, 4, 4, 20_000))
    gamma = layer.gamma.numpy()
    assert gamma.min() >= 0.0 and gamma.max() < 1.0
    assert gamma.min() < 0.001 and gamma.max() > 0.999  # U(0, 1), not ones or a narrow range
    assert abs(gamma.mean() - 0.5) < 0.01 and abs(gamma.std() - np.sqrt(1 / 12)) < 0.01
    assert not layer.beta.numpy().any()


def np_average_pool_excluding_padding(x, k=3, s=2, p=1):
    """nn.AvgPool2d(k, s, p, count_include_pad=False) on an NHWC array."""
    n, h, w, c = x.shape
    out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((n, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(max(i * s - p, 0), min(i * s - p + k, h))
            cols = slice(max(j * s - p, 0), min(j * s - p + k, w))
            out[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 9, 2)])
def test_average_pooling_divides_by_the_pixels_inside(shape):
    x = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32) + 1.0
    out = ExcludePadAveragePooling2D(3, 2, 1)(x).numpy()
    expected = np_average_pool_excluding_padding(x)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    # The corner window covers 4 pixels: counting the 5 padded zeros would give 4/9 of it.
    np.testing.assert_allclose(out[:, 0, 0], x[:, :2, :2].mean(axis=(1, 2)), rtol=1e-6)


def test_too_small_images_are_one_line_errors():
    with pytest.raises(ValueError, match=r"needs images of at least 61x61, got 32x32") as error:
        MultiScaleDiscriminator(filters=4)(np.zeros((1, 32, 32, 3), np.float32))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="below the discriminator's minimum 61"):
        UNIT(image_size=32, filters=4, discriminator_filters=4)
    assert MultiScaleDiscriminator(num_scales=2).min_size() == 31


def test_initialisation_is_kaiming_then_gaussian_discriminators(default_networks):
    """weights_init('kaiming') on every conv (N(0, 2/fan_in), untruncated, bias 0), then
    the discriminators N(0, 0.02), bias 0."""
    generator, discriminator = default_networks
    block = generator.encoder.blocks[0].body[0].conv  # 3x3, 256 -> 256
    kernel = block.kernel.numpy()
    sigma = np.sqrt(2.0 / (9 * 256))
    assert abs(kernel.std() / sigma - 1) < 0.01
    assert np.abs(kernel).max() > 3.5 * sigma  # Keras' HeNormal truncates at 2σ
    biases = [w.numpy() for w in generator.weights if w.path.endswith("bias")]
    assert len(biases) == 22 and not any(b.any() for b in biases)  # 11 convs each side
    d_kernels = [w.numpy() for w in discriminator.weights if w.path.endswith("kernel")]
    big = max(d_kernels, key=np.size)
    assert abs(big.std() - 0.02) < 2e-4 and abs(big.mean()) < 2e-4
    assert not any(w.numpy().any() for w in discriminator.weights if w.path.endswith("bias"))


def record_step_lr():
    """torch StepLR(step_size=3, gamma=0.5) on an Adam, stepped at the start of each of 10
    iterations as UNIT's train.py does (update_learning_rate() before the updates)."""
    import warnings

    import torch

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    used = []
    with warnings.catch_warnings():  # torch warns of this order, which is the reference's
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
        for _ in range(10):
            scheduler.step()
            used.append(optimizer.param_groups[0]["lr"])
    return {"array/rates": np.array(used)}


def test_step_decay_matches_torch_steplr_stepped_at_each_iteration_start():
    """Against StepLR's rates, recorded by `record_step_lr` (tests/fixtures/trajectories)."""
    from trajectories import reference_values

    used = list(reference_values("step_lr")["array/rates"])
    ours = [float(StepDecay(1e-4, 3, 0.5)(k)) for k in range(10)]
    np.testing.assert_allclose(ours, used, rtol=1e-6)
    assert used[:3] == [1e-4, 1e-4, 0.5e-4]  # the first halving one iteration early
    after = [float(StepDecay(1e-4, 3, 0.5, step_at_start=False)(k)) for k in range(10)]
    assert not np.allclose(after, used)
    schedule = UNIT(**TINY).default_optimizers(None, 1)["g_optimizer"].get_config()["learning_rate"]
    assert schedule["class_name"] == "StepDecay"
    assert schedule["config"] == {"initial_learning_rate": 1e-4, "decay_steps": 100_000, "decay_rate": 0.5,
                                  "step_at_start": True}
    default = StepDecay(**schedule["config"])
    assert float(default(99_998)) == pytest.approx(1e-4) and float(default(99_999)) == pytest.approx(5e-5)


def test_translation_decodes_without_noise_and_training_with_it():
    model = UNIT(**TINY, seed=3)
    x = random_images(2, SIZE, 5)
    a2b = model.generators()["a2b"]
    first, second = a2b(x).numpy(), a2b(x).numpy()
    np.testing.assert_array_equal(first, second)
    h = model.generator_a.encode(x)
    np.testing.assert_allclose(first, model.generator_b.decode(h).numpy(), atol=1e-6)
    noise = model.latent_noise(h, "n_a")
    other = model.latent_noise(h, "n_a")
    assert noise.shape == h.shape and not np.allclose(noise, other)  # fresh draws
    assert abs(float(tf.reduce_mean(noise))) < 0.02 and abs(float(tf.math.reduce_std(noise)) - 1) < 0.02
    trained = model.generator_b.decode(h + noise).numpy()
    assert np.abs(trained - first).mean() > 1e-3
    b2a = model.generators()["b2a"]
    np.testing.assert_allclose(b2a(x).numpy(), model.generator_a.decode(model.generator_b.encode(x)).numpy(),
                               atol=1e-6)
    assert a2b.input_multiple == 4 and a2b.fixed_input_size is None


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def moved(before, variables):
    return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_each_update_moves_only_its_networks():
    """The D step (`dis_update`) leaves every generator weight as it was and moves every
    discriminator weight (weight decay moves even the zero-gradient ones); the G step the
    reverse."""
    model = UNIT(**TINY, shared_layers=1, seed=0)
    model.compile(jit_compile=False)
    d_vars, g_vars = model.optimizer_variables()["d_optimizer"], model.optimizer_variables()["g_optimizer"]
    a, b = tf.constant(random_images(1, SIZE, 0)), tf.constant(random_images(1, SIZE, 1))
    d0, g0 = snapshot(d_vars), snapshot(g_vars)
    logs = model.discriminator_step(a, b)
    assert all(moved(d0, d_vars)) and not any(moved(g0, g_vars))
    assert set(logs) == {"d_loss", "d_a_loss", "d_b_loss"}
    d1, g1 = snapshot(d_vars), snapshot(g_vars)
    model.generator_step(a, b)
    assert all(moved(g1, g_vars)) and not any(moved(d1, d_vars))
    assert int(model.d_optimizer.iterations) == 1 and int(model.g_optimizer.iterations) == 1


def test_shared_layers_are_one_set_of_variables_and_round_trip(tmp_path):
    model = UNIT(**TINY, shared_layers=1)
    enc_a, enc_b = model.generator_a.encoder, model.generator_b.encoder
    dec_a, dec_b = model.generator_a.decoder, model.generator_b.decoder
    assert enc_a.blocks[-1] is enc_b.blocks[-1] and enc_a.blocks[0] is not enc_b.blocks[0]
    assert dec_a.blocks[0] is dec_b.blocks[0] and dec_a.blocks[-1] is not dec_b.blocks[-1]
    shared = {id(v) for v in enc_a.blocks[-1].weights + dec_a.blocks[0].weights}
    assert shared <= {id(v) for v in model.generator_b.weights}
    # The config rebuilds the architecture; saved weights (shared blocks once) load back.
    copy = build_model("unit", **model.get_config())
    assert copy.get_config() == model.get_config()
    x = random_images(1, SIZE, 2)
    model.generator_a.encoder.blocks[-1].body[0].conv.kernel.assign_add(
        tf.ones_like(model.generator_a.encoder.blocks[-1].body[0].conv.kernel) * 0.01)
    path = str(tmp_path / "shared.weights.h5")
    model.save_weights(path)
    copy.load_weights(path)
    for direction in ("a2b", "b2a"):
        np.testing.assert_array_equal(copy.generators()[direction](x).numpy(),
                                      model.generators()[direction](x).numpy())
    assert copy.generator_a.encoder.blocks[-1] is copy.generator_b.encoder.blocks[-1]


# ---------------------------------------------------------------------------------------
# Step parity with the PyTorch re-statement of the official dis_update + gen_update.

STEPS = 3
# Widths 4: 100,388 weights, so each recorded trajectory stays near 1 MB.
PARITY = dict(TINY, filters=4, discriminator_filters=4, num_residual_blocks=1,
              decay_steps=2)  # iterations 2 and 3 run at lr / 2
PARITY_SEED, SHARED_SEED = 1, 2  # the start weights (see test_updates_match_the_reference_step)


def parity_batches():
    return [(random_images(1, SIZE, 10 + 2 * step), random_images(1, SIZE, 11 + 2 * step))
            for step in range(STEPS)]


def noise_table(model):
    """{draw name: [STEPS, 1, h, w, c]} standard normal latent noise, one per reference draw."""
    latent = (1, SIZE // 4, SIZE // 4, model.filters * 4)
    rng = np.random.default_rng(7)
    return {name: rng.standard_normal((STEPS,) + latent).astype(np.float32) for name in NOISE_NAMES}


def inject_noise(model, table):
    """Our step draws the table's noise of the current iteration instead of its stream."""
    tables = {name: tf.constant(value) for name, value in table.items()}
    model.latent_noise = lambda h, draw: tf.cast(tf.gather(tables[draw], model.g_optimizer.iterations), h.dtype)


def paired_variables(model):
    from torch_unit import keras_pairs

    seen, variables = set(), []
    for _, variable, _, _ in keras_pairs(model):
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def values(model, variables=None):
    """{id(variable): float64 value} of `variables` (default: the reference pairing's)."""
    return {id(v): v.numpy().astype(np.float64) for v in variables or paired_variables(model)}


def reference_run(model, table, **overrides):
    """STEPS reference iterations in float64 and float32 from the model's current weights."""
    import torch

    from torch_unit import TorchUNIT

    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for dtype in (torch.float64, torch.float32):
            reference = TorchUNIT.like(model, dtype, **overrides)
            losses = [reference.step(a, b, {name: noise[step] for name, noise in table.items()})
                      for step, (a, b) in enumerate(parity_batches())]
            out[str(dtype)] = {"losses": losses, "weights": reference.weights_as_keras(model)}
    finally:
        torch.set_num_threads(threads)
    return out


# Measured ours (the float32 reference), AMD EPYC, oneDNN on and off: generators 0.0035 %
# (0.0035 %, 0.99x), discriminators 0.00053 % (0.00053 %, 1.0x); shared layers 0.0034 %
# (0.0034 %) and 0.00054 % (0.00054 %). The 0.01 % slack covers our float32 noise on other
# CPUs; a ReLU gate that float32 round-off puts on its other side is `trajectories.KNIFE_EDGE`'s.
SLACK = 1e-4


def gated_reference(model, table):
    """The float64 reference from the model's current weights, with a recorder on every
    ReLU of its generators: run(flip) -> (weights after STEPS, [(gate, |input|)] of the
    inputs within `trajectories.KNIFE_EDGE` of 0) (`trajectories.relu_gates`)."""
    import copy

    import torch

    from torch_unit import TorchUNIT

    pristine = TorchUNIT.like(model, torch.float64)

    def run(flip=None):
        reference = copy.deepcopy(pristine)

        def steps():
            for step, (a, b) in enumerate(parity_batches()):
                reference.step(a, b, {name: noise[step] for name, noise in table.items()})

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            near = relu_gates({"gen_a": reference.gen_a, "gen_b": reference.gen_b}, steps, flip)
        finally:
            torch.set_num_threads(threads)
        return reference.weights_as_keras(model), near

    return run


def within_the_floor_up_to_one_knife_edge_gate(model, start, reference, switched, variables=None):
    """The project's rule against the float64 reference; where it fails, against the
    float64 reference with one ReLU gate switched whose input lies within
    `trajectories.KNIFE_EDGE` of 0 (each such gate of the generators in turn, the first that
    passes; the floor stays the float32 reference's miss of the plain reference).

    A float32 step that is the reference's up to round-off can land on the other side of
    such a gate, and three Adam steps (the first moves each element by about lr whatever
    its gradient's size) turn that one gate into several % of the update: 6.07 % at seed
    0 from one input of 9.8e-7 (the 6.06 % an Intel Xeon's oneDNN kernels showed), 8.16 %
    at seed 3 from one of -2.6e-7 (torch's own float32 run, and TF without oneDNN on an
    AMD EPYC). A real difference stays refused: the step without weight decay (generators
    1.5 %, discriminators 69 % at seed 0, 8-wide, shared layers) after every gate (97 s).
    `switched`: [(gate, {id(variable): the float64 reference's weights with that gate
    switched})], nearest 0 first (`recorded`, or `gated_reference` with torch).
    Returns (passed, misses of the plain rule, the gate that explains them)."""
    from test_step_parity import within_float32_floor_up_to_one_gate

    run = misses(model, start, reference, variables)
    against = lambda weights: misses(model, start, {"torch.float64": {"weights": weights},
                                                    "torch.float32": reference["torch.float32"]}, variables)
    run["switched"] = ((gate, against(weights)["ours"]) for gate, weights in switched)
    passed, gate = within_float32_floor_up_to_one_gate(run, SLACK)
    return passed, run, gate


def groups(model):
    variables = model.optimizer_variables()
    return {"generators": variables["g_optimizer"], "discriminators": variables["d_optimizer"]}


def misses(model, start, reference, variables=None):
    from test_step_parity import update_miss

    expected = reference["torch.float64"]["weights"]
    float32 = reference["torch.float32"]["weights"]
    ours = values(model, variables)
    return {"ours": {g: update_miss(vs, ours, expected, start) for g, vs in groups(model).items()},
            "float32": {g: update_miss(vs, float32, expected, start) for g, vs in groups(model).items()}}


def our_run(model, table, jit_compile):
    model.compile(jit_compile=jit_compile)
    inject_noise(model, table)
    if not jit_compile:
        model.run_eagerly = True
    return [model.train_on_batch(a, b, return_dict=True) for a, b in parity_batches()]


# A switched gate is recorded when it moves either group's update by more than this share:
# the others change no verdict (a step they would explain misses the rule by less).
GATE_EFFECT = 1e-3


def record_run(seed, **overrides):
    """The reference's STEPS iterations (float64, float32) from seeded start weights, and
    its float64 finals with each consequential knife-edge gate switched."""
    from test_step_parity import update_miss
    from trajectories import switched_gates, trajectory

    keras.utils.set_random_seed(seed)
    model = build_model("unit", **PARITY, **overrides)
    table = noise_table(model)
    variables = paired_variables(model)
    start = values(model)
    reference = reference_run(model, table)
    expected = reference["torch.float64"]["weights"]
    order = lambda by_id: [by_id[id(v)] for v in variables]
    effect = lambda weights: max(update_miss(vs, weights, expected, start) for vs in groups(model).values())
    gates = switched_gates(gated_reference(model, table), order, effect, GATE_EFFECT)
    return trajectory(model, variables, order(start), order(expected), order(reference["torch.float32"]["weights"]),
                      reference["torch.float64"]["losses"], gates=gates)


def record_unit():
    return record_run(PARITY_SEED)


def record_unit_shared():
    return record_run(SHARED_SEED, shared_layers=1)


def recorded(model, name):
    """(start, reference in `reference_run`'s layout, switched gates) of the committed
    trajectory `name` (tests/fixtures/trajectories; test_fixtures_current.py re-records it),
    its start assigned to `model`."""
    from trajectories import Trajectory

    replay = Trajectory(name)
    replay.assign_start(model)
    reference = {"torch.float64": {"weights": replay.by_id(model, replay.final), "losses": replay.losses},
                 "torch.float32": {"weights": replay.by_id(model, replay.final32)}}
    switched = [(gate, replay.by_id(model, weights)) for gate, _, weights in replay.gates]
    return replay.by_id(model, replay.start), reference, switched, replay.variables(model)


@pytest.fixture(scope="module")
def parity():
    model = build_model("unit", **PARITY)
    table = noise_table(model)
    start, reference, switched, variables = recorded(model, "unit")
    logs = our_run(model, table, jit_compile=True)
    return {"model": model, "table": table, "start": start, "reference": reference, "logs": logs,
            "variables": variables, "misses": misses(model, start, reference, variables), "switched": switched}


def test_losses_match_the_reference_step(parity):
    """Every logged loss and the learning rate, at every step, against the float64
    reference (measured: within 7e-7 relative)."""
    for step, (ours, expected) in enumerate(zip(parity["logs"], parity["reference"]["torch.float64"]["losses"])):
        assert len(expected) == 10, expected  # the nine losses and the learning rate
        for name in set(expected) - {"learning_rate"}:
            np.testing.assert_allclose(ours[name], expected[name], rtol=2e-5, err_msg=f"{name}, step {step}")
    assert [round(log["learning_rate"] * 1e4, 6) for log in parity["logs"]] == [1.0, 0.5, 0.5]


def test_updates_match_the_reference_step(parity):
    """The project's rule (`test_step_parity.within_float32_floor`): our miss of the
    float64 reference's kernel update < 1.5 x the float32 reference's + 0.01 %, or
    within it once one recorded knife-edge gate is switched (`trajectories.KNIFE_EDGE`).
    Measured (XLA step, seed 1, AMD EPYC): generators 0.0035 % (the float32 reference
    0.0035 %, 1.0x), discriminators 0.00053 % (0.00053 %, 1.0x). The start weights are
    seeded because later steps amplify float32 round-off in elements whose gradient is
    near zero (Adam's first steps move them by about lr whatever the gradient's size):
    at these widths over seeds 0-5 the float32 reference's own generator miss is
    0.0035-0.012 % and ours (XLA, seeds 1, 2, 4, 5) 0.0034-0.0064 %."""
    model = parity["model"]
    passed, run, _ = within_the_floor_up_to_one_knife_edge_gate(model, parity["start"], parity["reference"],
                                                                parity["switched"], parity["variables"])
    assert passed, run


def test_biases_and_layer_norm_parameters_follow_the_reference(parity):
    """1-D weights with a true gradient: the discriminators' biases, the layer norms' γ and
    β, the output convs' biases (the conv biases ahead of an instance norm have none)."""
    model, reference = parity["model"], parity["reference"]
    expected, float32 = reference["torch.float64"]["weights"], reference["torch.float32"]["weights"]
    ours, start = values(model, parity["variables"]), parity["start"]
    variables = [v for v in model.optimizer_variables()["d_optimizer"] if len(v.shape) == 1]
    for generator in (model.generator_a, model.generator_b):
        for layer in generator.decoder.upsampler:
            if hasattr(layer, "conv"):
                variables += [layer.norm.gamma, layer.norm.beta] if layer.norm is not None else [layer.conv.bias]
    total = lambda got: np.sqrt(sum(float(np.sum((got[id(v)] - expected[id(v)]) ** 2)) for v in variables)
                                / sum(float(np.sum((expected[id(v)] - start[id(v)]) ** 2)) for v in variables))
    assert total(ours) < 1.5 * total(float32) + 0.005, (total(ours), total(float32))


@pytest.mark.parametrize("variant", ["no_weight_decay", "schedule_after_update", "fresh_cross_noise"])
def test_the_parity_check_can_fail(parity, variant):
    """One deliberate difference from the reference, run eagerly from the same start,
    misses the reference beyond the rule: no weight decay; the rate halved one
    iteration later (StepLR stepped after the updates); x_ab decoded with other noise
    than x_a_recon. Measured misses of the generators' / discriminators' update: 1.9 % /
    76 %, 28 % / 26 %, 116 % / 0.001 % (the float32 reference: 0.0035 % / 0.00053 %)."""
    from test_step_parity import within_float32_floor

    from tf_translate.optimizers import make_adam

    model = build_model("unit", **PARITY, **({"weight_decay": 0.0} if variant == "no_weight_decay" else {}))
    start, reference, _, variables = recorded(model, "unit")
    optimizers = {}
    if variant == "schedule_after_update":
        adam = lambda: make_adam(StepDecay(1e-4, 2, 0.5, step_at_start=False), 0.5)
        optimizers = {"d_optimizer": adam(), "g_optimizer": adam()}
    model.compile(jit_compile=False, **optimizers)
    model.run_eagerly = True
    inject_noise(model, parity["table"])
    if variant == "fresh_cross_noise":
        tables = {name: tf.constant(value) for name, value in parity["table"].items()}
        model.generator_step = lambda a, b: cross_noise_generator_step(model, tables, a, b)
    for a, b in parity_batches():
        model.train_on_batch(a, b)
    run = misses(model, start, reference, variables)
    assert not all(within_float32_floor(run, SLACK).values()), run


def cross_noise_generator_step(model, tables, real_a, real_b):
    """`UNIT.generator_step` except that x_ab and x_ba get noise of their own (n_a_recon,
    n_b_recon) instead of the reconstructions' n_a, n_b."""
    from tf_translate.losses import l1_loss

    gen_a, gen_b = model.generator_a, model.generator_b
    noise = lambda name: tf.gather(tables[name], model.g_optimizer.iterations)
    kl = lambda h: tf.reduce_mean(tf.square(h))
    with tf.GradientTape() as tape:
        h_a, h_b = gen_a.encode(real_a), gen_b.encode(real_b)
        recon_a, recon_b = gen_a.decode(h_a + noise("n_a")), gen_b.decode(h_b + noise("n_b"))
        fake_ba, fake_ab = gen_a.decode(h_b + noise("n_b_recon")), gen_b.decode(h_a + noise("n_a_recon"))
        h_a_recon, h_b_recon = gen_b.encode(fake_ab), gen_a.encode(fake_ba)
        cycled_a = gen_a.decode(h_a_recon + noise("n_a_recon"))
        cycled_b = gen_b.decode(h_b_recon + noise("n_b_recon"))
        g_loss = (model.adversarial(model.discriminator_a, fake_ba) + model.adversarial(model.discriminator_b, fake_ab)
                  + 10 * (l1_loss(recon_a, real_a) + l1_loss(recon_b, real_b))
                  + 0.01 * (kl(h_a) + kl(h_b)) + 10 * (l1_loss(cycled_a, real_a) + l1_loss(cycled_b, real_b))
                  + 0.01 * (kl(h_a_recon) + kl(h_b_recon)))
    model.update("g_optimizer", tape, g_loss)
    return {"g_loss": g_loss}


def test_shared_layers_step_matches_the_reference_with_shared_modules():
    """shared_layers=1 against the re-statement with version_02's sharing (one module in
    both generators, given to Adam once), three eager steps from the recorded start
    (seed 2). Measured (AMD EPYC): generators 0.0034 % (the float32 reference 0.0034 %),
    discriminators 0.00054 % (0.00054 %). At seeds 0 and 3 ours misses 0.15 % and 0.90 %
    of the generators' update (the float32 reference 0.0033 %): knife-edge gates.
    An Intel Xeon's oneDNN kernels missed 6.06 % at the 8-wide seed 0: the other side of one
    gate, 9.8e-7 from 0 (`test_one_relu_gate_at_float32_round_off_is_the_six_percent_miss`)."""
    model = build_model("unit", **PARITY, shared_layers=1)
    table = noise_table(model)
    start, reference, switched, variables = recorded(model, "unit_shared")
    our_run(model, table, jit_compile=False)
    passed, run, gate = within_the_floor_up_to_one_knife_edge_gate(model, start, reference, switched, variables)
    assert passed, run


SEED_0_KNIFE_EDGE_GATE = ("gen_b.dec.model.4.activation", 2, (0, 0, 7, 32))  # x_ab's last ReLU, step 1


def test_one_relu_gate_at_float32_round_off_is_the_six_percent_miss():
    """Issue 33's 6.06 % (the shared-layers step on an Intel Xeon with oneDNN, eager and
    graph) is one ReLU gate: in the float64 reference at seed 0 the input of one element
    of gen_b's last decoder ReLU (x_ab in the first generator step) is 9.8e-7, within
    float32 round-off of 0. Switched, it alone moves the generators' update 6.07 %:
    a float32 step that lands on its other side fails the plain rule although nothing in
    it differs from the reference but summation order. The check the parity tests use
    accepts that step, by naming the gate; a step 6 % off for any other reason stays
    refused (the other gates do not explain it)."""
    pytest.importorskip("torch")  # runs the re-statement with gates switched: a diagnosis, not a replay
    from test_step_parity import within_float32_floor

    keras.utils.set_random_seed(0)
    model = build_model("unit", **dict(PARITY, filters=8, discriminator_filters=8), shared_layers=1)
    table = noise_table(model)
    start = values(model)
    reference = reference_run(model, table)
    gated = gated_reference(model, table)
    weights, near = gated(SEED_0_KNIFE_EDGE_GATE)
    edge = dict(near)[SEED_0_KNIFE_EDGE_GATE]
    assert 5e-7 < edge < 1.5e-6, edge  # measured 9.8e-7
    for variable in paired_variables(model):  # "ours": the other side of the gate
        variable.assign(weights[id(variable)].astype(np.float32))
    run = misses(model, start, reference)
    assert not all(within_float32_floor(run, SLACK).values()), run
    assert 0.05 < run["ours"]["generators"] < 0.07, run  # measured 6.07 %
    others = [gate for gate, x in sorted(near, key=lambda item: item[1]) if gate != SEED_0_KNIFE_EDGE_GATE][:3]
    switched = lambda gates: ((gate, gated(gate)[0]) for gate in gates)
    assert not within_the_floor_up_to_one_knife_edge_gate(model, start, reference, switched(others))[0]
    passed, _, found = within_the_floor_up_to_one_knife_edge_gate(
        model, start, reference, switched(others + [SEED_0_KNIFE_EDGE_GATE]))
    assert passed and found == SEED_0_KNIFE_EDGE_GATE, found


# ---------------------------------------------------------------------------------------
# Import of the official checkpoint layout, export, CLI.


def torch_generators(dim=8, n_res=2, seed=0):
    """The reference's gen_a, gen_b (re-stated with its module names), every parameter
    random (biases and layer-norm β too, which the reference starts at 0)."""
    import torch

    from torch_unit import VAEGen

    torch.manual_seed(seed)
    nets = []
    for _ in range(2):
        net = VAEGen(dim=dim, n_res=n_res)
        with torch.no_grad():
            for name, parameter in net.named_parameters():
                if name.endswith("gamma"):
                    parameter.uniform_(0.5, 1.5)
                elif parameter.ndim == 1:
                    parameter.normal_(0.0, 0.1)
                else:
                    parameter.normal_(0.0, (2.0 / parameter[0].numel()) ** 0.5)
        nets.append(net.eval())
    return nets


def torch_translate(encoder_net, decoder_net, images):
    import torch

    with torch.no_grad():
        out = decoder_net.decode(encoder_net.encode(torch.from_numpy(images).permute(0, 3, 1, 2)))
    return out.permute(0, 2, 3, 1).numpy()


def test_official_checkpoint_imports_into_a_run_that_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    from tf_translate.runs import generator as run_generator
    from tf_translate.runs import load_generators
    from tf_translate.torch_import import import_torch

    gen_a, gen_b = torch_generators()
    path = str(tmp_path / "gen_00010000.pt")
    torch.save({"a": gen_a.state_dict(), "b": gen_b.state_dict()}, path)
    run_dir = str(tmp_path / "run")
    import_torch("unit", path, run_dir)
    model, record = load_generators(run_dir)
    assert record["config"]["filters"] == 8 and record["config"]["num_residual_blocks"] == 2
    assert record["imported"] == {"a2b": os.path.abspath(path), "b2a": os.path.abspath(path)}
    images = random_images(2, 32, 3)
    worst = 0.0
    for direction, source, target in (("a2b", gen_a, gen_b), ("b2a", gen_b, gen_a)):
        expected = torch_translate(source, target, images)
        assert np.abs(expected).mean() > 0.05
        out = run_generator(model, record, direction)[1](images).numpy()
        worst = max(worst, np.abs(out - expected).max())
    assert worst <= 1e-5, worst  # measured 6e-7
    # The in-domain auto-encoders came across too (enc and dec of one domain).
    np.testing.assert_allclose(model.generator_a(images).numpy(), torch_translate(gen_a, gen_a, images), atol=1e-5)


def test_import_errors_are_one_line_and_name_the_keys(tmp_path):
    torch = pytest.importorskip("torch")
    from tf_translate.torch_import import import_torch

    gen_a, gen_b = torch_generators()
    broken = gen_a.state_dict()
    del broken["dec.model.2.norm.gamma"]
    path = str(tmp_path / "gen.pt")
    torch.save({"a": broken, "b": gen_b.state_dict()}, path)
    with pytest.raises(ValueError, match=r"missing keys: dec\.model\.2\.norm\.gamma") as error:
        import_torch("unit", path, str(tmp_path / "run"))
    assert "\n" not in str(error.value)
    torch.save({"genA2B": gen_a.state_dict()}, path)
    with pytest.raises(ValueError, match=r"has no entry 'a'"):
        import_torch("unit", path, str(tmp_path / "run2"))


def test_saved_model_matches_keras_at_odd_sizes(tmp_path):
    from tf_translate.export import export_saved_model

    model = UNIT(**TINY, seed=1)
    a2b = model.generators()["a2b"]
    path = export_saved_model(a2b, str(tmp_path / "served"))
    loaded = tf.saved_model.load(path)
    x = random_images(1, 48, 4)[:, :46, :42]  # padded to 48x44 inside, cropped back
    served = loaded.signatures["translate_float"](images=tf.constant(x))["images"].numpy()
    padded = np.pad(x, [[0, 0], [0, 2], [0, 2], [0, 0]], mode="symmetric")
    np.testing.assert_allclose(served, a2b(padded).numpy()[:, :46, :42], atol=1e-5)


def test_cli_trains_translates_and_exports(tmp_path, capsys):
    """2 eager steps of a narrow model (`--option`) at 64 px (about the smallest size its
    discriminator takes), then translate and a SavedModel that gives the Keras output."""
    from PIL import Image

    from tf_translate.cli import main
    from tf_translate.data import write_demo_dataset
    from tf_translate.runs import load_generators

    data = write_demo_dataset(str(tmp_path / "data"), size=SIZE, train_count=4, test_count=2)
    run_dir = str(tmp_path / "run")
    assert main(["train", "--model", "unit", "--data", data, "--run-dir", run_dir, "--steps", "2",
                 "--image-size", str(SIZE), "--sample-every", "2", "--log-every", "1", "--eager",
                 "--option", "filters=8", "num_residual_blocks=1", "discriminator_filters=8"]) == 0
    record = json.load(open(os.path.join(run_dir, "run.json")))
    assert record["model"] == "unit" and record["flags"]["total_steps"] == 2
    assert os.path.exists(os.path.join(run_dir, "samples", "step_0000002.png"))
    out_dir = str(tmp_path / "out")
    test_a = os.path.join(data, "testA")
    assert main(["translate", "--run-dir", run_dir, "--input", test_a, "--output", out_dir]) == 0
    assert main(["export", "--run-dir", run_dir, "--output", str(tmp_path / "served")]) == 0
    model, _ = load_generators(run_dir)
    name = sorted(os.listdir(test_a))[0]
    pixels = np.asarray(Image.open(os.path.join(test_a, name)).convert("RGB"))[None]
    loaded = tf.saved_model.load(str(tmp_path / "served" / "1"))
    served = loaded.signatures["serving_default"](images=tf.constant(pixels))["images"].numpy()
    keras_out = model.generators()["a2b"](pixels.astype(np.float32) / 127.5 - 1.0).numpy()
    expected = np.clip(np.round((keras_out + 1.0) * 127.5), 0, 255)
    assert np.abs(served.astype(int) - expected).max() <= 1
    translated = np.asarray(Image.open(os.path.join(out_dir, name)).convert("RGB")).astype(int)
    assert np.abs(translated - served[0]).max() <= 1
