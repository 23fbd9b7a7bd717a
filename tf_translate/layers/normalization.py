"""Normalisation layers with the reference implementations' semantics.

All statistics are computed in float32 whatever the dtype policy (an fp16 variance of
large activations overflows to inf and silently zeroes the output), then cast back.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tf_translate.layers.initializers import torch_bias_init, torch_kernel_init


def _reduced_count(x, axes, unbiased):
    """n − 1 (Bessel) or n for the n elements of x over `axes`, static when known."""
    if all(x.shape[a] is not None for a in axes):
        n = float(np.prod([x.shape[a] for a in axes]))
    else:
        dynamic = tf.shape(x)
        n = tf.cast(tf.reduce_prod([dynamic[a] for a in axes]), tf.float32)
    return n - 1.0 if unbiased else n


def _standardized(x, axes, divisor, epsilon):
    """(y, r): y = (x − mean)·r over `axes`, r = 1 / sqrt(Σ(x − mean)² / divisor + ε)."""
    centered = x - tf.reduce_mean(x, axes, keepdims=True)
    var = tf.reduce_sum(tf.square(centered), axes, keepdims=True) / divisor
    inv_std = tf.math.rsqrt(var + epsilon)
    return centered * inv_std, inv_std


def _standardized_grad(g, y, inv_std, axes, divisor):
    """x's gradient through y = `_standardized`(x) given y's gradient g:
    r·(g − mean(g) − y·Σ(g·y) / divisor), the closed form of differentiating the
    mean and the variance."""
    g_mean = tf.reduce_mean(g, axes, keepdims=True)
    g_y = tf.reduce_sum(g * y, axes, keepdims=True) / divisor
    return inv_std * (g - g_mean - y * g_y)


def standardize(x, axes, epsilon=1e-5, unbiased=False):
    """(x − mean) / sqrt(var + epsilon) over `axes`, in float32, with a hand-written gradient.

    `unbiased=True` applies Bessel's correction, as `torch.var` does;
    `torch.nn.InstanceNorm2d` uses the biased variance. Autodiff of the moments builds
    about twice the graph ops (traced and compiled before the first step) and keeps
    x − mean as well as the output for the backward pass; this keeps the output only.
    """
    x = tf.cast(x, tf.float32)
    divisor = _reduced_count(x, axes, unbiased)

    @tf.custom_gradient
    def forward(x):
        y, inv_std = _standardized(x, axes, divisor, epsilon)
        return y, lambda g: _standardized_grad(g, y, inv_std, axes, divisor)

    return forward(x)


def layer_instance_norm(x, weight_in, weight_ln, gamma, beta, epsilon=1e-5):
    """(weight_in·IN(x) + weight_ln·LN(x))·γ + β in float32, with unbiased variances.

    IN normalises over H, W and LN over H, W, C, each with Bessel's correction as
    `torch.var` computes it in U-GAT-IT's `adaILN`/`ILN`. `weight_in` and `weight_ln`
    have shape (C,); γ and β (C,) (LIN) or (B, C) (AdaLIN). The gradient is written by
    hand (see `standardize`): U-GAT-IT's generator has ten of these per pass, and
    autodiff of the two normalisations, the mix and the broadcast affine builds 2.5x
    the graph ops.
    """
    x = tf.cast(x, tf.float32)
    in_axes, ln_axes = [1, 2], [1, 2, 3]
    in_divisor = _reduced_count(x, in_axes, unbiased=True)
    ln_divisor = _reduced_count(x, ln_axes, unbiased=True)
    per_sample = len(gamma.shape) == 2
    as_nhwc = lambda t: t[:, None, None, :] if per_sample else t
    weight_axes = [1, 2] if per_sample else [0, 1, 2]

    @tf.custom_gradient
    def forward(x, weight_in, weight_ln, gamma, beta):
        y_in, r_in = _standardized(x, in_axes, in_divisor, epsilon)
        y_ln, r_ln = _standardized(x, ln_axes, ln_divisor, epsilon)
        mixed = weight_in * y_in + weight_ln * y_ln

        def backward(g):
            g_mixed = g * as_nhwc(gamma)
            dx = (_standardized_grad(g_mixed * weight_in, y_in, r_in, in_axes, in_divisor)
                  + _standardized_grad(g_mixed * weight_ln, y_ln, r_ln, ln_axes, ln_divisor))
            return (dx, tf.reduce_sum(g_mixed * y_in, [0, 1, 2]), tf.reduce_sum(g_mixed * y_ln, [0, 1, 2]),
                    tf.reduce_sum(g * mixed, weight_axes), tf.reduce_sum(g, weight_axes))

        return mixed * as_nhwc(gamma) + as_nhwc(beta), backward

    return forward(x, weight_in, weight_ln, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32))


@keras.saving.register_keras_serializable(package="tf_translate")
class InstanceNormalization(keras.layers.Layer):
    """Instance normalisation as `torch.nn.InstanceNorm2d` computes it.

    Biased variance, eps 1e-5, non-affine by default (junyanz CycleGAN); `affine=True`
    adds a per-channel scale (init 1) and offset (init 0), as StarGAN uses.

    Args:
        epsilon: added to the variance.
        affine: learn a per-channel scale and offset.
    Reference: Ulyanov et al. 2016; torch.nn.InstanceNorm2d.
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)

    def build(self, input_shape):
        if self.affine:
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        y = standardize(inputs, [1, 2], self.epsilon)
        if self.affine:
            y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}


@keras.saving.register_keras_serializable(package="tf_translate")
class Clipper(keras.constraints.Constraint):
    """Clips a weight to [min_value, max_value] after every optimizer step.

    Keras 3 optimizers apply a variable's constraint right after its update, which is
    what the references do by hand with `RhoClipper(0, 1)` / `WClipper(0, 1)` after each
    generator step.

    Args:
        min_value: lower bound.
        max_value: upper bound.
    Reference: `RhoClipper` in UGATIT-pytorch `networks.py`; `WClipper` in photo2cartoon
    `models/networks.py`.
    """

    def __init__(self, min_value=0.0, max_value=1.0):
        if not min_value < max_value:
            raise ValueError(f"Clipper needs min_value < max_value, got {min_value}, {max_value}")
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w):
        return ops.clip(w, self.min_value, self.max_value)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}


class _LayerInstanceNorm(keras.layers.Layer):
    """The ρ-weighted IN/LN mix shared by `AdaLIN` and `LIN`.

    `rho_mode="clip"`: ρ has shape (C,), the output is ρ·IN + (1−ρ)·LN and a `Clipper`
    keeps ρ in [0, 1] (U-GAT-IT, photo2cartoon). `rho_mode="softmax"`: ρ has shape
    (C, 2) and softmax(ρ) over the last axis gives (w_IN, w_LN) (NICE-GAN; no clipper).
    """

    CLIP_INIT = None
    SOFTMAX_INIT = None

    def __init__(self, epsilon=1e-5, rho_mode="clip", **kwargs):
        if rho_mode not in ("clip", "softmax"):
            raise ValueError(f"rho_mode must be 'clip' or 'softmax', got {rho_mode!r}")
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.rho_mode = rho_mode

    def _add_rho(self, channels):
        if self.rho_mode == "clip":
            self.rho = self.add_weight(
                shape=(channels,), initializer=keras.initializers.Constant(self.CLIP_INIT),
                constraint=Clipper(0.0, 1.0), autocast=False, name="rho")
        else:
            start = self.SOFTMAX_INIT
            self.rho = self.add_weight(
                shape=(channels, 2), autocast=False, name="rho",
                initializer=lambda shape, dtype=None: ops.tile(
                    ops.convert_to_tensor([start], dtype=dtype or "float32"), (shape[0], 1)))

    def mix_weights(self):
        """(w_IN, w_LN), each of shape (C,), in float32."""
        rho = ops.cast(self.rho, "float32")
        if self.rho_mode == "clip":
            return rho, 1.0 - rho
        weights = ops.softmax(rho, axis=-1)
        return weights[:, 0], weights[:, 1]

    def _normalize(self, x, gamma, beta):
        weight_in, weight_ln = self.mix_weights()
        y = layer_instance_norm(x, weight_in, weight_ln, gamma, beta, self.epsilon)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "rho_mode": self.rho_mode}


@keras.saving.register_keras_serializable(package="tf_translate")
class AdaLIN(_LayerInstanceNorm):
    """Adaptive layer-instance normalisation: (ρ·IN(x) + (1−ρ)·LN(x))·γ + β.

    γ and β come from the caller (U-GAT-IT's MLP on the attention features), one per
    sample and channel; ρ is learned per channel, starting at 0.9 (`rho_mode="clip"`) or
    at the logits (3.2, 1.0) of NICE-GAN's `adaILN` (`rho_mode="softmax"`, ≈ 0.9 / 0.1).
    Unbiased variances, eps 1e-5, statistics in float32.

    Call args:
        x: NHWC features.
        gamma, beta: [B, C] scale and offset.
    Args:
        epsilon: added to the variances.
        rho_mode: "clip" (ρ clamped to [0, 1]) or "softmax" (NICE-GAN).
    Reference: Kim et al., "U-GAT-IT", ICLR 2020; `adaILN` in UGATIT-pytorch
    `networks.py`, `adaLIN` in photo2cartoon `models/networks.py`, `adaILN` in
    NICE-GAN-pytorch `networks.py` (its unused `using_bn` option is not ported).
    """

    CLIP_INIT = 0.9
    SOFTMAX_INIT = (3.2, 1.0)

    def build(self, input_shape):
        self._add_rho(input_shape[-1])

    def call(self, x, gamma, beta):
        return self._normalize(x, gamma, beta)


@keras.saving.register_keras_serializable(package="tf_translate")
class LIN(_LayerInstanceNorm):
    """Layer-instance normalisation with learned per-channel γ (init 1) and β (init 0).

    The U-GAT-IT decoder's upsampling blocks use it. ρ starts at 0.0 (pure LN) in
    `rho_mode="clip"`, or at NICE-GAN `ILN`'s logits (1.0, 3.2) in `rho_mode="softmax"`.

    Args:
        epsilon: added to the variances.
        rho_mode: "clip" (ρ clamped to [0, 1]) or "softmax" (NICE-GAN).
    Reference: `ILN` in UGATIT-pytorch and NICE-GAN-pytorch `networks.py`, `LIN` in
    photo2cartoon `models/networks.py`.
    """

    CLIP_INIT = 0.0
    SOFTMAX_INIT = (1.0, 3.2)

    def build(self, input_shape):
        channels = input_shape[-1]
        self._add_rho(channels)
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", autocast=False, name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", autocast=False, name="beta")

    def call(self, x):
        return self._normalize(x, self.gamma, self.beta)


@keras.saving.register_keras_serializable(package="tf_translate")
class SoftAdaLIN(keras.layers.Layer):
    """AdaLIN whose γ, β blend a style code with a per-block content code.

    γ = (1 − w_γ)·s_γ(style) + w_γ·c_γ(content), and likewise β. c_γ, c_β are
    Linear-ReLU-Linear MLPs and s_γ, s_β single Linear layers, all with bias as in the
    reference; w_γ, w_β are per-channel weights starting at 0 (pure style) and clamped
    to [0, 1] (the reference's `WClipper(0, --w_clipper=1)`). The blend feeds `AdaLIN`
    (ρ from 0.9, clamped to [0, 1]).

    Call args:
        x: NHWC features with `channels` channels.
        content: [B, channels] content features (GAP of an encoder residual block).
        style: [B, channels] style features (the generator's FC MLP output).
    Args:
        channels: width of x, content and style (reference `num_features`).
        epsilon: added to the variances.
    Reference: Pan et al., photo2cartoon (minivision-ai), `SoftAdaLIN` in
    `models/networks.py`.
    """

    def __init__(self, channels, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.epsilon = float(epsilon)
        fc = lambda name, activation=None: keras.layers.Dense(
            self.channels, activation=activation, kernel_initializer=torch_kernel_init(),
            bias_initializer=torch_bias_init(self.channels), name=name)
        self.content_gamma = [fc("c_gamma_1", "relu"), fc("c_gamma_2")]
        self.content_beta = [fc("c_beta_1", "relu"), fc("c_beta_2")]
        self.style_gamma = fc("s_gamma")
        self.style_beta = fc("s_beta")
        self.norm = AdaLIN(epsilon, name="adalin")

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            raise ValueError(f"SoftAdaLIN({self.channels}) got {input_shape[-1]} input channels")
        code_shape = (input_shape[0], self.channels)
        for layer in self.content_gamma + self.content_beta + [self.style_gamma, self.style_beta]:
            layer.build(code_shape)
        self.norm.build(input_shape)
        clip = Clipper(0.0, 1.0)
        self.w_gamma = self.add_weight(shape=(self.channels,), initializer="zeros", constraint=clip,
                                       autocast=False, name="w_gamma")
        self.w_beta = self.add_weight(shape=(self.channels,), initializer="zeros", constraint=clip,
                                      autocast=False, name="w_beta")

    def blend(self, content, style):
        """The (γ, β) fed to AdaLIN, in float32."""
        c_gamma, c_beta = content, content
        for layer in self.content_gamma:
            c_gamma = layer(c_gamma)
        for layer in self.content_beta:
            c_beta = layer(c_beta)
        s_gamma, s_beta = self.style_gamma(style), self.style_beta(style)
        w_gamma = ops.cast(self.w_gamma, "float32")
        w_beta = ops.cast(self.w_beta, "float32")
        f32 = lambda t: ops.cast(t, "float32")
        gamma = (1.0 - w_gamma) * f32(s_gamma) + w_gamma * f32(c_gamma)
        beta = (1.0 - w_beta) * f32(s_beta) + w_beta * f32(c_beta)
        return gamma, beta

    def call(self, x, content, style):
        gamma, beta = self.blend(content, style)
        return self.norm(x, gamma, beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_translate")
class BatchNormalization(keras.layers.Layer):
    """Batch normalisation as `torch.nn.BatchNorm2d` computes it (pix2pix).

    Differences from Keras' layer, each of which changes a ported model: epsilon 1e-5
    (Keras 1e-3); the running averages move by `momentum` 0.1 towards the batch
    statistics (Keras' momentum 0.9 in the other direction) and the running variance
    takes the *unbiased* batch variance (Keras the biased), while the batch itself is
    normalised with the biased one; γ starts at N(1, 0.02) (junyanz `init_weights`).
    And one choice Keras has no word for: `batch_statistics` normalises with the batch's
    own statistics without touching the running averages, which is what junyanz's
    `test.py` does by default (the network stays in train mode at test time; the running
    averages it updates are never read).

    Call with `training=True` (batch statistics, running averages updated),
    `batch_statistics=True` (each image's own statistics, averages untouched: a batch of
    N gives the reference's N batch-1 test calls) or neither (running averages:
    PyTorch's `eval()`).

    Args:
        epsilon: added to the variance.
        momentum: PyTorch's momentum, the weight of the new batch in the running averages.
        gamma_stddev: γ ~ N(1, gamma_stddev); 0 starts γ at 1 (PyTorch's own default).
    Reference: torch.nn.BatchNorm2d; junyanz `models/networks.py` (`init_weights`, `test.py`).
    """

    def __init__(self, epsilon=1e-5, momentum=0.1, gamma_stddev=0.02, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.gamma_stddev = float(gamma_stddev)

    def build(self, input_shape):
        channels = input_shape[-1]
        gamma_init = (keras.initializers.RandomNormal(1.0, self.gamma_stddev) if self.gamma_stddev
                      else "ones")
        self.gamma = self.add_weight(shape=(channels,), initializer=gamma_init, name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
        # Under a distribution strategy each replica normalises with its own batch (as
        # PyTorch DDP's BatchNorm2d) and the running averages take the replicas' mean.
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros", name="moving_mean",
                                           trainable=False, aggregation="mean")
        self.moving_variance = self.add_weight(shape=(channels,), initializer="ones",
                                               name="moving_variance", trainable=False, aggregation="mean")

    def call(self, inputs, training=False, batch_statistics=False):
        x = ops.cast(inputs, "float32")
        gamma, beta = ops.cast(self.gamma, "float32"), ops.cast(self.beta, "float32")
        if not (training or batch_statistics):
            inv_std = ops.rsqrt(ops.cast(self.moving_variance, "float32") + self.epsilon)
            y = (x - ops.cast(self.moving_mean, "float32")) * inv_std * gamma + beta
            return ops.cast(y, self.compute_dtype)
        axes = [0, 1, 2] if training else [1, 2]
        y = standardize(x, axes, self.epsilon)
        if training:
            mean = ops.mean(x, axes)
            count = _reduced_count(x, axes, unbiased=False)
            unbiased = ops.sum(ops.square(x - mean), axes) / ops.maximum(count - 1.0, 1.0)
            m = self.momentum
            self.moving_mean.assign((1.0 - m) * self.moving_mean + m * ops.stop_gradient(mean))
            self.moving_variance.assign((1.0 - m) * self.moving_variance + m * ops.stop_gradient(unbiased))
        return ops.cast(y * gamma + beta, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "momentum": self.momentum,
                "gamma_stddev": self.gamma_stddev}


@keras.saving.register_keras_serializable(package="tf_translate")
class UNITLayerNormalization(keras.layers.Layer):
    """UNIT's own layer norm: (x − mean) / (std + ε) · γ + β per sample over (H, W, C).

    Three differences from `keras.layers.LayerNormalization`, each of which changes a
    ported UNIT decoder: the standard deviation is the *unbiased* one (n − 1, as
    `torch.Tensor.std`), ε is added to σ rather than inside the square root, and γ
    starts at U(0, 1) (β at 0); γ and β are per channel. Statistics in float32.

    Args:
        epsilon: added to the standard deviation (reference `eps`, 1e-5).
    Reference: `LayerNorm` in mingyuliutw/UNIT `networks.py` (the decoder's 'ln' norm).
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer=keras.initializers.RandomUniform(0.0, 1.0),
                                     autocast=False, name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", autocast=False, name="beta")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        axes = [1, 2, 3]
        centered = x - ops.mean(x, axis=axes, keepdims=True)
        divisor = _reduced_count(x, axes, unbiased=True)
        std = ops.sqrt(ops.sum(ops.square(centered), axis=axes, keepdims=True) / divisor)
        y = centered / (std + self.epsilon) * self.gamma + self.beta
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
