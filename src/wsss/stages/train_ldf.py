"""Stage ``train_ldf``: LDF trained on body/detail targets in the shared engine
(weijun88/LDF@d49ff02:train-fine/train.py:18-80).

The network and its six-term loss from the registry (``ldf``; ``wsss.losses.ldf_loss``). SGD with Nesterov momentum, weight decay on every parameter, the backbone at
``backbone_lr_factor`` × the head's learning rate, the triangular schedule set per epoch; one
random size from ``train_sizes`` per batch.

``--labels`` holds the targets: the decoupled maps (the single or coarse stage), or the coarse
model's predicted maps with ``--fine`` (the fine stage of the two-stage scheme, ``fine_epochs``).
"""

from __future__ import annotations

import argparse

from wsss.config import LDFConfig
from wsss.data.ldf import LDFTrainSet, MultiScaleCollate
from wsss.nets.backbones import input_statistics
from wsss.stages.common import stage_config, train_stage


def engine_settings(settings: LDFConfig, fine: bool = False) -> dict:
    """The engine options of LDF's optimiser and schedule (``TrainSettings`` fields)."""
    factor = settings.backbone_lr_factor
    return {"schedule": "triangle", "nesterov": True, "lr_multipliers": (factor, factor, 1.0, 1.0),
            "epochs": settings.fine_epochs if fine else settings.epochs}


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    settings = cfg.ldf
    mean, std = input_statistics(settings.backbone)
    dataset = LDFTrainSet(args.sod, cfg.sod.train_sets, args.labels, settings.supervision, mean, std)
    method = "ldf" if settings.supervision == "body_detail" else f"ldf_{settings.supervision}"
    stage = "train_ldf_fine" if args.fine else "train_ldf"
    train_stage(cfg, stage, "ldf", dataset, args.out, (str(args.sod), str(args.labels)),
                pipeline="sod", method=method, collate_fn=MultiScaleCollate(settings.train_sizes),
                **engine_settings(settings, args.fine))
    return 0
