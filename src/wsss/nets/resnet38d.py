"""ResNet-38d: the wide pre-activation ResNet-38 (Wu, Shen, van den Hengel, "Wider or Deeper", PR 2019) as psa, SEAM
and SC-CAM use it (jiwoon-ahn/psa@9493e59:network/resnet38d.py:120-213; SEAM's and SC-CAM's copies are alike).

conv1a 3→64, then residual units b2 (stride 2), b3 (stride 2), b4 (stride 2: output stride 8), b5 (dilation 2),
the bottlenecks b6 (dilation 4, dropout 0.3) and b7 (4096 channels, dilation 4, dropout 0.5), and bn7 + ReLU.
Module names equal psa/SEAM's, so their converted ImageNet state dicts (``conv1a.weight``,
``b2.conv_branch2a.weight``, ``b2.bn_branch2a.running_mean``, ..., ``bn7.*``) and the backbone part of
``res38_cls.pth`` / ``resnet38_SEAM.pth`` load directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.base import Backbone


class ResBlock(nn.Module):
    """Pre-activation unit: BN-ReLU → 3×3 conv → BN-ReLU → 3×3 conv, plus the input (or a 1×1 projection of
    its activation when the shape changes). ``first_dilation`` is the first conv's dilation (psa ``ResBlock``)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1,
                 dilation: int = 1, first_dilation: int | None = None):
        super().__init__()
        first_dilation = first_dilation or dilation
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, mid_channels, 3, stride, padding=first_dilation,
                                       dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
        self.conv_branch2b1 = nn.Conv2d(mid_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.conv_branch1 = None
        if in_channels != out_channels or stride != 1:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unit's output and its input's BN-ReLU activation (the feature SEAM calls conv4/conv5)."""
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.conv_branch1 is None else self.conv_branch1(act)
        return shortcut + self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(act)))), act


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck: 1×1 (out/4) → 3×3 dilated (out/2) → 1×1 (out), channel dropout before the
    last two convs, and a 1×1 projection shortcut (psa ``ResBlock_bot``)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = nn.Conv2d(in_channels, out_channels // 4, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_channels // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(out_channels // 4, out_channels // 2, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(out_channels // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_channels // 2, out_channels, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act = F.relu(self.bn_branch2a(x))
        y = self.conv_branch2a(act)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))
        return self.conv_branch1(act) + y, act


class ResNet38d(Backbone):
    """ResNet-38d, output stride 8. Levels: ``low`` = conv4 (input activation of b5, 512 ch),
    ``mid`` = conv5 (input activation of b6, 1024 ch), ``out`` = conv6 (ReLU(bn7), 4096 ch).

    Stages for freezing: conv1a | b2 b2_1 b2_2 | b3.. | b4.. | b5.. | b6 | b7 bn7; psa/SEAM freeze the first two.
    """

    def __init__(self):
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self._stage_names = [["conv1a"],
                             self._units("b2", 3, 64, 128, 128, stride=2),
                             self._units("b3", 3, 128, 256, 256, stride=2),
                             self._units("b4", 6, 256, 512, 512, stride=2),
                             self._units("b5", 3, 512, 512, 1024, dilation=2, first_dilation=1),
                             ["b6"], ["b7", "bn7"]]
        self.b6 = BottleneckBlock(1024, 2048, dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(2048, 4096, dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)
        self.channels = {"low": 512, "mid": 1024, "out": 4096}
        self.strides = {"low": 8, "mid": 8, "out": 8}

    def _units(self, name: str, count: int, in_channels: int, mid_channels: int, out_channels: int,
               stride: int = 1, dilation: int = 1, first_dilation: int | None = None) -> list[str]:
        """Adds ``count`` units named ``name``, ``name_1``, ...; only the first changes stride, width and dilation."""
        units = [ResBlock(in_channels, mid_channels, out_channels, stride, dilation, first_dilation)]
        units += [ResBlock(out_channels, mid_channels, out_channels, dilation=dilation) for _ in range(count - 1)]
        names = [name] + [f"{name}_{k}" for k in range(1, count)]
        for unit_name, unit in zip(names, units):
            self.add_module(unit_name, unit)
        return names

    def stages(self) -> list[list[nn.Module]]:
        return [[getattr(self, name) for name in names] for names in self._stage_names]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.conv1a(x)
        b2, b3, b4, b5 = self.stages()[1:5]
        for unit in b2 + b3 + b4:
            x, _ = unit(x)
        x, low = b5[0](x)
        for unit in b5[1:]:
            x, _ = unit(x)
        x, mid = self.b6(x)
        x, _ = self.b7(x)
        return {"low": low, "mid": mid, "out": F.relu(self.bn7(x))}
