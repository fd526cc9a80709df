"""Stage ``train_cls``: the CAM network of the method from image-level labels, in the shared engine.

Trained on ``train_aug`` with psa's augmentation (random resize-long, flip, colour jitter, crop) and its
four learning-rate groups. The method's ``network`` (``wsss.nets.registry``) decides the rest: ``cam``, the
CAM classifier with the multilabel soft-margin loss (Zhou et al. 2016; jiwoon-ahn/psa@9493e59:train_cls.py); ``seam``,
SEAM's network with its siamese losses (YudeWang/SEAM@3212261:train_SEAM.py); ``sccam``, one round of SC-CAM: its
two-head network on the parent and the sub-category labels of ``--labels`` (the cluster stage's file),
from ``train_cls.weights`` in every round (Juliachang/SC-CAM@191ec48:script.sh:22-48), tagged with the round in MLflow.
"""

from __future__ import annotations

import argparse

from wsss.data.datasets import VOCClassification, open_prepared_voc
from wsss.data.subcategories import load_subcategories, with_subcategories
from wsss.data.transforms import train_transform
from wsss.nets.backbones import input_statistics
from wsss.nets.registry import network
from wsss.stages.common import stage_config, train_stage


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    settings = cfg.train_cls
    mean, std = input_statistics(settings.backbone)
    transform = train_transform(settings.crop, resize_long=settings.resize_long, color_jitter=settings.color_jitter,
                                mean=mean, std=std)
    ids, labels, data_paths, tags = voc.split("train_aug"), voc.labels, (str(args.voc),), None
    if network(cfg.network).rounds:
        if args.labels is None:
            raise ValueError(f"network {cfg.network} trains on sub-category labels: give --labels (the cluster "
                             "stage's labels.npz)")
        subcategories, clusters = load_subcategories(args.labels)
        if clusters != cfg.sccam.clusters:
            raise ValueError(f"{args.labels}: {clusters} clusters per class, but sccam.clusters is "
                             f"{cfg.sccam.clusters}")
        labels = with_subcategories(labels, subcategories, ids)
        data_paths, tags = (*data_paths, str(args.labels)), {"round": str(cfg.sccam.training_round)}
    elif args.labels is not None:
        raise ValueError(f"network {cfg.network} takes no --labels")
    dataset = VOCClassification(voc.root, ids, labels, transform)
    train_stage(cfg, "train_cls", cfg.network, dataset, args.out, data_paths, tags=tags)
    return 0
