"""Diagnosis: what SEAM's losses teach the pixel correlation module, with the CAM branch held fixed.

    python docs/experiments/scripts/diagnose_pcm_training.py MODEL.pt [--steps N] [--set seam.ohem_ratio=1.0 ...]

Run from the repository root (relative paths and ``--params`` as for ``wsss``); it needs a SEAM classifier
trained by ``wsss train-cls --set method=seam``.
Under the official detach (``seam.official_detach: true``) the PCM's losses (ECR, the min-pooling loss, ER
when ``er_source: pcm``) reach only its three projections, and no other loss reaches them, so the PCM and
the CAM branch train independently. This script re-initialises the projections of the trained model and
retrains them alone, on its frozen backbone and classifier, in the shared engine with the data, schedule and
lr groups of ``wsss train-cls`` (the projections at 10× ``train_cls.lr``) and any ``--set`` of ``seam.*`` or
``train_cls.*``; then it scores the retrained PCM as ``diagnose_pcm.py`` does (``pcm``, ``pcm, present
classes`` beside ``cam`` and the untrained ``cosine of mid``). ``--steps 0`` scores freshly initialised
projections. Prints JSON (percent).
"""

import argparse
import json
import tempfile
from functools import partial
from pathlib import Path

import torch

from wsss.config import load_config
from wsss.data.datasets import VOCClassification, open_prepared_voc
from wsss.data.transforms import train_transform
from wsss.engine import TrainSettings, seed_everything, train
from wsss.losses import seam_loss
from wsss.stages.common import stage_runtime, trained_network

from diagnose_pcm import score  # beside this file: Python puts a script's folder on sys.path

ROOT = Path(__file__).resolve().parents[3]


def retrain_pcm(cfg, model_path: Path, voc, steps: int | None):
    """The model of ``model_path`` with its PCM projections re-initialised and retrained alone under ``cfg``."""
    seed_everything(cfg.seed)
    model = trained_network(cfg.network, cfg, model_path)
    model.init_pcm()
    trainable = {id(p) for p in model.pcm_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    if steps != 0:
        settings = cfg.train_cls
        dataset = VOCClassification(voc.root, voc.split("train_aug"), voc.labels,
                                    train_transform(settings.crop, resize_long=settings.resize_long,
                                                    color_jitter=settings.color_jitter))
        overrides = {"max_steps": steps, "epochs": 0} if steps else {}
        with tempfile.TemporaryDirectory() as out_dir:
            train(model, partial(seam_loss, cfg=cfg.seam), dataset,
                  TrainSettings.from_config(settings, cfg.runtime, cfg.seed, **overrides), stage_runtime(cfg), out_dir)
    scored = trained_network(cfg.network, cfg, model_path)  # the CAM branch as trained (BN stats)
    with torch.no_grad():
        for weight, retrained in zip(scored.pcm_parameters(), model.pcm_parameters()):
            weight.copy_(retrained)
    return scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model.pt written by wsss train-cls --set method=seam")
    parser.add_argument("--voc", type=Path, default=Path("data/prepared/voc"), help="a prepared VOC folder")
    parser.add_argument("--split", default="train", help="the split the retrained PCM is scored on")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: train_cls's epochs)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides after method=seam (e.g. seam.ohem_ratio=1.0, train_cls.lr=0.01)")
    args = parser.parse_args()
    cfg = load_config(args.params, ["method=seam", "tracking.enabled=false", *args.overrides])
    if cfg.network != "seam" or not cfg.seam.official_detach:
        parser.error("needs a SEAM network with seam.official_detach: true (else the PCM's losses train the CAM too)")
    if args.steps is not None and args.steps < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    voc = open_prepared_voc(args.voc)
    model = retrain_pcm(cfg, args.model, voc, args.steps)
    keep = ("cam", "pcm", "pcm, present classes", "cosine of mid")
    report = {name: figures for name, figures in score(model, cfg, voc, args.split).items() if name in keep}
    print(json.dumps({"model": str(args.model), "overrides": args.overrides, "steps": args.steps,
                      "variants": report}, indent=2))


if __name__ == "__main__":
    main()
