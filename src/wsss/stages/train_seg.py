"""Stage ``train_seg``: DeepLab retrained on the pseudo labels (reference §9), in the shared engine.

Cross-entropy with 255 ignored on logits upsampled to the crop; random scale, flip and crop.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch.nn.functional as F

from wsss.config import TrainSegConfig
from wsss.data.classes import IGNORE_INDEX
from wsss.data.datasets import VOCSegmentation, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.engine import TrainSettings, seed_everything, train
from wsss.nets.deeplab import build_segmenter
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run, is_rank_zero


def build_deeplab(settings: TrainSegConfig, weights: str | None = None):
    """The segmentation network of ``train_seg``; ``weights=""`` skips the ImageNet weights."""
    return build_segmenter(settings.arch, settings.backbone, settings.weights if weights is None else weights)


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
    transform = train_transform(settings.crop, scale_range=settings.scale_range)
    dataset = VOCSegmentation(voc.root, voc.split("train_aug"), args.labels, transform)
    with config_stage_run(cfg, "train_seg", pipeline="wsss", method=cfg.method,
                          data_paths=(str(args.voc), str(args.labels)), system_metrics=True) as tracked:
        seed_everything(cfg.seed)
        model_path = train(build_deeplab(settings), segmentation_loss, dataset,
                           TrainSettings.from_config(settings, cfg.runtime, cfg.seed), Path(args.out).parent, tracked)
        if is_rank_zero():
            os.replace(model_path, args.out)
            tracked.log_artifact(args.out, "model")
    return 0
