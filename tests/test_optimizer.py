import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_translate.optimizers import Adam

SHAPES = [(3, 3, 4, 8), (8,), (5, 2)] * 8


def problem(seed=0, grad_scale=1.0):
    """Initial weights and three steps of gradients. `grad_scale` 1e-6 makes sqrt(v)
    comparable to epsilon, where its placement decides the update."""
    rng = np.random.default_rng(seed)
    initial = [rng.normal(size=s).astype("float32") for s in SHAPES]
    grads = [[(grad_scale * rng.normal(size=s)).astype("float32") for s in SHAPES] for _ in range(3)]
    return initial, grads


def run_keras(make_optimizer, initial, grads):
    """Weights after applying `grads` in a tf.function, as in training."""
    optimizer = make_optimizer()
    variables = [keras.Variable(value) for value in initial]
    optimizer.build(variables)
    step = tf.function(lambda g: optimizer.apply(g, variables))
    for step_grads in grads:
        step([tf.constant(g) for g in step_grads])
    ops = len(step.get_concrete_function([tf.constant(g) for g in grads[0]]).graph.get_operations())
    return [v.numpy() for v in variables], ops


def run_torch(initial, grads, lr, betas, eps, amsgrad=False):
    """torch.optim.Adam in float64 on the same gradients: the reference update."""
    import torch
    params = [torch.nn.Parameter(torch.tensor(value, dtype=torch.float64)) for value in initial]
    optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return [p.detach().numpy() for p in params]


# (problem seed, grad_scale, amsgrad) of the cases compared with torch.optim.Adam (lr 1e-2,
# betas (0.5, 0.999), eps 1e-8), recorded by `record_adam` into tests/fixtures/trajectories/adam.npz
TORCH_CASES = {"plain_1": (0, 1.0, False), "plain_1e-06": (0, 1e-6, False), "amsgrad": (1, 1e-6, True)}


def record_adam():
    out = {}
    for case, (seed, grad_scale, amsgrad) in TORCH_CASES.items():
        initial, grads = problem(seed=seed, grad_scale=grad_scale)
        for i, value in enumerate(run_torch(initial, grads, 1e-2, (0.5, 0.999), 1e-8, amsgrad=amsgrad)):
            out[f"array/{case}/{i}"] = value
    return out


def torch_adam(case):
    """torch.optim.Adam's weights after the steps of `case` (recorded, float64)."""
    from trajectories import reference_values
    values = reference_values("adam")
    return [values[f"array/{case}/{i}"] for i in range(len(SHAPES))]


def step_error(got, expected, initial):
    """Largest |ours - torch| as a share of torch's largest update in that tensor."""
    return max(float(np.max(np.abs(g - e)) / np.max(np.abs(e - i)))
               for g, e, i in zip(got, expected, initial))


@pytest.mark.parametrize("grad_scale", [1.0, 1e-6])
def test_adam_updates_as_torch_adam(grad_scale):
    """Three steps of our fused Adam against torch.optim.Adam in float64 (beta_1 0.5 as
    the GANs use): every weight's update within 1e-4 of torch's, on ordinary gradients
    and on tiny ones (sqrt(v) ~ epsilon, as in a WGAN critic's first steps). Keras'
    arithmetic (epsilon before the bias correction) misses the tiny case by far."""
    initial, grads = problem(grad_scale=grad_scale)
    expected = torch_adam(f"plain_{grad_scale:g}")
    ours, _ = run_keras(lambda: Adam(1e-2, beta_1=0.5, beta_2=0.999, epsilon=1e-8), initial, grads)
    assert step_error(ours, expected, initial) < 1e-4
    keras_way, _ = run_keras(lambda: keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=0.999, epsilon=1e-8), initial, grads)
    if grad_scale < 1e-3:
        assert step_error(keras_way, expected, initial) > 0.1


def test_adam_with_amsgrad_updates_as_torch():
    """The unfused path (AMSGrad; distribution strategies run the same lines) has
    PyTorch's arithmetic too, AMSGrad's max of v included."""
    initial, grads = problem(seed=1, grad_scale=1e-6)
    ours, _ = run_keras(lambda: Adam(1e-2, beta_1=0.5, epsilon=1e-8, amsgrad=True), initial, grads)
    assert step_error(ours, torch_adam("amsgrad"), initial) < 1e-4


def test_keras_arithmetic_on_request_matches_keras_adam_with_a_fraction_of_the_graph():
    """`pytorch_epsilon=False` is Keras' Adam, still one fused op per variable."""
    initial, grads = problem(grad_scale=1e-6)
    ours, our_ops = run_keras(lambda: Adam(1e-2, beta_1=0.5, epsilon=1e-8, pytorch_epsilon=False), initial, grads)
    theirs, their_ops = run_keras(lambda: keras.optimizers.Adam(1e-2, beta_1=0.5, epsilon=1e-8), initial, grads)
    for got, expected in zip(ours, theirs):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], initial[0])  # the variables did move
    assert our_ops < 0.4 * their_ops, (our_ops, their_ops)
    _, pytorch_ops = run_keras(lambda: Adam(1e-2, beta_1=0.5, epsilon=1e-8), initial, grads)
    assert pytorch_ops < 0.4 * their_ops, (pytorch_ops, their_ops)


def test_adam_config_round_trip():
    optimizer = Adam(1e-3, beta_1=0.5, pytorch_epsilon=False)
    assert Adam.from_config(optimizer.get_config()).pytorch_epsilon is False
