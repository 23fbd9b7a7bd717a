"""A PyTorch re-statement of junyanz's pix2pix networks and training iteration, written
from the reference's semantics for the tests (module names as the reference's, so its
state dicts have the official checkpoint's keys).

What it re-states (junyanz `models/networks.py`, `models/pix2pix_model.py`):
- `UnetBlock`: one `UnetSkipConnectionBlock`. Its `model` Sequential is
  [down conv, sub-block, ReLU, up conv, tanh] (outermost),
  [LeakyReLU, down conv, ReLU, up conv, up norm] (innermost), or
  [LeakyReLU, down conv, down norm, sub-block, ReLU, up conv, up norm (, Dropout)],
  and every block but the outermost returns cat(x, model(x)) — after the in-place
  LeakyReLU has overwritten x.
- `unet(num_downs)`: innermost, num_downs - 5 dropout blocks at 8 ngf, then 4, 2, 1 ngf
  and the outermost.
- `patchgan`: NLayerDiscriminator(6 channels, ndf, 3 layers, BatchNorm2d).
- `step`: `optimize_parameters` (forward once; D step on fake.detach() then real, loss
  x 0.5; G step against the updated D: BCE-with-logits + lambda x L1).
"""

import functools

import torch
from torch import nn


class UnetBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        is_instance = (norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer) \
            == nn.InstanceNorm2d
        use_bias = is_instance
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        down_relu = nn.LeakyReLU(0.2, True)
        up_relu = nn.ReLU(True)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [down_conv, submodule, up_relu, up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [down_relu, down_conv, up_relu, up_conv, norm_layer(outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [down_relu, down_conv, norm_layer(inner_nc), submodule, up_relu, up_conv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class Unet(nn.Module):
    def __init__(self, num_downs, ngf=64, norm="batch", use_dropout=True, input_nc=3, output_nc=3):
        super().__init__()
        norm_layer = nn.BatchNorm2d if norm == "batch" else functools.partial(
            nn.InstanceNorm2d, affine=False, track_running_stats=False)
        block = UnetBlock(ngf * 8, ngf * 8, innermost=True, norm_layer=norm_layer)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer, use_dropout=use_dropout)
        for outer in (4, 2, 1):
            block = UnetBlock(ngf * outer, ngf * outer * 2, submodule=block, norm_layer=norm_layer)
        self.model = UnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                               norm_layer=norm_layer)

    def forward(self, x):
        return self.model(x)


def patchgan(ndf=64, input_nc=6, n_layers=3):
    layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        previous, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1, bias=False),
                   nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


def randomize(network, seed=0):
    """Non-trivial weights and batch-norm state (running statistics included), so that
    an import that drops or swaps any of them shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if tensor.is_floating_point():
                if name.endswith("running_var"):
                    tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
                elif name.endswith("running_mean"):
                    tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
                elif name.endswith(".weight") and tensor.ndim == 1:  # BN gamma
                    tensor.copy_(1.0 + 0.2 * torch.randn(tensor.shape, generator=generator))
                else:
                    tensor.copy_(0.05 * torch.randn(tensor.shape, generator=generator))
    return network


def bce(logits, target):
    return nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def step(netG, netD, opt_G, opt_D, real_A, real_B, lambda_L1=100.0):
    """One `optimize_parameters`; returns the losses as floats."""
    fake_B = netG(real_A)
    for p in netD.parameters():
        p.requires_grad_(True)
    opt_D.zero_grad()
    loss_D_fake = bce(netD(torch.cat((real_A, fake_B), 1).detach()), 0.0)
    loss_D_real = bce(netD(torch.cat((real_A, real_B), 1)), 1.0)
    loss_D = (loss_D_fake + loss_D_real) * 0.5
    loss_D.backward()
    opt_D.step()
    for p in netD.parameters():
        p.requires_grad_(False)
    opt_G.zero_grad()
    loss_G_GAN = bce(netD(torch.cat((real_A, fake_B), 1)), 1.0)
    loss_G_L1 = nn.functional.l1_loss(fake_B, real_B) * lambda_L1
    loss_G = loss_G_GAN + loss_G_L1
    loss_G.backward()
    opt_G.step()
    return {"d_loss": float(loss_D), "d_fake_loss": float(loss_D_fake), "d_real_loss": float(loss_D_real),
            "adversarial_loss": float(loss_G_GAN), "l1_loss": float(loss_G_L1) / lambda_L1, "g_loss": float(loss_G)}
