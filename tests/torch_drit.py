"""A PyTorch re-statement of DRIT++'s networks and training iteration, for `test_drit.py`
and `benchmarks/torch_step.py`.

Written from HsinYingLee/DRIT `src/` (`networks.py`: `E_content`, `E_attr_concat`,
`E_attr`, `G_concat`, `G`, `MultiScaleDis`, `Dis_content`, `LeakyReLUConv2d`,
`ReLUINSConv2d`, `INSResBlock`, `MisINSResBlock`, `BasicBlock`, `LayerNorm`,
`ReLUINSConvTranspose2d`; `model.py`: `forward`, `update_D_content`, `update_D`,
`update_EG`, `backward_EG`, `backward_G_alone`; the loop body of `train.py`). Widths are
parameters so that tests can run tiny networks (the reference hard-codes 64 / 256).

Every random draw is passed in by name (the names of `DRIT.noise`), so both sides use the
same values. The released code's dead instance norm and LeakyReLU 0.01 are what this
computes (`norm="instance"`, `slope` give the paper variant).

`update_EG`: the reference backpropagates the G-alone loss through the graph of the EG
loss after the EG optimizer steps (torch ≥ 1.5 raises; torch 0.4 applied gradients of
the old activations). Here both gradients are taken with `torch.autograd.grad` before
any step, then EG is stepped, then E_c and G again with the G-alone gradients — the
sequence `tf_translate` must match. `summed=True` is the #48 workaround (one backward of
the sum, one step), which must not match.

Weights are not initialised here: `load_keras` copies one of our models' weights in
order, so both sides start equal. Needs torch; nothing in `tf_translate` imports this.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def conv(n_in, n_out, k, stride=1, pad=0):
    layers = [nn.ReflectionPad2d(pad)] if pad else []
    return layers + [nn.Conv2d(n_in, n_out, k, stride)]


class LeakyReLUConv2d(nn.Sequential):
    def __init__(self, n_in, n_out, k, stride, pad=0, norm="none", slope=0.01):
        layers = conv(n_in, n_out, k, stride, pad)
        if norm == "instance":
            layers.append(nn.InstanceNorm2d(n_out))
        super().__init__(*layers, nn.LeakyReLU(slope))


class ReLUINSConv2d(nn.Sequential):
    def __init__(self, n_in, n_out, k, stride, pad):
        super().__init__(*conv(n_in, n_out, k, stride, pad), nn.InstanceNorm2d(n_out), nn.ReLU())


class INSResBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.model = nn.Sequential(*conv(dim, dim, 3, 1, 1), nn.InstanceNorm2d(dim), nn.ReLU(),
                                   *conv(dim, dim, 3, 1, 1), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return self.model(x) + x


class ContentEncoder(nn.Module):
    """One domain's convA + the shared conv_share block (noise added by the caller)."""

    def __init__(self, ch, shared):
        super().__init__()
        self.conv = nn.Sequential(LeakyReLUConv2d(3, ch, 7, 1, 3), ReLUINSConv2d(ch, ch * 2, 3, 2, 1),
                                  ReLUINSConv2d(ch * 2, ch * 4, 3, 2, 1), *[INSResBlock(ch * 4) for _ in range(3)])
        self.shared = shared

    def forward(self, x):
        return self.shared(self.conv(x))


class BasicBlock(nn.Module):
    def __init__(self, inp, out):
        super().__init__()
        self.conv = nn.Sequential(nn.LeakyReLU(0.2), *conv(inp, inp, 3, 1, 1), nn.LeakyReLU(0.2),
                                  *conv(inp, out, 3, 1, 1), nn.AvgPool2d(2, 2))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(inp, out, 1))

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)


class AttributeEncoder(nn.Module):
    """E_attr_concat's one domain (conv_A, fc_A, fcVar_A) or E_attr's (model_a)."""

    def __init__(self, ndf, nz, concat):
        super().__init__()
        self.concat = concat
        if concat:
            widths = [ndf * min(4, n) for n in range(1, 5)]
            self.conv = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(3, ndf, 4, 2),
                                      *[BasicBlock(widths[n - 1], widths[n]) for n in range(1, 4)],
                                      nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1))
            self.fc = nn.Linear(widths[-1], nz)
            self.fc_var = nn.Linear(widths[-1], nz)
        else:
            d = ndf
            self.conv = nn.Sequential(*conv(3, d, 7, 1, 3), nn.ReLU(), *conv(d, d * 2, 4, 2, 1), nn.ReLU(),
                                      *conv(d * 2, d * 4, 4, 2, 1), nn.ReLU(), *conv(d * 4, d * 4, 4, 2, 1),
                                      nn.ReLU(), *conv(d * 4, d * 4, 4, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Conv2d(d * 4, nz, 1))

    def forward(self, x):
        h = self.conv(x).view(x.size(0), -1)
        return (self.fc(h), self.fc_var(h)) if self.concat else (h, None)


class LayerNorm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, 1))
        self.bias = nn.Parameter(torch.zeros(n, 1, 1))

    def forward(self, x):
        shape = x.size()[1:]
        return F.layer_norm(x, shape, self.weight.expand(shape), self.bias.expand(shape))


def up(n_in, n_out):
    return nn.Sequential(nn.ConvTranspose2d(n_in, n_out, 3, 2, 1, output_padding=1), LayerNorm(n_out), nn.ReLU())


def cat_z(x, z):
    return torch.cat([x, z.view(z.size(0), z.size(1), 1, 1).expand(z.size(0), z.size(1), x.size(2), x.size(3))], 1)


class MisINSResBlock(nn.Module):
    def __init__(self, dim, extra):
        super().__init__()
        self.conv1 = nn.Sequential(*conv(dim, dim, 3, 1, 1), nn.InstanceNorm2d(dim))
        self.conv2 = nn.Sequential(*conv(dim, dim, 3, 1, 1), nn.InstanceNorm2d(dim))
        mlp = lambda: nn.Sequential(nn.Conv2d(dim + extra, dim + extra, 1), nn.ReLU(),
                                    nn.Conv2d(dim + extra, dim, 1), nn.ReLU())
        self.blk1, self.blk2 = mlp(), mlp()

    def forward(self, x, z):
        o2 = self.blk1(cat_z(self.conv1(x), z))
        return self.blk2(cat_z(self.conv2(o2), z)) + x


class Generator(nn.Module):
    """G_concat's one domain (with the shared dec_share) or G's."""

    def __init__(self, c, nz, concat, shared=None):
        super().__init__()
        self.concat = concat
        if concat:
            self.shared = shared
            self.dec1 = nn.Sequential(*[INSResBlock(c + nz) for _ in range(3)])
            t = c + 2 * nz
            self.dec2 = up(t, t // 2)
            t = t // 2 + nz
            self.dec3 = up(t, t // 2)
            self.dec4 = nn.ConvTranspose2d(t // 2 + nz, 3, 1)
        else:
            self.mlp = nn.Sequential(nn.Linear(nz, c), nn.ReLU(), nn.Linear(c, c), nn.ReLU(), nn.Linear(c, 4 * c))
            self.blocks = nn.ModuleList([MisINSResBlock(c, c) for _ in range(4)])
            self.dec5 = nn.Sequential(up(c, c // 2), up(c // 2, c // 4), nn.ConvTranspose2d(c // 4, 3, 1))

    def forward(self, x, z):
        if self.concat:
            out = self.dec1(cat_z(self.shared(x), z))
            out = self.dec2(cat_z(out, z))
            out = self.dec3(cat_z(out, z))
            return torch.tanh(self.dec4(cat_z(out, z)))
        codes = torch.split(self.mlp(z), x.size(1), dim=1)
        for block, code in zip(self.blocks, codes):
            x = block(x, code.contiguous())
        return torch.tanh(self.dec5(x))


class MultiScaleDis(nn.Module):
    def __init__(self, ch, n_layer=4, n_scale=3, norm="none", slope=0.01):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.diss = nn.ModuleList()
        for _ in range(n_scale):
            layers, t = [LeakyReLUConv2d(3, ch, 4, 2, 1, norm, slope)], ch
            for _ in range(1, n_layer):
                layers.append(LeakyReLUConv2d(t, t * 2, 4, 2, 1, norm, slope))
                t *= 2
            self.diss.append(nn.Sequential(*layers, nn.Conv2d(t, 1, 1)))

    def forward(self, x):
        outs = []
        for dis in self.diss:
            outs.append(dis(x))
            x = self.downsample(x)
        return outs


class ContentDis(nn.Module):
    def __init__(self, ch, c, n_layer=3, norm="none", slope=0.01):
        super().__init__()
        layers, t = [], c
        for _ in range(n_layer):
            layers.append(LeakyReLUConv2d(t, ch, 7, 2, 1, norm, slope))
            t = ch
        self.model = nn.Sequential(*layers, LeakyReLUConv2d(ch, ch, 4, 1, 0, slope=slope), nn.Conv2d(ch, 1, 1))

    def forward(self, x):
        return [self.model(x).view(-1)]


# ---------------------------------------------------------------------------------------
# model.py


def bce(logits, target):
    p = torch.sigmoid(logits)
    return F.binary_cross_entropy(p, torch.full_like(p, target))


def unique(*modules):
    seen, kept = set(), []
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                kept.append(p)
    return kept


class TorchDRIT:
    """The reference trainer on tiny widths; `step(a, b, noise, full)` is one loader
    iteration (`update_D_content`, or `update_D` + `update_EG`)."""

    def __init__(self, filters=64, attribute_filters=64, nz=8, dis_filters=64, dis_layers=4, dis_scales=3,
                 content_dis_filters=256, content_dis_layers=3, concat=True, mode_seeking=True, norm="none",
                 content_norm="none", slope=0.01, lr=1e-4, eps=1e-8, summed=False, dtype=torch.float64):
        torch.manual_seed(0)
        self.dtype, self.concat, self.ms, self.summed, self.nz = dtype, concat, mode_seeking, summed, nz
        self.eg_terms = None  # a test may keep only some EG terms
        c = filters * 4
        shared = INSResBlock(c)
        self.enc_c_a, self.enc_c_b = ContentEncoder(filters, shared), ContentEncoder(filters, shared)
        self.enc_a_a = AttributeEncoder(attribute_filters, nz, concat)
        self.enc_a_b = AttributeEncoder(attribute_filters, nz, concat)
        gen_shared = INSResBlock(c) if concat else None
        self.gen_a, self.gen_b = Generator(c, nz, concat, gen_shared), Generator(c, nz, concat, gen_shared)
        dis = lambda: MultiScaleDis(dis_filters, dis_layers, dis_scales, norm, slope)
        self.dis_a, self.dis_b, self.dis_a2, self.dis_b2 = dis(), dis(), dis(), dis()
        self.dis_c = ContentDis(content_dis_filters, c, content_dis_layers, content_norm, slope)
        for net in self.networks().values():
            net.to(dtype)
        adam = lambda params, rate=lr: torch.optim.Adam(params, lr=rate, betas=(0.5, 0.999), eps=eps, weight_decay=1e-4)
        self.opts = {name: adam(getattr(self, name).parameters()) for name in ("dis_a", "dis_b", "dis_a2", "dis_b2")}
        self.opts["dis_c"] = adam(self.dis_c.parameters(), lr / 2.5)
        self.opts["enc_c"] = adam(unique(self.enc_c_a, self.enc_c_b))
        self.opts["enc_a"] = adam(unique(self.enc_a_a, self.enc_a_b))
        self.opts["gen"] = adam(unique(self.gen_a, self.gen_b))

    def networks(self):
        return {name: getattr(self, name) for name in ("enc_c_a", "enc_c_b", "enc_a_a", "enc_a_b", "gen_a", "gen_b",
                                                       "dis_a", "dis_b", "dis_a2", "dis_b2", "dis_c")}

    def tensor(self, nhwc):
        array = np.asarray(nhwc)
        if array.ndim == 4:
            array = array.transpose(0, 3, 1, 2)
        return torch.tensor(array, dtype=self.dtype)

    def attribute(self, encoder, x, eps):
        mean, logvar = encoder(x)
        if logvar is None:
            return mean, mean, None
        return eps * torch.exp(0.5 * logvar) + mean, mean, logvar

    def forward(self, a, b, n):
        f = {}
        f["c_a"] = self.enc_c_a(a) + n["content_a"]
        f["c_b"] = self.enc_c_b(b) + n["content_b"]
        f["z_a"], f["mu_a"], f["logvar_a"] = self.attribute(self.enc_a_a, a, n.get("attribute_a"))
        f["z_b"], f["mu_b"], f["logvar_b"] = self.attribute(self.enc_a_b, b, n.get("attribute_b"))
        z1 = n["random"]
        contents_a = [f["c_b"], f["c_a"], f["c_b"]]
        contents_b = [f["c_a"], f["c_b"], f["c_a"]]
        attrs_a, attrs_b = [f["z_a"], f["z_a"], z1], [f["z_b"], f["z_b"], z1]
        if self.ms:
            contents_a.append(f["c_b"])
            contents_b.append(f["c_a"])
            attrs_a.append(n["random2"])
            attrs_b.append(n["random2"])
        fa = torch.split(self.gen_a(torch.cat(contents_a), torch.cat(attrs_a)), 1)
        fb = torch.split(self.gen_b(torch.cat(contents_b), torch.cat(attrs_b)), 1)
        f["fake_a_enc"], f["fake_aa"], f["fake_a_rand"] = fa[:3]
        f["fake_b_enc"], f["fake_bb"], f["fake_b_rand"] = fb[:3]
        if self.ms:
            f["fake_a_rand2"], f["fake_b_rand2"] = fa[3], fb[3]
        c_recon_b = self.enc_c_a(f["fake_a_enc"]) + n["content_recon_b"]
        c_recon_a = self.enc_c_b(f["fake_b_enc"]) + n["content_recon_a"]
        z_recon_a = self.attribute(self.enc_a_a, f["fake_a_enc"], n.get("attribute_recon_a"))[0]
        z_recon_b = self.attribute(self.enc_a_b, f["fake_b_enc"], n.get("attribute_recon_b"))[0]
        f["recon_a"] = self.gen_a(c_recon_a, z_recon_a)
        f["recon_b"] = self.gen_b(c_recon_b, z_recon_b)
        f["mu2_a"] = self.enc_a_a(f["fake_a_rand"])[0]
        f["mu2_b"] = self.enc_a_b(f["fake_b_rand"])[0]
        return f

    @staticmethod
    def d_loss(dis, real, fake):
        return sum(bce(r, 1.0) + bce(g, 0.0) for g, r in zip(dis(fake.detach()), dis(real)))

    def content_update(self, c_a, c_b):
        opt = self.opts["dis_c"]
        opt.zero_grad()
        loss = bce(self.dis_c(c_a.detach())[0], 0.0) + bce(self.dis_c(c_b.detach())[0], 1.0)
        loss.backward()
        nn.utils.clip_grad_norm_(self.dis_c.parameters(), 5)
        opt.step()
        return float(loss.detach())

    def step(self, images_a, images_b, noise, full):
        a, b = self.tensor(images_a), self.tensor(images_b)
        n = {key: self.tensor(value) for key, value in noise.items()}
        if not full:
            return {"content_d_loss": self.content_update(self.enc_c_a(a[:1]) + n["content_a"],
                                                          self.enc_c_b(b[:1]) + n["content_b"])}
        real_a, real_b, rand_a, rand_b = a[:1], b[:1], a[1:], b[1:]
        f = self.forward(real_a, real_b, n)
        # update_D
        for name, real, fakes in (("dis_a", real_a, ["fake_a_enc"]), ("dis_b", real_b, ["fake_b_enc"]),
                                  ("dis_a2", rand_a, ["fake_a_rand", "fake_a_rand2"][:1 + self.ms]),
                                  ("dis_b2", rand_b, ["fake_b_rand", "fake_b_rand2"][:1 + self.ms])):
            self.opts[name].zero_grad()
            sum(self.d_loss(getattr(self, name), real, f[key]) for key in fakes).backward()
            self.opts[name].step()
        self.content_update(f["c_a"], f["c_b"])
        # backward_EG
        gan = lambda dis, x: sum(bce(out, 1.0) for out in dis(x))
        l1 = lambda x, y: torch.mean(torch.abs(x - y))
        terms = {"content_adversarial_loss": bce(self.dis_c(f["c_a"])[0], 0.5) + bce(self.dis_c(f["c_b"])[0], 0.5),
                 "adversarial_loss": gan(self.dis_a, f["fake_a_enc"]) + gan(self.dis_b, f["fake_b_enc"]),
                 "content_kl_loss": 0.01 * (f["c_a"].pow(2).mean() + f["c_b"].pow(2).mean()),
                 "cycle_loss": 10 * (l1(f["recon_a"], real_a) + l1(f["recon_b"], real_b)),
                 "recon_loss": 10 * (l1(f["fake_aa"], real_a) + l1(f["fake_bb"], real_b))}
        if self.concat:
            kl = lambda mu, logvar: torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) * -0.5
            terms["kl_loss"] = 0.01 * (kl(f["mu_a"], f["logvar_a"]) + kl(f["mu_b"], f["logvar_b"]))
        else:
            terms["kl_loss"] = 0.01 * (f["z_a"].pow(2).mean() + f["z_b"].pow(2).mean())
        eg = sum(value for key, value in terms.items() if self.eg_terms is None or key in self.eg_terms)
        # backward_G_alone
        z1 = n["random"]
        alone = gan(self.dis_a2, f["fake_a_rand"]) + gan(self.dis_b2, f["fake_b_rand"])
        if self.ms:
            alone = alone + gan(self.dis_a2, f["fake_a_rand2"]) + gan(self.dis_b2, f["fake_b_rand2"])
            dz = l1(n["random2"], z1)
            alone = alone + 1 / (l1(f["fake_b_rand2"], f["fake_b_rand"]) / dz + 1e-5)
            alone = alone + 1 / (l1(f["fake_a_rand2"], f["fake_a_rand"]) / dz + 1e-5)
        alone = alone + 10 * (l1(f["mu2_a"], z1) + l1(f["mu2_b"], z1))
        g_params = self.opts["enc_c"].param_groups[0]["params"] + self.opts["gen"].param_groups[0]["params"]
        a_params = self.opts["enc_a"].param_groups[0]["params"]
        for name in ("enc_c", "enc_a", "gen"):
            self.opts[name].zero_grad()
        if self.summed:  # the #48 workaround: one backward of the sum, one step of each
            grads = torch.autograd.grad(eg + alone, g_params + a_params)
            for p, g in zip(g_params + a_params, grads):
                p.grad = g
            for name in ("enc_c", "enc_a", "gen"):
                self.opts[name].step()
            return {"eg_loss": float(eg.detach()), "g_alone_loss": float(alone.detach())}
        eg_grads = torch.autograd.grad(eg, g_params + a_params, retain_graph=True)
        alone_grads = torch.autograd.grad(alone, g_params)  # at the pre-step weights
        for p, g in zip(g_params + a_params, eg_grads):
            p.grad = g
        for name in ("enc_c", "enc_a", "gen"):
            self.opts[name].step()
        for p, g in zip(g_params, alone_grads):
            p.grad = g
        self.opts["enc_c"].step()
        self.opts["gen"].step()
        return {"eg_loss": float(eg.detach()), "g_alone_loss": float(alone.detach())}

    # --- weights ------------------------------------------------------------------------

    def pairs(self, model):
        """[(keras network, torch module)] covering every network of a `DRIT`."""
        return [(model.content_encoder_a, self.enc_c_a), (model.content_encoder_b, self.enc_c_b),
                (model.attribute_encoder_a, self.enc_a_a), (model.attribute_encoder_b, self.enc_a_b),
                (model.generator_a, self.gen_a), (model.generator_b, self.gen_b),
                (model.discriminator_a, self.dis_a), (model.discriminator_b, self.dis_b),
                (model.discriminator_a2, self.dis_a2), (model.discriminator_b2, self.dis_b2),
                (model.content_discriminator, self.dis_c)]

    @staticmethod
    def matched(network, module):
        """[(keras variable, torch parameter)] in order; both sides list layers alike."""
        ours, theirs = list(network.trainable_variables), list(module.parameters())
        if len(ours) != len(theirs):
            raise ValueError(f"{network.name}: {len(ours)} variables vs {len(theirs)} parameters")
        for v, p in zip(ours, theirs):
            if tuple(v.shape) != tuple(to_keras(p.detach()).shape):
                raise ValueError(f"{network.name}: {v.path} {tuple(v.shape)} vs {tuple(p.shape)}")
        return list(zip(ours, theirs))

    def load_keras(self, model):
        with torch.no_grad():
            for network, module in self.pairs(model):
                for v, p in self.matched(network, module):
                    p.copy_(torch.tensor(from_keras(v.numpy(), p.dim()), dtype=self.dtype))

    def weights_as_keras(self, model):
        """{id(keras variable): this side's value in Keras layout (float64)}."""
        return {id(v): to_keras(p.detach()) for network, module in self.pairs(model)
                for v, p in self.matched(network, module)}


def to_keras(p):
    array = p.cpu().double().numpy().copy()
    if array.ndim == 4:
        return array.transpose(2, 3, 1, 0)  # conv (out, in, k, k) and conv-T (in, out, k, k) alike
    if array.ndim == 2:
        return array.T
    if array.ndim == 3:  # LayerNorm (C, 1, 1)
        return array.reshape(-1)
    return array


def from_keras(array, dim):
    if dim == 4:
        return array.transpose(3, 2, 0, 1)
    if dim == 2:
        return array.T
    if dim == 3:
        return array.reshape(-1, 1, 1)
    return array
