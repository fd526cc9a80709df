"""The CAM classifier (Zhou et al., CVPR'16) as psa trains it (jiwoon-ahn/psa@9493e59:network/resnet38_cls.py:12-31):
backbone → global average pooling → Dropout2d → 1×1 conv without bias (``fc8``, xavier init) → logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.backbones import param_groups
from wsss.nets.base import Backbone


class CAMNet(nn.Module):
    """Multi-label classifier whose 1×1 classifier, applied to the feature map, gives the CAMs.

    Relation between the two outputs: in eval mode (no dropout),
    ``forward(x) == classifier(backbone(x)["out"]).mean((2, 3))`` — the logits are the spatial mean of the
    class map before its ReLU, and ``cam(x)`` is the ReLU of that same map.

    SEAM (21 outputs, channel 0 = background) reads ``backbone(x)`` for its PCM levels and applies
    ``classifier(dropout(features["out"]))`` to the map; SC-CAM reads the pooled feature ``"gap"`` of
    ``forward(x, return_features=True)`` for clustering and for its sub-category head.
    """

    def __init__(self, backbone: Backbone, num_classes: int = 20, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(backbone.out_channels, num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits N×C; with ``return_features`` also the backbone's levels plus ``"gap"``: the pooled
        feature N×D after dropout, the classifier's input (SC-CAM ``forward`` returns it as ``feature``)."""
        features = self.backbone(x)
        pooled = self.dropout(features["out"].mean((2, 3), keepdim=True))
        logits = self.classifier(pooled).flatten(1)
        if return_features:
            return logits, {**features, "gap": pooled.flatten(1)}
        return logits

    def cam(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """ReLU(classifier(features)): N×C×h×w at the backbone's output stride, no dropout (psa ``forward_cam``);
        only the channels ``classes`` (an index tensor) when given."""
        maps = F.relu(self.classifier(self.backbone(x)["out"]))
        return maps if classes is None else maps.index_select(1, classes)

    def param_groups(self) -> tuple[list, list, list, list]:
        """Backbone weights, backbone biases, new weights, new biases (lr ×1, ×2, ×10, ×20;
        jiwoon-ahn/psa@9493e59:train_cls.py:90-96)."""
        return param_groups(self, self.backbone)
