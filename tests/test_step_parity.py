"""Training-step parity with PyTorch re-statements of the official steps.

Both sides start from the same weights and see the same batches; the PyTorch side runs
in float64 (the reference) and in float32 (the reference's own float32 noise), recorded
once into tests/fixtures/trajectories/ (`record_*` below, `trajectories.py`) and replayed
here without torch; test_fixtures_current.py re-records them with torch. After the
steps the kernels ours updated must be as close to the float64 reference as the
reference's float32 run is (x1.5, + a slack per model): a tolerance derived from the
reference, not read off our own output; or that close to the float64 reference with one
recorded knife-edge ReLU gate switched (`within_float32_floor_up_to_one_gate`). 15 steps,
because a small systematic difference grows step by step (Adam normalises every gradient
element): an XLA ordering helper that changed no value of one step but let updates race
ahead missed 6 % after 15 steps and 0.01 % after 5.
"""

import numpy as np
import pytest

from helpers import random_images

from trajectories import Trajectory, trajectory

STEPS = 15


def update_miss(variables, values, reference, start):
    """||values - reference|| / ||reference - start|| over the kernels of `variables`:
    the share of the reference's update that `values` misses. All three map
    id(variable) -> array. Biases are left out: most sit before an instance norm, which
    removes them, so their true gradient is 0 and their Adam updates are normalised
    round-off on every side (they change no output)."""
    variables = [v for v in variables if len(v.shape) > 1]
    miss = sum(float(np.sum((values[id(v)] - reference[id(v)]) ** 2)) for v in variables)
    update = sum(float(np.sum((reference[id(v)] - start[id(v)]) ** 2)) for v in variables)
    return np.sqrt(miss / update)


def parity_result(model, groups, replay, losses):
    """{"ours", "float32": {group: update miss against the float64 reference}, "switched",
    "losses"}: our model's current weights and the float32 reference's, against the recorded
    float64 reference `replay` (a `Trajectory`); "switched": [(gate, {group: our miss})]
    against its finals with each recorded knife-edge gate switched."""
    start, expected = replay.by_id(model, replay.start), replay.by_id(model, replay.final)
    ours, float32 = replay.by_id(model, replay.values(model)), replay.by_id(model, replay.final32)
    against = lambda final: {g: update_miss(vs, ours, final, start) for g, vs in groups.items()}
    return {"ours": against(expected),
            "float32": {g: update_miss(vs, float32, expected, start) for g, vs in groups.items()},
            "switched": [(gate, against(replay.by_id(model, final))) for gate, _, final in replay.gates],
            "losses": losses}


def keras_mapped_trajectory(model, reference, reference32, start, losses):
    """`trajectory` of a `torch_reference.KerasMapped` pair after its steps."""
    variables = [v for v, *_ in reference.pairs(model)]
    final, final32 = reference.weights_as_keras(model), reference32.weights_as_keras(model)
    return trajectory(model, variables, [start[id(v)] for v in variables], [final[id(v)] for v in variables],
                      [final32[id(v)] for v in variables], losses)


CYCLEGAN_REFERENCE = dict(ngf=8, n_blocks=2, ndf=8, seed=0)


def cyclegan_model():
    from tf_translate import build_model
    return build_model("cyclegan", image_size=32, filters=8, num_residual_blocks=2, discriminator_filters=8)


def cyclegan_batch(step):
    return random_images(1, 32, 2 * step), random_images(1, 32, 2 * step + 1)


def record_cyclegan():
    """The reference's STEPS iterations (float64 and float32) from its seeded start, and its
    float64 finals with each knife-edge ReLU gate switched that moves an update by more than
    CYCLEGAN_SLACK (`trajectories.switched_gates`)."""
    from torch_reference import TorchCycleGAN

    from trajectories import relu_gates, switched_gates

    reference = TorchCycleGAN(**CYCLEGAN_REFERENCE, dtype="float64")
    reference32 = TorchCycleGAN(**CYCLEGAN_REFERENCE, dtype="float32")
    model = cyclegan_model()
    start = reference.weights_as_keras(model)
    losses = []
    for step in range(STEPS):
        a, b = cyclegan_batch(step)
        losses.append(reference.step(a, b))
        reference32.step(a, b)
    variables = [v for v, *_ in reference.pairs(model)]
    expected = reference.weights_as_keras(model)

    def gated(flip):
        replayed = TorchCycleGAN(**CYCLEGAN_REFERENCE, dtype="float64")
        near = relu_gates(replayed.networks(), lambda: [replayed.step(*cyclegan_batch(step)) for step in range(STEPS)],
                          flip)
        return replayed.weights_as_keras(model), near

    groups = cyclegan_groups(model).values()
    effect = lambda weights: max(update_miss(vs, weights, expected, start) for vs in groups)
    gates = switched_gates(gated, lambda by_id: [by_id[id(v)] for v in variables], effect, CYCLEGAN_SLACK)
    return trajectory(model, variables, [start[id(v)] for v in variables], [expected[id(v)] for v in variables],
                      [reference32.weights_as_keras(model)[id(v)] for v in variables], losses, gates=gates)


def cyclegan_groups(model):
    return {"generators": model.generator_ab.trainable_variables + model.generator_ba.trainable_variables,
            "discriminators": model.discriminator_a.trainable_variables + model.discriminator_b.trainable_variables}


def cyclegan_run(pytorch_epsilon=True):
    """STEPS steps of ours from the recorded reference's start, on its batches.

    Returns {"ours", "float32": {network group: miss}, "losses": [(ours, reference)]}.
    """
    from tf_translate.optimizers import make_adam

    replay = Trajectory("cyclegan")
    model = cyclegan_model()
    replay.assign_start(model)
    if pytorch_epsilon:
        model.compile(jit_compile=True)
    else:  # Keras' arithmetic and default epsilon: this project's Adam before the fix
        adam = lambda: make_adam(2e-4, 0.5, epsilon=1e-7, pytorch_epsilon=False)
        model.compile(jit_compile=True, g_optimizer=adam(), d_optimizer=adam())
    losses = []
    for step in range(STEPS):
        a, b = cyclegan_batch(step)
        losses.append((model.train_on_batch(a, b, return_dict=True), replay.losses[step]))
    return parity_result(model, cyclegan_groups(model), replay, losses)


@pytest.fixture(scope="module")
def cyclegan_parity():
    return cyclegan_run()


def test_cyclegan_losses_match_the_reference_step(cyclegan_parity):
    for ours, reference in cyclegan_parity["losses"]:
        for name in ("g_loss", "adversarial_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss"):
            np.testing.assert_allclose(ours[name], reference[name], rtol=2e-4, err_msg=name)


def within_float32_floor(run, slack):
    """The project's rule per network group: our miss of the float64 reference's update
    below 1.5x the float32 reference's own miss + `slack` (a share of the update). Each
    model's test states its slack from what it measures (README, "Faithfulness")."""
    return {group: run["ours"][group] < 1.5 * run["float32"][group] + slack for group in run["ours"]}


def within_float32_floor_up_to_one_gate(run, slack):
    """`within_float32_floor(run, slack)`, or where it fails the same rule with our misses
    measured against the float64 reference with one recorded knife-edge ReLU gate switched
    (`trajectories.KNIFE_EDGE`; run["switched"]: [(gate, {group: our miss})], the first that
    passes). The floor stays the float32 reference's miss of the plain reference: a float32
    step that is the reference's up to summation order can land on the other side of such a
    gate, and Adam turns that one element into a visible share of the update.
    Returns (passed, the gate that explains the step or None)."""
    if all(within_float32_floor(run, slack).values()):
        return True, None
    for gate, ours in run.get("switched", ()):
        if all(within_float32_floor({**run, "ours": ours}, slack).values()):
            return True, gate
    return False, None


# Measured ours (the float32 reference), AMD EPYC Zen 5, oneDNN on and off, XLA, graph and
# eager: discriminators 0.00040-0.00064 % (0.00065 %). Generators: eager 0.00044 % (0.00041 %,
# 1.07x); XLA and graph 0.057 % (138x) against the plain reference, 0.00045 % (1.08x) against
# it with one ReLU gate switched: in its 15th step the float64 reference's first residual
# block of generator_ab, on the cycle path (rec_B = G_A(G_B(real_B))), has one ReLU input
# 1.3e-6 from 0 (channel 24, row 5, column 7 of that call), and our XLA/graph conv summation
# order puts it on the other side. The slack covers our float32 noise on other CPUs.
CYCLEGAN_SLACK = 1e-5
CYCLEGAN_GATE = "('generator_ab.model.10.conv_block.3', 43, (0, 24, 5, 7))"


def test_cyclegan_updates_match_the_reference_step(cyclegan_parity):
    assert within_float32_floor_up_to_one_gate(cyclegan_parity, CYCLEGAN_SLACK)[0], cyclegan_parity


def test_one_knife_edge_gate_is_the_cyclegan_138x():
    """Issue 33's 138x (our XLA and graph steps, 0.057 % of the generators' update, all of
    it in the 15th step) is the recorded gate CYCLEGAN_GATE: the float64 reference's
    finals with it switched, taken as our step, miss the plain reference by that much and
    are accepted by naming it; the same miss in the other direction stays refused."""
    from trajectories import KNIFE_EDGE

    replay = Trajectory("cyclegan")
    model = cyclegan_model()
    _, size, switched = next(gate for gate in replay.gates if gate[0] == CYCLEGAN_GATE)
    assert 1e-6 < size < KNIFE_EDGE, size  # measured 1.31e-6

    def judged(weights):
        for variable, value in zip(replay.variables(model), weights):
            variable.assign(value.astype(np.float32))
        return parity_result(model, cyclegan_groups(model), replay, [])

    run = judged(switched)
    assert 5e-4 < run["ours"]["generators"] < 6.5e-4, run  # measured 0.057 %, as our XLA step
    assert not all(within_float32_floor(run, CYCLEGAN_SLACK).values()), run
    assert within_float32_floor_up_to_one_gate(run, CYCLEGAN_SLACK) == (True, CYCLEGAN_GATE), run
    mirrored = judged([2 * final - gate for final, gate in zip(replay.final, switched)])
    assert not within_float32_floor_up_to_one_gate(mirrored, CYCLEGAN_SLACK)[0], mirrored


def test_keras_adam_arithmetic_fails_the_parity_check():
    """The check can fail: Keras' epsilon placement and value (this project's Adam before
    it was fixed) miss 37 % of the generators' and 15 % of the discriminators' update,
    against the plain reference and against every recorded switched gate."""
    run = cyclegan_run(pytorch_epsilon=False)
    assert not any(within_float32_floor(run, CYCLEGAN_SLACK).values()), run
    assert not within_float32_floor_up_to_one_gate(run, CYCLEGAN_SLACK)[0], run


STARGAN_SIZE, STARGAN_DOMAINS, STARGAN_ITERATIONS = 32, 3, 3


def stargan_model():
    from tf_translate import build_model
    return build_model("stargan", image_size=STARGAN_SIZE, num_domains=STARGAN_DOMAINS, filters=8,
                       num_residual_blocks=1, discriminator_filters=8, discriminator_layers=3, n_critic=1)


def stargan_inputs():
    """Per iteration: images, labels, targets and the GP interpolation weights."""
    rng = np.random.default_rng(0)
    out = []
    for step in range(STARGAN_ITERATIONS):
        images = random_images(2, STARGAN_SIZE, 10 + step)
        labels = rng.integers(0, 2, (2, STARGAN_DOMAINS)).astype(np.float32)
        alpha = rng.uniform(size=(2, 1, 1, 1)).astype(np.float32)
        out.append((images, labels, labels[::-1].copy(), alpha))
    return out


def record_stargan():
    """Critic then generator update, STARGAN_ITERATIONS times, of the reference (float64
    and float32) from its seeded start (n_critic 1)."""
    from torch_reference import TorchStarGAN

    arch = dict(image_size=STARGAN_SIZE, c_dim=STARGAN_DOMAINS, conv_dim=8, repeat_num=1, d_conv_dim=8,
                d_repeat_num=3)
    reference, reference32 = TorchStarGAN(**arch, dtype="float64"), TorchStarGAN(**arch, dtype="float32")
    model = stargan_model()
    start = reference.weights_as_keras(model)
    losses = []
    for images, labels, targets, alpha in stargan_inputs():
        expected = reference.critic_step(images, labels, targets, alpha)
        expected_g = reference.generator_step(images, labels, targets)
        reference32.critic_step(images, labels, targets, alpha)
        reference32.generator_step(images, labels, targets)
        losses.append(expected + expected_g)
    return keras_mapped_trajectory(model, reference, reference32, start, losses)


def stargan_run(pytorch_epsilon=True):
    """Critic then generator update of ours, from the recorded reference's start and inputs."""
    import tensorflow as tf

    from tf_translate.optimizers import make_adam

    replay = Trajectory("stargan")
    model = stargan_model()
    replay.assign_start(model)
    optimizers = {}
    if not pytorch_epsilon:
        optimizers = {name: make_adam(1e-4, 0.5, epsilon=1e-8, pytorch_epsilon=False)
                      for name in ("d_optimizer", "g_optimizer")}
    model.compile(jit_compile=True, **optimizers)
    losses = []
    for step, (images, labels, targets, alpha) in enumerate(stargan_inputs()):
        grads, d_losses = model.critic_gradients(tf.constant(images), tf.constant(labels), tf.constant(targets),
                                                 tf.constant(alpha))
        model.apply_gradients("d_optimizer", grads)
        grads, g_losses = model.generator_gradients(tf.constant(images), tf.constant(labels), tf.constant(targets))
        model.apply_gradients("g_optimizer", grads)
        losses.append((np.concatenate([d_losses, g_losses]), replay.losses[step]))
    groups = {"generator": model.generator.trainable_variables, "critic": model.discriminator.trainable_variables}
    return parity_result(model, groups, replay, losses)


@pytest.fixture(scope="module")
def stargan_parity():
    return stargan_run()


def test_stargan_losses_match_the_reference_step(stargan_parity):
    """d_loss, d adversarial, d cls, gp, g_loss, g adversarial, g cls, rec per iteration."""
    for ours, reference in stargan_parity["losses"]:
        np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-5)


# Measured ours (the float32 reference): generator 1.7 % (2.3 %, 0.74x), critic 0.00081 %
# (0.00081 %, 1.0x). The generator's float32 floor is high: 3 iterations of WGAN-GP from
# torch's default init amplify round-off; the 0.01 % slack only covers our float32 noise
# on other CPUs.
STARGAN_SLACK = 1e-4


def test_stargan_critic_and_generator_updates_match_the_reference_step(stargan_parity):
    assert all(within_float32_floor(stargan_parity, STARGAN_SLACK).values()), stargan_parity


def test_keras_adam_arithmetic_fails_the_stargan_parity_check():
    """The critic's tiny second moments make Keras' epsilon placement miss its update:
    1.6 % of it (the generator's 1.5 % stays under its high float32 floor)."""
    run = stargan_run(pytorch_epsilon=False)
    assert not within_float32_floor(run, STARGAN_SLACK)["critic"], run
