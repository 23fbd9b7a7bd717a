import keras
import numpy as np
import tensorflow as tf

from tf_translate.models.base import Adam


def test_adam_matches_keras_adam_with_a_fraction_of_the_graph():
    """Three steps of our Adam and keras' Adam on the same gradients (in a tf.function,
    as in training; beta_1 0.5 as the GANs use) give the same variables and moments,
    from a graph with far fewer ops per variable (one fused op each)."""
    rng = np.random.default_rng(0)
    shapes = [(3, 3, 4, 8), (8,), (5, 2)] * 8
    initial = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[tf.constant(rng.normal(size=s).astype("float32")) for s in shapes] for _ in range(3)]

    def run(optimizer):
        variables = [keras.Variable(value) for value in initial]
        optimizer.build(variables)
        apply = tf.function(lambda g: optimizer.apply(g, variables))
        for step_grads in grads:
            apply(step_grads)
        ops = len(apply.get_concrete_function(grads[0]).graph.get_operations())
        return [v.numpy() for v in variables + optimizer._momentums + optimizer._velocities], ops

    ours, our_ops = run(Adam(1e-2, beta_1=0.5, beta_2=0.999, epsilon=1e-8))
    theirs, their_ops = run(keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=0.999, epsilon=1e-8))
    for got, expected in zip(ours, theirs):
        # float32 rounding of another evaluation order; each step moves weights by ~1e-2
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[0], initial[0])  # the variables did move
    assert our_ops < 0.4 * their_ops, (our_ops, their_ops)
