"""A small network whose ONNX export holds every broadcasting Add (and Mul) parcnn imports, for
tests/cli_onnx.sh (through torch_export.build and torch_sgd.py):
- a Conv without bias followed by an Add of a (1, C, 1, 1) constant, as tf2onnx writes Keras
  convolutions (parcnn: the convolution's bias);
- a Mul and an Add of (C, 1, 1) constants after a ReLU: a batch norm decomposed into its
  scale and shift (parcnn: a 1x1 depthwise convolution with that weight and bias);
- an Add of a (1, C, 1, 1) constant after a ReLU (parcnn: a 1x1 depthwise convolution whose
  unit weight stays frozen) and of a scalar constant;
- Adds of a computed (N, C, H, W) tensor and a computed (N, C, 1, 1) one, in both orders.
Every constant is a Parameter, so that PyTorch computes the gradients parcnn's imported
parameters get, under the same names (conv1.bias, aff.weight, aff.bias, shift.bias)."""
import torch
import torch.nn.functional as F
from torch import nn


class ConvThenBias(nn.Module):
    """Conv2d without bias, then + bias of shape (1, cout, 1, 1)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3) * (2 / (9 * cin)) ** 0.5)
        self.bias = nn.Parameter(torch.randn(1, cout, 1, 1) * 0.2)

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1) + self.bias


class ChannelAffine(nn.Module):
    """x * weight + bias, both (c, 1, 1): a batch norm in inference form, decomposed."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(c, 1, 1) + 0.5)
        self.bias = nn.Parameter(torch.randn(c, 1, 1) * 0.2)

    def forward(self, x):
        return x * self.weight + self.bias


class Shift(nn.Module):
    """x + bias of shape (1, c, 1, 1)."""

    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, c, 1, 1) * 0.2)

    def forward(self, x):
        return x + self.bias


class BroadcastNet(nn.Module):
    def __init__(self, c=8, classes=10):
        super().__init__()
        self.conv1 = ConvThenBias(3, c)
        self.relu1 = nn.ReLU()
        self.aff = ChannelAffine(c)
        self.conv2 = nn.Conv2d(c, c, 3, 2, 1)
        self.relu2 = nn.ReLU()
        self.shift = Shift(c)
        self.gate1 = nn.Conv2d(c, c, 1)
        self.gate2 = nn.Conv2d(c, c, 1)
        self.relu3 = nn.ReLU()
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.aff(self.relu1(self.conv1(x)))
        x = self.shift(self.relu2(self.conv2(x)))
        x = x + self.gate1(x.mean((2, 3), keepdim=True))    # (N, C, H, W) + (N, C, 1, 1)
        x = self.gate2(x.mean((2, 3), keepdim=True)) + x    # (N, C, 1, 1) + (N, C, H, W)
        x = self.relu3(x) + 0.25                            # a scalar constant
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def broadcast_net(seed=0):
    torch.manual_seed(seed)
    return BroadcastNet().eval()
