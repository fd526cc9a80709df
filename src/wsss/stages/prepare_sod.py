"""Stage ``prepare_sod``: validate the saliency datasets and write their image/mask lists."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wsss.data import sod
from wsss.io import output_dir
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    root = Path(cfg.sod.root)
    with config_stage_run(cfg, "prepare_sod", pipeline="sod", data_paths=(cfg.sod.root,)) as tracked:
        start = time.perf_counter()
        missing = [name for name in ("DUTS-TR", "DUTS-TE")
                   if name in (*cfg.sod.train_sets, *cfg.sod.test_sets) and not (root / name).is_dir()]
        if missing and (cfg.sod.download or args.download):
            sod.download_duts(root)
        with output_dir(args.out) as out:
            summary = sod.prepare_sod(root, cfg.sod.train_sets, cfg.sod.test_sets, out, workers=args.workers)
        images = sum(entry["count"] for sets in summary["sets"].values() for entry in sets.values())
        tracked.log_metrics({"images": images, "images_per_s": images / (time.perf_counter() - start)})
    print(json.dumps(summary, indent=2))
    return 0
