"""torchvision's MobileNetV2 restated in plain PyTorch, for the Keras port's parity test.

torchvision cannot be imported here (its wheels do not match the local torch), so this is
`torchvision/models/mobilenetv2.py` (MobileNetV2, InvertedResidual) and
`torchvision/ops/misc.py` (Conv2dNormActivation) written out for width 1.0 with their
module names, so the state-dict keys are torchvision's (`features.0.0.weight`,
`features.1.conv.0.0.weight`, `classifier.1.weight`) and `load_state_dict(strict=True)`
with the real `mobilenet_v2-b0353104.pth` checks the architecture. Weight initialisation
is left out: the weights are always loaded.
"""

import torch
from torch import nn

INVERTED_RESIDUAL_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                             [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (padding (k - 1) // 2, no bias), BatchNorm2d, ReLU6."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers.extend([
            Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        input_channel, last_channel = 32, 1280
        features = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(input_channel, c, stride, expand_ratio=t))
                input_channel = c
        features.append(Conv2dNormActivation(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))

    def pooled(self, x):
        """The 1280-d input of the classifier: features, adaptive average pool, flatten."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1)), 1)

    def forward(self, x):
        return self.classifier(self.pooled(x))
