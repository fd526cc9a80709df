"""Stage ``train_seg``: DeepLab retrained on the pseudo labels (``wsss.nets.deeplab``), in the shared engine.

Cross-entropy with 255 ignored on logits upsampled to the crop; random scale, flip and crop.
"""

from __future__ import annotations

import argparse
from wsss.data.datasets import VOCSegmentation, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.nets.backbones import input_statistics
from wsss.stages.common import initial_weights, stage_config, train_stage


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_seg
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, scale_range=settings.scale_range, mean=mean, std=std)
    dataset = VOCSegmentation(voc.root, voc.split("train_aug"), args.labels, transform)
    train_stage(cfg, "train_seg", "deeplab", dataset, args.out, (str(args.voc), str(args.labels)),
                weights=initial_weights(settings.weights, args.classifier, "train_seg"), model_input_size=settings.crop)
    return 0
