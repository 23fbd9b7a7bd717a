"""Spectral normalisation with PyTorch's semantics (`torch.nn.utils.spectral_norm`)."""

import math

import keras
from keras import layers, ops


def _l2_normalize(v, epsilon):
    # F.normalize: v / max(||v||, eps).
    return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v))), epsilon)


def _random_unit_vector(shape, dtype=None):
    return _l2_normalize(keras.random.normal(shape, dtype=dtype or "float32"), 1e-12)


@keras.saving.register_keras_serializable(package="tf_translate")
class SpectralNorm(layers.Wrapper):
    """Wraps a `Conv2D` or `Dense` so that it computes with W / σ(W).

    Why not `keras.layers.SpectralNormalization`: that layer writes W/σ into the kernel
    and passes no gradient through σ. PyTorch's `spectral_norm`, which the U-GAT-IT,
    photo2cartoon and NICE-GAN discriminators use, keeps the raw kernel (`weight_orig`)
    as the trained weight and divides by σ in the forward pass, so the gradient also
    flows through σ = uᵀ W v (u and v held constant). This layer does the same:

    - the wrapped layer's kernel stays the raw trainable weight;
    - `u` (length = output units) and `v` (length = the other kernel axes flattened)
      are non-trainable float32 weights, random unit vectors at build, as in torch;
    - each call with `training=True` runs `power_iterations` steps
      v ← normalize(Wᵀu), u ← normalize(W v) without gradient and stores u, v;
      other calls reuse the stored u, v (torch's `eval()` behaviour);
    - σ = uᵀ W v in float32, and the wrapped op runs with the kernel W / σ (computed as
      op(x, W) / σ).

    W here is torch's `weight.flatten(1)` ([out, rest]); for a Keras kernel
    [..., out] that is reshape(kernel, [rest, out])ᵀ. Its `rest` axis is ordered
    (kh, kw, in) rather than torch's (in, kh, kw): permute `weight_v` when importing.

    Call args:
        inputs: the wrapped layer's input.
        training: run the power iterations and store u, v.
        consecutive_calls: the batch is this many equal parts, stacked, that stand for
            as many consecutive calls, one per part (None: 1): in training, that many
            power iterations in turn, part i computed with the i-th σ, u and v left as
            the last call leaves them. A discriminator can then judge real and fake
            images in one call with the reference's two-call results (U-GAT-IT's D
            step), one copy of its convolutions in the step's graph and batch-2
            products that read each kernel once. A call-context argument: given to a
            model that registers it (`UGATITDiscriminator`), it reaches every
            SpectralNorm the model calls. Its default is None, not 1, because Keras
            3.15 replays a nested Sequential's build-time call with the non-None
            default, which would override the value passed from outside.
    Args:
        layer: an unbuilt or built `keras.layers.Conv2D` or `keras.layers.Dense`.
        power_iterations: power-method steps per training call (torch default 1).
        epsilon: floor of the norms in the normalisation (torch default 1e-12).
    Reference: Miyato et al., "Spectral Normalization for Generative Adversarial
    Networks", ICLR 2018; `torch/nn/utils/spectral_norm.py`.
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, **kwargs):
        if not isinstance(layer, (layers.Conv2D, layers.Dense)):
            raise ValueError(f"SpectralNorm wraps Conv2D or Dense, got {type(layer).__name__}")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise ValueError("SpectralNorm supports channels_last (NHWC) convolutions only")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
        super().__init__(layer, **kwargs)
        self.power_iterations = int(power_iterations)
        self.epsilon = float(epsilon)
        # Keras passes a call-context argument (like `training`) from an outer call that
        # names it down to the nested layers that register it.
        self._register_call_context_args("consecutive_calls")

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel_shape = tuple(self.layer.kernel.shape)
        units = kernel_shape[-1]
        rest = math.prod(kernel_shape[:-1])
        # The power iteration reads the weights only, so every replica of a distributed
        # step computes the same u and v: "mean" lets replicas write them (their mean is
        # that value).
        self.u = self.add_weight(shape=(units,), initializer=_random_unit_vector, dtype="float32",
                                 trainable=False, autocast=False, name="u", aggregation="mean")
        self.v = self.add_weight(shape=(rest,), initializer=_random_unit_vector, dtype="float32",
                                 trainable=False, autocast=False, name="v", aggregation="mean")
        self.built = True

    def sigmas(self, training=False, calls=1):
        """σ = uᵀ W v in float32 for each of `calls` consecutive calls, with gradient
        through W; each training call first runs its power iterations and u, v are
        stored after the last."""
        kernel = ops.cast(self.layer.kernel, "float32")
        matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))  # [rest, out] = torch weight_mat transposed
        u = ops.convert_to_tensor(self.u)
        v = ops.convert_to_tensor(self.v)
        w_const = ops.stop_gradient(matrix)
        sigmas = []
        for _ in range(calls):
            if training:
                for _ in range(self.power_iterations):
                    v = _l2_normalize(ops.matmul(w_const, u), self.epsilon)  # W^T u in torch terms
                    u = _l2_normalize(ops.matmul(v, w_const), self.epsilon)  # W v
            sigmas.append(ops.sum(ops.stop_gradient(u) * ops.matmul(ops.stop_gradient(v), matrix)))
        if training:
            self.u.assign(u)
            self.v.assign(v)
        return sigmas

    def call(self, inputs, training=False, consecutive_calls=None):
        # op(x, W / σ) computed as op(x, W) / σ: the same value, but the kernel-sized
        # division and its gradient (two passes over the global D's 33.5 M-weight kernel
        # per call, and a W / σ copy kept for the backward pass) become passes over the
        # output, smaller in the deep layers, larger in the first ones (not yet measured
        # per layer; see issue 3's note).
        kernel = ops.cast(self.layer.kernel, self.compute_dtype)
        if isinstance(self.layer, layers.Conv2D):
            outputs = self.layer.convolution_op(inputs, kernel)
        else:
            outputs = ops.matmul(inputs, kernel)
        calls = 1 if consecutive_calls is None else int(consecutive_calls)
        if calls < 1:
            raise ValueError(f"{self.name}: consecutive_calls must be >= 1, got {consecutive_calls}")
        sigmas = [ops.cast(s, self.compute_dtype) for s in self.sigmas(bool(training), calls)]
        if calls == 1:
            outputs = outputs / sigmas[0]
        else:
            batch = inputs.shape[0]
            if batch is not None and batch % calls:
                raise ValueError(f"{self.name}: a batch of {batch} is not {calls} equal consecutive calls")
            per_call = (batch or ops.shape(inputs)[0]) // calls
            per_sample = ops.repeat(ops.stack(sigmas), per_call, axis=0)
            outputs = outputs / ops.reshape(per_sample, (-1,) + (1,) * (len(outputs.shape) - 1))
        if self.layer.use_bias:
            outputs = outputs + ops.cast(self.layer.bias, self.compute_dtype)
        if self.layer.activation is not None:
            outputs = self.layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations,
                "epsilon": self.epsilon}
