"""AffinityNet (Ahn & Kwak, CVPR'18, Sec. 3.2) on any backbone, and the pairs of positions it relates.

The network (jiwoon-ahn/psa@9493e59:network/resnet38_aff.py:9-58): 1×1 convs without bias map the
backbone's three levels ``low``, ``mid``, ``out`` (ResNet-38 conv4, conv5, conv6) to 64, 128 and 256 channels,
each followed by ELU; their concatenation goes through a 1×1 conv 448→448 and ELU. The affinity of two positions
``i``, ``j`` of that feature map is ``exp(-mean_c |f_i - f_j|)`` (Eq. 2, the mean over channels as the code).
Levels coarser than ``low`` (an output stride 16 backbone) are resized bilinearly to ``low``'s grid.

Pairs (jiwoon-ahn/psa@9493e59:voc12/data.py:130-173 and infer_aff.py:15-47): position ``p`` is paired with ``p + d`` for
the offsets ``d = (dy, dx)`` of :func:`pair_offsets`, the half of the disc of radius ``radius`` that comes
after ``p`` in raster order (34 offsets for radius 5); with the reverse direction they cover every pair closer
than ``radius``. Affinities (and the pair labels of ``wsss.losses``) are N×D×h×w tensors: entry ``[n, k, y, x]`` is the pair
``((y, x), (y + dy_k, x + dx_k))``. Which pairs count is ``affinity.pairs``: ``inside``, every pair with both ends
inside the map, or ``psa``, only the pairs of positions whose every partner lies inside (rows ``0..h-radius``,
columns ``radius-1..w-radius``: jiwoon-ahn/psa@9493e59:tool/pyutils.py:125-160), psa's rule for both its training
labels and its walk.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.backbones import param_groups
from wsss.nets.base import Backbone

LEVEL_CHANNELS = {"low": 64, "mid": 128, "out": 256}   # psa f8_3, f8_4, f8_5
FEATURE_CHANNELS = 448                                 # psa f9


def pair_offsets(radius: int) -> list[tuple[int, int]]:
    """``(dy, dx)`` with ``0 < dy² + dx² < radius²`` that come after the origin in raster order (psa ``search_dst``)."""
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dy * dy + dx * dx < radius ** 2]
    return offsets


def shifted(x: torch.Tensor, dy: int, dx: int, fill: float = 0) -> torch.Tensor:
    """``out[..., y, x] = x[..., y + dy, x + dx]``, ``fill`` where that position is outside the map."""
    height, width = x.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x, (pad, pad, pad, pad), value=fill)
    return padded[..., pad + dy: pad + dy + height, pad + dx: pad + dx + width]


PairRule = Literal["inside", "psa"]


def related_pairs(height: int, width: int, radius: int, pairs: PairRule) -> torch.Tensor:
    """D×h×w booleans: the pairs ``pairs`` relates on an h×w grid (both ends inside; for ``psa`` also only
    sources whose every partner is inside)."""
    offsets = pair_offsets(radius)
    related = torch.zeros(len(offsets), height, width, dtype=torch.bool)
    for k, (dy, dx) in enumerate(offsets):
        related[k, :height - dy, max(0, -dx): width - max(0, dx)] = True
    if pairs == "psa":
        sources = torch.zeros(height, width, dtype=torch.bool)
        sources[:height - radius + 1, radius - 1: width - radius + 1] = True
        related &= sources
    return related


def pair_affinities(features: torch.Tensor, radius: int, pairs: PairRule = "inside") -> torch.Tensor:
    """N×D×h×w affinities ``exp(-mean_c |f_p - f_(p+d)|)`` of N×C×h×w features, fp32; 0 for the pairs that
    ``pairs`` does not relate (:func:`related_pairs`)."""
    features = features.float()
    height, width = features.shape[-2:]
    offsets = pair_offsets(radius)
    affinity = features.new_zeros(features.shape[0], len(offsets), height, width)
    for k, (dy, dx) in enumerate(offsets):   # the positions whose partner is inside, and those partners
        rows, columns = slice(0, height - dy), slice(max(0, -dx), width - max(0, dx))
        partners = features[:, :, dy:, max(0, dx): width + min(0, dx)]
        affinity[:, k, rows, columns] = torch.exp(-(features[:, :, rows, columns] - partners).abs().mean(1))
    if pairs == "psa":
        affinity = affinity * related_pairs(height, width, radius, pairs).to(affinity.device)
    return affinity


class AffinityNet(nn.Module):
    """Backbone → three 1×1 conv + ELU projections → 1×1 conv + ELU: the feature map whose L1 distances are
    the affinities (:func:`pair_affinities`)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.projections = nn.ModuleDict({level: nn.Conv2d(backbone.channels[level], channels, 1, bias=False)
                                          for level, channels in LEVEL_CHANNELS.items()})
        self.head = nn.Conv2d(sum(LEVEL_CHANNELS.values()), FEATURE_CHANNELS, 1, bias=False)
        for projection in self.projections.values():
            nn.init.kaiming_normal_(projection.weight)
        nn.init.xavier_uniform_(self.head.weight, gain=4)   # jiwoon-ahn/psa@9493e59:network/resnet38_aff.py:19-22

    @property
    def stride(self) -> int:
        """The stride of the feature map: the backbone's ``low`` level."""
        return self.backbone.strides["low"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×448×h×w features at :attr:`stride` (h = ceil(H / stride) for the project's backbones)."""
        levels = self.backbone(x)
        size = levels["low"].shape[-2:]
        projected = [F.elu(self.projections[level](levels[level])) for level in LEVEL_CHANNELS]
        projected = [p if p.shape[-2:] == size else F.interpolate(p, size, mode="bilinear", align_corners=False)
                     for p in projected]
        return F.elu(self.head(torch.cat(projected, 1)))

    def param_groups(self) -> tuple[list, list, list, list]:
        """Backbone weights, backbone biases, new weights, new biases (lr ×1, ×2, ×10, ×20;
        jiwoon-ahn/psa@9493e59:train_aff.py:68-74)."""
        return param_groups(self, self.backbone)
