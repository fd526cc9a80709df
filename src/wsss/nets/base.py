"""The base of every backbone (:class:`Backbone`: levels, input normalisation, freezing) and weights loading.

The backbone modules (:mod:`.resnet38d`, :mod:`.efficientnet`, the ResNets of :mod:`.backbones`) import
this module only; the factory :func:`wsss.nets.backbones.build_backbone` imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # of [0, 1] RGB (psa ``Normalize``, torchvision)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """Base of every backbone: channels and strides of each level, and the official freezing.

    Freezing follows psa/SEAM ``resnet38d.Net.train()``: with ``frozen_bn`` every BatchNorm stays in eval
    mode (running statistics unchanged) with ``requires_grad=False`` affine parameters; the first
    ``frozen_stages`` stages get ``requires_grad=False`` and also stay in eval mode. Parameters are frozen
    once, at :meth:`freeze`; :meth:`train` keeps the frozen modules in eval mode.
    """

    channels: dict[str, int]
    strides: dict[str, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN   # the input normalisation, of [0, 1] RGB
    std: tuple[float, float, float] = IMAGENET_STD
    frozen_bn: bool = False
    frozen_stages: int = 0
    weights_report: WeightsReport | None = None

    @property
    def out_channels(self) -> int:
        return self.channels["out"]

    def stages(self) -> list[list[nn.Module]]:
        """The modules of each stage, input first (what ``frozen_stages`` counts)."""
        raise NotImplementedError

    def load(self, path: str | Path) -> WeightsReport:
        """Load a weights file (:func:`load_weights`) and report what it gave."""
        return load_weights(self, path)

    def freeze(self, frozen_stages: int, frozen_bn: bool) -> None:
        stages = self.stages()
        if not 0 <= frozen_stages <= len(stages):
            raise ValueError(f"frozen_stages must be in 0..{len(stages)} for {type(self).__name__}, got {frozen_stages}")
        self.frozen_stages, self.frozen_bn = frozen_stages, frozen_bn
        for module in self._frozen_modules():
            module.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        modules = [m for stage in self.stages()[:self.frozen_stages] for m in stage]
        if self.frozen_bn:
            modules += [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        return modules

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self


@dataclass
class WeightsReport:
    """What a weights file gave a network: keys loaded, network keys left at init, file keys unused."""

    path: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.path}: {len(self.matched)} tensors loaded, {len(self.missing)} missing {self.missing[:5]}, "
                f"{len(self.unexpected)} unused {self.unexpected[:5]}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict, also when nested under ``state_dict``/``model`` or saved from DataParallel."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable PyTorch state dict ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(module: nn.Module, path: str | Path) -> WeightsReport:
    """``load_state_dict(strict=False)`` that reports which keys matched and fails when none does.

    A whole network of this project (a trained ``CAMNet`` or ``DeepLab``, keys ``backbone.*``) gives
    its backbone part, so a DeepLab can start from a trained classifier.
    """
    state = read_state_dict(path)
    if any(key.startswith("backbone.") for key in state):
        state = {key.removeprefix("backbone."): value for key, value in state.items() if key.startswith("backbone.")}
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit {type(module).__name__}: {error}") from None
    unexpected = set(result.unexpected_keys)
    report = WeightsReport(str(path), [k for k in state if k not in unexpected],
                           [k for k in result.missing_keys if not k.endswith("num_batches_tracked")],
                           list(result.unexpected_keys))
    if not report.matched:
        expected = list(module.state_dict())[:3]
        raise ValueError(f"{path}: none of its {len(state)} tensors is a {type(module).__name__} parameter "
                         f"(file keys {list(state)[:3]}, expected keys like {expected}): wrong file?")
    return report


def _conv_bn_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """The (conv, BN) child names of ``module`` whose forward applies the BN straight to the conv's output:
    consecutive children of an ``nn.Sequential``, the ``conv{i}``/``bn{i}`` of torchvision's ResNet blocks and
    of modules that list theirs in ``conv_bn_pairs``."""
    from torchvision.models import resnet

    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        return list(zip(names, names[1:]))
    if isinstance(module, (resnet.BasicBlock, resnet.Bottleneck)):
        return [(f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
    return list(getattr(module, "conv_bn_pairs", ()))


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with every BatchNorm that directly follows a conv folded into it, in place:
    ``γ(Wx + b − μ)/√(σ² + ε) + β`` is one conv, so inference runs one kernel where it ran two. BN subclasses
    (timm's BN + activation) and BNs whose input is not known to be a conv's output are left as they are."""
    module.eval()
    for parent in list(module.modules()):
        for conv_name, bn_name in _conv_bn_pairs(parent):
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
                setattr(parent, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
    return module
