"""Stage ``extract_features``: the pooled features of every image of a split (``train_aug``) under the previous round's
classifier (Juliachang/SC-CAM@191ec48:extract_feature.py:73-97), the input of the ``cluster`` stage.

``--network`` names the classifier's network: round 1 reads the initial method's classifier (``cam``: psa's,
as the official code), later rounds the previous SC-CAM round's. Writes ``features.npz`` (``ids``,
``features`` N×D float32).
"""

from __future__ import annotations

import argparse

import numpy as np

from wsss.data.datasets import open_prepared_voc
from wsss.infer.features import extract_features
from wsss.io import atomic_path
from wsss.stages.common import stage_config, stage_runtime, trained_network
from wsss.tracking import config_stage_run


def run(args: argparse.Namespace) -> int:
    cfg = stage_config(args)
    voc = open_prepared_voc(args.voc)
    ids = voc.split(args.split)
    model = trained_network(args.network, cfg, args.model)
    round_tag = {"round": str(cfg.sccam.training_round)}
    with config_stage_run(cfg, "extract_features", pipeline="wsss", method=cfg.method, data_paths=(str(args.voc),),
                          tags=round_tag) as tracked:
        features = extract_features(model, voc.root, ids, stage_runtime(cfg))
        with atomic_path(args.out) as tmp:
            np.savez(tmp, ids=np.asarray(ids), features=features)
        tracked.log_metrics({"images": len(ids), "dimensions": features.shape[1]})
    print(f"{args.out}: {features.shape[0]} features of {features.shape[1]} dimensions")
    return 0
