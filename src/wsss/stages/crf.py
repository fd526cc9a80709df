"""Stage ``crf``: dense-CRF pseudo labels from CAMs (psa/SEAM ``crf_inference`` on ``[(1 - max)^alpha ; CAMs]``)."""

from __future__ import annotations

import argparse
import json

from wsss.data.datasets import open_prepared_voc
from wsss.infer.crf import crf_label_dir, pseudo_label_alpha
from wsss.stages.common import resume_key, stage_config
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    with config_stage_run(cfg, "crf", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),)) as tracked:
        summary = crf_label_dir(voc.root, voc.split(args.split), args.cams, args.out, cfg.crf,
                                pseudo_label_alpha(cfg.crf), workers=args.workers,
                                resume_key=resume_key(args, cfg))
        tracked.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
