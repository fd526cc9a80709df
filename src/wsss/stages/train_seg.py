"""Stage ``train_seg``: DeepLab retrained on the pseudo labels (reference §9), in the shared engine.

Cross-entropy with 255 ignored on logits upsampled to the crop; random scale, flip and crop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsss.config import TrainSegConfig
from wsss.data.datasets import VOCSegmentation, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.nets.backbones import input_statistics
from wsss.stages.common import stage_config, train_stage


CLASSIFIER_WEIGHTS = "classifier"


def initial_weights(settings: TrainSegConfig, classifier: Path | None) -> str:
    """The backbone weights to start from: ``weights: classifier`` means the backbone of the trained CAM
    classifier (``--classifier``), the stand-in for ImageNet weights where none exist (smoke profile)."""
    if settings.weights != CLASSIFIER_WEIGHTS:
        return settings.weights
    if classifier is None:
        raise ValueError("train_seg.weights is 'classifier': give the trained classifier with --classifier")
    return str(classifier)


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_seg
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, scale_range=settings.scale_range, mean=mean, std=std)
    dataset = VOCSegmentation(voc.root, voc.split("train_aug"), args.labels, transform)
    train_stage(cfg, "train_seg", "deeplab", dataset, args.out, (str(args.voc), str(args.labels)),
                weights=initial_weights(settings, args.classifier), model_input_size=settings.crop)
    return 0
