"""A PyTorch re-statement of the U-GAT-IT training step, for `test_ugatit_parity.py`.

Written from znxlwm/UGATIT-pytorch (`networks.py`: `ResnetGenerator`, `ResnetBlock`,
`ResnetAdaILNBlock`, `adaILN`, `ILN`, `Discriminator`, `RhoClipper`; `UGATIT.py`:
`build_model` and the body of the loop in `train`). The modules, their names (so the
state-dict keys are the reference's), the losses, the optimizers and the update order
are the reference's; the weights are not initialised here but copied from one of our
models, spectral-norm vectors included, so both sides start equal.

`TorchUGATIT.step` is one reference iteration, in the reference's order:
1. D step. `D_optim.zero_grad()`, the generators translate A and B, each
   discriminator judges its domain's real images and then the fakes (not detached), the
   LSGAN losses on logits and CAM logits are summed, `backward()`, `D_optim.step()`.
2. G step. `G_optim.zero_grad()`, the generators run again (fakes, cycles, identities),
   the *updated* discriminators judge the fakes, adversarial + 10 cycle L1 + 10
   identity L1 + 1000 CAM BCE, `backward()`, `G_optim.step()`, then `RhoClipper(0, 1)`
   on both generators.
Both optimizers are `Adam(lr, betas=(0.5, 0.999), weight_decay)`: torch's coupled L2.

Why our step must still give the same numbers although it is organised differently
(`UGATIT.train_step` in `tf_translate/models/ugatit.py`):
- Detached fakes in our D step. The reference's D loss does backpropagate into both
  generators, but `G_optim.zero_grad()` drops those gradients before the G step, and
  `D_optim` updates only discriminator parameters; the D gradients do not depend on it.
- One generator forward pass for both steps. The reference translates A and B again in
  the G step with the same, not yet updated, generator weights; generators have no
  randomness and no batch statistics, so the fakes are the same tensors' values.
- Batched calls (source and target domain in one generator call, real and fake in one
  discriminator call). Every normalisation is per image, so each half of the batch
  equals a separate call; the discriminator call is told `consecutive_calls=2`, which
  makes each spectral norm run two power iterations in turn and compute the real half
  with the first σ and the fake half with the second, as two torch calls do.
- Spectral-norm power iterations. torch's `spectral_norm` runs one power iteration in
  its forward pre-hook on every call of a module in training mode (the reference never
  calls `.eval()` while training) and updates `weight_u`, `weight_v` in place: three per
  discriminator and iteration here (real, fake, G-step fake), on the pre-update weights
  twice and on the updated weights once. Ours: two in the D step
  (`consecutive_calls=2`, pre-update kernel) and one in the G step (training call on the
  updated kernel), and its stored u, v are the last call's. So u and v are copied once,
  before the first step, and then follow on both sides; the test compares them at the
  end.
- ρ clipping. Our ρ weights carry a [0, 1] constraint, which Keras applies right after
  the optimizer's update of that variable, i.e. after the G step: the `RhoClipper`.

Needs torch; nothing in `tf_translate` imports this file.
"""

import itertools

import keras
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# ---------------------------------------------------------------------------------------
# networks.py


class ResnetBlock(nn.Module):
    """Reflect pad, 3x3 conv, IN, ReLU, reflect pad, 3x3 conv, IN, plus the input."""

    def __init__(self, dim, use_bias):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=use_bias), nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=use_bias), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


def _in_and_ln(x, eps):
    """Instance- and layer-normalised x with `torch.var` (unbiased), as adaILN and ILN."""
    in_mean, in_var = torch.mean(x, dim=[2, 3], keepdim=True), torch.var(x, dim=[2, 3], keepdim=True)
    ln_mean, ln_var = torch.mean(x, dim=[1, 2, 3], keepdim=True), torch.var(x, dim=[1, 2, 3], keepdim=True)
    return (x - in_mean) / torch.sqrt(in_var + eps), (x - ln_mean) / torch.sqrt(ln_var + eps)


class adaILN(nn.Module):  # noqa: N801 (the reference's name)
    """ρ·IN + (1−ρ)·LN, then γ, β per sample from the generator's MLP; ρ starts at 0.9."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, num_features, 1, 1), 0.9))

    def forward(self, x, gamma, beta):
        out_in, out_ln = _in_and_ln(x, self.eps)
        rho = self.rho.expand(x.shape[0], -1, -1, -1)
        out = rho * out_in + (1 - rho) * out_ln
        return out * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)


class ILN(nn.Module):
    """ρ·IN + (1−ρ)·LN with learned γ (1), β (0); ρ starts at 0."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x):
        out_in, out_ln = _in_and_ln(x, self.eps)
        rho = self.rho.expand(x.shape[0], -1, -1, -1)
        out = rho * out_in + (1 - rho) * out_ln
        return out * self.gamma.expand(x.shape[0], -1, -1, -1) + self.beta.expand(x.shape[0], -1, -1, -1)


class ResnetAdaILNBlock(nn.Module):
    def __init__(self, dim, use_bias):
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=use_bias)
        self.norm1, self.relu1 = adaILN(dim), nn.ReLU(True)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=use_bias)
        self.norm2 = adaILN(dim)

    def forward(self, x, gamma, beta):
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return self.norm2(self.conv2(self.pad2(out)), gamma, beta) + x


def cam_attention(x, gap_fc, gmp_fc, conv1x1, activation):
    """The reference's CAM block (written out in both forward methods): GAP and GMP each
    through a bias-free FC for the logits; the FCs' first parameters (under spectral norm
    that is `weight_orig`, the raw weight) re-weight the channels."""
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).view(x.shape[0], -1))
    gap = x * list(gap_fc.parameters())[0].unsqueeze(2).unsqueeze(3)
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).view(x.shape[0], -1))
    gmp = x * list(gmp_fc.parameters())[0].unsqueeze(2).unsqueeze(3)
    y = activation(conv1x1(torch.cat([gap, gmp], 1)))
    return y, torch.cat([gap_logit, gmp_logit], 1), torch.sum(y, dim=1, keepdim=True)


class ResnetGenerator(nn.Module):
    """UGATIT-pytorch `ResnetGenerator(3, 3, ngf, n_blocks, img_size, light)`."""

    def __init__(self, ngf=64, n_blocks=4, img_size=256, light=False):
        super().__init__()
        self.n_blocks, self.light = n_blocks, light
        down = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, 1, 0, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            down += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 0, bias=False),
                     nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        width = ngf * 4
        down += [ResnetBlock(width, use_bias=False) for _ in range(n_blocks)]
        self.gap_fc = nn.Linear(width, 1, bias=False)
        self.gmp_fc = nn.Linear(width, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * width, width, 1, 1, bias=True)
        self.relu = nn.ReLU(True)
        mlp_inputs = width if light else (img_size // 4) * (img_size // 4) * width
        self.FC = nn.Sequential(nn.Linear(mlp_inputs, width, bias=False), nn.ReLU(True),
                                nn.Linear(width, width, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(width, use_bias=False))
        up = []
        for mult in (4, 2):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                   nn.Conv2d(ngf * mult, ngf * mult // 2, 3, 1, 0, bias=False), ILN(ngf * mult // 2), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, 1, 0, bias=False), nn.Tanh()]
        self.DownBlock, self.UpBlock2 = nn.Sequential(*down), nn.Sequential(*up)

    def forward(self, x):
        x, cam_logit, heatmap = cam_attention(self.DownBlock(x), self.gap_fc, self.gmp_fc, self.conv1x1, self.relu)
        code = F.adaptive_avg_pool2d(x, 1) if self.light else x
        code = self.FC(code.view(code.shape[0], -1))
        gamma, beta = self.gamma(code), self.beta(code)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.UpBlock2(x), cam_logit, heatmap


class Discriminator(nn.Module):
    """UGATIT-pytorch `Discriminator(3, ndf, n_layers)`: spectral-normalised 4x4 convs
    (`nn.utils.spectral_norm`, one power iteration per training call), CAM, 4x4 conv."""

    def __init__(self, ndf=64, n_layers=5):
        super().__init__()
        sn = nn.utils.spectral_norm
        layers = [nn.ReflectionPad2d(1), sn(nn.Conv2d(3, ndf, 4, 2, 0, bias=True)), nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers - 2):
            mult = 2 ** (i - 1)
            layers += [nn.ReflectionPad2d(1), sn(nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 0, bias=True)),
                       nn.LeakyReLU(0.2, True)]
        mult = 2 ** (n_layers - 3)
        layers += [nn.ReflectionPad2d(1), sn(nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 1, 0, bias=True)),
                   nn.LeakyReLU(0.2, True)]
        width = ndf * mult * 2
        self.gap_fc = sn(nn.Linear(width, 1, bias=False))
        self.gmp_fc = sn(nn.Linear(width, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * width, width, 1, 1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.pad = nn.ReflectionPad2d(1)
        self.conv = sn(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        x, cam_logit, heatmap = cam_attention(self.model(x), self.gap_fc, self.gmp_fc, self.conv1x1, self.leaky_relu)
        return self.conv(self.pad(x)), cam_logit, heatmap


class RhoClipper:
    """Clamps every `rho` of a module tree to [clip_min, clip_max] (`net.apply(clipper)`)."""

    def __init__(self, clip_min, clip_max):
        assert clip_min < clip_max
        self.clip_min, self.clip_max = clip_min, clip_max

    def __call__(self, module):
        if hasattr(module, "rho"):
            module.rho.data = module.rho.data.clamp(self.clip_min, self.clip_max)


# ---------------------------------------------------------------------------------------
# UGATIT.py: build_model and the loop body of train


class TorchUGATIT:
    """UGATIT-pytorch's training (batch as given, constant learning rate: the decay
    starts only after half of `--iteration`), on a copy of one of our models' weights."""

    def __init__(self, ch, n_res, img_size, light, ndf, global_layers=7, local_layers=5, lr=1e-4,
                 weight_decay=1e-4, adv_weight=1.0, cycle_weight=10.0, identity_weight=10.0, cam_weight=1000.0,
                 dtype="float64"):
        self.dtype = getattr(torch, dtype)
        self.light, self.img_size = light, img_size
        self.adv_weight, self.cycle_weight = adv_weight, cycle_weight
        self.identity_weight, self.cam_weight = identity_weight, cam_weight
        make = lambda net: net.to(self.dtype).train()
        self.genA2B = make(ResnetGenerator(ch, n_res, img_size, light))
        self.genB2A = make(ResnetGenerator(ch, n_res, img_size, light))
        self.disGA, self.disGB = make(Discriminator(ndf, global_layers)), make(Discriminator(ndf, global_layers))
        self.disLA, self.disLB = make(Discriminator(ndf, local_layers)), make(Discriminator(ndf, local_layers))
        self.G_optim = torch.optim.Adam(itertools.chain(self.genA2B.parameters(), self.genB2A.parameters()),
                                        lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
        self.D_optim = torch.optim.Adam(itertools.chain(self.disGA.parameters(), self.disGB.parameters(),
                                                        self.disLA.parameters(), self.disLB.parameters()),
                                        lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
        self.Rho_clipper = RhoClipper(0, 1)

    @classmethod
    def like(cls, model, dtype="float64"):
        """The reference configured as our `UGATIT` training model `model`."""
        return cls(model.filters, model.num_residual_blocks, model.image_size, model.light,
                   model.discriminator_filters, model.global_layers, model.local_layers, model.learning_rate,
                   model.weight_decay, model.adversarial_weight, model.cycle_weight, model.identity_weight,
                   model.cam_weight, dtype)

    def networks(self):
        """{our attribute name: reference network} (disGA judges A images, genA2B maps A to B)."""
        return {"generator_ab": self.genA2B, "generator_ba": self.genB2A,
                "discriminator_global_a": self.disGA, "discriminator_local_a": self.disLA,
                "discriminator_global_b": self.disGB, "discriminator_local_b": self.disLB}

    def tensor(self, images_nhwc):
        return torch.from_numpy(np.asarray(images_nhwc)).permute(0, 3, 1, 2).contiguous().to(self.dtype)

    def step(self, real_a, real_b):
        """One iteration on NHWC [-1, 1] batches; returns our logged losses' values."""
        mse, l1, bce = F.mse_loss, F.l1_loss, F.binary_cross_entropy_with_logits
        real = lambda t: mse(t, torch.ones_like(t))
        fake = lambda t: mse(t, torch.zeros_like(t))
        real_A, real_B = self.tensor(real_a), self.tensor(real_b)

        # Update D
        self.D_optim.zero_grad()
        fake_A2B, _, _ = self.genA2B(real_A)
        fake_B2A, _, _ = self.genB2A(real_B)
        real_GA, real_LA = self.disGA(real_A), self.disLA(real_A)
        real_GB, real_LB = self.disGB(real_B), self.disLB(real_B)
        fake_GA, fake_LA = self.disGA(fake_B2A), self.disLA(fake_B2A)
        fake_GB, fake_LB = self.disGB(fake_A2B), self.disLB(fake_A2B)
        d_terms = lambda on_real, on_fake: (real(on_real[0]) + fake(on_fake[0])) + (real(on_real[1]) + fake(on_fake[1]))
        D_loss_A = self.adv_weight * (d_terms(real_GA, fake_GA) + d_terms(real_LA, fake_LA))
        D_loss_B = self.adv_weight * (d_terms(real_GB, fake_GB) + d_terms(real_LB, fake_LB))
        Discriminator_loss = D_loss_A + D_loss_B
        Discriminator_loss.backward()
        self.D_optim.step()

        # Update G
        self.G_optim.zero_grad()
        fake_A2B, fake_A2B_cam_logit, _ = self.genA2B(real_A)
        fake_B2A, fake_B2A_cam_logit, _ = self.genB2A(real_B)
        fake_A2B2A, _, _ = self.genB2A(fake_A2B)
        fake_B2A2B, _, _ = self.genA2B(fake_B2A)
        fake_A2A, fake_A2A_cam_logit, _ = self.genB2A(real_A)
        fake_B2B, fake_B2B_cam_logit, _ = self.genA2B(real_B)
        g_terms = lambda out: real(out[0]) + real(out[1])
        G_ad_A = g_terms(self.disGA(fake_B2A)) + g_terms(self.disLA(fake_B2A))
        G_ad_B = g_terms(self.disGB(fake_A2B)) + g_terms(self.disLB(fake_A2B))
        G_recon_loss_A, G_recon_loss_B = l1(fake_A2B2A, real_A), l1(fake_B2A2B, real_B)
        G_identity_loss_A, G_identity_loss_B = l1(fake_A2A, real_A), l1(fake_B2B, real_B)
        G_cam_loss_A = (bce(fake_B2A_cam_logit, torch.ones_like(fake_B2A_cam_logit))
                        + bce(fake_A2A_cam_logit, torch.zeros_like(fake_A2A_cam_logit)))
        G_cam_loss_B = (bce(fake_A2B_cam_logit, torch.ones_like(fake_A2B_cam_logit))
                        + bce(fake_B2B_cam_logit, torch.zeros_like(fake_B2B_cam_logit)))
        G_loss_A = (self.adv_weight * G_ad_A + self.cycle_weight * G_recon_loss_A
                    + self.identity_weight * G_identity_loss_A + self.cam_weight * G_cam_loss_A)
        G_loss_B = (self.adv_weight * G_ad_B + self.cycle_weight * G_recon_loss_B
                    + self.identity_weight * G_identity_loss_B + self.cam_weight * G_cam_loss_B)
        Generator_loss = G_loss_A + G_loss_B
        Generator_loss.backward()
        self.G_optim.step()

        # clip parameter of AdaILN and ILN, applied after optimizer step
        self.genA2B.apply(self.Rho_clipper)
        self.genB2A.apply(self.Rho_clipper)
        return {"d_loss": Discriminator_loss.item(), "g_loss": Generator_loss.item(),
                "adversarial_loss": (G_ad_A + G_ad_B).item(), "cycle_loss": (G_recon_loss_A + G_recon_loss_B).item(),
                "identity_loss": (G_identity_loss_A + G_identity_loss_B).item(),
                "cam_loss": (G_cam_loss_A + G_cam_loss_B).item()}

    # -- weight exchange with our model ---------------------------------------------------

    def tensors(self, net):
        """{state-dict key: the live parameter or buffer} (spectral norm: `weight_orig`,
        `weight_u`, `weight_v`)."""
        return {**dict(net.named_parameters()), **dict(net.named_buffers())}

    def load_keras(self, model):
        """Sets every reference parameter and spectral-norm vector to our model's value
        (float32 values, exactly representable in float64). Every key is covered once."""
        for name, net in self.networks().items():
            live = self.tensors(net)
            pairs = keras_pairs(model, name)
            assert sorted(key for _, key, _ in pairs) == sorted(live), f"{name}: keys drifted"
            with torch.no_grad():
                for variable, key, kind in pairs:
                    value = kind.to_torch(np.asarray(variable.numpy(), np.float64))
                    assert value.shape == tuple(live[key].shape), (name, key, value.shape, live[key].shape)
                    live[key].copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def weights_as_keras(self, model):
        """{id(our variable): this reference's value in Keras layout, float64}, for every
        trainable weight and spectral-norm vector of our model."""
        out = {}
        for name, net in self.networks().items():
            live = self.tensors(net)
            for variable, key, kind in keras_pairs(model, name):
                out[id(variable)] = kind.to_keras(live[key].detach().double().numpy().copy())
        return out


# ---------------------------------------------------------------------------------------
# Our variables and the reference's keys


class Layout:
    """A Keras weight <-> torch tensor layout conversion (the inverse of each other)."""

    def __init__(self, to_torch, to_keras):
        self.to_torch, self.to_keras = to_torch, to_keras


SAME = Layout(lambda a: a, lambda a: a)
CONV = Layout(lambda k: k.transpose(3, 2, 0, 1), lambda w: w.transpose(2, 3, 1, 0))  # HWIO <-> OIHW
DENSE = Layout(lambda k: k.T, lambda w: w.T)  # (in, out) <-> (out, in)
PER_CHANNEL = Layout(lambda a: a.reshape(1, -1, 1, 1), lambda a: a.reshape(-1))  # rho, gamma, beta


def flattened_fc(width, quarter):
    """The full generator's first FC: Keras flattens NHWC in (H, W, C) order, torch NCHW in (C, H, W)."""
    return Layout(lambda k: k.T.reshape(-1, quarter, quarter, width).transpose(0, 3, 1, 2).reshape(k.shape[1], -1),
                  lambda w: w.reshape(-1, width, quarter, quarter).transpose(0, 2, 3, 1).reshape(w.shape[0], -1).T)


def power_iteration_v(kernel_shape):
    """Spectral norm's v: ours runs over the kernel's (kh, kw, in), torch's `weight_v`
    over `weight.flatten(1)`'s (in, kh, kw). Dense kernels have one input axis."""
    if len(kernel_shape) == 2:
        return SAME
    kh, kw, cin = kernel_shape[:3]
    return Layout(lambda v: v.reshape(kh, kw, cin).transpose(2, 0, 1).reshape(-1),
                  lambda v: v.reshape(cin, kh, kw).transpose(1, 2, 0).reshape(-1))


def spectral_norm_pairs(layer, key):
    """(variable, key, layout) of a `SpectralNorm`: raw kernel, bias, u, v."""
    kernel = layer.layer.kernel
    pairs = [(kernel, f"{key}.weight_orig", CONV if len(kernel.shape) == 4 else DENSE)]
    if layer.layer.use_bias:
        pairs.append((layer.layer.bias, f"{key}.bias", SAME))
    return pairs + [(layer.u, f"{key}.weight_u", SAME),
                    (layer.v, f"{key}.weight_v", power_iteration_v(tuple(kernel.shape)))]


def spectral_norms(stack):
    """The `SpectralNorm` layers of a list of layers in forward order, inside Sequentials."""
    from tf_translate.layers import SpectralNorm
    found = []
    for layer in stack:
        if isinstance(layer, keras.Sequential):
            found += spectral_norms(layer.layers)
        elif isinstance(layer, SpectralNorm):
            found.append(layer)
    return found


def generator_pairs(generator):
    """(variable, reference key, layout) for every weight of a `UGATITGenerator`."""
    from tf_translate.layers import LIN
    from tf_translate.torch_import import conv_layers

    n = generator.num_residual_blocks
    # DownBlock: 0 pad, 1 conv, 2 IN, 3 ReLU, (4-7, 8-11) the two downs, 12... the blocks.
    encoder = ["DownBlock.1", "DownBlock.5", "DownBlock.9"]
    encoder += [f"DownBlock.{12 + i}.conv_block.{j}" for i in range(n) for j in (1, 5)]
    pairs = [(layer.kernel, f"{key}.weight", CONV)
             for layer, key in zip(conv_layers(generator.encoder), encoder, strict=True)]
    width = 4 * generator.filters
    first_fc = DENSE if generator.light else flattened_fc(width, generator.image_size // 4)
    cam = generator.cam
    pairs += [(cam.gap_fc.kernel, "gap_fc.weight", DENSE), (cam.gmp_fc.kernel, "gmp_fc.weight", DENSE),
              (cam.conv1x1.kernel, "conv1x1.weight", CONV), (cam.conv1x1.bias, "conv1x1.bias", SAME),
              (generator.mlp[1].kernel, "FC.0.weight", first_fc), (generator.mlp[2].kernel, "FC.2.weight", DENSE),
              (generator.gamma_fc.kernel, "gamma.weight", DENSE), (generator.beta_fc.kernel, "beta.weight", DENSE)]
    for i, block in enumerate(generator.decoder_blocks, start=1):
        for index, (conv, norm) in enumerate(((block.conv1, block.norm1), (block.conv2, block.norm2)), start=1):
            pairs += [(conv_layers([conv])[0].kernel, f"UpBlock1_{i}.conv{index}.weight", CONV),
                      (norm.rho, f"UpBlock1_{i}.norm{index}.rho", PER_CHANNEL)]
    # UpBlock2: (0 upsample, 1 pad, 2 conv, 3 ILN, 4 ReLU) twice, 10 pad, 11 conv, 12 tanh.
    up_convs = conv_layers(generator.upsampler)
    lins = [layer for layer in generator.upsampler if isinstance(layer, LIN)]
    for conv, lin, (conv_index, norm_index) in zip(up_convs[:2], lins, ((2, 3), (7, 8)), strict=True):
        pairs.append((conv.kernel, f"UpBlock2.{conv_index}.weight", CONV))
        pairs += [(getattr(lin, p), f"UpBlock2.{norm_index}.{p}", PER_CHANNEL) for p in ("rho", "gamma", "beta")]
    (last,) = up_convs[2:]
    return pairs + [(last.kernel, "UpBlock2.11.weight", CONV)]


def discriminator_spectral_norms(discriminator):
    """{reference module name: our `SpectralNorm`} of a `UGATITDiscriminator`, in forward order."""
    # model: (pad, spectral-norm conv, LeakyReLU) per layer, so the convs are 1, 4, 7, ...
    layers = {f"model.{3 * i + 1}": layer for i, layer in enumerate(spectral_norms(discriminator.stack))}
    (head,) = spectral_norms([discriminator.head])
    return {**layers, "gap_fc": discriminator.cam.gap_fc, "gmp_fc": discriminator.cam.gmp_fc, "conv": head}


def discriminator_pairs(discriminator):
    """(variable, reference key, layout) for every weight and u, v of a `UGATITDiscriminator`."""
    pairs = []
    for key, layer in discriminator_spectral_norms(discriminator).items():
        pairs += spectral_norm_pairs(layer, key)
        if key == "gmp_fc":  # the CAM's plain 1x1 conv comes next
            cam = discriminator.cam
            pairs += [(cam.conv1x1.kernel, "conv1x1.weight", CONV), (cam.conv1x1.bias, "conv1x1.bias", SAME)]
    return pairs


def keras_pairs(model, name):
    """(our variable, reference state-dict key, layout) for our network `name`."""
    network = getattr(model, name)
    return generator_pairs(network) if name.startswith("generator") else discriminator_pairs(network)
