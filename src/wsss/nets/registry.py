"""The network registry: every trainable network of the pipeline by name (timm's ``create_model`` idea).

An entry says which config section of a training stage configures it (backbone, weights, schedule), how to build it
from the configuration, its loss (a function of :mod:`wsss.losses`) and its own configuration section, if
any (hashed into its checkpoints and logged with its training). Stages ask the registry and never branch on
a network's name; a method of ``params.yaml`` picks a CAM network with ``methods.<method>.network``.

Adding a network: its module in ``wsss.nets``, its loss in ``wsss.losses``, an entry of ``NETWORKS``
(``docs/architecture.md``, "Adding a method"). Importing this module imports no torch: builders and losses
are loaded when a stage asks for them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

    from wsss.config import Config


def _classifier_backbone(cfg: Config, weights: str):
    from wsss.nets.backbones import build_backbone

    settings = cfg.train_cls
    return build_backbone(settings.backbone, weights, output_stride=settings.output_stride,
                          frozen_bn=settings.frozen_bn, frozen_stages=settings.frozen_stages)


def _build_cam(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.cam import CAMNet

    return CAMNet(_classifier_backbone(cfg, weights))


def _build_seam(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.seam import SEAMNet

    return SEAMNet(_classifier_backbone(cfg, weights), official_detach=cfg.seam.official_detach,
                   cam_source=cfg.infer_cam.source, pcm_classes=cfg.seam.pcm_classes)


def _build_affinity(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.affinity import AffinityNet
    from wsss.nets.backbones import build_backbone

    settings = cfg.affinity
    return AffinityNet(build_backbone(settings.backbone, weights, output_stride=settings.output_stride,
                                      frozen_bn=settings.frozen_bn, frozen_stages=settings.frozen_stages))


def _build_sccam(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.sccam import SCCAMNet

    return SCCAMNet(_classifier_backbone(cfg, weights), cfg.sccam.clusters, cam_source=cfg.infer_cam.source)


def _build_deeplab(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.deeplab import build_segmenter

    settings = cfg.train_seg
    return build_segmenter(settings.arch, settings.backbone, weights, output_stride=settings.output_stride,
                           aspp_rates=settings.aspp_rates, frozen_bn=settings.frozen_bn,
                           frozen_stages=settings.frozen_stages)


def _build_ldf(cfg: Config, weights: str) -> nn.Module:
    from wsss.nets.ldf import build_ldf

    return build_ldf(cfg.ldf.backbone, weights, cfg.ldf.width)


@dataclass(frozen=True)
class Network:
    """A trainable network: ``build(cfg, weights)`` makes it; ``loss`` names its loss in :mod:`wsss.losses`."""

    name: str
    section: str                                # its training stage's config section: backbone, weights, schedule
    build: Callable[[Config, str], nn.Module]
    loss: str
    settings: str | None = None                 # its own config section, passed to the loss as ``cfg``
    maps: tuple[str, ...] = ("cam",)            # the maps infer_cam can read (``infer_cam.source``), CAM networks
    rounds: bool = False                        # trained in rounds on clustered sub-category labels (SC-CAM)

    def loss_fn(self, cfg: Config) -> Callable:
        """The engine's ``loss_fn(model, batch) -> dict``, bound to this network's own settings."""
        loss = getattr(importlib.import_module("wsss.losses"), self.loss)
        return partial(loss, cfg=getattr(cfg, self.settings)) if self.settings else loss

    def settings_dict(self, cfg: Config) -> dict | None:
        """Its own settings as plain data (the engine's checkpoint fingerprint and the tracking params)."""
        return cfg.to_dict()[self.settings] if self.settings else None


NETWORKS: dict[str, Network] = {entry.name: entry for entry in (
    Network("cam", "train_cls", _build_cam, "classification_loss"),
    Network("seam", "train_cls", _build_seam, "seam_loss", settings="seam", maps=("cam", "pcm")),
    Network("aff", "affinity", _build_affinity, "affinity_loss", settings="affinity"),
    Network("sccam", "train_cls", _build_sccam, "sccam_loss", settings="sccam", maps=("cam", "subcategory"),
            rounds=True),
    Network("deeplab", "train_seg", _build_deeplab, "segmentation_loss"),
    Network("ldf", "ldf", _build_ldf, "ldf_loss"),
)}

CAM_NETWORKS = tuple(name for name, entry in NETWORKS.items() if entry.section == "train_cls")


def network(name: str) -> Network:
    """The registry entry ``name``; an unknown name is an error listing the known ones."""
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r} (known: {', '.join(NETWORKS)})")
    return NETWORKS[name]


def build_network(name: str, cfg: Config, weights: str | None = None) -> nn.Module:
    """The network ``name`` of ``cfg``: ``weights`` None takes its stage's ImageNet ``weights``; ``""`` builds it
    without (a trained state dict follows, ``wsss.stages.common.load_trained``)."""
    entry = network(name)
    return entry.build(cfg, getattr(cfg, entry.section).weights if weights is None else weights)
