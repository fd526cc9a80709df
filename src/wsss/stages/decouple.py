"""Stage ``decouple``: body and detail maps of every training mask (LDF label decoupling,
weijun88/LDF@d49ff02:utils.py:7-25).

Writes ``<out>/<SET>/{body,detail}/<name>.png`` for each of ``sod.train_sets``, atomically.
"""

from __future__ import annotations

import argparse
import json

from wsss.data.decouple import decouple_dir
from wsss.data.sod import prepared_pairs
from wsss.io import output_dir
from wsss.stages.common import resume_key, stage_config
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    settings, resume = cfg.decouple, resume_key(args, cfg)
    with config_stage_run(cfg, "decouple", pipeline="sod", method="ldf", data_paths=(str(args.sod),)) as tracked, \
            output_dir(args.out, resume) as out:
        summary = {}
        for name in cfg.sod.train_sets:
            masks = [(stem, mask) for stem, _, mask in prepared_pairs(args.sod, name, "train")]
            summary[name] = decouple_dir(masks, out / name, settings.variant, settings.exact_edt, args.workers,
                                         resume_key=resume)
            tracked.log_metrics({f"{name}/{key}": value for key, value in summary[name].items()
                                 if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
