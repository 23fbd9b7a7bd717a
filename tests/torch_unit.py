"""A PyTorch re-statement of UNIT's networks and training iteration, for `test_unit.py`.

Written from mingyuliutw/UNIT master (`networks.py`: `VAEGen`, `ContentEncoder`,
`Decoder`, `ResBlocks`, `ResBlock`, `Conv2dBlock`, `LayerNorm`, `MsImageDis`;
`trainer.py`: `UNIT_Trainer.dis_update`, `gen_update`, `update_learning_rate`;
`utils.py`: `get_scheduler`, `weights_init`; the loop body of `train.py`). The module
attribute names are the reference's, so `state_dict()` keys are those of its
`gen_XXXXXXXX.pt` files. The reference draws its latent noise with `torch.randn` inside
`encode`; here every noise tensor is passed in by name (the names of
`tf_translate.models.unit.UNIT.latent_noise`), so both sides can use the same values.

`TorchUNIT.step` is one iteration of the reference loop: `update_learning_rate()`
(StepLR stepped *before* the updates), `dis_update`, `gen_update`; both optimizers are
`Adam(lr, betas, weight_decay)` (PyTorch's coupled L2). Weights are not initialised
here: `load_keras` copies one of our models' weights, so both sides start equal.
`shared` blocks (branch version_02's weight sharing) are the same module objects in
both generators, given to the optimizer once.

Needs torch; nothing in `tf_translate` imports this file.
"""

import warnings

import numpy as np
import torch
from torch import nn

NOISE_NAMES = ("dis_n_a", "dis_n_b", "n_a", "n_b", "n_a_recon", "n_b_recon")

# ---------------------------------------------------------------------------------------
# networks.py


class LayerNorm(nn.Module):
    """Per-sample mean and unbiased std over (C, H, W); (x − μ) / (σ + eps) · γ + β."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.Tensor(num_features).uniform_())
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x):
        shape = [-1, 1, 1, 1]
        flat = x.view(x.size(0), -1)
        mean, std = flat.mean(1).view(*shape), flat.std(1).view(*shape)
        x = (x - mean) / (std + self.eps)
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class Conv2dBlock(nn.Module):
    """Reflect pad, conv with bias, norm ('in', 'ln', 'none'), activation."""

    def __init__(self, input_dim, output_dim, kernel_size, stride, padding=0, norm="none", activation="relu"):
        super().__init__()
        self.pad = nn.ReflectionPad2d(padding)
        self.norm = {"in": lambda: nn.InstanceNorm2d(output_dim), "ln": lambda: LayerNorm(output_dim),
                     "none": lambda: None}[norm]()
        self.activation = {"relu": nn.ReLU(), "lrelu": nn.LeakyReLU(0.2), "tanh": nn.Tanh(), "none": None}[activation]
        self.conv = nn.Conv2d(input_dim, output_dim, kernel_size, stride, bias=True)

    def forward(self, x):
        x = self.conv(self.pad(x))
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class ResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.model = nn.Sequential(Conv2dBlock(dim, dim, 3, 1, 1, "in", "relu"),
                                   Conv2dBlock(dim, dim, 3, 1, 1, "in", "none"))

    def forward(self, x):
        return self.model(x) + x


class ResBlocks(nn.Module):
    def __init__(self, num_blocks, dim):
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(dim) for _ in range(num_blocks)])

    def forward(self, x):
        return self.model(x)


class ContentEncoder(nn.Module):
    def __init__(self, n_downsample, n_res, input_dim, dim):
        super().__init__()
        model = [Conv2dBlock(input_dim, dim, 7, 1, 3, "in", "relu")]
        for _ in range(n_downsample):
            model.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, "in", "relu"))
            dim *= 2
        model.append(ResBlocks(n_res, dim))
        self.model = nn.Sequential(*model)
        self.output_dim = dim

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, n_upsample, n_res, dim, output_dim):
        super().__init__()
        model = [ResBlocks(n_res, dim)]
        for _ in range(n_upsample):
            model += [nn.Upsample(scale_factor=2), Conv2dBlock(dim, dim // 2, 5, 1, 2, "ln", "relu")]
            dim //= 2
        model.append(Conv2dBlock(dim, output_dim, 7, 1, 3, "none", "tanh"))
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class VAEGen(nn.Module):
    """enc, dec; `encode` returns h alone (the reference's also draws the noise)."""

    def __init__(self, dim=64, n_downsample=2, n_res=4, input_dim=3):
        super().__init__()
        self.enc = ContentEncoder(n_downsample, n_res, input_dim, dim)
        self.dec = Decoder(n_downsample, n_res, self.enc.output_dim, input_dim)

    def encode(self, images):
        return self.enc(images)

    def decode(self, hiddens):
        return self.dec(hiddens)


class MsImageDis(nn.Module):
    def __init__(self, dim=64, n_layer=4, num_scales=3, input_dim=3):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
        self.cnns = nn.ModuleList()
        for _ in range(num_scales):
            width, layers = dim, [Conv2dBlock(input_dim, dim, 4, 2, 1, "none", "lrelu")]
            for _ in range(n_layer - 1):
                layers.append(Conv2dBlock(width, width * 2, 4, 2, 1, "none", "lrelu"))
                width *= 2
            layers.append(nn.Conv2d(width, 1, 1, 1, 0))
            self.cnns.append(nn.Sequential(*layers))

    def forward(self, x):
        outputs = []
        for model in self.cnns:
            outputs.append(model(x))
            x = self.downsample(x)
        return outputs

    def calc_dis_loss(self, input_fake, input_real):
        loss = 0
        for out0, out1 in zip(self.forward(input_fake), self.forward(input_real)):
            loss = loss + torch.mean((out0 - 0) ** 2) + torch.mean((out1 - 1) ** 2)
        return loss

    def calc_gen_loss(self, input_fake):
        loss = 0
        for out0 in self.forward(input_fake):
            loss = loss + torch.mean((out0 - 1) ** 2)
        return loss


def share_blocks(gen_a, gen_b, count):
    """version_02's sharing: gen_b uses gen_a's last `count` encoder and first `count`
    decoder residual blocks (the same modules)."""
    enc_a, enc_b = gen_a.enc.model[-1].model, gen_b.enc.model[-1].model
    dec_a, dec_b = gen_a.dec.model[0].model, gen_b.dec.model[0].model
    for i in range(count):
        enc_b[len(enc_b) - 1 - i] = enc_a[len(enc_a) - 1 - i]
        dec_b[i] = dec_a[i]


# ---------------------------------------------------------------------------------------
# trainer.py, train.py


def unique_parameters(*modules):
    seen, kept = set(), []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                kept.append(p)
    return kept


class TorchUNIT:
    """gen_a, gen_b, dis_a, dis_b, their Adam optimizers and StepLR schedulers."""

    LOSSES = ("d_loss", "d_a_loss", "d_b_loss", "g_loss", "adversarial_loss", "recon_loss", "kl_loss",
              "cycle_loss", "cycle_kl_loss", "learning_rate")

    def __init__(self, dim, n_downsample, n_res, dis_dim, n_layer, num_scales, shared=0, lr=1e-4,
                 betas=(0.5, 0.999), weight_decay=1e-4, step_size=100_000, gamma=0.5, gan_w=1.0, recon_x_w=10.0,
                 recon_kl_w=0.01, recon_x_cyc_w=10.0, recon_kl_cyc_w=0.01, dtype=torch.float64):
        self.dtype = dtype
        self.w = dict(gan_w=gan_w, recon_x_w=recon_x_w, recon_kl_w=recon_kl_w, recon_x_cyc_w=recon_x_cyc_w,
                      recon_kl_cyc_w=recon_kl_cyc_w)
        self.gen_a, self.gen_b = VAEGen(dim, n_downsample, n_res), VAEGen(dim, n_downsample, n_res)
        share_blocks(self.gen_a, self.gen_b, shared)
        self.dis_a, self.dis_b = MsImageDis(dis_dim, n_layer, num_scales), MsImageDis(dis_dim, n_layer, num_scales)
        for net in self.networks().values():
            net.to(dtype)
        adam = lambda params: torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.dis_opt = adam(unique_parameters(self.dis_a, self.dis_b))
        self.gen_opt = adam(unique_parameters(self.gen_a, self.gen_b))
        # get_scheduler(iterations=-1): StepLR's constructor already takes the first step.
        self.dis_scheduler = torch.optim.lr_scheduler.StepLR(self.dis_opt, step_size=step_size, gamma=gamma)
        self.gen_scheduler = torch.optim.lr_scheduler.StepLR(self.gen_opt, step_size=step_size, gamma=gamma)

    @classmethod
    def like(cls, model, dtype=torch.float64, **overrides):
        """A reference with `model`'s (our UNIT's) architecture, weights and settings."""
        c = model.get_config()
        settings = dict(dim=c["filters"], n_downsample=c["num_downsampling"], n_res=c["num_residual_blocks"],
                        dis_dim=c["discriminator_filters"], n_layer=c["discriminator_layers"],
                        num_scales=c["discriminator_scales"], shared=c["shared_layers"], lr=c["learning_rate"],
                        betas=(c["beta_1"], c["beta_2"]), weight_decay=c["weight_decay"],
                        step_size=c["decay_steps"], gamma=c["decay_rate"], gan_w=c["gan_weight"],
                        recon_x_w=c["recon_weight"], recon_kl_w=c["kl_weight"], recon_x_cyc_w=c["cycle_weight"],
                        recon_kl_cyc_w=c["cycle_kl_weight"], dtype=dtype)
        reference = cls(**{**settings, **overrides})
        reference.load_keras(model)
        return reference

    def networks(self):
        return {"generator_a": self.gen_a, "generator_b": self.gen_b, "discriminator_a": self.dis_a,
                "discriminator_b": self.dis_b}

    def tensor(self, nhwc):
        return torch.from_numpy(np.transpose(np.asarray(nhwc, np.float64), (0, 3, 1, 2))).to(self.dtype)

    def dis_update(self, x_a, x_b, noise):
        self.dis_opt.zero_grad()
        h_a, h_b = self.gen_a.encode(x_a), self.gen_b.encode(x_b)
        x_ba = self.gen_a.decode(h_b + noise["dis_n_b"])
        x_ab = self.gen_b.decode(h_a + noise["dis_n_a"])
        loss_dis_a = self.dis_a.calc_dis_loss(x_ba.detach(), x_a)
        loss_dis_b = self.dis_b.calc_dis_loss(x_ab.detach(), x_b)
        loss = self.w["gan_w"] * loss_dis_a + self.w["gan_w"] * loss_dis_b
        loss.backward()
        self.dis_opt.step()
        return {"d_loss": loss, "d_a_loss": self.w["gan_w"] * loss_dis_a, "d_b_loss": self.w["gan_w"] * loss_dis_b}

    def gen_update(self, x_a, x_b, noise):
        self.gen_opt.zero_grad()
        recon = lambda x, y: torch.mean(torch.abs(x - y))
        kl = lambda mu: torch.mean(mu ** 2)
        h_a, h_b = self.gen_a.encode(x_a), self.gen_b.encode(x_b)
        n_a, n_b = noise["n_a"], noise["n_b"]
        x_a_recon, x_b_recon = self.gen_a.decode(h_a + n_a), self.gen_b.decode(h_b + n_b)
        x_ba, x_ab = self.gen_a.decode(h_b + n_b), self.gen_b.decode(h_a + n_a)
        h_b_recon, h_a_recon = self.gen_a.encode(x_ba), self.gen_b.encode(x_ab)
        x_aba = self.gen_a.decode(h_a_recon + noise["n_a_recon"])
        x_bab = self.gen_b.decode(h_b_recon + noise["n_b_recon"])
        losses = {"adversarial_loss": self.dis_a.calc_gen_loss(x_ba) + self.dis_b.calc_gen_loss(x_ab),
                  "recon_loss": recon(x_a_recon, x_a) + recon(x_b_recon, x_b),
                  "kl_loss": kl(h_a) + kl(h_b),
                  "cycle_loss": recon(x_aba, x_a) + recon(x_bab, x_b),
                  "cycle_kl_loss": kl(h_a_recon) + kl(h_b_recon)}
        w = self.w
        total = (w["gan_w"] * losses["adversarial_loss"] + w["recon_x_w"] * losses["recon_loss"]
                 + w["recon_kl_w"] * losses["kl_loss"] + w["recon_x_cyc_w"] * losses["cycle_loss"]
                 + w["recon_kl_cyc_w"] * losses["cycle_kl_loss"])
        total.backward()
        self.gen_opt.step()
        return {"g_loss": total, **losses}

    def step(self, real_a, real_b, noise=None):
        """One `train.py` iteration on NHWC arrays; `noise`: {name: NHWC array}, or None to
        draw it with `torch.randn` as the reference does. Returns the losses (and the
        learning rate of the updates) as floats."""
        with warnings.catch_warnings():  # torch warns of this order, which is the reference's
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler")
            self.dis_scheduler.step()  # trainer.update_learning_rate(), at the start of the iteration
            self.gen_scheduler.step()
        learning_rate = self.dis_opt.param_groups[0]["lr"]
        x_a, x_b = self.tensor(real_a), self.tensor(real_b)
        if noise is None:
            latent = self.gen_a.enc.output_dim
            n = len(self.gen_a.enc.model) - 2  # downsamplings
            shape = (x_a.shape[0], latent, x_a.shape[2] // 2 ** n, x_a.shape[3] // 2 ** n)
            noise = {name: torch.randn(shape, dtype=self.dtype) for name in NOISE_NAMES}
        else:
            noise = {name: self.tensor(value) for name, value in noise.items()}
        losses = {**self.dis_update(x_a, x_b, noise), **self.gen_update(x_a, x_b, noise)}
        return {**{name: float(value.detach()) for name, value in losses.items()}, "learning_rate": learning_rate}

    # -- weights in and out, in our layout --------------------------------------------

    def state(self):
        return {name: net.state_dict(keep_vars=True) for name, net in self.networks().items()}

    def load_keras(self, model):
        state = self.state()
        with torch.no_grad():
            for network, variable, kind, key in keras_pairs(model):
                state[network][key].copy_(torch.from_numpy(to_torch(kind, variable.numpy())))

    def weights_as_keras(self, model):
        """{id(our variable): the reference's value, in our layout, float64}."""
        state = self.state()
        return {id(variable): to_keras(kind, state[network][key].detach().double().numpy())
                for network, variable, kind, key in keras_pairs(model)}


def to_torch(kind, value):
    return np.ascontiguousarray(np.transpose(value, (3, 2, 0, 1)) if kind == "conv" else value)


def to_keras(kind, value):
    return np.transpose(value, (2, 3, 1, 0)) if kind == "conv" else value


def discriminator_keys(discriminator):
    """[(variable, kind, key)] of our `MultiScaleDiscriminator` in `MsImageDis` names:
    `cnns.<scale>.<i>.conv` for the strided blocks, `cnns.<scale>.<n_layer>` the 1x1 head."""
    from tf_translate.torch_import import conv_layers

    spec = []
    for s, scale in enumerate(discriminator.scales):
        convs = conv_layers(scale.layers)
        for i, layer in enumerate(convs):
            key = f"cnns.{s}.{i}" + (".conv" if i + 1 < len(convs) else "")
            spec += [(layer.kernel, "conv", f"{key}.weight"), (layer.bias, "bias", f"{key}.bias")]
    return spec


def keras_pairs(model):
    """[(network name, our variable, kind, reference key)] over the four networks; a
    shared block appears under both generators (the same variable and module)."""
    from tf_translate.torch_import import unit_generator_keys

    pairs = []
    for name in ("generator_a", "generator_b"):
        pairs += [(name, v, kind, key) for v, kind, key in unit_generator_keys(getattr(model, name))]
    for name in ("discriminator_a", "discriminator_b"):
        pairs += [(name, v, kind, key) for v, kind, key in discriminator_keys(getattr(model, name))]
    return pairs
