"""minivision photo2cartoon's `ResnetGenerator` in PyTorch, re-stated from its layer list
(module names as the official code's, so state dicts import as released checkpoints do).
Used by the import tests and by benchmarks/torch_step.py --mode infer."""


def torch_photo2cartoon_generator(ngf=8, img_size=32, light=True):
    """minivision photo2cartoon `ResnetGenerator` written from its layer list."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def mix(x, rho, eps=1e-5):
        instance = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True) + eps)
        layer = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(1, 2, 3), keepdim=True) + eps)
        return rho * instance + (1 - rho) * layer

    class AdaLIN(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.rho = nn.Parameter(torch.full((1, c, 1, 1), 0.9))

        def forward(self, x, gamma, beta):
            return mix(x, self.rho) * gamma[:, :, None, None] + beta[:, :, None, None]

    class LIN(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.rho = nn.Parameter(torch.zeros(1, c, 1, 1))
            self.gamma = nn.Parameter(torch.ones(1, c, 1, 1))
            self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))

        def forward(self, x):
            return mix(x, self.rho) * self.gamma + self.beta

    class SoftAdaLIN(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm = AdaLIN(c)
            self.w_gamma, self.w_beta = nn.Parameter(torch.zeros(1, c)), nn.Parameter(torch.zeros(1, c))
            self.c_gamma = nn.Sequential(nn.Linear(c, c), nn.ReLU(True), nn.Linear(c, c))
            self.c_beta = nn.Sequential(nn.Linear(c, c), nn.ReLU(True), nn.Linear(c, c))
            self.s_gamma, self.s_beta = nn.Linear(c, c), nn.Linear(c, c)

        def forward(self, x, content, style):
            gamma = (1 - self.w_gamma) * self.s_gamma(style) + self.w_gamma * self.c_gamma(content)
            beta = (1 - self.w_beta) * self.s_beta(style) + self.w_beta * self.c_beta(content)
            return self.norm(x, gamma, beta)

    def pre_activation_conv(cin, cout, k):
        return nn.Sequential(nn.InstanceNorm2d(cin), nn.ReLU(True), nn.ReflectionPad2d(k // 2),
                             nn.Conv2d(cin, cout, k, bias=False))

    class ConvBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.ConvBlock1 = pre_activation_conv(c, c // 2, 3)
            self.ConvBlock2 = pre_activation_conv(c // 2, c // 4, 3)
            self.ConvBlock3 = pre_activation_conv(c // 4, c // 4, 3)
            self.ConvBlock4 = nn.Sequential(nn.InstanceNorm2d(c), nn.ReLU(True), nn.Conv2d(c, c, 1, bias=False))  # unused

        def forward(self, x):
            x1 = self.ConvBlock1(x)
            x2 = self.ConvBlock2(x1)
            return x + torch.cat([x1, x2, self.ConvBlock3(x2)], 1)

    class HourGlassBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            for name in [f"ConvBlock{i}_{j}" for i in range(1, 5) for j in (1, 2)] + [f"ConvBlock{i}" for i in range(5, 10)]:
                setattr(self, name, ConvBlock(c))

        def forward(self, x):
            skips = []
            for level in range(1, 5):
                skips.append(getattr(self, f"ConvBlock{level}_1")(x))
                x = getattr(self, f"ConvBlock{level}_2")(F.avg_pool2d(x, 2))
            x = self.ConvBlock5(x)
            for index, skip in zip(range(6, 10), reversed(skips)):
                x = F.interpolate(getattr(self, f"ConvBlock{index}")(x), scale_factor=2, mode="nearest") + skip
            return x

    class HourGlass(nn.Module):
        def __init__(self, c, use_res=True):
            super().__init__()
            self.use_res = use_res
            self.HG = nn.Sequential(HourGlassBlock(c), ConvBlock(c), nn.Conv2d(c, c, 1, bias=False),
                                    nn.InstanceNorm2d(c), nn.ReLU(True))
            self.Conv1 = nn.Conv2d(c, 3, 1)
            if use_res:
                self.Conv2, self.Conv3 = nn.Conv2d(c, c, 1), nn.Conv2d(3, c, 1)

        def forward(self, x):
            features = self.HG(x)
            side = self.Conv1(features)
            return x + self.Conv2(features) + self.Conv3(side) if self.use_res else side

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c),
                                            nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False),
                                            nn.InstanceNorm2d(c))

        def forward(self, x):
            return x + self.conv_block(x)

    class SoftBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.norm1 = nn.Conv2d(c, c, 3, bias=False), SoftAdaLIN(c)
            self.conv2, self.norm2 = nn.Conv2d(c, c, 3, bias=False), SoftAdaLIN(c)

        def forward(self, x, content, style):
            y = torch.relu(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")), content, style))
            return x + self.norm2(self.conv2(F.pad(y, (1, 1, 1, 1), mode="reflect")), content, style)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            c = ngf * 4
            self.ConvBlock1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False),
                                            nn.InstanceNorm2d(ngf), nn.ReLU(True))
            self.HourGlass1, self.HourGlass2 = HourGlass(ngf), HourGlass(ngf)
            self.DownBlock1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf, ngf * 2, 3, 2, bias=False),
                                            nn.InstanceNorm2d(ngf * 2), nn.ReLU(True))
            self.DownBlock2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ngf * 2, c, 3, 2, bias=False),
                                            nn.InstanceNorm2d(c), nn.ReLU(True))
            for i in range(1, 5):
                setattr(self, f"EncodeBlock{i}", Block(c))
                setattr(self, f"DecodeBlock{i}", SoftBlock(c))
            self.gap_fc, self.gmp_fc = nn.Linear(c, 1), nn.Linear(c, 1)
            self.conv1x1 = nn.Conv2d(2 * c, c, 1)
            first = c if light else (img_size // 4) ** 2 * c
            self.FC = nn.Sequential(nn.Linear(first, c), nn.ReLU(True), nn.Linear(c, c), nn.ReLU(True))
            self.UpBlock1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1),
                                          nn.Conv2d(c, ngf * 2, 3, bias=False), LIN(ngf * 2), nn.ReLU(True))
            self.UpBlock2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1),
                                          nn.Conv2d(ngf * 2, ngf, 3, bias=False), LIN(ngf), nn.ReLU(True))
            self.HourGlass3, self.HourGlass4 = HourGlass(ngf), HourGlass(ngf, False)
            self.ConvBlock2 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 3, 7, bias=False), nn.Tanh())

        def forward(self, x):
            x = self.DownBlock2(self.DownBlock1(self.HourGlass2(self.HourGlass1(self.ConvBlock1(x)))))
            content = []
            for i in range(1, 5):
                x = getattr(self, f"EncodeBlock{i}")(x)
                content.append(x.mean(dim=(2, 3)))
            gap_logit, gmp_logit = self.gap_fc(x.mean(dim=(2, 3))), self.gmp_fc(x.amax(dim=(2, 3)))
            x = torch.relu(self.conv1x1(torch.cat([x * self.gap_fc.weight[0][None, :, None, None],
                                                   x * self.gmp_fc.weight[0][None, :, None, None]], 1)))
            heatmap = x.sum(dim=1, keepdim=True)
            style = self.FC(x.mean(dim=(2, 3)) if light else x.flatten(1))
            for i in range(1, 5):
                x = getattr(self, f"DecodeBlock{i}")(x, content[4 - i], style)
            x = self.HourGlass4(self.HourGlass3(self.UpBlock2(self.UpBlock1(x))))
            return self.ConvBlock2(x), torch.cat([gap_logit, gmp_logit], 1), heatmap

    return Generator()
