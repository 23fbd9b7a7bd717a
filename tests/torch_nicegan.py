"""A PyTorch re-statement of the NICE-GAN networks and training step, for
`test_nicegan_parity.py` and the NICE-GAN import tests in `test_torch_import.py`.

Written from alpc91/NICE-GAN-pytorch (`networks.py`: `ResnetGenerator`,
`ResnetAdaILNBlock`, `adaILN`, `ILN`, `Discriminator`; `NICE.py`: `build_model`, the
body of the loop in `train`, `save`). The modules and their names (so the state-dict
keys are the reference's: `UpBlock0.1.weight`, `model.1.weight_orig`, `lamda`, ...), the
losses, the optimizers and the update order are the reference's. The unused `using_bn`
option of adaILN/ILN is left out (its default is off).

`TorchNICEGAN.step` is one reference iteration, in the reference's order:
1. D step. `D_optim.zero_grad()`; disA(real_A), disB(real_B) give the logits and the
   encodings z; gen2B(z_A), gen2A(z_B) give the fakes, detached; disA(fake_B2A),
   disB(fake_A2B); LSGAN on the local, global and CAM outputs; `backward()`,
   `D_optim.step()`. The encoders are the discriminators' first layers, so this is the
   only loss that trains them.
2. G step. `G_optim.zero_grad()`; the *updated* discriminators encode real_A, real_B
   again; the fakes; the discriminators judge them (and encode them for the cycle);
   LSGAN (local, global, CAM) + 10 cycle L1 + 10 recon L1 (gen2A(z_A) ≈ real_A);
   `backward()`, `G_optim.step()`. `G_optim` holds gen2B and gen2A only, so the
   gradient this loss leaves on the encoders is dropped by the next `D_optim.zero_grad()`.
Both optimizers are `Adam(lr, betas=(0.5, 0.999), weight_decay)`: torch's coupled L2.

Spectral norm: torch's `spectral_norm` runs one power iteration in the forward pre-hook
of every training-mode call: four per discriminator and iteration here (real and fake in
each step). Our step makes the same four calls, so u, v are copied once, before the
first step, and then followed on both sides.

Needs torch; nothing in `tf_translate` imports this file.
"""

import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from torch_ugatit import CONV, DENSE, SAME, Layout, flattened_fc, spectral_norm_pairs, spectral_norms

# ---------------------------------------------------------------------------------------
# networks.py


def instance_and_layer_norm(x, rho_logits, eps):
    """softmax(ρ)[0]·IN(x) + softmax(ρ)[1]·LN(x) with `torch.var` (unbiased), as adaILN/ILN."""
    in_mean, in_var = x.mean(dim=[2, 3], keepdim=True), x.var(dim=[2, 3], keepdim=True)
    ln_mean, ln_var = x.mean(dim=[1, 2, 3], keepdim=True), x.var(dim=[1, 2, 3], keepdim=True)
    weights = torch.softmax(rho_logits, dim=2)  # (1, C, 2): (w_IN, w_LN) per channel
    w_in = weights[:, :, 0].reshape(1, -1, 1, 1)
    w_ln = weights[:, :, 1].reshape(1, -1, 1, 1)
    return (w_in * (x - in_mean) / torch.sqrt(in_var + eps)
            + w_ln * (x - ln_mean) / torch.sqrt(ln_var + eps))


class adaILN(nn.Module):  # noqa: N801 (the reference's name)
    """IN/LN mixed by softmax(ρ), ρ logits (1, C, 2) starting at (3.2, 1); then the
    generator's per-sample γ, β."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.tensor([3.2, 1.0]).repeat(1, num_features, 1))

    def forward(self, x, gamma, beta):
        return instance_and_layer_norm(x, self.rho, self.eps) * gamma[:, :, None, None] + beta[:, :, None, None]


class ILN(nn.Module):
    """IN/LN mixed by softmax(ρ), ρ logits starting at (1, 3.2); learned γ (1), β (0)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.tensor([1.0, 3.2]).repeat(1, num_features, 1))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x):
        return instance_and_layer_norm(x, self.rho, self.eps) * self.gamma + self.beta


class ResnetAdaILNBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False)
        self.norm1, self.relu1 = adaILN(dim), nn.ReLU(True)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, 1, 0, bias=False)
        self.norm2 = adaILN(dim)

    def forward(self, x, gamma, beta):
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return self.norm2(self.conv2(self.pad2(out)), gamma, beta) + x


class ResnetGenerator(nn.Module):
    """NICE-GAN `ResnetGenerator(3, 3, ngf, n_blocks, img_size, light)`: a decoder from
    z (2·ngf channels at 1/4 resolution) to an image."""

    def __init__(self, ngf=64, n_blocks=6, img_size=256, light=False):
        super().__init__()
        self.n_blocks, self.light = n_blocks, light
        width = ngf * 4
        self.UpBlock0 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf * 2, width, 3, 1, 0, bias=True),
                                      ILN(width), nn.ReLU(True))
        mlp_inputs = width if light else (img_size // 4) * (img_size // 4) * width
        self.FC = nn.Sequential(nn.Linear(mlp_inputs, width, bias=False), nn.ReLU(True),
                                nn.Linear(width, width, bias=False), nn.ReLU(True))
        self.gamma = nn.Linear(width, width, bias=False)
        self.beta = nn.Linear(width, width, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(width))
        up = []
        for mult in (4, 2):  # sub-pixel upsampling: conv, ILN, ReLU, 1x1 conv to 4x, PixelShuffle
            half = ngf * mult // 2
            up += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * mult, half, 3, 1, 0, bias=False), ILN(half), nn.ReLU(True),
                   nn.Conv2d(half, half * 4, 1, 1, bias=True), nn.PixelShuffle(2), ILN(half), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, 1, 0, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, z):
        x = self.UpBlock0(z)
        code = F.adaptive_avg_pool2d(x, 1) if self.light else x
        code = self.FC(code.view(code.shape[0], -1))
        gamma, beta = self.gamma(code), self.beta(code)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.UpBlock2(x)


def sn_layer(cin, cout, stride):
    """Reflect pad 1, spectral-normalised 4x4 conv with bias, LeakyReLU 0.2."""
    return [nn.ReflectionPad2d(1), nn.utils.spectral_norm(nn.Conv2d(cin, cout, 4, stride, 0, bias=True)),
            nn.LeakyReLU(0.2, True)]


class Discriminator(nn.Module):
    """NICE-GAN `Discriminator(3, ndf, n_layers)`: the encoder stem (`model`, the CAM
    with `fc`, `conv1x1`, `lamda`), then a local branch (`Dis0_0`, `Dis0_1`, `conv0`) and
    a global one (`Dis1_0` continuing from `Dis0_0`, `Dis1_1`, `conv1`).
    Returns (local logits, global logits, CAM logit, heatmap, z)."""

    def __init__(self, ndf=64, n_layers=7):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.model = nn.Sequential(*sn_layer(3, ndf, 2), *sn_layer(ndf, ndf * 2, 2))
        width = ndf * 2
        self.fc = sn(nn.Linear(2 * width, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * width, width, 1, 1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.lamda = nn.Parameter(torch.zeros(1))
        local = []
        for i in range(2, n_layers - 4):
            local += sn_layer(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)
        self.Dis0_0 = nn.Sequential(*local)
        self.Dis0_1 = nn.Sequential(*sn_layer(ndf * 2 ** (n_layers - 5), ndf * 2 ** (n_layers - 4), 1))
        self.conv0 = sn(nn.Conv2d(ndf * 2 ** (n_layers - 4), 1, 4, 1, 0, bias=False))
        global_ = []
        for i in range(n_layers - 4, n_layers - 2):
            global_ += sn_layer(ndf * 2 ** (i - 1), ndf * 2 ** i, 2)
        self.Dis1_0 = nn.Sequential(*global_)
        self.Dis1_1 = nn.Sequential(*sn_layer(ndf * 2 ** (n_layers - 3), ndf * 2 ** (n_layers - 2), 1))
        self.conv1 = sn(nn.Conv2d(ndf * 2 ** (n_layers - 2), 1, 4, 1, 0, bias=False))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x):
        x0 = self.model(x)
        pooled = torch.cat([F.adaptive_avg_pool2d(x0, 1), F.adaptive_max_pool2d(x0, 1)], 1)
        cam_logit = self.fc(pooled.view(x0.shape[0], -1))
        weight = list(self.fc.parameters())[0]  # `weight_orig`: the raw weight re-weights [x, x]
        y = self.conv1x1(torch.cat([x0, x0], 1) * weight[:, :, None, None])
        z = self.leaky_relu(self.lamda * y + x0)
        heatmap = torch.sum(z, dim=1, keepdim=True)
        local = self.Dis0_0(z)
        global_ = self.Dis1_1(self.Dis1_0(local))
        local = self.Dis0_1(local)
        return self.conv0(self.pad(local)), self.conv1(self.pad(global_)), cam_logit, heatmap, z


# ---------------------------------------------------------------------------------------
# NICE.py: build_model, the loop body of train, save


class TorchNICEGAN:
    """NICE-GAN-pytorch's training (batch as given, constant learning rate: the decay
    starts only after half of `--iteration`)."""

    def __init__(self, ch=64, n_res=6, img_size=256, light=False, n_dis=7, lr=1e-4, weight_decay=1e-4,
                 adv_weight=1.0, cycle_weight=10.0, recon_weight=10.0, dtype="float64"):
        self.dtype = getattr(torch, dtype)
        self.adv_weight, self.cycle_weight, self.recon_weight = adv_weight, cycle_weight, recon_weight
        make = lambda net: net.to(self.dtype).train()
        self.gen2B = make(ResnetGenerator(ch, n_res, img_size, light))
        self.gen2A = make(ResnetGenerator(ch, n_res, img_size, light))
        self.disA = make(Discriminator(ch, n_dis))
        self.disB = make(Discriminator(ch, n_dis))
        self.G_optim = torch.optim.Adam(itertools.chain(self.gen2B.parameters(), self.gen2A.parameters()),
                                        lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)
        self.D_optim = torch.optim.Adam(itertools.chain(self.disA.parameters(), self.disB.parameters()),
                                        lr=lr, betas=(0.5, 0.999), weight_decay=weight_decay)

    @classmethod
    def like(cls, model, dtype="float64"):
        """The reference configured as our `NICEGAN` training model `model`."""
        return cls(model.filters, model.num_residual_blocks, model.image_size, model.light,
                   model.discriminator_layers, model.learning_rate, model.weight_decay, model.adversarial_weight,
                   model.cycle_weight, model.recon_weight, dtype)

    def networks(self):
        """{our attribute name: reference network} (disA judges and encodes A, gen2B decodes into B)."""
        return {"generator_ab": self.gen2B, "generator_ba": self.gen2A,
                "discriminator_a": self.disA, "discriminator_b": self.disB}

    def tensor(self, images_nhwc):
        return torch.from_numpy(np.asarray(images_nhwc)).permute(0, 3, 1, 2).contiguous().to(self.dtype)

    def step(self, real_a, real_b):
        """One iteration on NHWC [-1, 1] batches; returns our logged losses' values."""
        mse, l1 = F.mse_loss, F.l1_loss
        real = lambda t: mse(t, torch.ones_like(t))
        fake = lambda t: mse(t, torch.zeros_like(t))
        real_A, real_B = self.tensor(real_a), self.tensor(real_b)

        # Update D
        self.D_optim.zero_grad()
        real_LA, real_GA, real_A_cam, _, real_A_z = self.disA(real_A)
        real_LB, real_GB, real_B_cam, _, real_B_z = self.disB(real_B)
        fake_A2B = self.gen2B(real_A_z).detach()
        fake_B2A = self.gen2A(real_B_z).detach()
        fake_LA, fake_GA, fake_A_cam, _, _ = self.disA(fake_B2A)
        fake_LB, fake_GB, fake_B_cam, _, _ = self.disB(fake_A2B)
        D_loss_A = self.adv_weight * ((real(real_GA) + fake(fake_GA)) + (real(real_A_cam) + fake(fake_A_cam))
                                      + (real(real_LA) + fake(fake_LA)))
        D_loss_B = self.adv_weight * ((real(real_GB) + fake(fake_GB)) + (real(real_B_cam) + fake(fake_B_cam))
                                      + (real(real_LB) + fake(fake_LB)))
        Discriminator_loss = D_loss_A + D_loss_B
        Discriminator_loss.backward()
        self.D_optim.step()

        # Update G
        self.G_optim.zero_grad()
        real_A_z = self.disA(real_A)[4]
        real_B_z = self.disB(real_B)[4]
        fake_A2B = self.gen2B(real_A_z)
        fake_B2A = self.gen2A(real_B_z)
        fake_LA, fake_GA, fake_A_cam, _, fake_A_z = self.disA(fake_B2A)
        fake_LB, fake_GB, fake_B_cam, _, fake_B_z = self.disB(fake_A2B)
        fake_B2A2B = self.gen2B(fake_A_z)
        fake_A2B2A = self.gen2A(fake_B_z)
        G_ad_A = real(fake_GA) + real(fake_A_cam) + real(fake_LA)
        G_ad_B = real(fake_GB) + real(fake_B_cam) + real(fake_LB)
        G_cycle_A, G_cycle_B = l1(fake_A2B2A, real_A), l1(fake_B2A2B, real_B)
        G_recon_A, G_recon_B = l1(self.gen2A(real_A_z), real_A), l1(self.gen2B(real_B_z), real_B)
        G_loss_A = self.adv_weight * G_ad_A + self.cycle_weight * G_cycle_A + self.recon_weight * G_recon_A
        G_loss_B = self.adv_weight * G_ad_B + self.cycle_weight * G_cycle_B + self.recon_weight * G_recon_B
        Generator_loss = G_loss_A + G_loss_B
        Generator_loss.backward()
        self.G_optim.step()
        return {"d_loss": Discriminator_loss.item(), "g_loss": Generator_loss.item(),
                "d_a_loss": D_loss_A.item(), "d_b_loss": D_loss_B.item(),
                "adversarial_loss": (G_ad_A + G_ad_B).item(), "cycle_loss": (G_cycle_A + G_cycle_B).item(),
                "recon_loss": (G_recon_A + G_recon_B).item()}

    def save(self, path, step=1):
        """The reference's checkpoint (`NICE.save`): the four networks' state dicts, both
        optimizers' and the iteration, in one `torch.save` dict."""
        torch.save({"gen2B": self.gen2B.state_dict(), "gen2A": self.gen2A.state_dict(),
                    "disA": self.disA.state_dict(), "disB": self.disB.state_dict(),
                    "D_optimizer": self.D_optim.state_dict(), "G_optimizer": self.G_optim.state_dict(),
                    "start_iter": step}, path)

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

SOFTMAX_RHO = Layout(lambda a: a.reshape(1, -1, 2), lambda a: a.reshape(-1, 2))  # (C, 2) <-> (1, C, 2)
PER_CHANNEL = Layout(lambda a: a.reshape(1, -1, 1, 1), lambda a: a.reshape(-1))  # ILN gamma, beta
SCALAR = Layout(lambda a: a.reshape(1), lambda a: a.reshape(()))  # lamda


def generator_pairs(generator):
    """(variable, reference key, layout) for every weight of a `NICEGANGenerator`."""
    from tf_translate.layers import LIN
    from tf_translate.torch_import import conv_layers

    (entry,) = conv_layers(generator.entry)
    entry_norm = generator.entry[1]
    pairs = [(entry.kernel, "UpBlock0.1.weight", CONV), (entry.bias, "UpBlock0.1.bias", SAME),
             (entry_norm.rho, "UpBlock0.2.rho", SOFTMAX_RHO), (entry_norm.gamma, "UpBlock0.2.gamma", PER_CHANNEL),
             (entry_norm.beta, "UpBlock0.2.beta", PER_CHANNEL)]
    first_fc = DENSE if generator.light else flattened_fc(4 * generator.filters, generator.image_size // 4)
    pairs += [(generator.mlp[1].kernel, "FC.0.weight", first_fc), (generator.mlp[2].kernel, "FC.2.weight", DENSE),
              (generator.gamma_fc.kernel, "gamma.weight", DENSE), (generator.beta_fc.kernel, "beta.weight", DENSE)]
    for i, block in enumerate(generator.blocks, start=1):
        for index, (conv, norm) in enumerate(((block.conv1, block.norm1), (block.conv2, block.norm2)), start=1):
            pairs += [(conv_layers([conv])[0].kernel, f"UpBlock1_{i}.conv{index}.weight", CONV),
                      (norm.rho, f"UpBlock1_{i}.norm{index}.rho", SOFTMAX_RHO)]
    # UpBlock2: (0 pad, 1 conv, 2 ILN, 3 ReLU, 4 1x1 conv, 5 PixelShuffle, 6 ILN, 7 ReLU) twice,
    # then 16 pad, 17 conv, 18 tanh.
    convs = conv_layers(generator.upsampler)
    for conv, index in zip(convs, (1, 4, 9, 12, 17), strict=True):
        pairs.append((conv.kernel, f"UpBlock2.{index}.weight", CONV))
        if conv.use_bias:
            pairs.append((conv.bias, f"UpBlock2.{index}.bias", SAME))
    norms = [layer for layer in generator.upsampler if isinstance(layer, LIN)]
    for norm, index in zip(norms, (2, 6, 10, 14), strict=True):
        pairs += [(norm.rho, f"UpBlock2.{index}.rho", SOFTMAX_RHO),
                  (norm.gamma, f"UpBlock2.{index}.gamma", PER_CHANNEL),
                  (norm.beta, f"UpBlock2.{index}.beta", PER_CHANNEL)]
    return pairs


def discriminator_spectral_norms(discriminator):
    """{reference module name: our `SpectralNorm`} of a `NICEGANDiscriminator`."""
    sequence = lambda prefix, stack: {f"{prefix}.{3 * i + 1}": layer for i, layer in enumerate(spectral_norms(stack))}
    (local_head,) = spectral_norms([discriminator.local_head])
    (global_head,) = spectral_norms([discriminator.global_head])
    return {**sequence("model", discriminator.encoder.stem), "fc": discriminator.encoder.cam.fc,
            **sequence("Dis0_0", discriminator.local_down), **sequence("Dis0_1", discriminator.local_tail),
            "conv0": local_head, **sequence("Dis1_0", discriminator.global_down),
            **sequence("Dis1_1", discriminator.global_tail), "conv1": global_head}


def discriminator_pairs(discriminator):
    """(variable, reference key, layout) for every weight and u, v of a `NICEGANDiscriminator`."""
    pairs = []
    for key, layer in discriminator_spectral_norms(discriminator).items():
        pairs += spectral_norm_pairs(layer, key)
    cam = discriminator.encoder.cam
    return pairs + [(cam.conv1x1.kernel, "conv1x1.weight", CONV), (cam.conv1x1.bias, "conv1x1.bias", SAME),
                    (cam.lamda, "lamda", SCALAR)]


def keras_pairs(model, name):
    """(our variable, reference state-dict key, layout) for our network `name`."""
    network = getattr(model, name)
    return generator_pairs(network) if name.startswith("generator") else discriminator_pairs(network)
