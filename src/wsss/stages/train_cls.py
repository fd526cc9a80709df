"""Stage ``train_cls``: the CAM network of the method from image-level labels, in the shared engine.

Trained on ``train_aug`` with psa's augmentation (random resize-long, flip, colour jitter, crop) and its
four learning-rate groups. The method's ``network`` (``wsss.nets.registry``) decides the rest: ``cam``, the
CAM classifier with the multilabel soft-margin loss (Zhou et al. 2016; psa ``train_cls.py``); ``seam``,
SEAM's network with its siamese losses (SEAM ``train_SEAM.py``).
"""

from __future__ import annotations

import argparse

from wsss.data.datasets import VOCClassification, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.nets.backbones import input_statistics
from wsss.stages.common import stage_config, train_stage


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_cls
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, resize_long=settings.resize_long, color_jitter=settings.color_jitter,
                                mean=mean, std=std)
    dataset = VOCClassification(voc.root, voc.split("train_aug"), voc.labels, transform)
    train_stage(cfg, "train_cls", cfg.network, dataset, args.out, (str(args.voc),))
    return 0
