"""Stage ``infer_cam``: multi-scale, flipped CAMs of every ``train_aug`` image (train ⊂ train_aug is what eval_cam scores)."""

from __future__ import annotations

import argparse
import json

from wsss.data.datasets import open_prepared_voc
from wsss.infer.cam import infer_cam_dir
from wsss.stages.common import resume_key, stage_config, stage_runtime, trained_network
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    runtime = stage_runtime(cfg)
    model = trained_network(cfg.network, cfg, args.model)
    with config_stage_run(cfg, "infer_cam", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),)) as tracked:
        summary = infer_cam_dir(model, voc.root, voc.split(args.split), voc.labels, args.out, cfg.infer_cam, runtime,
                                workers=args.workers, resume_key=resume_key(args, cfg))
        tracked.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
