"""Stage ``infer_ldf``: LDF saliency maps of a SOD test set (``data/saliency/<method>/<SET>/``), or with
``--maps decoupled`` the coarse model's body/detail maps of the training sets (two-stage scheme)."""

from __future__ import annotations

import argparse
import json

from wsss.data.sod import prepared_pairs
from wsss.infer.saliency import predict_dir
from wsss.io import output_dir
from wsss.stages.common import resume_key, stage_config, stage_runtime, trained_network
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    runtime = stage_runtime(cfg)
    model = trained_network("ldf", cfg, args.model)
    role, sets = ("train", cfg.sod.train_sets) if args.maps == "decoupled" else ("test", (args.split,))
    with config_stage_run(cfg, "infer_ldf", pipeline="sod", method=args.method, data_paths=(str(args.sod),)) as tracked, \
            output_dir(args.out, resume_key(args, cfg)) as out:
        summary = {}
        for name in sets:
            folder = out / name if args.maps == "decoupled" else out
            pairs = prepared_pairs(args.sod, name, role)
            summary[name] = predict_dir(model, pairs, folder, cfg.ldf.test_size, runtime, args.maps,
                                        flip=cfg.ldf.test_flip)
            tracked.log_metrics({f"{name}/{key}": value for key, value in summary[name].items()
                                 if isinstance(value, (int, float))})
    print(json.dumps(summary, indent=2))
    return 0
