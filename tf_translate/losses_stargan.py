"""StarGAN's losses and target-label rules, as pure functions.

Kept apart from `losses.py` until the two are merged. Inputs may be half precision;
every loss is computed in float32 and returns a float32 scalar.

Reference: yunjey/stargan `solver.py` (`gradient_penalty`, `classification_loss`,
`create_labels`, and the label permutation at the top of `train`).
"""

import tensorflow as tf

# The attributes yunjey's `create_labels` treats as mutually exclusive hair colours.
HAIR_COLOR_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def _f32(x):
    return tf.cast(x, tf.float32)


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


def sample_target_labels(labels, seed):
    """Training targets the reference's way: the batch's own labels, permuted.

    yunjey draws `rand_idx = torch.randperm(B)` and uses `label_org[rand_idx]` as the
    target for every dataset (CelebA and RaFD, one- or multi-dataset). So targets are
    always real label combinations from the data (hair colours stay one-hot without a
    rule, attribute frequencies follow the data), and a sample may draw its own label.
    The "one hair colour, flip the other attributes" rule is `create_labels`, used only
    for the fixed sample grid and testing: see `grid_target_labels`.

    Args:
        labels: [B, C] labels of the batch (unified labels with their mask included).
        seed: int32 tensor of shape [2] for the stateless RNG (XLA-compatible, and
            reproducible from the step counter).
    Returns:
        [B, C] target labels (same dtype).
    Reference: `Solver.train` / `train_multi` in yunjey `solver.py`.
    """
    batch = tf.shape(labels)[0]
    order = tf.argsort(tf.random.stateless_uniform([batch], seed=seed))
    return tf.gather(labels, order)


def hair_color_indices(attrs):
    """Indices of the hair-colour attributes among `attrs` (yunjey's list)."""
    return [i for i, name in enumerate(attrs) if name in HAIR_COLOR_ATTRIBUTES]


def grid_target_labels(labels, hair_colors=(), multi_label=True):
    """The fixed targets of the results grid: one label batch per domain column.

    Multi-label: for column i, if attribute i is a hair colour it is set to 1 and the
    other hair colours to 0; otherwise attribute i is reversed (0 <-> 1) and the rest
    kept. Single-label: column i is the one-hot of domain i for every image.

    Args:
        labels: [B, C] original labels (0/1).
        hair_colors: indices of the mutually exclusive hair colours
            (`hair_color_indices(attrs)`).
        multi_label: CelebA-style attributes (True) or one-hot domains (False).
    Returns:
        list of C float32 tensors [B, C].
    Reference: `Solver.create_labels` in yunjey `solver.py`.
    """
    labels = _f32(labels)
    num = labels.shape[-1]
    batch = tf.shape(labels)[0]
    targets = []
    for i in range(num):
        if not multi_label:
            targets.append(tf.tile(tf.one_hot([i], num), [batch, 1]))
            continue
        column = tf.one_hot(i, num)
        if i in hair_colors:
            others = tf.reduce_sum(tf.one_hot(list(hair_colors), num), axis=0) - column
            target = labels * (1.0 - others) * (1.0 - column) + column
        else:
            target = labels + column * (1.0 - 2.0 * labels)  # flips entry i only
        targets.append(target)
    return targets
