"""TuiGAN's losses (`TuiGAN.py` `TVLoss`, `functions.py` `calc_gradient_penalty`) and
its learning-rate schedule (`MultiStepLR`)."""

import keras
import tensorflow as tf
from keras import ops


def tv_loss(images):
    """`TVLoss`: 2·(Σ(Δ_h)² / (C(H-1)W) + Σ(Δ_w)² / (CH(W-1))) / B, squared differences."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    b, h, w, c = (tf.cast(shape[i], tf.float32) for i in range(4))
    dh = tf.reduce_sum(tf.square(images[:, 1:] - images[:, :-1]))
    dw = tf.reduce_sum(tf.square(images[:, :, 1:] - images[:, :, :-1]))
    return 2.0 * (dh / (c * (h - 1.0) * w) + dw / (c * h * (w - 1.0))) / b


def channel_gradient_penalty(critic_fn, real, fake, alpha):
    """TuiGAN's gradient penalty before its weight: mean over pixels of (‖∇‖ - 1)², the
    norm over the *channels* of each pixel, at α·real + (1 - α)·fake with *one* scalar α
    for the call (`torch.rand(1, 1)` expanded). The textbook WGAN-GP (`losses.
    gradient_penalty`) takes one norm per image and one α per image."""
    real, fake = tf.cast(real, tf.float32), tf.stop_gradient(tf.cast(fake, tf.float32))
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        out = tf.cast(critic_fn(x_hat), tf.float32)
    grad = tape.gradient(out, x_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=-1))
    return tf.reduce_mean(tf.square(norm - 1.0))


@keras.saving.register_keras_serializable(package="tf_translate")
class MultiStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`MultiStepLR(milestones=[m], gamma)` stepped once per iteration of
    `updates_per_iteration` optimizer updates: lr·gamma^(iteration >= m)."""

    def __init__(self, initial_learning_rate, milestone=1600, gamma=0.1, updates_per_iteration=3):
        self.initial_learning_rate = float(initial_learning_rate)
        self.milestone, self.gamma = int(milestone), float(gamma)
        self.updates_per_iteration = int(updates_per_iteration)

    def __call__(self, step):
        iteration = ops.cast(step, "int64") // self.updates_per_iteration
        return self.initial_learning_rate * ops.where(iteration >= self.milestone, self.gamma, 1.0)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "milestone": self.milestone,
                "gamma": self.gamma, "updates_per_iteration": self.updates_per_iteration}
