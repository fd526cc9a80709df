"""Stage ``train_seg``: DeepLab retrained on the pseudo labels (reference §9), in the shared engine.

Cross-entropy with 255 ignored on logits upsampled to the crop; random scale, flip and crop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch.nn.functional as F

from wsss.config import TrainSegConfig
from wsss.data.classes import IGNORE_INDEX
from wsss.data.datasets import VOCSegmentation, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.nets.backbones import input_statistics
from wsss.nets.deeplab import build_segmenter
from wsss.stages.common import stage_config, train_stage


CLASSIFIER_WEIGHTS = "classifier"


def build_deeplab(settings: TrainSegConfig, weights: str | None = None):
    """The segmentation network of ``train_seg``; ``weights=""`` skips the ImageNet weights."""
    return build_segmenter(settings.arch, settings.backbone, settings.weights if weights is None else weights,
                           output_stride=settings.output_stride, aspp_rates=settings.aspp_rates)


def initial_weights(settings: TrainSegConfig, classifier: Path | None) -> str:
    """The backbone weights to start from: ``weights: classifier`` means the backbone of the trained CAM
    classifier (``--classifier``), the stand-in for ImageNet weights where none exist (smoke profile)."""
    if settings.weights != CLASSIFIER_WEIGHTS:
        return settings.weights
    if classifier is None:
        raise ValueError("train_seg.weights is 'classifier': give the trained classifier with --classifier")
    return str(classifier)


def segmentation_loss(model, batch) -> dict:
    """Cross-entropy over pixels, pseudo-label 255 ignored, on logits upsampled to the label size."""
    images, masks = batch
    logits = model(images)
    logits = F.interpolate(logits, masks.shape[-2:], mode="bilinear", align_corners=False)
    return {"loss": F.cross_entropy(logits.float(), masks.long(), ignore_index=IGNORE_INDEX)}


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_seg
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, scale_range=settings.scale_range, mean=mean, std=std)
    dataset = VOCSegmentation(voc.root, voc.split("train_aug"), args.labels, transform)
    weights = initial_weights(settings, args.classifier)
    train_stage(cfg, "train_seg", lambda: build_deeplab(settings, weights), segmentation_loss, dataset, settings,
                args.out, (str(args.voc), str(args.labels)), model_input_size=settings.crop)
    return 0
