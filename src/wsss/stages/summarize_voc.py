"""Stage ``summarize_voc``: ``results/voc_miou.json``, the headline of the WSSS chain.

DeepLab's mIoU on ``val`` beside the quality of what it was trained from (CAM and the pseudo labels of
``pseudo``: crf, rw or rw_crf, both on ``train``: the field's protocol; the CAMs' equivariance error), with
the configuration hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json

from wsss.io import read_json, write_json
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def config_hash(config: dict) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    seg, cam, pseudo, equivariance = (read_json(path) for path in (args.seg, args.cam, args.pseudo, args.equivariance))
    summary = {
        "dataset": cfg.voc_dataset,
        "profile": cfg.profile,
        "method": cfg.method,
        "miou": seg["miou"],
        "per_class": seg["per_class"],
        "cam_miou": cam["miou"],
        "cam_bg_threshold": cam["bg_threshold"],
        "cam_best_miou": cam.get("best_miou"),
        "cam_best_threshold": cam.get("best_threshold"),
        "pseudo": cfg.pseudo,
        "pseudo_miou": pseudo["miou"],
        "cam_equivariance_error": equivariance["equivariance_error"],
        "config_hash": config_hash(cfg.to_dict()),
    }
    with config_stage_run(cfg, "summarize_voc", pipeline="wsss", method=cfg.method) as tracked:
        write_json(args.out, summary)
        tracked.log_metrics({key: summary[key] for key in ("miou", "cam_miou", "pseudo_miou", "cam_equivariance_error")})
        tracked.log_artifact(args.out)
    print(json.dumps({key: value for key, value in summary.items() if key != "per_class"}, indent=2))
    return 0
