"""Stage ``train_cls``: the CAM classifier from image-level labels (Zhou et al. 2016; psa ``train_cls.py``).

Trained on ``train_aug`` with the multilabel soft-margin loss, psa's augmentation (random
resize-long, flip, colour jitter, crop) and its four learning-rate groups, in the shared engine.
"""

from __future__ import annotations

import argparse

import torch.nn.functional as F

from wsss.config import TrainClsConfig
from wsss.data.datasets import VOCClassification, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.nets.backbones import build_backbone
from wsss.nets.cam import CAMNet
from wsss.stages.common import stage_config, train_stage


def build_classifier(settings: TrainClsConfig, weights: str | None = None) -> CAMNet:
    """The CAM network of ``train_cls``; ``weights=""`` skips the ImageNet weights (a trained state dict follows)."""
    return CAMNet(build_backbone(settings.backbone, settings.weights if weights is None else weights))


def classification_loss(model, batch) -> dict:
    """Multilabel soft-margin loss on the GAP logits (psa ``train_cls.py``)."""
    images, labels = batch
    return {"loss": F.multilabel_soft_margin_loss(model(images).float(), labels)}


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_cls
    transform = train_transform(settings.crop, resize_long=settings.resize_long, color_jitter=settings.color_jitter)
    dataset = VOCClassification(voc.root, voc.split("train_aug"), voc.labels, transform)
    train_stage(cfg, "train_cls", lambda: build_classifier(settings), classification_loss, dataset, settings,
                args.out, (str(args.voc),))
    return 0
