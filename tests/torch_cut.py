"""A PyTorch re-statement of CUT's networks and `optimize_parameters`, for parity tests.

Written from the semantics of taesungp/contrastive-unpaired-translation
(`models/networks.py`, `models/patchnce.py`, `models/cut_model.py`), with its module names
(`model.<i>`, `model.<i>.conv_block.<j>`, `mlp_<l>.<j>`) and its in-place ReLUs (so the
feature stored for a norm followed by a ReLU is the rectified one, as there). The random
draws (patch positions, FastCUT's coin) are passed in, so both sides can use the same.
Needs torch; nothing in `tf_translate` imports this file.
"""

import numpy as np

from tf_translate.torch_import.cut import mlp_modules, weighted_modules


def binomial_taps(size):
    """The normalised 2-D binomial filter of `size` taps per side (3: [1, 2, 1], 4: [1, 3, 3, 1])."""
    row = np.array([[1.0], [1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 3.0, 3.0, 1.0]][size - 1])
    grid = np.outer(row, row)
    return grid / grid.sum()


def modules():
    import torch
    from torch import nn
    from torch.nn import functional

    class InstanceNorm2d(nn.InstanceNorm2d):
        """`nn.InstanceNorm2d` whose backward is given a contiguous output gradient.

        torch 2.13's CPU instance-norm backward is wrong when the output gradient is not
        contiguous (measured: max error 3.6 against finite differences on a 4x4x2 map
        for an output gradient in channels-last strides; exact when contiguous). netF's
        `permute(0, 2, 3, 1)` sends exactly such gradients into the last norm of the
        tapped residual blocks, so without this the float64 "reference" itself is wrong
        (the official code on this torch build would train with those gradients)."""

        def forward(self, x):
            y = super().forward(x)
            if y.requires_grad:
                y.register_hook(lambda grad: grad.contiguous())
            return y

    class Downsample(nn.Module):
        """Reflect pad 1, depthwise 3x3 binomial blur, stride 2."""

        def __init__(self, channels):
            super().__init__()
            taps = torch.tensor(binomial_taps(3), dtype=torch.float32)
            self.register_buffer("filt", taps[None, None].repeat(channels, 1, 1, 1))

        def forward(self, x):
            return functional.conv2d(functional.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2,
                                     groups=x.shape[1])

    class Upsample(nn.Module):
        """Replicate pad 1, depthwise transposed conv (stride 2, padding 2) with the 4-tap
        binomial x 4, then the first and last row and column dropped."""

        def __init__(self, channels):
            super().__init__()
            taps = torch.tensor(binomial_taps(4) * 4, dtype=torch.float32)
            self.register_buffer("filt", taps[None, None].repeat(channels, 1, 1, 1))

        def forward(self, x):
            y = functional.conv_transpose2d(functional.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2,
                                            padding=2, groups=x.shape[1])
            return y[:, :, 1:-1, 1:-1]

    class ResnetBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), InstanceNorm2d(dim),
                                            nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3),
                                            InstanceNorm2d(dim))

        def forward(self, x):
            return x + self.conv_block(x)

    class ResnetGenerator(nn.Module):
        def __init__(self, ngf=64, n_blocks=9, no_antialias=False, no_antialias_up=False):
            super().__init__()
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), InstanceNorm2d(ngf), nn.ReLU(True)]
            for mult in (1, 2):
                width = ngf * mult
                if no_antialias:
                    layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), InstanceNorm2d(2 * width),
                               nn.ReLU(True)]
                else:
                    layers += [nn.Conv2d(width, 2 * width, 3, stride=1, padding=1), InstanceNorm2d(2 * width),
                               nn.ReLU(True), Downsample(2 * width)]
            layers += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
            for mult in (4, 2):
                width = ngf * mult
                if no_antialias_up:
                    layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1)]
                else:
                    layers += [Upsample(width), nn.Conv2d(width, width // 2, 3, stride=1, padding=1)]
                layers += [InstanceNorm2d(width // 2), nn.ReLU(True)]
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            self.model = nn.Sequential(*layers)

        def forward(self, x, layers=(), encode_only=False):
            if not layers:
                return self.model(x)
            feats = []
            for index, module in enumerate(self.model):
                x = module(x)
                if index in layers:
                    feats.append(x)
                if encode_only and index == layers[-1]:
                    return feats
            return x, feats

    class NLayerDiscriminator(nn.Module):
        def __init__(self, ndf=64, n_layers=3, no_antialias=False):
            super().__init__()
            stride = 2 if no_antialias else 1
            seq = [nn.Conv2d(3, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]
            seq += [] if no_antialias else [Downsample(ndf)]
            width = ndf
            for n in range(1, n_layers):
                out = ndf * min(2 ** n, 8)
                seq += [nn.Conv2d(width, out, 4, stride=stride, padding=1), InstanceNorm2d(out),
                        nn.LeakyReLU(0.2, True)]
                seq += [] if no_antialias else [Downsample(out)]
                width = out
            out = ndf * min(2 ** n_layers, 8)
            seq += [nn.Conv2d(width, out, 4, stride=1, padding=1), InstanceNorm2d(out), nn.LeakyReLU(0.2, True),
                    nn.Conv2d(out, 1, 4, stride=1, padding=1)]
            self.model = nn.Sequential(*seq)

        def forward(self, x):
            return self.model(x)

    class PatchSampleF(nn.Module):
        """MLPs built up front here (the reference builds them on the first forward, with
        the same shapes and init)."""

        def __init__(self, channels, nc=256):
            super().__init__()
            for index, c in enumerate(channels):
                setattr(self, f"mlp_{index}", nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)))

        def forward(self, feats, patch_ids):
            out = []
            for index, (feat, ids) in enumerate(zip(feats, patch_ids)):
                flat = feat.permute(0, 2, 3, 1).flatten(1, 2)
                sample = flat[:, torch.as_tensor(np.asarray(ids), dtype=torch.long), :].flatten(0, 1)
                sample = getattr(self, f"mlp_{index}")(sample)
                norm = sample.pow(2).sum(1, keepdim=True).pow(0.5)
                out.append(sample.div(norm + 1e-7))
            return out

    def patch_nce(feat_q, feat_k, batch_size, temperature, detach_k=True):
        rows, dim = feat_q.shape
        if detach_k:
            feat_k = feat_k.detach()
        l_pos = torch.bmm(feat_q.view(rows, 1, -1), feat_k.view(rows, -1, 1)).view(rows, 1)
        q, k = feat_q.view(batch_size, -1, dim), feat_k.view(batch_size, -1, dim)
        patches = q.size(1)
        l_neg = torch.bmm(q, k.transpose(2, 1))
        l_neg = l_neg.masked_fill(torch.eye(patches, dtype=torch.bool)[None], -10.0).view(-1, patches)
        logits = torch.cat((l_pos, l_neg), dim=1) / temperature
        target = torch.zeros(logits.size(0), dtype=torch.long)
        return nn.functional.cross_entropy(logits, target, reduction="none")

    return ResnetGenerator, NLayerDiscriminator, PatchSampleF, patch_nce


def xavier_init(net, generator, gain=0.02):
    """`init_weights(net, "xavier", 0.02)`: conv and linear weights xavier-normal, biases 0."""
    import torch
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                torch.nn.init.xavier_normal_(module.weight, gain=gain, generator=generator)
                torch.nn.init.zeros_(module.bias)
    return net


class TorchCUT:
    """`CUTModel.optimize_parameters` with the reference's networks and Adams.

    `order="reference"` updates D first and computes G's loss against the updated D;
    `"g_first"` (a negative control) updates G and F before D. `detach_k=False` (another
    control) lets gradients flow through k as well.
    """

    def __init__(self, ngf=8, n_blocks=5, ndf=8, netF_nc=32, nce_layers=(0, 4, 8, 12, 16), lambda_GAN=1.0,
                 lambda_NCE=1.0, nce_idt=True, flip_equivariance=False, nce_T=0.07, lr=2e-4, beta1=0.5,
                 no_antialias=False, no_antialias_up=False, dtype="float64", seed=0, order="reference",
                 detach_k=True, channels_last=False):
        import torch
        ResnetGenerator, NLayerDiscriminator, PatchSampleF, patch_nce = modules()
        self.torch, self.dtype, self.patch_nce = torch, getattr(torch, dtype), patch_nce
        generator = torch.Generator().manual_seed(seed)
        self.netG = xavier_init(ResnetGenerator(ngf, n_blocks, no_antialias, no_antialias_up), generator)
        self.netD = xavier_init(NLayerDiscriminator(ndf, 3, no_antialias), generator)
        self.nce_layers = list(nce_layers)
        with torch.no_grad():
            channels = [f.shape[1] for f in self.netG(torch.zeros(1, 3, 32, 32), self.nce_layers, encode_only=True)]
        self.netF = xavier_init(PatchSampleF(channels, netF_nc), generator)
        for net in (self.netG, self.netD, self.netF):
            net.to(self.dtype)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:  # other kernels, other float32 rounding: a second sample of the reference's noise
            self.netG.to(memory_format=self.memory_format)
            self.netD.to(memory_format=self.memory_format)
        self.lambda_GAN, self.lambda_NCE, self.nce_idt, self.nce_T = lambda_GAN, lambda_NCE, nce_idt, nce_T
        self.flip_equivariance, self.order, self.detach_k = flip_equivariance, order, detach_k
        adam = lambda net: torch.optim.Adam(net.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optimizer_G, self.optimizer_D, self.optimizer_F = adam(self.netG), adam(self.netD), adam(self.netF)

    def tensor(self, nhwc):
        x = self.torch.from_numpy(np.asarray(nhwc)).permute(0, 3, 1, 2).to(self.dtype)
        return x.contiguous(memory_format=self.memory_format)

    def set_requires_grad(self, net, flag):
        for parameter in net.parameters():
            parameter.requires_grad = flag

    def calculate_nce_loss(self, src, tgt, flipped, patch_ids):
        feat_q = self.netG(tgt, self.nce_layers, encode_only=True)
        if flipped:
            feat_q = [self.torch.flip(f, [3]) for f in feat_q]
        feat_k = self.netG(src, self.nce_layers, encode_only=True)
        feat_k_pool = self.netF(feat_k, patch_ids)
        feat_q_pool = self.netF(feat_q, patch_ids)
        total = 0.0
        for f_q, f_k in zip(feat_q_pool, feat_k_pool):
            loss = self.patch_nce(f_q, f_k, src.shape[0], self.nce_T, self.detach_k) * self.lambda_NCE
            total = total + loss.mean()
        return total / len(self.nce_layers)

    def step(self, real_a, real_b, flip=False, patch_ids=(None, None)):
        """One iteration on NHWC [-1, 1] batches; returns the losses as floats."""
        torch = self.torch
        mse = torch.nn.functional.mse_loss
        real_A, real_B = self.tensor(real_a), self.tensor(real_b)
        flipped = bool(self.flip_equivariance and flip)
        real = torch.cat((real_A, real_B), 0) if self.nce_idt else real_A
        if flipped:
            real = torch.flip(real, [3])
        fake = self.netG(real)
        fake_B = fake[:real_A.size(0)]
        idt_B = fake[real_A.size(0):] if self.nce_idt else None

        def d_step():
            self.set_requires_grad(self.netD, True)
            self.optimizer_D.zero_grad()
            pred_fake, pred_real = self.netD(fake_B.detach()), self.netD(real_B)
            loss_fake = mse(pred_fake, torch.zeros_like(pred_fake))
            loss_real = mse(pred_real, torch.ones_like(pred_real))
            loss_D = (loss_fake + loss_real) * 0.5
            loss_D.backward()
            self.optimizer_D.step()
            return loss_D, loss_fake, loss_real

        def g_step():
            self.set_requires_grad(self.netD, False)
            self.optimizer_G.zero_grad()
            self.optimizer_F.zero_grad()
            pred_fake = self.netD(fake_B)
            loss_G_GAN = mse(pred_fake, torch.ones_like(pred_fake)) * self.lambda_GAN
            loss_NCE = self.calculate_nce_loss(real_A, fake_B, flipped, patch_ids[0])
            loss_NCE_Y = None
            if self.nce_idt:
                loss_NCE_Y = self.calculate_nce_loss(real_B, idt_B, flipped, patch_ids[1])
                both = (loss_NCE + loss_NCE_Y) * 0.5
            else:
                both = loss_NCE
            loss_G = loss_G_GAN + both
            loss_G.backward(retain_graph=self.order == "g_first")
            self.optimizer_G.step()
            self.optimizer_F.step()
            return loss_G, loss_G_GAN, loss_NCE, loss_NCE_Y

        if self.order == "reference":
            d = d_step()
            g = g_step()
        else:
            g = g_step()
            d = d_step()
        logs = {"d_loss": d[0], "d_fake_loss": d[1], "d_real_loss": d[2], "g_loss": g[0], "adversarial_loss": g[1],
                "nce_loss": g[2]}
        if g[3] is not None:
            logs["nce_identity_loss"] = g[3]
        return {k: float(v) for k, v in logs.items()}

    def state(self):
        """{"G"/"D"/"F": {name: float64 array}}."""
        return {name: {k: v.detach().double().numpy().copy() for k, v in net.state_dict().items()}
                for name, net in (("G", self.netG), ("D", self.netD), ("F", self.netF))}

    def module_lists(self, model):
        return {"G": weighted_modules(model.generator.stack), "D": weighted_modules(model.discriminator.stack),
                "F": mlp_modules(model.patch_sampler)}

    def copy_to(self, model):
        """Sets our CUT model's G, D and F to this trainer's weights."""
        from tf_translate.torch_import.cut import assign_pairs, module_pairs
        state = self.state()
        for name, found in self.module_lists(model).items():
            assign_pairs(module_pairs(found, state[name]))

    def weights_as_keras(self, model):
        """{id(our variable): this trainer's value in Keras layout, float64}."""
        from tf_translate.torch_import.cut import module_pairs
        state = self.state()
        return {id(v): value.astype(np.float64) for name, found in self.module_lists(model).items()
                for v, value, _ in module_pairs(found, state[name])}
