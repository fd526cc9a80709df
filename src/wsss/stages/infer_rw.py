"""Stage ``infer_rw``: random-walk pseudo labels of every ``train_aug`` image from its CAMs and the trained
AffinityNet (``wsss.infer.random_walk``); ``--crf`` adds the dense CRF on the walk's scores (``pseudo: rw_crf``)."""

from __future__ import annotations

import argparse
import json

from wsss.data.datasets import open_prepared_voc
from wsss.infer.random_walk import random_walk_label_dir
from wsss.stages.common import resume_key, stage_config, stage_runtime, trained_network
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    runtime = stage_runtime(cfg)
    model = trained_network("aff", cfg, args.model)
    with config_stage_run(cfg, "infer_rw", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),)) as tracked:
        summary = random_walk_label_dir(model, voc.root, voc.split(args.split), args.cams, args.out, cfg.affinity,
                                        runtime, crf=cfg.crf if args.crf else None, workers=args.workers,
                                        resume_key=resume_key(args, cfg))
        tracked.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
