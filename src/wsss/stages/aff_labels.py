"""Stage ``aff_labels``: AffinityNet's training labels from the dense CRF of the CAMs at ``crf.alpha_low`` and
``crf.alpha_high`` (jiwoon-ahn/psa@9493e59:infer_cls.py:104-110 and voc12/data.py:222-229)."""

from __future__ import annotations

import argparse
import json

from wsss.data.datasets import open_prepared_voc
from wsss.infer.crf import affinity_label_dir
from wsss.stages.common import resume_key, stage_config
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    with config_stage_run(cfg, "aff_labels", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),)) as tracked:
        summary = affinity_label_dir(voc.root, voc.split(args.split), args.cams, args.out, cfg.crf,
                                     workers=args.workers, resume_key=resume_key(args, cfg))
        tracked.log_metrics({key: value for key, value in summary.items() if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
