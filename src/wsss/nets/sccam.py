"""SC-CAM's network (Chang et al., CVPR'20, §3): the CAM classifier plus a sub-category head
(Juliachang/SC-CAM@191ec48:network/resnet38_cls.py:31-41).

Both heads are bias-free 1×1 convs with xavier init on the same pooled feature: ``classifier`` gives the 20
parent-class logits (``fc8_20``), ``sub_classifier`` the 20·K sub-category logits (``fc8_200`` at K = 10), where
sub-category ``k`` of parent class ``c`` is output ``c·K + k`` (the labels of ``wsss.data.subcategories``).

The CAM that inference reads is the parent classifier's (``cam_source="cam"``), as
Juliachang/SC-CAM@191ec48:infer_cls.py saves. ``"subcategory"`` gives the merged sub-category CAM instead: per
parent class the maximum over its K sub-category maps, each max-normalised first
(Juliachang/SC-CAM@191ec48:tool/infer_utils.py:433-444, 481-494: the "cls200" map). The official code normalises the
multi-scale sum of each sub-map; here each view's sub-maps are normalised, merged, and the views then summed and
normalised as every CAM (``wsss.infer.cam``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.base import Backbone
from wsss.nets.cam import CAMNet

NUM_CLASSES = 20


class SCCAMNet(CAMNet):
    """``forward(x)`` returns ``(parent logits N×20, sub-category logits N×20K)``; ``cam(x, classes)`` the parent
    CAM or the merged sub-category CAM (``cam_source``) of the foreground indices ``classes``."""

    def __init__(self, backbone: Backbone, clusters: int, dropout: float = 0.5, cam_source: str = "cam"):
        super().__init__(backbone, num_classes=NUM_CLASSES, dropout=dropout)
        if cam_source not in ("cam", "subcategory"):
            raise ValueError(f"cam_source must be 'cam' or 'subcategory', got {cam_source!r}")
        if clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {clusters}")
        self.clusters, self.cam_source = clusters, cam_source
        self.sub_classifier = nn.Conv2d(backbone.out_channels, NUM_CLASSES * clusters, 1, bias=False)
        nn.init.xavier_uniform_(self.sub_classifier.weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.backbone(x)["out"].mean((2, 3), keepdim=True))
        return self.classifier(pooled).flatten(1), self.sub_classifier(pooled).flatten(1)

    def subcategory_cams(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU sub-category maps N×20×K×h×w (parent class, sub-category)."""
        maps = F.relu(self.sub_classifier(self.backbone(x)["out"]))
        return maps.unflatten(1, (NUM_CLASSES, self.clusters))

    def cam(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        if self.cam_source == "cam":
            return super().cam(x, classes)
        maps = self.subcategory_cams(x)
        maps = maps / (maps.amax(dim=(3, 4), keepdim=True) + 1e-5)
        merged = maps.amax(dim=2)
        return merged if classes is None else merged.index_select(1, classes)
