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


# WGAN-GP and domain classification (StarGAN; yunjey/stargan `solver.py`).

def wgan_critic_loss(real_logits, fake_logits):
    """mean(D(fake)) - mean(D(x)): the critic's Wasserstein terms (means over every
    patch logit, as yunjey's `-torch.mean(out_src)` / `torch.mean(out_src)`)."""
    return tf.reduce_mean(_f32(fake_logits)) - tf.reduce_mean(_f32(real_logits))


def wgan_generator_loss(fake_logits):
    """-mean(D(G(x, c)))."""
    return -tf.reduce_mean(_f32(fake_logits))


def gradient_penalty(critic_fn, real, fake, alpha):
    """WGAN-GP: mean over the batch of (||grad_x_hat D(x_hat)||_2 - 1)^2.

    x_hat = alpha * real + (1 - alpha) * fake, both held constant (the reference uses
    `.data`); the gradient is of the sum of all of D's outputs for a sample (the
    reference's `grad_outputs=ones` over the PatchGAN map), flattened per sample before
    the L2 norm. The inner tape is nested in whatever tape the caller holds, so the
    penalty is differentiable with respect to the critic's weights (second order).

    Args:
        critic_fn: x -> real/fake logits of any shape [B, ...] (one sample's outputs may
            depend only on that sample, as in a critic without batch statistics).
        real, fake: image batches of one shape.
        alpha: mixing weights broadcastable to the images, normally U[0, 1) of shape
            [B, 1, 1, 1] (`torch.rand(B, 1, 1, 1)`).
    Returns:
        float32 scalar.
    Reference: `Solver.gradient_penalty` in yunjey `solver.py`; Gulrajani et al. 2017.
    """
    real = tf.stop_gradient(_f32(real))
    fake = tf.stop_gradient(_f32(fake))
    alpha = _f32(alpha)
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        out = _f32(critic_fn(x_hat))
    grad = tape.gradient(out, x_hat)  # d(sum of outputs)/dx_hat, as grad_outputs=ones
    grad = tf.reshape(grad, [tf.shape(grad)[0], -1])
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=1))
    return tf.reduce_mean(tf.square(norm - 1.0))


def classification_loss(logits, labels, mask=None, multi_label=True):
    """The domain-classification loss, with an optional mask of known labels.

    multi_label (CelebA attributes): sum over batch and attributes of
    mask * BCE(sigmoid(logits), labels), divided by the batch size (yunjey:
    `binary_cross_entropy_with_logits(..., size_average=False) / B`).
    single-label (RaFD expressions, one-hot labels): mean over the batch of
    -sum_k labels_k * log softmax_k(logits), where the softmax runs over the known
    (mask 1) logits only (yunjey: `F.cross_entropy` on the dataset's slice).

    The mask is StarGAN's mask vector for multi-dataset training: with the unified label
    [c1, c2], a CelebA batch has mask [1]*len(c1) + [0]*len(c2), so the RaFD logits
    get no gradient, exactly as the reference's `out_cls[:, :c_dim]`. A per-sample mask
    [B, C] is allowed; a sample whose mask is all zero adds 0 but still counts in B.

    Args:
        logits: [B, C] class logits.
        labels: [B, C] targets in {0, 1} (one-hot when single-label).
        mask: None (all known), [C] or [B, C] of 0/1.
        multi_label: BCE (True) or softmax cross-entropy (False).
    Returns:
        float32 scalar.
    Reference: `Solver.classification_loss` and `train_multi` in yunjey `solver.py`.
    """
    logits, labels = _f32(logits), _f32(labels)
    mask = tf.ones_like(logits) if mask is None else tf.broadcast_to(_f32(mask), tf.shape(logits))
    batch = tf.cast(tf.shape(logits)[0], tf.float32)
    if multi_label:
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        return tf.reduce_sum(mask * bce) / batch
    # Unknown logits leave the softmax: a large finite offset, not -inf, so that the
    # zero-weighted terms stay 0 instead of 0 * inf = nan.
    log_probs = tf.nn.log_softmax(logits - 1e9 * (1.0 - mask), axis=-1)
    return -tf.reduce_sum(mask * labels * log_probs) / batch


def patch_nce_loss(q, k, temperature=0.07):
    """PatchNCE: mean over images and patches of the cross-entropy of picking k_i for q_i.

    q, k: [B, P, C] L2-normalised patch embeddings, patch i of q and of k at the same
    position. k is held constant (the reference detaches it). For each row i,
    logits = [⟨q_i, k_i⟩, ⟨q_i, k_j⟩ for j in 0..P-1 of the same image, with j = i set
    to −10] / temperature, and loss_i = logsumexp(logits) − logits[0]. Negatives come
    from the row's own image only (`--nce_includes_all_negatives_from_minibatch False`):
    under a distribution strategy, from its replica's images.

    Reference: `PatchNCELoss` in taesungp/contrastive-unpaired-translation `patchnce.py`
    (the diagonal is −10, not −inf: exp(−10/0.07) is 0 in float32 either way).
    """
    q, k = _f32(q), tf.stop_gradient(_f32(k))
    positive = tf.reduce_sum(q * k, axis=-1, keepdims=True)  # [B, P, 1]
    negative = tf.linalg.matmul(q, k, transpose_b=True)  # [B, P, P]
    patches = tf.shape(negative)[-1]
    negative = tf.where(tf.eye(patches, dtype=tf.bool), -10.0, negative)
    logits = tf.concat([positive, negative], axis=-1) / temperature
    return tf.reduce_mean(tf.reduce_logsumexp(logits, axis=-1) - logits[..., 0])
