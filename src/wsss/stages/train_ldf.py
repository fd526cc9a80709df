"""Stage ``train_ldf``: LDF trained on body/detail targets in the shared engine (ldf.md §3–4).

Loss (the reference's ``train.py``): per iteration, BCE of the body and detail logits against
their soft targets and BCE + soft IoU of the saliency logits against the mask; the six terms
summed and halved. SGD with Nesterov momentum, weight decay on every parameter, the backbone at
``backbone_lr_factor`` × the head's learning rate, the triangular schedule set per epoch; one
random size from ``train_sizes`` per batch.

``--labels`` holds the targets: the decoupled maps (the single or coarse stage), or the coarse
model's predicted maps with ``--fine`` (the fine stage of the two-stage scheme, ``fine_epochs``).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from wsss.config import LDFConfig
from wsss.data.ldf import LDFTrainSet, MultiScaleCollate
from wsss.nets.backbones import input_statistics
from wsss.nets.ldf import build_ldf, parameter_count
from wsss.stages.common import stage_config, train_stage


def build_model(settings: LDFConfig, weights: str | None = None):
    """The LDF network of ``settings``; ``weights=""`` skips the ImageNet weights (a trained state dict follows)."""
    return build_ldf(settings.backbone, settings.weights if weights is None else weights, settings.width)


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − (Σpm + 1)/(Σ(p + m) − Σpm + 1) per image, averaged: the soft IoU of ``train.py``."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    union = (prob + target).sum((1, 2, 3))
    return (1 - (inter + 1) / (union - inter + 1)).mean()


def ldf_loss(model, batch: dict) -> dict:
    """The six-term LDF loss of a batch (logits in fp32 under autocast)."""
    outputs = [out.float() for out in model(batch["image"])]
    mask, body, detail = batch["mask"], batch["body"], batch["detail"]
    terms = {}
    for k, (out_body, out_detail, out_saliency) in enumerate((outputs[:3], outputs[3:]), start=1):
        terms[f"body{k}"] = F.binary_cross_entropy_with_logits(out_body, body)
        terms[f"detail{k}"] = F.binary_cross_entropy_with_logits(out_detail, detail)
        terms[f"saliency{k}"] = F.binary_cross_entropy_with_logits(out_saliency, mask) + iou_loss(out_saliency, mask)
    return {"loss": sum(terms.values()) / 2, **terms}


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

    def build():
        model = build_model(settings)
        print(f"LDF ({settings.backbone}, width {settings.width}) parameters: {parameter_count(model)}", flush=True)
        return model

    method = "ldf" if settings.supervision == "body_detail" else f"ldf_{settings.supervision}"
    stage = "train_ldf_fine" if args.fine else "train_ldf"
    train_stage(cfg, stage, build, ldf_loss, dataset, settings, args.out, (str(args.sod), str(args.labels)),
                pipeline="sod", method=method, collate_fn=MultiScaleCollate(settings.train_sizes),
                **engine_settings(settings, args.fine))
    return 0
