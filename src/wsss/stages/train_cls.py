"""Stage ``train_cls``: the CAM network of the method from image-level labels, in the shared engine.

Trained on ``train_aug`` with psa's augmentation (random resize-long, flip, colour jitter, crop) and its
four learning-rate groups. The method's ``network`` decides the rest: ``cam``, the CAM classifier with the
multilabel soft-margin loss (Zhou et al. 2016; psa ``train_cls.py``); ``seam``, SEAM's network with its
siamese losses (``wsss.losses.seam_loss``; SEAM ``train_SEAM.py``).
"""

from __future__ import annotations

import argparse
from functools import partial

import torch.nn.functional as F

from wsss.config import Config
from wsss.data.datasets import VOCClassification, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.losses import seam_loss
from wsss.nets.backbones import build_backbone, input_statistics
from wsss.nets.cam import CAMNet
from wsss.nets.seam import SEAMNet
from wsss.stages.common import stage_config, train_stage


def build_classifier(cfg: Config, weights: str | None = None) -> CAMNet:
    """The CAM network of the method (``CAMNet`` or ``SEAMNet``); ``weights=""`` skips the ImageNet weights
    (a trained state dict follows)."""
    settings = cfg.train_cls
    backbone = build_backbone(settings.backbone, settings.weights if weights is None else weights,
                              output_stride=settings.output_stride)
    if cfg.network == "seam":
        return SEAMNet(backbone, official_detach=cfg.seam.official_detach, cam_source=cfg.infer_cam.source,
                       pcm_classes=cfg.seam.pcm_classes)
    return CAMNet(backbone)


def classification_loss(model, batch) -> dict:
    """Multilabel soft-margin loss on the GAP logits (psa ``train_cls.py``)."""
    images, labels = batch
    return {"loss": F.multilabel_soft_margin_loss(model(images).float(), labels)}


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_cls
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, resize_long=settings.resize_long, color_jitter=settings.color_jitter,
                                mean=mean, std=std)
    dataset = VOCClassification(voc.root, voc.split("train_aug"), voc.labels, transform)
    if cfg.network == "seam":
        loss_fn, method_config = partial(seam_loss, cfg=cfg.seam), cfg.seam.model_dump()
    else:
        loss_fn, method_config = classification_loss, None
    train_stage(cfg, "train_cls", lambda: build_classifier(cfg), loss_fn, dataset, settings,
                args.out, (str(args.voc),), config=method_config)
    return 0
