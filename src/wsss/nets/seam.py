"""SEAM's network (Wang et al., CVPR'20): the CAM classifier with 21 outputs plus the pixel correlation module
(YudeWang/SEAM@3212261:network/resnet38_SEAM.py:11-84).

* ``classifier``: 1×1 conv, no bias, 21 outputs; channel 0 is the background, which the training loss
  overwrites with ``1 − max_c`` so it never receives a gradient (YudeWang/SEAM@3212261:train_SEAM.py:131-132).
* PCM (paper Eq. 4, YudeWang/SEAM@3212261:network/resnet38_SEAM.py:52-63): ``proj_low`` (64 ch) and ``proj_mid``
  (128 ch) are 1×1 convs of the two stride-8 backbone levels (ResNet-38 conv4/conv5), concatenated with the image
  resized to the feature size, then ``proj`` (1×1, 192 ch). With ``f`` L2-normalised over channels, the affinity is
  ``ReLU(fᵀf)`` over every pair of positions, normalised so that each target column sums to 1, and the revised CAM
  is ``ŷ[:, j] = Σ_i y[:, i] · aff[i, j]``, where ``y`` is the max-normalised, background-completed CAM with only
  each pixel's strongest foreground class kept (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:34-40).
* At output stride 16 (the ``lite`` profile's EfficientNet) the stride-8 ``low`` level is average-pooled to the
  CAM's size; SEAM itself runs ResNet-38 at stride 8, where both levels already have it.
* ``official_detach`` (default): as the official code, ``y`` and the two backbone levels are detached
  (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:34-43), so PCM gradients train only the three projections. Off: as
  the paper reads, gradients of the PCM output reach the backbone and the classifier too.
* ``pcm_classes``: ``"all"`` (official) builds ``y`` from all 20 foreground maps, so an absent class's
  faint positive map, max-normalised to 1, can be a pixel's strongest class and zero the present one (on the
  smoke benchmark it is on 77 % of the object cells; ``docs/experiments/scripts/diagnose_pcm.py``). ``"present"`` keeps
  only the image's classes (the labels of the training batch, the inferred classes at inference).

Memory: the affinity is dense, N × hw × hw. At the paper's 448 crop (56×56 at stride 8) that is
3136² = 9.8 M entries, 39 MB per image in fp32 (20 MB in bf16); training keeps about three such tensors per
image for the backward pass (the product, its ReLU and the normalised affinity), ≈ 120 MB per image, against
the ≈ 2.5 GB of the ResNet-38 activations per 448 image (``benchmarks/bench_seam.py`` measures both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsss.nets.base import Backbone
from wsss.nets.cam import CAMNet

NUM_CLASSES = 21  # background + the 20 VOC classes


def max_norm(cams: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per (sample, class) ``relu(x − min − eps) / (max − min + eps)`` of ``relu(x)`` (``max_norm``,
    YudeWang/SEAM@3212261:tool/visualization.py:54-67); after the ReLU the minimum is usually 0, so it is a max
    normalisation."""
    cams = F.relu(cams)
    low = cams.amin(dim=(2, 3), keepdim=True)
    high = cams.amax(dim=(2, 3), keepdim=True)
    return F.relu(cams - low - eps) / (high - low + eps)


def with_background(cams: torch.Tensor) -> torch.Tensor:
    """Channel 0 replaced by ``1 − max`` over the foreground channels
    (YudeWang/SEAM@3212261:train_SEAM.py:131-132)."""
    return torch.cat([1 - cams[:, 1:].amax(dim=1, keepdim=True), cams[:, 1:]], dim=1)


def max_onehot(cams: torch.Tensor) -> torch.Tensor:
    """Keep, per pixel, the background channel and only the strongest foreground channel
    (YudeWang/SEAM@3212261:train_SEAM.py:26-30)."""
    foreground = cams[:, 1:]
    strongest = foreground == foreground.amax(dim=1, keepdim=True)
    return torch.cat([cams[:, :1], foreground * strongest], dim=1)


def pcm_input(cams: torch.Tensor) -> torch.Tensor:
    """The CAM the PCM revises: ReLU, max-normalised per class (``relu(x − 1e-5) / (max + 1e-5)``), background
    ``1 − max_fg``, only the strongest foreground class kept per pixel
    (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:34-40)."""
    cams = F.relu(cams)
    cams = F.relu(cams - 1e-5) / (cams.amax(dim=(2, 3), keepdim=True) + 1e-5)
    return max_onehot(with_background(cams))


def pixel_correlation(cams: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Revise ``cams`` (N×C×h×w) by the cosine affinity of ``features`` (N×D×h×w), batched (paper Eq. 4).

    ``aff[i, j] = ReLU(cos(f_i, f_j)) / Σ_i ReLU(cos(f_i, f_j))``; returns ``cams @ aff`` as N×C×h×w.
    """
    n, c, h, w = cams.shape
    f = features.flatten(2)
    f = f / (f.norm(dim=1, keepdim=True) + 1e-5)
    affinity = F.relu(torch.bmm(f.transpose(1, 2), f))
    affinity = affinity / (affinity.sum(dim=1, keepdim=True) + 1e-5)
    return torch.bmm(cams.flatten(2).to(affinity.dtype), affinity).view(n, c, h, w)


class SEAMNet(CAMNet):
    """CAM classifier (21 outputs) plus the pixel correlation module.

    ``forward(x, labels)`` returns ``(cam, pcm)``: the raw class maps N×21×h×w (logits, before any ReLU) and the
    PCM output N×21×h×w, both at the backbone's stride (the loss resizes them to the input). ``cam(x, classes)``
    is what the multi-scale inference reads: the foreground channels ``classes`` (0..19; all 20 if None) of the
    PCM output (``cam_source="pcm"``, as YudeWang/SEAM@3212261:infer_SEAM.py:60) or of the ReLU'd raw CAM (``"cam"``).
    """

    def __init__(self, backbone: Backbone, dropout: float = 0.5, official_detach: bool = True,
                 cam_source: str = "pcm", pcm_classes: str = "all"):
        super().__init__(backbone, num_classes=NUM_CLASSES, dropout=dropout)
        if cam_source not in ("pcm", "cam"):
            raise ValueError(f"cam_source must be 'pcm' or 'cam', got {cam_source!r}")
        if pcm_classes not in ("all", "present"):
            raise ValueError(f"pcm_classes must be 'all' or 'present', got {pcm_classes!r}")
        self.official_detach, self.cam_source, self.pcm_classes = official_detach, cam_source, pcm_classes
        self.proj_low = nn.Conv2d(backbone.channels["low"], 64, 1, bias=False)
        self.proj_mid = nn.Conv2d(backbone.channels["mid"], 128, 1, bias=False)
        self.proj = nn.Conv2d(64 + 128 + 3, 192, 1, bias=False)
        self.init_pcm()

    def init_pcm(self) -> None:
        """(Re-)initialise the PCM's projections as the official code
        (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:22-25)."""
        nn.init.kaiming_normal_(self.proj_low.weight)
        nn.init.kaiming_normal_(self.proj_mid.weight)
        nn.init.xavier_uniform_(self.proj.weight, gain=4)

    def pcm_parameters(self) -> list[nn.Parameter]:
        """The PCM's own weights: the only ones its losses train under the official detach."""
        return [self.proj_low.weight, self.proj_mid.weight, self.proj.weight]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``labels`` (N×20, 1 = present) are what ``pcm_classes="present"`` restricts the PCM's input to."""
        levels = self.backbone(x)
        cam = self.classifier(self.dropout(levels["out"]))
        low, mid, target = levels["low"], levels["mid"], pcm_input(self._pcm_classes_of(cam, labels))
        if self.official_detach:
            low, mid, target = low.detach(), mid.detach(), target.detach()
        size = cam.shape[2:]
        if any(level.shape[-2] < size[0] or level.shape[-1] < size[1] for level in (low, mid)):
            raise ValueError(f"the PCM needs the backbone's low/mid levels at the CAM's stride or finer, got "
                             f"{tuple(low.shape[2:])}, {tuple(mid.shape[2:])} for {tuple(size)}")
        low, mid = (F.adaptive_avg_pool2d(level, size) if level.shape[2:] != size else level for level in (low, mid))
        image = F.interpolate(x, size, mode="bilinear", align_corners=True)
        return cam, pixel_correlation(target, self.pcm_features(low, mid, image))

    def pcm_features(self, low: torch.Tensor, mid: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The features whose cosine affinity the PCM uses: ``proj`` of the projected levels and the image resized
        to their size (YudeWang/SEAM@3212261:network/resnet38_SEAM.py:42-45)."""
        return self.proj(torch.cat([F.relu(self.proj_low(low)), F.relu(self.proj_mid(mid)), image], dim=1))

    def _pcm_classes_of(self, cam: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The maps the PCM's input is built from: every channel, or (``present``) the absent classes zeroed."""
        if self.pcm_classes == "all":
            return cam
        if labels is None:
            raise ValueError("pcm_classes='present' needs the image labels: call the network as net(x, labels)")
        return cam * torch.cat([torch.ones_like(labels[:, :1]), labels], dim=1).to(cam.dtype)[:, :, None, None]

    def cam(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        if self.cam_source == "cam":
            maps = super().cam(x)[:, 1:]
        else:
            labels = None
            if classes is not None:
                labels = torch.zeros(x.shape[0], NUM_CLASSES - 1, device=x.device)
                labels[:, classes] = 1
            maps = self(x, labels)[1][:, 1:]
        return maps if classes is None else maps.index_select(1, classes)
