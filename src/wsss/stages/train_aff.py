"""Stage ``train_aff``: AffinityNet on the la/ha CRF labels of ``train_aug``, in the shared engine.

jiwoon-ahn/psa@9493e59:train_aff.py:43-62: random crop (the image padded with the mean colour,
the labels with 255), horizontal flip and colour jitter, no rescaling; the loss ``wsss.losses.affinity_loss``.
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
    settings = cfg.affinity
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, color_jitter=settings.color_jitter, mean=mean, std=std)
    dataset = VOCSegmentation(voc.root, voc.split("train_aug"), args.labels, transform)
    train_stage(cfg, "train_aff", "aff", dataset, args.out, (str(args.voc), str(args.labels)),
                weights=initial_weights(settings.weights, args.classifier, "affinity"))
    return 0
