"""PyTorch re-statements of the reference networks and training steps, for parity tests
and for `benchmarks/learns_like_reference.py` (the PyTorch side of that experiment).

Written from junyanz/pytorch-CycleGAN-and-pix2pix (`models/networks.py`,
`models/cycle_gan_model.py`, `util/image_pool.py`, `train.py`): the same modules, module
names (so our PyTorch import maps them), initialisation, losses, optimizers and update
order. Needs torch; nothing in `tf_translate` imports this file.
"""

import itertools
import random

import numpy as np

from tf_translate.torch_import import (assign, cyclegan_module_names, sequential_pairs,
                                       weighted_layers)

# junyanz NLayerDiscriminator(n_layers=3) in a plain nn.Sequential: index, kind.
PATCHGAN_MODULES = [("0", "conv"), ("2", "conv"), ("3", "norm"), ("5", "conv"), ("6", "norm"),
                    ("8", "conv"), ("9", "norm"), ("11", "conv")]


def torch_resnet_generator(ngf=64, n_blocks=9, affine=False, block_attribute="conv_block",
                           track_running_stats=False):
    """junyanz `ResnetGenerator` (reflect padding, no dropout, ConvTranspose up-sampling)."""
    from torch import nn

    def norm(channels):
        return nn.InstanceNorm2d(channels, affine=affine, track_running_stats=track_running_stats)

    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            setattr(self, block_attribute, nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm(dim)))

        def forward(self, x):
            return x + getattr(self, block_attribute)(x)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
            for mult in (1, 2):
                layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                           norm(ngf * mult * 2), nn.ReLU(True)]
            layers += [Block(ngf * 4) for _ in range(n_blocks)]
            for mult in (4, 2):
                layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                              output_padding=1),
                           norm(ngf * mult // 2), nn.ReLU(True)]
            layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x)

    return Generator()


def torch_patchgan(ndf=64):
    """junyanz `NLayerDiscriminator(n_layers=3)` with instance norm (every conv has a bias)."""
    from torch import nn
    layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    width = ndf
    for n, stride in ((1, 2), (2, 2), (3, 1)):
        layers += [nn.Conv2d(width, ndf * min(2 ** n, 8), 4, stride, 1), nn.InstanceNorm2d(ndf * min(2 ** n, 8)),
                   nn.LeakyReLU(0.2, True)]
        width = ndf * min(2 ** n, 8)
    layers += [nn.Conv2d(width, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


def reference_init(net, generator):
    """junyanz `init_weights(net, "normal", 0.02)`: conv weights N(0, 0.02), biases 0."""
    import torch
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.weight.copy_(0.02 * torch.randn(module.weight.shape, generator=generator))
                module.bias.zero_()
    return net


class TorchImagePool:
    """junyanz `util/image_pool.py`: Python's `random`, one draw per image."""

    def __init__(self, pool_size, seed=0):
        self.pool_size, self.images, self.random = pool_size, [], random.Random(seed)

    def query(self, images):
        import torch
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            image = image.detach()[None]
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.random.uniform(0, 1) > 0.5:
                slot = self.random.randint(0, self.pool_size - 1)
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def float64_state(net, prefix=""):
    """A torch network's state dict as float64 NumPy copies (not views of live tensors)."""
    return {prefix + k: v.detach().double().numpy().copy() for k, v in net.state_dict().items()}


class KerasMapped:
    """Weight exchange with our model for a trainer that lists `pairs(model)`."""

    def copy_to(self, model):
        """Sets our model's networks to this trainer's weights."""
        assign([(v, kind, key, a.astype(np.float32)) for v, kind, key, a in self.pairs(model)],
               type(self).__name__)

    def weights_as_keras(self, model):
        """{id(our variable): this trainer's value in Keras layout, float64}."""
        from tf_translate.torch_import import torch_to_keras
        return {id(v): torch_to_keras(kind, a) for v, kind, _, a in self.pairs(model)}


class TorchCycleGAN(KerasMapped):
    """junyanz `CycleGANModel` training: netG_A, netG_B, netD_A (judges B), netD_B.

    `step(real_a, real_b)` is `optimize_parameters`: forward, G update (LSGAN + cycle +
    identity, Ds frozen), then D_A and D_B on pooled fakes (loss x 0.5), one Adam each.
    `start_epoch()` steps the linear schedule where current upstream `train.py` does.
    """

    def __init__(self, ngf=64, n_blocks=9, ndf=64, lr=2e-4, beta1=0.5, lambda_cycle=10.0,
                 lambda_identity=0.5, pool_size=50, n_epochs=None, n_epochs_decay=None,
                 dtype="float32", seed=0):
        import torch
        self.torch, self.dtype = torch, getattr(torch, dtype)
        generator = torch.Generator().manual_seed(seed)
        make = lambda net: reference_init(net, generator).to(self.dtype)
        self.netG_A, self.netG_B = make(torch_resnet_generator(ngf, n_blocks)), make(torch_resnet_generator(ngf, n_blocks))
        self.netD_A, self.netD_B = make(torch_patchgan(ndf)), make(torch_patchgan(ndf))
        self.n_blocks = n_blocks
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        self.optimizer_G = torch.optim.Adam(itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()),
                                            lr=lr, betas=(beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()),
                                            lr=lr, betas=(beta1, 0.999))
        self.schedulers = []
        if n_epochs is not None:
            rule = lambda epoch: 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)
            self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda=rule)
                               for o in (self.optimizer_G, self.optimizer_D)]
        self.pool_A, self.pool_B = TorchImagePool(pool_size, seed), TorchImagePool(pool_size, seed + 1)

    def start_epoch(self):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()", as upstream
            for scheduler in self.schedulers:
                scheduler.step()

    def tensor(self, images_nhwc):
        return self.torch.from_numpy(np.asarray(images_nhwc)).permute(0, 3, 1, 2).to(self.dtype)

    @staticmethod
    def set_requires_grad(nets, flag):
        for net in nets:
            for parameter in net.parameters():
                parameter.requires_grad = flag

    def step(self, real_a, real_b):
        """One iteration on NHWC [-1, 1] batches; returns the losses as floats."""
        torch = self.torch
        l1, mse = torch.nn.functional.l1_loss, torch.nn.functional.mse_loss
        real_A, real_B = self.tensor(real_a), self.tensor(real_b)
        fake_B = self.netG_A(real_A)
        rec_A = self.netG_B(fake_B)
        fake_A = self.netG_B(real_B)
        rec_B = self.netG_A(fake_A)

        self.set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        weight = self.lambda_cycle * self.lambda_identity
        identity = l1(self.netG_A(real_B), real_B) + l1(self.netG_B(real_A), real_A)
        d_a_on_fake, d_b_on_fake = self.netD_A(fake_B), self.netD_B(fake_A)
        adversarial = (mse(d_a_on_fake, torch.ones_like(d_a_on_fake))
                       + mse(d_b_on_fake, torch.ones_like(d_b_on_fake)))
        cycle = l1(rec_A, real_A) + l1(rec_B, real_B)
        g_loss = adversarial + self.lambda_cycle * cycle + weight * identity
        g_loss.backward()
        self.optimizer_G.step()

        self.set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        d_losses = []
        for net, real, fake in ((self.netD_A, real_B, self.pool_B.query(fake_B)),
                                (self.netD_B, real_A, self.pool_A.query(fake_A))):
            on_real, on_fake = net(real), net(fake.detach())
            loss = 0.5 * (mse(on_real, torch.ones_like(on_real)) + mse(on_fake, torch.zeros_like(on_fake)))
            loss.backward()
            d_losses.append(loss)
        self.optimizer_D.step()
        return {"g_loss": g_loss.item(), "adversarial_loss": adversarial.item(), "cycle_loss": cycle.item(),
                "identity_loss": float(identity), "d_b_loss": float(d_losses[0]), "d_a_loss": float(d_losses[1])}

    def networks(self):
        """{our attribute name: torch network} (netD_A judges B images: our discriminator_b)."""
        return {"generator_ab": self.netG_A, "generator_ba": self.netG_B,
                "discriminator_b": self.netD_A, "discriminator_a": self.netD_B}

    def pairs(self, model):
        """(our variable, kind, key, float64 array) for a `tf_translate` CycleGAN's four networks."""
        pairs = []
        for name, net in self.networks().items():
            modules = cyclegan_module_names(self.n_blocks) if name.startswith("generator") else PATCHGAN_MODULES
            pairs += sequential_pairs(weighted_layers(getattr(model, name).stack), modules, float64_state(net),
                                      biases=True)
        return pairs


# ---------------------------------------------------------------------------------------
# StarGAN (yunjey/stargan `model.py`, `solver.py`: CelebA setting, multi-label BCE)

def torch_stargan_generator(conv_dim=64, c_dim=5, repeat_num=6):
    """yunjey `Generator`: module names as the reference (`main.<i>`, blocks `main.<i>.main.<j>`)."""
    import torch
    from torch import nn

    norm = lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=True)

    class ResidualBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.main = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), norm(dim), nn.ReLU(True),
                                      nn.Conv2d(dim, dim, 3, 1, 1, bias=False), norm(dim))

        def forward(self, x):
            return x + self.main(x)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), norm(conv_dim), nn.ReLU(True)]
            width = conv_dim
            for _ in range(2):
                layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), norm(width * 2), nn.ReLU(True)]
                width *= 2
            layers += [ResidualBlock(width) for _ in range(repeat_num)]
            for _ in range(2):
                layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), norm(width // 2),
                           nn.ReLU(True)]
                width //= 2
            layers += [nn.Conv2d(width, 3, 7, 1, 3, bias=False), nn.Tanh()]
            self.main = nn.Sequential(*layers)

        def forward(self, x, c):
            c = c.view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
            return self.main(torch.cat([x, c], dim=1))

    return Generator()


def torch_stargan_discriminator(image_size=128, conv_dim=64, c_dim=5, repeat_num=6):
    """yunjey `Discriminator`: `main` (4x4 s2 convs, LeakyReLU 0.01), heads `conv1`, `conv2`."""
    from torch import nn

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            layers, width = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)], conv_dim
            for _ in range(1, repeat_num):
                layers += [nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
                width *= 2
            self.main = nn.Sequential(*layers)
            self.conv1 = nn.Conv2d(width, 1, 3, 1, 1, bias=False)
            self.conv2 = nn.Conv2d(width, c_dim, image_size // 2 ** repeat_num, bias=False)

        def forward(self, x):
            h = self.main(x)
            return self.conv1(h), self.conv2(h).view(x.size(0), -1)

    return Discriminator()


class TorchStarGAN(KerasMapped):
    """yunjey `Solver.train` (CelebA): `critic_step` is the D update, `generator_step` the G
    update, each as the loop body writes it (WGAN-GP, BCE classification summed / batch,
    Adam(lr, (0.5, 0.999)) with torch's default init)."""

    def __init__(self, image_size, c_dim, conv_dim, repeat_num, d_conv_dim, d_repeat_num, lr=1e-4,
                 lambda_cls=1.0, lambda_rec=10.0, lambda_gp=10.0, dtype="float32", seed=0):
        import torch
        self.torch, self.dtype = torch, getattr(torch, dtype)
        torch.manual_seed(seed)
        self.G = torch_stargan_generator(conv_dim, c_dim, repeat_num).to(self.dtype)
        self.D = torch_stargan_discriminator(image_size, d_conv_dim, c_dim, d_repeat_num).to(self.dtype)
        self.repeat_num = repeat_num
        self.lambda_cls, self.lambda_rec, self.lambda_gp = lambda_cls, lambda_rec, lambda_gp
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), lr, (0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), lr, (0.5, 0.999))

    def tensor(self, array, images=False):
        value = self.torch.from_numpy(np.asarray(array))
        return (value.permute(0, 3, 1, 2) if images else value).contiguous().to(self.dtype)

    def classification_loss(self, logits, target):
        bce = self.torch.nn.functional.binary_cross_entropy_with_logits
        return bce(logits, target, reduction="sum") / logits.size(0)

    def critic_step(self, images, labels, targets, alpha):
        torch = self.torch
        x_real, label_org, c_trg = self.tensor(images, True), self.tensor(labels), self.tensor(targets)
        out_src, out_cls = self.D(x_real)
        d_loss_real, d_loss_cls = -torch.mean(out_src), self.classification_loss(out_cls, label_org)
        x_fake = self.G(x_real, c_trg)
        out_src, _ = self.D(x_fake.detach())
        d_loss_fake = torch.mean(out_src)
        alpha = self.tensor(alpha)
        x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
        out_src, _ = self.D(x_hat)
        grad = torch.autograd.grad(outputs=out_src, inputs=x_hat, grad_outputs=torch.ones_like(out_src),
                                   retain_graph=True, create_graph=True, only_inputs=True)[0]
        grad = grad.view(grad.size(0), -1)
        d_loss_gp = torch.mean((torch.sqrt(torch.sum(grad ** 2, dim=1)) - 1) ** 2)
        d_loss = d_loss_real + d_loss_fake + self.lambda_cls * d_loss_cls + self.lambda_gp * d_loss_gp
        self.g_optimizer.zero_grad()
        self.d_optimizer.zero_grad()
        d_loss.backward()
        self.d_optimizer.step()
        return [d_loss.item(), (d_loss_real + d_loss_fake).item(), d_loss_cls.item(), d_loss_gp.item()]

    def generator_step(self, images, labels, targets):
        torch = self.torch
        x_real, label_org, c_trg = self.tensor(images, True), self.tensor(labels), self.tensor(targets)
        x_fake = self.G(x_real, c_trg)
        out_src, out_cls = self.D(x_fake)
        g_loss_fake, g_loss_cls = -torch.mean(out_src), self.classification_loss(out_cls, c_trg)
        g_loss_rec = torch.mean(torch.abs(x_real - self.G(x_fake, label_org)))
        g_loss = g_loss_fake + self.lambda_rec * g_loss_rec + self.lambda_cls * g_loss_cls
        self.g_optimizer.zero_grad()
        self.d_optimizer.zero_grad()
        g_loss.backward()
        self.g_optimizer.step()
        return [g_loss.item(), g_loss_fake.item(), g_loss_cls.item(), g_loss_rec.item()]

    def pairs(self, model):
        """(variable, kind, key, array) for our generator and discriminator."""
        from tf_translate.torch_import import stargan_module_names
        state = {**float64_state(self.G), **float64_state(self.D, "D.")}
        d = model.discriminator
        d_modules = [(f"D.main.{2 * i}", "conv") for i in range(d.num_layers)]
        pairs = sequential_pairs(weighted_layers(model.generator.stack), stargan_module_names(self.repeat_num),
                                 state, biases=False)
        pairs += sequential_pairs(weighted_layers(d.stack), d_modules, state, biases=True)
        pairs += sequential_pairs(weighted_layers([d.src_head]), [("D.conv1", "conv")], state, biases=False)
        pairs += sequential_pairs(weighted_layers([d.cls_head]), [("D.conv2", "conv")], state, biases=False)
        return pairs
