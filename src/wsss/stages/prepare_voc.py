"""Stage ``prepare_voc``: validate VOC2012 (+ SBD train_aug) and write split lists and image-level labels."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wsss.data import voc
from wsss.errors import DatasetError
from wsss.io import output_dir
from wsss.stages.common import stage_config
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    root, sbd_root = Path(cfg.voc.root), Path(cfg.voc.sbd_root) if cfg.voc.sbd_root else None
    with config_stage_run(cfg, "prepare_voc", pipeline="wsss", data_paths=(cfg.voc.root,)) as tracked:
        start = time.perf_counter()
        if not root.is_dir() and (cfg.voc.download or args.download):
            _download(root, args.workers)
        if sbd_root and sbd_root.is_dir() and not (root / voc.SPLIT_DIR / "train_aug.txt").is_file():
            voc.convert_sbd(sbd_root, root, workers=args.workers)
            voc.build_train_aug(root, sbd_root)
        with output_dir(args.out) as out:
            summary = voc.prepare_voc(root, out, label_source=cfg.voc.label_source, workers=args.workers)
        seconds = time.perf_counter() - start
        tracked.log_metrics({"images": summary["images"], "masks_checked": summary["masks_checked"],
                             "labels_differing_from_masks": summary["labels_differing_from_masks"],
                             "images_per_s": summary["images"] / seconds})
    print(json.dumps(summary, indent=2))
    return 0


def _download(root: Path, workers: int) -> None:
    """Fetch VOC2012 and SBD into the folder that holds ``VOCdevkit/VOC2012``."""
    if root.parts[-2:] != ("VOCdevkit", "VOC2012"):
        raise DatasetError(f"voc.root {root} must end in VOCdevkit/VOC2012 to download into it "
                               "(the archive unpacks to that folder)")
    voc.download_voc(root.parent.parent, workers=workers)
