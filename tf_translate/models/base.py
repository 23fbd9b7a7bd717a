"""What every training model shares: optimizer construction, XLA and mixed-precision
handling, and the small interface the CLI, checkpoints, grids and export rely on.

A training model subclasses `TranslationModel` and defines:
- `optimizer_variables()`: {optimizer attribute name: the variables it updates};
- `default_optimizers(total_steps, steps_per_epoch)`: {attribute name: optimizer};
- `generators()`: {direction such as "a2b": network mapping [-1, 1] images};
- `sample_rows(batch)`: [(row title, [-1, 1] images)] for the sample grid;
- `train_step(data)`.
"""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tf_translate")
class Adam(keras.optimizers.Adam):
    """Keras' Adam, applied by TF's fused `ResourceApplyAdam` op, one per variable.

    Keras' `update_step` builds about 40 graph ops per variable (it also recomputes
    beta_1^t and beta_2^t for each): 5,900 of full U-GAT-IT's 37,600 graph ops, all
    traced, converted and compiled before the first step.
    The fused op does the same arithmetic (m and v updates, step size
    lr * sqrt(1 - beta_2^t) / (1 - beta_1^t), epsilon added to sqrt(v)) on the same
    slots, so checkpoints are interchangeable. Under a distribution strategy and with
    AMSGrad, Keras' own update runs.
    """

    _powers = None

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        step = ops.cast(self.iterations + 1, "float32")
        self._powers = (ops.power(self.beta_1, step), ops.power(self.beta_2, step))
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._powers = None

    def update_step(self, gradient, variable, learning_rate):
        if self._powers is None or self.amsgrad or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        scalar = lambda value: tf.cast(value, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=scalar(self._powers[0]), beta2_power=scalar(self._powers[1]), lr=scalar(learning_rate),
            beta1=scalar(self.beta_1), beta2=scalar(self.beta_2), epsilon=scalar(self.epsilon),
            grad=tf.cast(gradient, dtype))


def make_adam(learning_rate, beta_1, beta_2=0.999, epsilon=1e-7):
    """Adam, wrapped for loss scaling under the mixed_float16 policy.

    Only `compile(optimizer=...)` wraps optimizers automatically; ours are attributes,
    so we wrap them here. bfloat16 and float32 need no loss scaling.
    """
    optimizer = Adam(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer):
    """The learning rate the optimizer will use at its current step, as float32."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return tf.cast(lr, tf.float32)


def after_all_of(grads):
    """The gradients, each made to depend on all of them (values unchanged).

    The backward pass reads a layer's weight after that weight's gradient exists (the
    product that gives the layer's input gradient), so nothing orders that read before
    the optimizer's in-place write of the weight, and XLA copies every such weight
    first: all generator weights of U-GAT-IT, 0.6 GB for the full model at 128 px. An
    added zero that depends on one element of every gradient orders the reads inside
    these gradients before the writes, and those copies go. (Reads of these weights by
    another loss's backward pass, e.g. CycleGAN's generator loss through the
    discriminators, stay unordered and copied.) The zero is `g > +inf` cast to float, which is 0 even
    for inf and NaN, so it never changes a value (XLA does not fold it away; its
    optimization barrier is dropped before copy insertion on CPU, measured).
    """
    present = [g for g in grads if g is not None]
    if len(present) < 2:
        return grads
    firsts = tf.stack([tf.cast(tf.reshape(g, [-1])[0], tf.float32) for g in present])
    zero = tf.reduce_sum(tf.cast(firsts > float("inf"), tf.float32))
    return [None if g is None else g + tf.cast(zero, g.dtype) for g in grads]


class TranslationModel(keras.Model):
    """Base of the training models (CycleGAN, UGATIT, StarGAN, ...)."""

    def compile(self, total_steps=None, steps_per_epoch=1, jit_compile=True, **optimizers):
        """Sets the optimizers (the reference's when not given) and XLA.

        Args:
            total_steps: training length; the learning rate is constant for the first
                half and decays linearly over the second (the references' schedule).
                None keeps it constant.
            steps_per_epoch: decay granularity (junyanz decays once per epoch).
            jit_compile: compile the whole train step with XLA. Under a distribution
                strategy XLA cannot compile the cross-replica updates on CPU, so it is
                turned off there.
            **optimizers: optimizers by attribute name (e.g. `g_optimizer=...`).
        """
        defaults = self.default_optimizers(total_steps, steps_per_epoch)
        unknown = set(optimizers) - set(defaults)
        if unknown:
            raise ValueError(f"unknown optimizers {sorted(unknown)}; expected {sorted(defaults)}")
        for name, default in defaults.items():
            setattr(self, name, optimizers.get(name) or default)
        if tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1:
            jit_compile = False
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.build_optimizers()

    def make_train_function(self, force=False):
        """With XLA on one device, the XLA-compiled step is called directly on the next
        batch. Keras wraps it in a second, non-compiled tf.function over the iterator,
        whose graph optimisation walks the step's whole function body again: 5-8 s more
        before full U-GAT-IT's first step (74.7 vs 66.5 s in one pair of runs, 90.5 vs
        85.1 s averaged over alternating runs on a slower day). Eager runs, several
        replicas and `steps_per_execution` > 1 keep Keras' function."""
        if self.train_function is not None and not force:
            return self.train_function
        if (not self.jit_compile or self.run_eagerly or self.steps_per_execution != 1
                or tf.distribute.has_strategy()):
            return super().make_train_function(force)
        step = self.xla_train_step()
        self.train_function = lambda iterator: step(next(iterator))
        return self.train_function

    def xla_train_step(self):
        """`train_step` as the XLA-compiled function `fit` calls on one device.

        Traced without AutoGraph: train steps branch in Python on Python values only
        (tensor conditions are explicit `tf.cond`s), and converting every function the
        step calls cost 3 s of full U-GAT-IT's 16 s trace."""
        return tf.function(self.train_step, jit_compile=True, reduce_retracing=True, autograph=False)

    def build_optimizers(self):
        """Creates the optimizer slots now, outside any traced step: a checkpoint can then
        be loaded before training, and under a distribution strategy the slots are made
        in its scope rather than inside the replicated function (which fails)."""
        for name, variables in self.optimizer_variables().items():
            optimizer = getattr(self, name)
            if not optimizer.built:
                optimizer.build(variables)

    @staticmethod
    def replicas():
        """Replicas in sync: per-replica mean losses are divided by it."""
        return tf.distribute.get_strategy().num_replicas_in_sync

    def gradients(self, optimizer_name, tape, loss):
        """Gradients of `loss` for the variables the named optimizer updates.

        The loss is divided by the replica count (our losses are per-replica means) and
        multiplied by the loss scale when the optimizer is a LossScaleOptimizer
        (`scale_loss` is otherwise the identity), so float32 and mixed precision share
        one path. Both factors are constants, so they enter as the output gradient and
        the caller's tape needs to record nothing extra.
        """
        optimizer = getattr(self, optimizer_name)
        variables = self.optimizer_variables()[optimizer_name]
        factor = optimizer.scale_loss(tf.constant(1.0 / self.replicas(), tf.float32))
        return after_all_of(tape.gradient(loss, variables, output_gradients=tf.cast(factor, loss.dtype)))

    def apply_gradients(self, optimizer_name, grads):
        """Applies (and unscales, under loss scaling) gradients from `gradients`."""
        getattr(self, optimizer_name).apply(grads, self.optimizer_variables()[optimizer_name])

    def networks(self):
        """{attribute name: network} of every network the model trains."""
        return {name: value for name, value in vars(self).items() if isinstance(value, keras.Model)}

    def with_weight_decay(self, optimizer_name, grads):
        """grad + self.weight_decay·w for every variable the optimizer updates.

        PyTorch's Adam(weight_decay) adds the L2 term to the gradient before the moments
        (Keras Adam's `weight_decay` is decoupled, AdamW-style, so it is not used). The
        gradients from `gradients` carry the loss scale and the 1/replicas factor and
        are summed over replicas, so the decay term is given the same factor.
        """
        if not getattr(self, "weight_decay", 0.0):
            return grads
        optimizer = getattr(self, optimizer_name)
        factor = optimizer.scale_loss(tf.constant(self.weight_decay / self.replicas(), tf.float32))
        variables = self.optimizer_variables()[optimizer_name]
        return [None if g is None else g + tf.cast(factor, g.dtype) * tf.cast(v, g.dtype)
                for g, v in zip(grads, variables)]

    def update(self, optimizer_name, tape, loss):
        """Gradients of `loss`, plus the L2 term, applied by the named optimizer."""
        grads = self.gradients(optimizer_name, tape, loss)
        self.apply_gradients(optimizer_name, self.with_weight_decay(optimizer_name, grads))
