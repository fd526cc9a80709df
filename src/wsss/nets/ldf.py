"""LDF: the label-decoupling network (Wei et al. CVPR 2020, Fig. 2;
weijun88/LDF@d49ff02:train-fine/net.py:84-215).

A backbone at output stride 32 (a ResNet, or an EfficientNet-Lite in the ``lite`` profile) gives four
levels (strides 4–32). Each branch, body and detail, has
its own lateral convs (1×1 to 64 channels, 3×3, BN, ReLU) and its own top-down decoder (a 3×3
conv + BN + ReLU per level on the sum of the lateral, the upsampled coarser output and, in the
second iteration, the interaction encoder's feature). Two iterations share the decoders:

1. body₁, detail₁ = the decoders on the laterals; fused₁ = cat(body₁, detail₁);
2. the interaction encoder turns fused₁ into one feature per level for each branch (pooling
   by 2 between levels), which the decoders add at every level: body₂, detail₂, fused₂.

Heads: a 3×3 conv to one channel for body and for detail, and conv-BN-ReLU-conv for the fused
saliency map; each is shared by both iterations. ``forward`` returns the six logit maps
(body₁, detail₁, saliency₁, body₂, detail₂, saliency₂) upsampled to ``size`` (default: the
input's) in training and the final saliency logits (saliency₂) in eval mode. Input sides must
be multiples of 32 so that the pooled encoder features meet the backbone's levels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.backbones import build_backbone
from wsss.nets.base import Backbone



class LDFOutputs(NamedTuple):
    body1: torch.Tensor
    detail1: torch.Tensor
    saliency1: torch.Tensor
    body2: torch.Tensor
    detail2: torch.Tensor
    saliency2: torch.Tensor


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Lateral(nn.Module):
    """One branch's laterals: per level, a 1×1 conv to ``width`` channels, then 3×3 conv + BN + ReLU."""

    def __init__(self, channels: tuple[int, ...], width: int):
        super().__init__()
        self.levels = nn.ModuleList(nn.Sequential(nn.Conv2d(c, width, 1), *conv_bn_relu(width, width)) for c in channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Fine-to-coarse backbone levels → coarse-to-fine maps."""
        return [level(x) for level, x in zip(self.levels, features)][::-1]


class Decoder(nn.Module):
    """Top-down fusion: y_k = ReLU(BN(conv_k(lateral_k + encoder_k + up(y_{k−1})))), coarse to fine."""

    def __init__(self, width: int, levels: int = 4):
        super().__init__()
        self.levels = nn.ModuleList(conv_bn_relu(width, width) for _ in range(levels))

    def forward(self, laterals: list[torch.Tensor], encoded: list[torch.Tensor] | None = None) -> torch.Tensor:
        y = None
        for k, (conv, x) in enumerate(zip(self.levels, laterals)):
            if encoded is not None:
                x = x + encoded[k]
            if y is not None:
                x = x + _upsample(y, x.shape[-2:])
            y = conv(x)
        return y


class InteractionEncoder(nn.Module):
    """fused₁ (128 channels, stride 4) → per-level features of each branch, coarse to fine (Fig. 2's
    "interaction encoder", mislabelled "decoder" there, weijun88/LDF GitHub issue #14)."""

    def __init__(self, width: int, levels: int = 4):
        super().__init__()
        self.trunk = nn.ModuleList([conv_bn_relu(2 * width, width)] + [conv_bn_relu(width, width) for _ in range(levels - 1)])
        self.body = nn.ModuleList(conv_bn_relu(width, width) for _ in range(levels))
        self.detail = nn.ModuleList(conv_bn_relu(width, width) for _ in range(levels))

    def forward(self, fused: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scales, x = [], fused
        for k, conv in enumerate(self.trunk):
            x = conv(x if k == 0 else F.max_pool2d(x, 2))
            scales.append(x)
        return ([head(x) for head, x in zip(self.body, scales)][::-1],
                [head(x) for head, x in zip(self.detail, scales)][::-1])


class LDF(nn.Module):
    """The LDF network on a backbone with ``pyramid()`` (output stride 32); ``width`` channels in the head
    (64 in weijun88/LDF@d49ff02:train-fine/net.py:169-177)."""

    def __init__(self, backbone: Backbone, width: int = 64):
        super().__init__()
        self.backbone = backbone
        self.lateral_body = Lateral(backbone.pyramid_channels, width)
        self.lateral_detail = Lateral(backbone.pyramid_channels, width)
        self.decoder_body = Decoder(width)
        self.decoder_detail = Decoder(width)
        self.encoder = InteractionEncoder(width)
        self.head_body = nn.Conv2d(width, 1, 3, padding=1)
        self.head_detail = nn.Conv2d(width, 1, 3, padding=1)
        self.head_saliency = nn.Sequential(conv_bn_relu(2 * width, width), nn.Conv2d(width, 1, 3, padding=1))
        for name, module in self.named_modules():
            if not name.startswith("backbone") and isinstance(module, nn.Conv2d):  # LDF weight_init
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> LDFOutputs | torch.Tensor:
        if self.training:
            return self.outputs(x, size)
        return self._logits(x, size, ("saliency2",))[0]

    def outputs(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> LDFOutputs:
        """All six logit maps, in either mode (the coarse model's body₂/detail₂ are the fine stage's targets,
        weijun88/LDF@d49ff02:train-coarse/test.py:30-46)."""
        return LDFOutputs(*self._logits(x, size, LDFOutputs._fields))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head inputs of both iterations, at stride 4, by output name."""
        pyramid = self.backbone.pyramid(x)
        lat_body, lat_detail = self.lateral_body(pyramid), self.lateral_detail(pyramid)
        body1, detail1 = self.decoder_body(lat_body), self.decoder_detail(lat_detail)
        fused1 = torch.cat([body1, detail1], dim=1)
        enc_body, enc_detail = self.encoder(fused1)
        body2, detail2 = self.decoder_body(lat_body, enc_body), self.decoder_detail(lat_detail, enc_detail)
        return {"body1": body1, "detail1": detail1, "saliency1": fused1,
                "body2": body2, "detail2": detail2, "saliency2": torch.cat([body2, detail2], dim=1)}

    def _logits(self, x: torch.Tensor, size: tuple[int, int] | None, names) -> list[torch.Tensor]:
        """The logit maps ``names`` upsampled to ``size`` (default: the input size)."""
        size = size or tuple(x.shape[-2:])
        features = self.features(x)
        heads = {"body": self.head_body, "detail": self.head_detail, "saliency": self.head_saliency}
        return [_upsample(heads[name[:-1]](features[name]), size) for name in names]

    def param_groups(self) -> tuple[list, list, list, list]:
        """(backbone params, [], head params, []) for the engine: LDF decays every parameter, BN and biases
        included, and its lr multipliers are (backbone factor, ·, 1, ·)
        (weijun88/LDF@d49ff02:train-fine/train.py:36-51)."""
        backbone = {id(p) for p in self.backbone.parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        return ([p for p in trainable if id(p) in backbone], [],
                [p for p in trainable if id(p) not in backbone], [])


def build_ldf(backbone: str, weights: str = "", width: int = 64) -> LDF:
    """LDF on ``resnet50``, ``small`` or an EfficientNet-Lite (output stride 32) with ``width`` head channels;
    ``weights`` as :func:`build_backbone`.

    With pretrained weights the stem (the first stage: conv1, bn1) is kept out of training as in
    weijun88/LDF@d49ff02:train-fine/train.py:36-43 (its BN statistics still update); from scratch everything trains.
    """
    net = build_backbone(backbone, weights, output_stride=32, frozen_bn=False, frozen_stages=0)
    if weights:
        for module in net.stages()[0]:
            module.requires_grad_(False)
    return LDF(net, width)


def parameter_count(model: nn.Module) -> dict[str, int]:
    """Parameters of the backbone, the rest (the head) and the total."""
    backbone = sum(p.numel() for p in model.backbone.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"backbone": backbone, "head": total - backbone, "total": total}
