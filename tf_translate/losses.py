"""Pure loss functions shared by the models. Inputs may be half precision; every
loss is computed in float32 and returns a float32 scalar (mean over the local batch).
"""

import tensorflow as tf


def _f32(x):
    return tf.cast(x, tf.float32)


def lsgan_real_loss(logits):
    """mean((D(x) - 1)^2): LSGAN target "real" (junyanz `GANLoss('lsgan')`, MSE to 1)."""
    return tf.reduce_mean(tf.square(_f32(logits) - 1.0))


def lsgan_fake_loss(logits):
    """mean(D(x)^2): LSGAN target "fake" (MSE to 0)."""
    return tf.reduce_mean(tf.square(_f32(logits)))


def l1_loss(x, y):
    """mean(|x - y|): the cycle, identity and reconstruction losses."""
    return tf.reduce_mean(tf.abs(_f32(x) - _f32(y)))


def bce_with_logits(logits, target):
    """mean(BCE(sigmoid(logits), target)): `nn.BCEWithLogitsLoss` with a constant target."""
    logits = _f32(logits)
    labels = tf.fill(tf.shape(logits), tf.cast(target, tf.float32))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
