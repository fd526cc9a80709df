"""Stage ``eval_equivariance``: how far a method's CAMs are from equivariant under SEAM's rescale, on a split.

``mean |F(A(I)) − A(F(I))|`` (SEAM Fig. 1: CAMs of a rescaled image differ from rescaled CAMs), for any CAM
method, with its own map and normalisation (``infer_cam``) and ``A`` = ``evaluate.equivariance_scale``.
"""

from __future__ import annotations

import argparse
import json

from wsss.data.datasets import open_prepared_voc
from wsss.infer.cam import equivariance_dir
from wsss.io import write_json
from wsss.stages.common import stage_config, stage_runtime, trained_network
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    runtime = stage_runtime(cfg)
    model = trained_network(cfg.network, cfg, args.model)
    with config_stage_run(cfg, "eval_equivariance", pipeline="wsss", method=cfg.method,
                          data_paths=(str(args.voc),)) as tracked:
        result = {"method": cfg.method, "split": args.split,
                  **equivariance_dir(model, voc.root, voc.split(args.split), voc.labels,
                                     cfg.evaluate.equivariance_scale, cfg.infer_cam.norm, runtime)}
        write_json(args.out, result)
        tracked.log_metrics({"equivariance_error": result["equivariance_error"]})
        tracked.log_artifact(args.out)
    print(json.dumps(result, indent=2))
    return 0
