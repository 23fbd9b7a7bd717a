"""A PyTorch re-statement of TuiGAN's per-scale networks, resize and one training
iteration, written from the reference's semantics for the tests and the benchmark
(linjx-ustc1106/TuiGAN-PyTorch; module names as `models/model.py`'s, so state dicts
have the official keys).

What it re-states:
- `ConvBlock` (conv 3x3 pad 1 -> BatchNorm2d -> LeakyReLU 0.2), `WDiscriminator`
  (head, 3 body blocks, tail conv -> 1) and `GeneratorConcatSkip2CleanAddAlpha` (head,
  body, tail conv + tanh; head2 on cat(x, y, prev), tail2 conv + sigmoid; an empty body2;
  output a·prev + (1 - a)·y).
- `imresize` (`utils/imresize.py`): to uint8 by truncation, MATLAB-style cubic
  contributions computed as the reference computes them (including its `np.uint` cast of
  negative tap positions before the weights), then back to [-1, 1].
- `iteration`: `train_single_scale`'s loop body with the given noise, GP α and frozen
  coarser scales (eval mode), except that each generator step recomputes the fakes with
  the current weights and without moving the running averages (tf_translate's documented
  port of the stale-graph reuse, REFERENCE-WAVE3 T5).
"""

import numpy as np
import torch
from torch import nn


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1))
        self.add_module("norm", nn.BatchNorm2d(out_channels))
        self.add_module("LeakyRelu", nn.LeakyReLU(0.2))


class WDiscriminator(nn.Module):
    def __init__(self, nfc=32, num_layer=5):
        super().__init__()
        self.head = ConvBlock(3, nfc)
        self.body = nn.Sequential()
        for i in range(num_layer - 2):
            self.body.add_module(f"block{i + 1}", ConvBlock(nfc, nfc))
        self.tail = nn.Conv2d(nfc, 1, 3, stride=1, padding=1)

    def forward(self, x):
        return self.tail(self.body(self.head(x)))


class Generator(nn.Module):
    """`GeneratorConcatSkip2CleanAddAlpha` at nfc = min_nfc."""

    def __init__(self, nfc=32, num_layer=5):
        super().__init__()
        self.head = ConvBlock(3, nfc)
        self.body = nn.Sequential()
        for i in range(num_layer - 2):
            self.body.add_module(f"block{i + 1}", ConvBlock(nfc, nfc))
        self.tail = nn.Sequential(nn.Conv2d(nfc, 3, 3, stride=1, padding=1), nn.Tanh())
        self.head2 = ConvBlock(9, nfc)
        self.body2 = nn.Sequential()
        self.tail2 = nn.Sequential(nn.Conv2d(nfc, 3, 3, stride=1, padding=1), nn.Sigmoid())

    def forward(self, x, prev):
        y = self.tail(self.body(self.head(x)))
        a = self.tail2(self.body2(self.head2(torch.cat((x, y, prev), 1))))
        return a * prev + (1 - a) * y


def weights_init(module):
    """`weights_init`: conv weights N(0, 0.02), norm γ N(1, 0.02), β 0; biases untouched."""
    name = module.__class__.__name__
    if name.find("Conv2d") != -1:
        module.weight.data.normal_(0.0, 0.02)
    elif name.find("Norm") != -1:
        module.weight.data.normal_(1.0, 0.02)
        module.bias.data.fill_(0)


# -- imresize, as utils/imresize.py computes it -------------------------------------------

# NumPy only, so the resize test runs without torch: tests/reference_imresize.py
from reference_imresize import contributions, cubic, imresize_pixels, resize_along  # noqa: E402,F401


def torch2uint8(x):
    """[1, 3, H, W] tensor -> uint8 HWC, truncating (`torch2uint8`)."""
    x = x[0].permute(1, 2, 0).to(torch.float32)
    return (255 * ((x + 1) / 2).clamp(0, 1)).numpy().astype(np.uint8)


def np2torch(pixels, dtype=torch.float32):
    x = torch.from_numpy(pixels[:, :, :, None].transpose(3, 2, 0, 1) / 255).to(dtype)
    return ((x - 0.5) * 2).clamp(-1, 1)


def imresize(x, scale):
    return np2torch(imresize_pixels(torch2uint8(x), scale), x.dtype)


# -- one iteration --------------------------------------------------------------------------

def tv(x):
    h, w = x.size(2), x.size(3)
    count_h, count_w = x[:, :, 1:, :].numel() / x.size(0), x[:, :, :, 1:].numel() / x.size(0)
    h_tv = torch.pow(x[:, :, 1:, :] - x[:, :, :h - 1, :], 2).sum()
    w_tv = torch.pow(x[:, :, :, 1:] - x[:, :, :, :w - 1], 2).sum()
    return 2 * (h_tv / count_h + w_tv / count_w) / x.size(0)


def gradient_penalty(net_d, real, fake, alpha, weight):
    interpolates = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    out = net_d(interpolates)
    grads = torch.autograd.grad(out, interpolates, torch.ones_like(out), create_graph=True)[0]
    return ((grads.norm(2, dim=1) - 1) ** 2).mean() * weight


def no_running_update(network):
    """Train-mode BN without moving its running averages (momentum 0)."""
    class Guard:
        def __enter__(self):
            self.saved = [(m, m.momentum) for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
            for m, _ in self.saved:
                m.momentum = 0.0

        def __exit__(self, *exc):
            for m, momentum in self.saved:
                m.momentum = momentum
    return Guard()


class Scale:
    """One scale's four networks and two optimizers (Adam 5e-4, betas (0.5, 0.999))."""

    def __init__(self, nfc=32, num_layer=5, dtype=torch.float64, lr=5e-4):
        self.G, self.G2 = Generator(nfc, num_layer), Generator(nfc, num_layer)
        self.D, self.D2 = WDiscriminator(nfc, num_layer), WDiscriminator(nfc, num_layer)
        for net in self.nets():
            net.apply(weights_init)
            net.to(dtype)
        self.opt_d = torch.optim.Adam(list(self.D.parameters()) + list(self.D2.parameters()), lr=lr, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(list(self.G.parameters()) + list(self.G2.parameters()), lr=lr,
                                      betas=(0.5, 0.999))

    def nets(self):
        return [self.G, self.G2, self.D, self.D2]


def chain(gs, gs2, reals, noises, factor, amp=0.1):
    """`cycle_rec` (with gs2) or `draw_concat` 'rec' (noises None), frozen, eval mode."""
    x_ab = torch.zeros_like(reals[0])
    x_aba = torch.zeros_like(reals[0])
    with torch.no_grad():
        for k, g in enumerate(gs):
            z_in = reals[k] if noises is None else amp * noises[k] + reals[k]
            x_ab = g(z_in, x_ab[:, :, :reals[k].shape[2], :reals[k].shape[3]])
            if gs2 is not None:
                x_aba = gs2[k](x_ab, x_aba[:, :, :reals[k].shape[2], :reals[k].shape[3]])
            nxt = reals[k + 1]
            x_ab = imresize(x_ab, 1 / factor)[:, :, :nxt.shape[2], :nxt.shape[3]]
            if gs2 is not None:
                x_aba = imresize(x_aba, 1 / factor)[:, :, :nxt.shape[2], :nxt.shape[3]]
    return x_ab, x_aba


def iteration(scale, frozen, reals, reals2, randoms, factor, d_steps=3, g_steps=3, amp=0.1, lambda_grad=0.1,
              lambda_tv=0.1, lambda_idt=1.0, lambda_cyc=1.0):
    """One iteration of `train_single_scale` at scale n = len(frozen): `frozen` holds the
    coarser `Scale`s (eval mode), `reals`/`reals2` the A/B levels 0..n ([1, 3, h, w]),
    `randoms` the noise as `TuiGAN.draw_randoms` (NCHW tensors). Returns the losses of
    the last critic and generator steps (the names of `TuiGAN.iteration`)."""
    n = len(frozen)
    gs, gs2 = [s.G for s in frozen], [s.G2 for s in frozen]
    for s in frozen:
        for net in s.nets():
            net.eval()
    for net in scale.nets():
        net.train()
    real, real2 = reals[n], reals2[n]
    z_prev2, _ = chain(gs, None, reals2, None, factor)
    z_prev, _ = chain(gs2, None, reals, None, factor)
    noise = amp * randoms["noise_a"] + real
    noise2 = amp * randoms["noise_b"] + real2
    G, G2, D, D2 = scale.nets()
    logs = {}
    for j in range(d_steps):
        prev2, c_prev2 = chain(gs2, gs, reals2, [z[j] for z in randoms["chain_b"]], factor)
        prev, c_prev = chain(gs, gs2, reals, [z[j] for z in randoms["chain_a"]], factor)
        scale.opt_d.zero_grad()
        err_real = -D(real2).mean()
        err_real2 = -D2(real).mean()
        fake = G(noise.detach(), prev)
        err_fake = D(fake.detach()).mean()
        gp = gradient_penalty(D, real2, fake.detach(), randoms["alpha_b"][j], lambda_grad)
        fake2 = G2(noise2.detach(), prev2)
        err_fake2 = D2(fake2.detach()).mean()
        gp2 = gradient_penalty(D2, real, fake2.detach(), randoms["alpha_a"][j], lambda_grad)
        d_loss = err_real + err_real2 + err_fake + err_fake2 + gp + gp2
        d_loss.backward()
        scale.opt_d.step()
        logs.update(d_loss=d_loss.item(), d_real_loss=(err_real + err_real2).item(),
                    d_fake_loss=(err_fake + err_fake2).item(), gp=((gp + gp2) / lambda_grad).item())
    for j in range(g_steps):
        scale.opt_g.zero_grad()
        with no_running_update(G), no_running_update(G2):
            fake = G(noise.detach(), prev)
            fake2 = G2(noise2.detach(), prev2)
        err_g = -D(fake).mean()
        tv1 = tv(fake)
        err_g2 = -D2(fake2).mean()
        tv2 = tv(fake2)
        l1 = nn.L1Loss()
        rec = l1(G(real2, z_prev2), real2)
        cyc = l1(G(fake2, c_prev2), real2)
        rec2 = l1(G2(real, z_prev), real)
        cyc2 = l1(G2(fake, c_prev), real)
        g_loss = (err_g + err_g2 + lambda_tv * (tv1 + tv2) + lambda_idt * (rec + rec2) + lambda_cyc * (cyc + cyc2))
        g_loss.backward()
        scale.opt_g.step()
        logs.update(g_loss=g_loss.item(), adversarial_loss=(err_g + err_g2).item(), tv_loss=(tv1 + tv2).item(),
                    identity_loss=(rec + rec2).item(), cycle_loss=(cyc + cyc2).item())
    return logs


# -- weights to and from Keras ----------------------------------------------------------------

def keras_layers(network):
    """(conv, BN or None) pairs of a tf_translate TuiGAN network, in the torch modules' order."""
    blocks = [network.head] + list(network.body)
    pairs = [(b.conv, b.norm) for b in blocks] + [(network.tail, None)]
    if hasattr(network, "head2"):
        pairs += [(network.head2.conv, network.head2.norm), (network.tail2, None)]
    return pairs


def torch_layers(network):
    blocks = [network.head] + list(network.body)
    pairs = [(b.conv, b.norm) for b in blocks]
    pairs.append((network.tail[0] if isinstance(network.tail, nn.Sequential) else network.tail, None))
    if hasattr(network, "head2"):
        pairs += [(network.head2.conv, network.head2.norm), (network.tail2[0], None)]
    return pairs


def copy_to_keras(torch_net, keras_net):
    for (tc, tn), (kc, kn) in zip(torch_layers(torch_net), keras_layers(keras_net)):
        kc.kernel.assign(tc.weight.detach().cpu().numpy().transpose(2, 3, 1, 0).astype(np.float32))
        kc.bias.assign(tc.bias.detach().cpu().numpy().astype(np.float32))
        if tn is not None:
            for variable, tensor in ((kn.gamma, tn.weight), (kn.beta, tn.bias), (kn.moving_mean, tn.running_mean),
                                     (kn.moving_variance, tn.running_var)):
                variable.assign(tensor.detach().cpu().numpy().astype(np.float32))


def as_keras(torch_net, keras_net):
    """{id(keras variable): float64 array} of the torch network's values."""
    values = {}
    for (tc, tn), (kc, kn) in zip(torch_layers(torch_net), keras_layers(keras_net)):
        values[id(kc.kernel)] = tc.weight.detach().double().numpy().transpose(2, 3, 1, 0)
        values[id(kc.bias)] = tc.bias.detach().double().numpy()
        if tn is not None:
            for variable, tensor in ((kn.gamma, tn.weight), (kn.beta, tn.bias), (kn.moving_mean, tn.running_mean),
                                     (kn.moving_variance, tn.running_var)):
                values[id(variable)] = tensor.detach().double().numpy()
    return values


def nchw(x, dtype=torch.float64):
    return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(dtype)
