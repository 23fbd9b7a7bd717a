"""The optimizer every model uses: Adam with PyTorch's arithmetic, fused, loss-scaled
under mixed_float16.

The fused path calls Keras optimizer internals (`_backend_update_step`,
`_get_variable_index`, `_momentums`, `_velocities`), which is why setup.py pins Keras to
the tested range.
"""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tf_translate")
class Adam(keras.optimizers.Adam):
    """Adam with PyTorch's arithmetic, applied by TF's fused `ResourceApplyAdam` op.

    PyTorch's `torch.optim.Adam` (every reference we port) updates
    w -= lr * m_hat / (sqrt(v_hat) + eps), with m_hat = m / (1 - beta_1^t) and
    v_hat = v / (1 - beta_2^t). Keras' Adam and TF's fused op add epsilon to sqrt(v)
    before the bias correction, i.e. an effective eps / sqrt(1 - beta_2^t): 31.6x
    PyTorch's at step 1 and 3.2x at step 100 with beta_2 0.999, which changes the update
    most where v is tiny (early steps, WGAN critics). `pytorch_epsilon=True` (default)
    passes eps * sqrt(1 - beta_2^t) to the fused op, which gives PyTorch's update
    exactly; False keeps Keras' arithmetic.

    One fused op per variable instead of Keras' ~40 graph ops (it also recomputes
    beta_1^t and beta_2^t for each), on the same slots, so checkpoints are
    interchangeable with Keras' Adam. Under a distribution strategy and with AMSGrad
    the same arithmetic runs as ordinary ops (AMSGrad: PyTorch's max of v).
    """

    _powers = None

    def __init__(self, *args, pytorch_epsilon=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.pytorch_epsilon = bool(pytorch_epsilon)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        step = ops.cast(self.iterations + 1, "float32")
        self._powers = (ops.power(self.beta_1, step), ops.power(self.beta_2, step))
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._powers = None

    def update_step(self, gradient, variable, learning_rate):
        fused = self._powers is not None and not self.amsgrad and not tf.distribute.has_strategy()
        if not fused and not self.pytorch_epsilon:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        scalar = lambda value: tf.cast(value, dtype)
        if self._powers is not None:
            beta_1_power, beta_2_power = self._powers
        else:
            step = ops.cast(self.iterations + 1, "float32")
            beta_1_power, beta_2_power = ops.power(self.beta_1, step), ops.power(self.beta_2, step)
        # The epsilon added to sqrt(v), before the bias correction of v.
        epsilon = self.epsilon * ops.sqrt(1.0 - beta_2_power) if self.pytorch_epsilon else self.epsilon
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        gradient = tf.cast(gradient, dtype)
        if fused:
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.value.handle, v=v.value.handle,
                beta1_power=scalar(beta_1_power), beta2_power=scalar(beta_2_power), lr=scalar(learning_rate),
                beta1=scalar(self.beta_1), beta2=scalar(self.beta_2), epsilon=scalar(epsilon), grad=gradient)
            return
        # The same arithmetic as ordinary ops (distribution strategies, AMSGrad).
        self.assign_add(m, (gradient - m) * scalar(1.0 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * scalar(1.0 - self.beta_2))
        second = v
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            second = v_hat
        step_size = scalar(learning_rate) * ops.sqrt(scalar(1.0 - beta_2_power)) / scalar(1.0 - beta_1_power)
        self.assign_sub(variable, step_size * m / (ops.sqrt(second) + scalar(epsilon)))

    def get_config(self):
        return {**super().get_config(), "pytorch_epsilon": self.pytorch_epsilon}


def make_adam(learning_rate, beta_1, beta_2=0.999, epsilon=1e-8, pytorch_epsilon=True):
    """Adam (PyTorch's arithmetic and default epsilon unless told otherwise), wrapped for
    loss scaling under the mixed_float16 policy.

    Only `compile(optimizer=...)` wraps optimizers automatically; ours are attributes,
    so we wrap them here. bfloat16 and float32 need no loss scaling.
    """
    optimizer = Adam(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                     pytorch_epsilon=pytorch_epsilon)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer):
    """The learning rate the optimizer will use at its current step, as float32."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return tf.cast(lr, tf.float32)
